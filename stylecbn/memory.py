"""How much memory this machine can still give us: the budget that size limits come from.

Limits that protect the machine (the largest image the reader decodes, the largest training
run it starts) are derived from `available_memory()` rather than fixed, so they fit a laptop
and a large server alike; callers can always pass their own limit instead.
"""

import os
from pathlib import Path

# cgroup files that cap a container's memory, v2 then v1: (limit, current usage).
_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def available_memory():
    """Bytes of memory this process can still allocate without pushing the machine into swap
    or the out-of-memory killer, or None where the system does not say.

    Linux's `MemAvailable` (free memory plus the caches the kernel can drop), lowered to what a
    container's cgroup limit still allows; elsewhere the free physical pages.
    """
    candidates = [_meminfo_available(), *(_cgroup_room(*files) for files in _CGROUP_FILES)]
    if candidates[0] is None:
        candidates.append(_sysconf_available())
    known = [value for value in candidates if value is not None]
    return min(known) if known else None


# Training's peak memory on the CPU (TensorFlow backend, float32), fitted by
# benchmarks/train_memory.py as fixed + batch * crop**2 * (loss network + width * network):
# 1.39 GB, 2624 and 4290 bytes per batch pixel (largest misfit 6%), rounded up here.
TRAINING_FIXED_BYTES = 1_500_000_000
TRAINING_LOSS_NETWORK_BYTES_PER_PIXEL = 2_800
TRAINING_NETWORK_BYTES_PER_PIXEL = 4_600  # at width multiplier 1


def training_memory(batch_size, crop_size, width_multiplier):
    """Bytes a CPU training run needs at its peak, for the photo cache aside (see above)."""
    per_pixel = (TRAINING_LOSS_NETWORK_BYTES_PER_PIXEL
                 + width_multiplier * TRAINING_NETWORK_BYTES_PER_PIXEL)
    return int(TRAINING_FIXED_BYTES + batch_size * crop_size**2 * per_pixel)


def format_bytes(count):
    """`count` bytes as a short human figure: '512 MB', '3.2 GB' (powers of 1000)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            value = count / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{count} bytes"


def _meminfo_available():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room(limit_file, usage_file):
    try:
        limit = Path(limit_file).read_text().strip()
        usage = int(Path(usage_file).read_text().strip())
    except (OSError, ValueError):
        return None
    # "max" (v2) or a huge number (v1: 2**63 rounded to pages) mean no limit.
    if limit == "max" or int(limit) >= 2**60:
        return None
    return max(0, int(limit) - usage)


def _sysconf_available():
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None

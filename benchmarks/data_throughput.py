"""Content-photo pipeline throughput: does `ContentPhotos.batch` keep up with GPU training?

Measures, on this machine's CPU:
- the construction of `ContentPhotos` (every photo decoded and resized once): time and memory;
- `batch(step, 16)` at crop 256 (uint8 crops, which the trainer scales to [0, 1] on the
  accelerator): batches/s and images/s on one thread, and on `--threads` threads taking turns
  over steps (as a prefetching loader such as `keras.utils.PyDataset` with workers would);
- the same batches scaled to float32 in [0, 1] on the host, as the pipeline delivered them
  before (the baseline);
and checks the one-thread rate against the 4,000 crops/s the pipeline must deliver on a
2-core machine (so that it is never what a GPU waits on), and against the GPU training rates
in docs/DESIGN.md (one H100, batch 16, 256 px): 744 img/s (Keras 3 on JAX, mixed_bfloat16)
and 858 img/s (PyTorch, bf16, compiled).

Usage (from the repository root):
    python benchmarks/data_throughput.py [--content ../shared/data/content] [--steps 200]
"""

import argparse
import concurrent.futures
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from stylecbn.training.photos import ContentPhotos  # noqa: E402

# docs/DESIGN.md, "Measured here": training images/s on one H100, batch 16, 256 px.
GPU_TRAINING_RATES = {
    "Keras 3 on JAX, mixed_bfloat16": 744.0,
    "PyTorch, bf16, torch.compile": 858.0,
}
REQUIRED_CROPS_PER_SECOND = 4000
DEFAULT_CONTENT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "content"


def resident_bytes():
    """This process's resident memory (Linux /proc), or None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def as_float(batch):
    """The host-side scaling the pipeline used to do: float32 in [0, 1]."""
    return np.divide(batch, np.float32(255), dtype=np.float32)


def time_batches(make, steps, threads, first_step):
    """Seconds for `make(step)` of `steps` steps from `first_step`, on `threads` threads."""
    step_numbers = range(first_step, first_step + steps)
    start = time.perf_counter()
    if threads == 1:
        for step in step_numbers:
            make(step)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(make, step_numbers):
                pass
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", type=Path, default=DEFAULT_CONTENT,
                        help="folder of content photos (default: ../shared/data/content)")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200, help="batches per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median counts")
    parser.add_argument("--threads", type=int, default=2, help="threads for the parallel run")
    args = parser.parse_args()

    rss_before = resident_bytes()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        photos = ContentPhotos(args.content, crop=args.crop)
    build_seconds = time.perf_counter() - start
    rss_after = resident_bytes()
    total = len(photos) + len(photos.holdout_paths)
    print(f"content folder: {args.content}")
    print(f"construction: {total} photos ({len(photos)} training, "
          f"{len(photos.holdout_paths)} held out, {len(caught)} skipped) decoded and resized "
          f"to shorter side {photos.resize} in {build_seconds:.2f} s "
          f"({total / build_seconds:.0f} photos/s)")
    rss_note = "" if rss_before is None else (
        f"; process resident memory grew by {(rss_after - rss_before) / 2**20:.1f} MiB")
    print(f"cache: {photos.nbytes / 2**20:.1f} MiB of uint8 pixels{rss_note}")

    photos.batch(0, args.batch_size)  # warm-up
    makers = {
        "uint8 crops (the pipeline)": lambda step: photos.batch(step, args.batch_size),
        "float32 in [0, 1] (baseline: scaled on the host)":
            lambda step: as_float(photos.batch(step, args.batch_size)),
    }
    results = {}
    for name, make in makers.items():
        for threads in sorted({1, args.threads}):
            seconds = [time_batches(make, args.steps, threads, first_step=r * args.steps)
                       for r in range(args.repeats)]
            batches_per_second = args.steps / statistics.median(seconds)
            results[name, threads] = batches_per_second
            print(f"{name}, batch({args.batch_size}) at crop {args.crop}, {threads} thread(s): "
                  f"{batches_per_second:.1f} batches/s, "
                  f"{batches_per_second * args.batch_size:.0f} images/s "
                  f"(median of {args.repeats} x {args.steps} batches; "
                  f"{1000 / batches_per_second:.2f} ms per batch)")
    results = {threads: rate for (name, threads), rate in results.items()
               if name.startswith("uint8")}
    one_thread = results[1] * args.batch_size
    verdict = "met" if one_thread >= REQUIRED_CROPS_PER_SECOND else "NOT met"
    print(f"required: {REQUIRED_CROPS_PER_SECOND} crops/s on one thread: {verdict} "
          f"({one_thread:.0f} crops/s)")

    labels_start = time.perf_counter()
    for step in range(1000):
        photos.labels(step, args.batch_size, 17)
    print(f"labels({args.batch_size}): {(time.perf_counter() - labels_start):.3f} ms per call")

    print("against the GPU training rates in DESIGN.md (one H100, batch 16, 256 px):")
    for threads, batches_per_second in results.items():
        images_per_second = batches_per_second * args.batch_size
        for name, rate in GPU_TRAINING_RATES.items():
            print(f"  {threads} thread(s) vs {name} ({rate:.0f} img/s): "
                  f"{images_per_second / rate:.2f}x faster than needed")


if __name__ == "__main__":
    main()

"""Helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`, so this folder
is on `sys.path` and they import it as `_common`)."""

import statistics
import time

import numpy as np


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

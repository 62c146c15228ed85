"""Peak memory of `stylecbn train` against batch size, crop size and network width (CPU).

Runs a few short trainings (2 steps, real hed VGG-16 weights, synthetic photos) in fresh
processes, reads each one's peak resident memory, and fits

    peak = fixed + batch * crop**2 * (vgg_bytes + width * network_bytes)

by least squares: the figures `stylecbn.memory` uses to refuse a run that cannot fit before
it starts. The baseline in the same run is the smallest configuration (batch 1, 32 px crops),
which is nearly all fixed cost (TensorFlow, the loss network's weights).

    python benchmarks/train_memory.py [--backend tensorflow|jax]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [  # (batch, crop, width)
    (1, 32, 1.0),
    (2, 256, 1.0),
    (4, 256, 1.0),
    (2, 384, 1.0),
    (4, 256, 0.25),
    (2, 384, 0.25),
]
# The child's peak: ru_maxrss of the children of a small launcher, which starts only this one.
LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
)


def photos(folder, count, size, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        small.resize((size, size), Image.BILINEAR).save(folder / f"photo{index}.png")
    return folder


def peak(batch, crop, width, folder, backend):
    command = [
        sys.executable, "-m", "stylecbn", "train", "--styles", folder / "styles",
        "--content", folder / "content", "--vgg-weights", "hed", "--steps", "2",
        "--batch-size", str(batch), "--crop-size", str(crop), "--width", str(width),
        "--checkpoint-every", "1000", "--preview-every", "1000", "--holdout", "0",
        "--no-tensorboard", "-o", folder / f"m{batch}_{crop}_{width}.keras",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", LAUNCHER, *map(str, command)], env=env,
                            capture_output=True, text=True, check=True)
    code, value = result.stdout.split()
    if code != "0":
        raise SystemExit(f"training failed for batch {batch}, crop {crop}: {result.stderr}")
    return int(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        photos(folder / "styles", 2, 256, seed=1)
        photos(folder / "content", 4, 440, seed=2)
        for batch, crop, width in CONFIGS:
            value = peak(batch, crop, width, folder, args.backend)
            rows.append((batch, crop, width, value))
            print(f"batch {batch:2d}  crop {crop:4d}  width {width:4.2f}  "
                  f"peak {value / 1e9:6.2f} GB", flush=True)
    # Least squares on [1, batch*crop^2, width*batch*crop^2].
    design = np.array([[1.0, b * c * c, w * b * c * c] for b, c, w, _ in rows])
    target = np.array([value for *_, value in rows], dtype=np.float64)
    (fixed, vgg, network), *_ = np.linalg.lstsq(design, target, rcond=None)
    print(f"fixed {fixed / 1e9:.2f} GB; per batch pixel: loss network {vgg:.0f} bytes, "
          f"transformer network {network:.0f} bytes x width")
    worst = max(abs(design[i] @ [fixed, vgg, network] - target[i]) / target[i]
                for i in range(len(rows)))
    print(f"largest relative misfit {worst:.1%}")


if __name__ == "__main__":
    main()

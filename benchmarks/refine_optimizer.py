"""Which optimizer refines a network's output best per step: L-BFGS-B or Adam (on the pixels).

For a few held-out photos and styles of a model with style targets, starts from the network's
output and prints the total loss after each checkpoint number of loss-and-gradient
evaluations (the cost of a step is one evaluation for both), with the seconds taken:

    python benchmarks/refine_optimizer.py --photos 1 --styles 4 --size 256 --steps 25,50,100

Same loss as `stylize(..., refine=N)` (stylecbn.perceptual.optimize.ImageLoss). The loss
shown at a checkpoint is the lowest seen so far (what `optimize_image` returns).

    python benchmarks/refine_optimizer.py --memory 256,512

measures instead the peak memory (resident set) of a 3-step refinement at each size, each in
a fresh process, for `stylecbn.applying.refine.REFINE_BYTES_PER_PIXEL`.
"""

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from stylecbn.applying.stylize import Stylizer
from stylecbn.media.pixels import center_square
from stylecbn.media.reading import read_image
from stylecbn.perceptual.optimize import METHODS, ImageLoss, optimize_image

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared" / "data" / "content"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model with style targets [built-in]")
    parser.add_argument("--content", default=str(CONTENT))
    parser.add_argument("--photos", type=int, default=1, help="the last N photos, sorted")
    parser.add_argument("--styles", default="4", help="comma list of style indices")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", default="25,50,100")
    parser.add_argument("--memory", default="", help="comma list of sizes: measure memory")
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return refine_once(args.model, args.one)
    if args.memory:
        return measure_memory(args.memory)
    checkpoints = sorted(int(s) for s in args.steps.split(","))
    stylizer = Stylizer(args.model)
    paths = sorted(p for p in Path(args.content).iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[-args.photos:]
    print(f"{'photo':24} {'style':>5} {'method':6} " + " ".join(f"{s:>14}" for s in checkpoints))
    for path in paths:
        photo = center_square(read_image(path).frames[0], args.size).astype(np.float32) / 255
        for style in (int(s) for s in args.styles.split(",")):
            blend = stylizer.blend(style)
            start = np.asarray(stylizer.stylize(photo, blend, max_size=0), np.float32) / 255
            refiner = stylizer.refiner
            loss = ImageLoss(refiner.loss_network, refiner.weights, photo,
                             [(None, refiner.goal(blend))])
            for method in METHODS:
                seen = {}
                started = time.perf_counter()
                lowest = [np.inf]

                def progress(step, steps, terms, seen=seen, started=started, lowest=lowest):
                    lowest[0] = min(lowest[0], terms["total_loss"])
                    if step in checkpoints:
                        seen[step] = (lowest[0], time.perf_counter() - started)

                optimize_image(loss, start, max(checkpoints), method, progress)
                cells = " ".join(f"{seen[s][0]:8.1f} {seen[s][1]:4.0f}s" if s in seen
                                 else f"{'(stopped)':>14}" for s in checkpoints)
                print(f"{path.stem:24} {style:5} {method:6} {cells}", flush=True)


def refine_once(model, size):
    """Refine a size x size gradient image 3 steps; print the peak resident set in bytes."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    photo = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1).astype(np.uint8)
    Stylizer(model).stylize(photo, 4, max_size=0, refine=3)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def measure_memory(sizes):
    base = None
    for size in (int(s) for s in sizes.split(",")):
        result = subprocess.run([sys.executable, __file__, "--one", str(size)],
                                capture_output=True, text=True, check=True)
        peak = int(result.stdout.split()[-1])
        note = "" if base is None else \
            f", {(peak - base[1]) / (size**2 - base[0] ** 2):,.0f} bytes per extra pixel"
        print(f"{size} px: peak {peak / 1e9:.2f} GB{note}", flush=True)
        base = base or (size, peak)


if __name__ == "__main__":
    main()

"""How much do a model's outputs change when its weights are stored in half precision?

Rounds every weight to float16 (and bfloat16) and back, stylizes photos with each style, and
prints the max / mean / 99th-percentile difference in uint8 levels against the float32
weights, plus the weight bytes in each precision:

    python benchmarks/half_precision.py [--model MODEL.keras] [--photos DIR] [--size 512]

Without --model it measures the built-in model; without --photos, two held-out photos of
../shared/data/content (or random images when that folder is absent).
"""

import argparse
from pathlib import Path

import numpy as np
from keras import ops

from stylecbn.media.reading import read_image
from stylecbn.model.saving import load_default_model, load_model
from stylecbn.media.pixels import resize_to_max

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = [
    ROOT.parent / "shared" / "data" / "content" / name
    for name in ("kodak_kodim09.png", "set14_coastguard.png")
]


def to_uint8(x):
    return np.clip(np.rint(np.asarray(ops.convert_to_numpy(x)) * 255.0), 0, 255)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--photos", nargs="*", default=None)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    model = load_model(args.model) if args.model else load_default_model()
    paths = [Path(p) for p in args.photos] if args.photos else [p for p in DEFAULT_PHOTOS if p.is_file()]
    if paths:
        photos = [resize_to_max(read_image(p).frames[0], args.size) for p in paths]
    else:
        rng = np.random.default_rng(0)
        photos = [(rng.random((args.size, args.size, 3)) * 255).astype("uint8")]
        print("(no photos found: random images)")
    originals = [w.numpy() if hasattr(w, "numpy") else ops.convert_to_numpy(w) for w in model.weights]
    n_bytes = sum(a.size for a in originals)
    print(f"weights: {n_bytes * 4 / 1e6:.2f} MB float32, {n_bytes * 2 / 1e6:.2f} MB in 16 bits")

    def outputs():
        result = []
        for photo in photos:
            batch = np.repeat(photo[None], model.num_styles, axis=0)
            result.append(to_uint8(model((batch, np.arange(model.num_styles)))))
        return np.concatenate([r.reshape(-1) for r in result])

    reference = outputs()
    for dtype in ("float16", "bfloat16"):
        for variable, value in zip(model.weights, originals):
            variable.assign(ops.cast(ops.cast(value, dtype), "float32"))
        diff = np.abs(outputs() - reference)
        print(f"{dtype:>8}: max {diff.max():.0f} levels, mean {diff.mean():.3f}, "
              f"99th percentile {np.percentile(diff, 99):.0f}, pixels changed {np.mean(diff > 0):.1%}")
        for variable, value in zip(model.weights, originals):
            variable.assign(value)


if __name__ == "__main__":
    main()

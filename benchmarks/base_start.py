"""Where a new style's rows should start when `stylecbn train --base` adds it: the mean of the
trained rows (the old start) or the blend whose Gram matrices are nearest (the new one).

Trains the same small run twice from the built-in model (same seed, batches and settings),
once from each start, and prints the new style's style loss (the training loss's, weighted)
on held-out photos after each run:

    python benchmarks/base_start.py --style styles/02_mosaic.png --steps 200 --crop 128

The photos evaluated are the last `--photos` of the content folder (sorted), centre squares at
the crop size.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from stylecbn.media.pixels import center_square
from stylecbn.media.reading import read_image
from stylecbn.model.saving import default_model_path, load_model
from stylecbn.perceptual.losses import LossWeights, PerceptualLoss
from stylecbn.perceptual.vgg import build_loss_network
from stylecbn.training import run as run_module
from stylecbn.training.config import TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared" / "data" / "content"


def style_loss(model, loss, photos, label):
    values = []
    for photo in photos:
        out = np.asarray(model((photo[None], np.array([label]))))
        values.append(float(loss(photo[None], out, np.array([0]))[1]["style_loss"]))
    return float(np.mean(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default=str(ROOT / "styles" / "02_mosaic.png"))
    parser.add_argument("--content", default=str(CONTENT))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--photos", type=int, default=4)
    args = parser.parse_args()
    base = default_model_path()
    work = Path(tempfile.mkdtemp(prefix="base_start_"))
    styles = work / "styles"
    styles.mkdir()
    shutil.copy(args.style, styles / Path(args.style).name)
    weights = LossWeights.recorded(load_model(base).metadata)
    vgg, description = build_loss_network("hed", weights.layers)
    print(f"loss network: {description}")
    paths = sorted(p for p in Path(args.content).iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[-args.photos:]
    photos = [center_square(read_image(p).frames[0], args.crop).astype(np.float32) / 255
              for p in paths]
    results = {}
    original = run_module._start_from_nearest
    for start in ("mean", "nearest"):
        run_module._start_from_nearest = original if start == "nearest" else (
            lambda *a, **k: None)
        config = TrainingConfig(
            styles=str(styles), content=args.content, base_model=str(base),
            output=str(work / f"{start}.keras"), run_dir=str(work / start), steps=args.steps,
            batch_size=args.batch, crop_size=args.crop, vgg_weights="hed", seed=0,
            checkpoint_every=args.steps, preview_every=10 * args.steps,
            log_every=max(1, args.steps // 4), tensorboard=False)
        started = time.perf_counter()
        path = run_module.train(config, loss_network=None, force=True)
        seconds = time.perf_counter() - started
        model = load_model(path)
        label = model.num_styles - 1
        loss = PerceptualLoss(vgg, weights, {layer: value[label:] for layer, value in
                                             model.style_targets.grams.items()}, [1.0])
        results[start] = (style_loss(model, loss, photos, label), seconds)
        print(f"{start} start: style loss after {args.steps} steps "
              f"{results[start][0]:.4g} ({seconds:.0f} s)", flush=True)
    run_module._start_from_nearest = original
    shutil.rmtree(work)


if __name__ == "__main__":
    main()

"""N-style vs single-style networks at equal steps (Dumoulin et al. report +8.7% content loss and
-8.9% style loss for the N-style network).

Trains, with the project's own trainer and the same settings, one network on two styles and one
network on each style alone, all for the same number of steps, then measures the content and
style loss of each on held-out photos (the trainer's own held-out set) and prints the relative
difference of the two-style network against the single-style ones:

    python benchmarks/nstyle_vs_single.py --styles styles --style-files 01_brush_flow.png,04_stained_glass.png \
        --content ../shared/data/content --steps 2000 --batch-size 16 --crop-size 256 --out runs/nstyle

On this 2-core CPU only toy settings fit (e.g. --steps 50 --crop-size 64 --batch-size 2);
the figures that compare with the paper need a GPU (tools/gpu_default_model.sh's machine).
"""

import argparse
import shutil
from pathlib import Path

import numpy as np
from keras import ops

from stylecbn.training.config import TrainingConfig
from stylecbn.training.styles import load_style_image, load_styles_folder
from stylecbn.training.photos import ContentPhotos
from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams
from stylecbn.model.saving import load_model
from stylecbn.training.run import train
from stylecbn.perceptual.vgg import build_loss_network


def styles_subset(source, files, out):
    """A styles folder holding links to `files` of `source` (keeping their manifest entries)."""
    specs = {spec.path.name: spec for spec in load_styles_folder(source)}
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in files:
        spec = specs[name]
        (out / name).symlink_to(spec.path.resolve())
        lines += ["[[style]]", f'file = "{name}"', f'name = "{spec.name}"',
                  f"weight = {spec.coefficient}", f"size = {spec.size}", ""]
    (out / "styles.toml").write_text("\n".join(lines), encoding="utf-8")
    return out


def held_out_losses(model_path, styles_dir, content, args, loss_network):
    """Mean (content, style) loss of a model on the held-out photos, per style."""
    model = load_model(model_path)
    training = model.metadata["training"]
    weights = LossWeights(content=training["content_weight"],
                          style=training["style_weight"] or LossWeights().style)
    specs = load_styles_folder(styles_dir)
    grams = compute_style_grams(loss_network, [load_style_image(s) for s in specs], weights.style_layers)
    loss = PerceptualLoss(loss_network, weights, grams, [s.coefficient for s in specs])
    photos = ContentPhotos(content, crop=args.crop_size, holdout=args.holdout, seed=args.seed)
    held_out = photos.preview_photos(size=args.eval_size)
    results = {}
    for index, spec in enumerate(specs):
        labels = np.full(len(held_out), index, "int32")
        out = model((held_out, labels))
        _, terms = loss(held_out, out, labels)
        results[spec.name] = (float(ops.convert_to_numpy(terms["content_loss"])),
                              float(ops.convert_to_numpy(terms["style_loss"])))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--styles", default="styles")
    parser.add_argument("--style-files", default="01_brush_flow.png,04_stained_glass.png")
    parser.add_argument("--content", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--eval-size", type=int, default=256)
    parser.add_argument("--holdout", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--vgg-weights", default="auto")
    parser.add_argument("--out", default="runs/nstyle_vs_single")
    args = parser.parse_args()

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    files = args.style_files.split(",")
    folders = {"both": styles_subset(Path(args.styles), files, out / "styles_both")}
    for name in files:
        folders[name] = styles_subset(Path(args.styles), [name], out / f"styles_{Path(name).stem}")

    loss_network, description = build_loss_network(args.vgg_weights)
    print(f"loss network: {description}")
    results = {}
    for key, folder in folders.items():
        config = TrainingConfig(
            styles=str(folder), content=args.content, output=str(out / f"{folder.name}.keras"),
            run_dir=str(out / f"run_{folder.name}"), steps=args.steps, batch_size=args.batch_size,
            crop_size=args.crop_size, precision=args.precision, seed=args.seed,
            holdout=args.holdout, vgg_weights=args.vgg_weights, checkpoint_every=args.steps,
            preview_every=args.steps, log_every=max(1, args.steps // 10), tensorboard=False,
        )
        model_path = train(config, loss_network=loss_network)
        results[key] = held_out_losses(model_path, folder, args.content, args, loss_network)

    print()
    print("| style | network | content loss | style loss |")
    print("|---|---|---|---|")
    changes = []
    for name in files:
        style_name = next(iter(results[name]))
        single, both = results[name][style_name], results["both"][style_name]
        print(f"| {style_name} | single-style | {single[0]:.4g} | {single[1]:.4g} |")
        print(f"| {style_name} | two-style | {both[0]:.4g} | {both[1]:.4g} |")
        changes.append(((both[0] - single[0]) / single[0], (both[1] - single[1]) / single[1]))
    content_change, style_change = np.mean(changes, axis=0)
    print()
    print(f"two-style vs single-style, mean over the styles: content {content_change:+.1%}, "
          f"style {style_change:+.1%} (Dumoulin et al.: +8.7% content, -8.9% style)")


if __name__ == "__main__":
    main()

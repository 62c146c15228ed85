"""Where a feed-forward model stands against optimization-based style transfer (Gatys et al.).

For held-out photos and each style, measures the content and style loss (the training
objective: same VGG weights, layers and loss weights) of
  (a) the model's output, and
  (b) a Gatys optimization of the pixels, starting from the photo, after 100, 300 and 1000
      Adam steps (lr 0.02 on [0, 1] pixels),
and reports the model's "equivalent optimization steps": the number of Gatys steps whose total
loss equals the model's (log-interpolated between the measured points).

    python benchmarks/quality.py --model MODEL.keras --content ../shared/data/content \
        --styles ../shared/data/paintings --photos 2 --size 128

The photos are the last `--photos` of the content folder in sorted order (the trainer holds
photos out by seed; pass the training run's held-out folder with --content to be exact).
Runs on the TensorFlow or JAX backend (KERAS_BACKEND).
"""

import argparse
import math
import time
from pathlib import Path

import keras
import numpy as np
from keras import ops

from _common import needs_folders
from stylecbn.training.styles import load_style_image, load_styles_folder
from stylecbn.media.reading import read_image
from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams
from stylecbn.model.saving import load_model
from stylecbn.media.pixels import center_square
from stylecbn.perceptual.vgg import build_loss_network

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CHECKPOINTS = (100, 300, 1000)


def value_and_grad(loss_fn):
    """A compiled (loss, terms, grad) function of the pixels for the active backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def wrapped(x):
            total, terms = loss_fn(x)
            return total, terms

        return jax.jit(jax.value_and_grad(wrapped, has_aux=True))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=False, reduce_retracing=True)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total, terms = loss_fn(x)
            return (total, terms), tape.gradient(total, x)

        return step
    raise SystemExit(f"quality.py supports the tensorflow and jax backends, not {backend}")


def per_sample_losses(loss, content, stylized, labels):
    """Content and style loss of each sample (batch of one at a time)."""
    results = []
    for i in range(content.shape[0]):
        _, terms = loss(content[i : i + 1], stylized[i : i + 1], labels[i : i + 1])
        results.append(
            (float(ops.convert_to_numpy(terms["content_loss"])), float(ops.convert_to_numpy(terms["style_loss"])))
        )
    return np.array(results)


def gatys(loss, content, labels, steps, lr):
    """Adam on the pixels from the photo; per-sample losses at each checkpoint."""
    x = ops.convert_to_tensor(content)
    optimizer_m = np.zeros_like(content)
    optimizer_v = np.zeros_like(content)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    fn = value_and_grad(lambda pixels: loss(content, pixels, labels))
    results = {}
    pixels = content.copy()
    start = time.perf_counter()
    for step in range(1, max(steps) + 1):
        (_, _), grad = fn(ops.convert_to_tensor(pixels))
        grad = np.asarray(ops.convert_to_numpy(grad), dtype=np.float32)
        optimizer_m = beta1 * optimizer_m + (1 - beta1) * grad
        optimizer_v = beta2 * optimizer_v + (1 - beta2) * grad * grad
        m_hat = optimizer_m / (1 - beta1**step)
        v_hat = optimizer_v / (1 - beta2**step)
        pixels = np.clip(pixels - lr * m_hat / (np.sqrt(v_hat) + eps), 0.0, 1.0).astype(np.float32)
        if step in steps:
            results[step] = per_sample_losses(loss, content, pixels, labels)
            print(f"  gatys step {step}: {time.perf_counter() - start:.0f} s", flush=True)
    del x
    return results


def equivalent_steps(model_total, photo_total, curve):
    """Gatys steps whose total loss equals `model_total`, log-interpolated.

    curve: [(steps, total)] at the checkpoints, totals decreasing.
    """
    points = sorted(curve)
    if model_total > points[0][1]:
        return "0 (worse than the photo)" if model_total >= photo_total else f"< {points[0][0]}"
    for (s0, t0), (s1, t1) in zip(points, points[1:]):
        if t1 <= model_total <= t0:
            frac = (math.log(t0) - math.log(model_total)) / (math.log(t0) - math.log(t1))
            return f"{math.exp(math.log(s0) + frac * (math.log(s1) - math.log(s0))):.0f}"
    return f"> {points[-1][0]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a stylecbn .keras model")
    parser.add_argument("--content", default=str(SHARED / "content"))
    parser.add_argument("--styles", default=str(SHARED / "paintings"),
                        help="the styles folder the model was trained on (same order)")
    parser.add_argument("--photos", type=int, default=2)
    parser.add_argument("--style-indices", default="", help="comma list; default: all styles")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", default=",".join(map(str, CHECKPOINTS)))
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--vgg-weights", default="",
                        help="default: the weights named in the model's training config, else auto")
    args = parser.parse_args()
    needs_folders(args.content, args.styles)

    model = load_model(args.model)
    training = model.metadata.get("training", {})
    weights_name = args.vgg_weights or training.get("vgg_weights", "auto")
    loss_weights = LossWeights(
        content=training.get("content_weight", 1.0),
        style=training.get("style_weight") or LossWeights().style,
    )
    loss_network, description = build_loss_network(weights_name, loss_weights.layers)
    print(f"loss network: {description}")
    print(f"loss weights: content {loss_weights.content:g}, style {loss_weights.style:g}")

    specs = load_styles_folder(args.styles)
    if len(specs) != model.num_styles:
        raise SystemExit(f"{args.styles} has {len(specs)} styles; the model has {model.num_styles}")
    indices = [int(i) for i in args.style_indices.split(",")] if args.style_indices else list(range(len(specs)))
    grams = compute_style_grams(loss_network, [load_style_image(specs[i]) for i in indices], loss_weights.style_layers)
    loss = PerceptualLoss(loss_network, loss_weights, grams, np.ones(len(indices), "float32"))

    photo_paths = sorted(p for p in Path(args.content).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    photo_paths = photo_paths[-args.photos:]
    photos = [center_square(read_image(p).frames[0], args.size).astype(np.float32) / 255
              for p in photo_paths]
    content = np.stack([p for p in photos for _ in indices])
    local_labels = np.array([j for _ in photos for j in range(len(indices))], "int32")
    model_labels = np.array([indices[j] for j in local_labels], "int32")

    start = time.perf_counter()
    outputs = ops.convert_to_numpy(model((content, model_labels)))
    model_losses = per_sample_losses(loss, content, outputs, local_labels)
    print(f"model forward + loss: {time.perf_counter() - start:.1f} s")
    photo_losses = per_sample_losses(loss, content, content, local_labels)

    steps = tuple(int(s) for s in args.steps.split(","))
    print(f"Gatys optimization of {content.shape[0]} images at {args.size} px, {max(steps)} steps ...")
    gatys_losses = gatys(loss, content, local_labels, steps, args.lr)

    header = "| photo | style | model content | model style | " + " | ".join(
        f"Gatys {s} content | Gatys {s} style" for s in steps) + " | equivalent steps |"
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    equivalents = []
    for i, (path, label) in enumerate(zip([p for p in photo_paths for _ in indices], model_labels)):
        mc, ms = model_losses[i]
        curve = [(s, gatys_losses[s][i].sum()) for s in steps]
        eq = equivalent_steps(mc + ms, photo_losses[i].sum(), curve)
        equivalents.append(eq)
        cells = " | ".join(f"{gatys_losses[s][i][0]:.4g} | {gatys_losses[s][i][1]:.4g}" for s in steps)
        print(f"| {path.stem} | {label}: {model.style_names[label]} | {mc:.4g} | {ms:.4g} | {cells} | {eq} |")
    print()
    mean_model = model_losses.mean(axis=0)
    print(f"mean model: content {mean_model[0]:.4g}, style {mean_model[1]:.4g}, total {mean_model.sum():.4g}")
    for s in steps:
        m = gatys_losses[s].mean(axis=0)
        print(f"mean Gatys {s} steps: content {m[0]:.4g}, style {m[1]:.4g}, total {m.sum():.4g}")
    print(f"photo itself: style {photo_losses[:, 1].mean():.4g}")
    print(f"equivalent Gatys steps (per pair): {', '.join(equivalents)}")


if __name__ == "__main__":
    main()

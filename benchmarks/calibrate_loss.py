"""Measure the loss terms with real weights, to calibrate the default style weight.

Unweighted terms (content weight 1, style weight 1 per layer) of:

  (a) every photo x painting at --size px, with the photo itself as the "stylized" output
      (content loss 0): the style loss a network has to remove at the start of training;
  (b) each pair (photo i, painting i) at --gatys-size px: the photo, and a style-dominated
      output made by --steps Adam steps of Gatys-style optimisation of the pixels, starting
      from the photo, with content weight 1 and style weight --gatys-style-weight.

Photos are centre-cropped squares; paintings keep their aspect ratio with the longer side at
--style-size px (the size the styles folder computes Gram matrices at). The script then
prints the style weight given by the rule of docs/loss_calibration.md.

Needs a gradient with respect to the pixels: runs on the TensorFlow (faster on CPU) or JAX
backend. About 4 minutes on 2 CPU cores:

    python benchmarks/calibrate_loss.py --weights hed --save-dir /tmp/calibration
"""

import argparse
import sys
import time
from pathlib import Path

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _common import needs_folders  # noqa: E402
from stylecbn.media.reading import read_image  # noqa: E402
from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams  # noqa: E402
from stylecbn.media.pixels import center_square  # noqa: E402
from stylecbn.perceptual.vgg import build_loss_network  # noqa: E402

DATA = REPO.parent / "shared" / "data"
PHOTOS = ("kodak_kodim23.png", "set14_baboon.png", "sunhays80_barn_sun_btulbiaoilnxcseh.jpg")
PAINTINGS = ("vangogh_the_starry_night.jpg", "hokusai_the_great_wave_off_kanagawa.jpg",
             "kandinsky_composition_vii.jpg")


def load_photo(path, size):
    """Centre square crop, resized to size x size, float32 in [0, 1]."""
    return center_square(read_image(path).frames[0], size).astype(np.float32) / 255


def load_painting(path, longer_side):
    """Whole painting, longer side resized to `longer_side`, float32 in [0, 1]."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = longer_side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.BICUBIC)
        return np.asarray(image, np.float32) / 255


def raw_terms(loss, photo, output):
    """Unweighted terms of one output against one photo (the loss has weights 1, 1, 0)."""
    _, terms = loss(photo[None], output[None], np.array([0]))
    return {name: float(value) for name, value in terms.items()}


def pixel_gradient(loss, photo):
    """Compiled function: pixels (H, W, 3) -> gradient of the total loss, as NumPy."""
    labels = np.array([0], np.int32)
    if keras.backend.backend() == "jax":
        import jax

        grad = jax.jit(jax.grad(lambda pixels: loss(photo[None], pixels[None], labels)[0]))
        return lambda pixels: np.asarray(grad(pixels))
    import tensorflow as tf

    @tf.function
    def grad(pixels):
        with tf.GradientTape() as tape:
            tape.watch(pixels)
            total = loss(photo[None], pixels[None], labels)[0]
        return tape.gradient(total, pixels)

    return lambda pixels: grad(tf.constant(pixels)).numpy()


def gatys(loss, photo, steps, learning_rate):
    """Adam on the pixels, starting from the photo; the output stays clipped to [0, 1]."""
    grad = pixel_gradient(loss, photo)
    pixels = photo.copy()
    first, second = np.zeros_like(pixels), np.zeros_like(pixels)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, steps + 1):
        gradient = grad(pixels)
        first = beta1 * first + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient**2
        update = (first / (1 - beta1**step)) / (np.sqrt(second / (1 - beta2**step)) + 1e-8)
        pixels = np.clip(pixels - learning_rate * update, 0.0, 1.0).astype(np.float32)
    return pixels


def round_down_125(value):
    """Round down to 1, 2 or 5 x 10^k."""
    exponent = np.floor(np.log10(value))
    candidates = np.array([1, 2, 5, 10]) * 10.0**exponent
    return float(candidates[candidates <= value * (1 + 1e-9)].max())


def style_cells(terms, layers):
    return " | ".join(f"{terms[f'style_loss/{layer}']:.3g}" for layer in layers) + \
        f" | {terms['style_loss']:.3g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="hed")
    parser.add_argument("--size", type=int, default=256, help="photo crop size of (a), px")
    parser.add_argument("--gatys-size", type=int, default=128, help="photo crop size of (b), px")
    parser.add_argument("--style-size", type=int, default=512, help="painting longer side, px")
    parser.add_argument("--steps", type=int, default=40, help="Gatys Adam steps")
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--gatys-style-weight", type=float, default=1e-2)
    parser.add_argument("--photos", nargs="+", default=PHOTOS)
    parser.add_argument("--paintings", nargs="+", default=PAINTINGS)
    parser.add_argument("--save-dir", type=Path, help="write the Gatys outputs as PNG here")
    args = parser.parse_args()
    needs_folders(DATA / "paintings", DATA / "content")

    start = time.monotonic()
    network, description = build_loss_network(args.weights)
    print(f"weights: {description}; backend: {keras.backend.backend()}")
    unit = LossWeights(content=1.0, style=1.0)
    layers = unit.style_layers
    style_header = " | ".join(f"style {layer}" for layer in layers) + " | style sum |"
    paintings = {name: load_painting(DATA / "paintings" / name, args.style_size)
                 for name in args.paintings}
    grams = {name: compute_style_grams(network, [image], layers)
             for name, image in paintings.items()}

    print(f"\n(a) photo as output, {args.size} px, paintings longer side {args.style_size} px\n")
    print(f"| photo | painting | {style_header}")
    print("|" + "---|" * (len(layers) + 3))
    style_start = []
    for photo_name in args.photos:
        photo = load_photo(DATA / "content" / photo_name, args.size)
        for painting_name in args.paintings:
            terms = raw_terms(PerceptualLoss(network, unit, grams[painting_name], [1.0]),
                              photo, photo)
            style_start.append(terms["style_loss"])
            print(f"| {Path(photo_name).stem[:24]} | {Path(painting_name).stem[:24]} | "
                  f"{style_cells(terms, layers)} |")

    print(f"\n(b) {args.gatys_size} px, Gatys: {args.steps} Adam steps, lr {args.learning_rate:g}, "
          f"style weight {args.gatys_style_weight:g}\n")
    print(f"| photo | painting | output | content | {style_header}")
    print("|" + "---|" * (len(layers) + 5))
    content_styled, style_styled = [], []
    for photo_name, painting_name in zip(args.photos, args.paintings):
        photo = load_photo(DATA / "content" / photo_name, args.gatys_size)
        gatys_weights = LossWeights(content=1.0, style=args.gatys_style_weight)
        stylized = gatys(PerceptualLoss(network, gatys_weights, grams[painting_name], [1.0]),
                         photo, args.steps, args.learning_rate)
        if args.save_dir:
            args.save_dir.mkdir(parents=True, exist_ok=True)
            pair = np.concatenate([photo, stylized], axis=1)
            Image.fromarray(np.uint8(np.round(pair * 255))).save(
                args.save_dir / f"{Path(photo_name).stem}__{Path(painting_name).stem}.png")
        unit_loss = PerceptualLoss(network, unit, grams[painting_name], [1.0])
        for label, output in (("photo", photo), ("gatys", stylized)):
            terms = raw_terms(unit_loss, photo, output)
            if label == "gatys":
                content_styled.append(terms["content_loss"])
                style_styled.append(terms["style_loss"])
            print(f"| {Path(photo_name).stem[:24]} | {Path(painting_name).stem[:24]} | {label} | "
                  f"{terms['content_loss']:.3g} | {style_cells(terms, layers)} |")

    style_start, content_styled, style_styled = map(
        np.array, (style_start, content_styled, style_styled))
    balance = np.median(content_styled) / np.median(style_styled)
    chosen = round_down_125(balance)
    print(f"\nmedian style(a) {np.median(style_start):.4g}; median content(b) "
          f"{np.median(content_styled):.4g}; median style(b) {np.median(style_styled):.4g}")
    print(f"rule: style weight = round_down_125(median content(b) / median style(b)) = "
          f"round_down_125({balance:.3g}) = {chosen:g}")
    for weight in sorted({1e-4, chosen}):
        start_ratio = weight * style_start / np.median(content_styled)
        content_share = content_styled / (content_styled + weight * style_styled)
        print(f"style weight {weight:g}: start, weighted style(a) / median content(b) = "
              f"{start_ratio.min():.3g}..{start_ratio.max():.3g} (median "
              f"{np.median(start_ratio):.3g}); at (b), content share of the loss = "
              f"{content_share.min():.0%}..{content_share.max():.0%}")
    print(f"\n{time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()

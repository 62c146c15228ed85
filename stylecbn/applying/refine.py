"""Refining the network's output by optimization, and styles from any painting.

- **Refine** (`stylize(..., refine=N)`): N steps of the training loss (content: the photo;
  style: the style's Gram matrices from the model's style targets, a blend's weighted mean
  of them, each mask region its own) optimized on the output's pixels, starting from the
  network's output (Gatys et al.'s method from the best start there is). `Refiner` holds the
  loss network of the model's targets, built once per `Stylizer`.
- **A painting's style** (`Stylizer.image_style`): its Gram matrices (several paintings: their
  weighted mean), and the trained style or blend whose Gram matrices are nearest, which the
  network paints first; refining then moves the output towards the painting.

Memory: the loss network's activations and their gradients at the image's size, about
`REFINE_BYTES_PER_PIXEL` per pixel (5 GB at 1024x1024; measured by
benchmarks/refine_optimizer.py --memory); a refinement that would not fit in the available
memory is refused before it starts.
"""

from dataclasses import dataclass

import numpy as np

from stylecbn.applying.blend import Blend
from stylecbn.errors import ConfigError, ImageError
from stylecbn.media.pixels import resize_to_max
from stylecbn.media.reading import read_image
from stylecbn.memory import available_memory, format_bytes
from stylecbn.perceptual.losses import LossWeights, compute_style_grams
from stylecbn.perceptual.optimize import DEFAULT_METHOD, ImageLoss, optimize_image
from stylecbn.perceptual.vgg import build_loss_network, loss_network_identity

__all__ = ["DEFAULT_IMAGE_REFINE", "ImageStyle", "Refiner", "REFINE_BYTES_PER_PIXEL",
           "check_refine"]

# Steps for a painting's style when no --refine is given (see README "Refining").
DEFAULT_IMAGE_REFINE = 100
# Memory a refinement adds per pixel of the image: benchmarks/refine_optimizer.py --memory
# 256,512 measured 4,618 bytes per extra pixel (peak RSS 1.37 GB at 256 px, 2.28 GB at 512 px,
# TensorFlow on this CPU), rounded up. The rest of the process (TensorFlow, the models) is
# already in memory when the check runs; the loss network's compiled step is on top of it.
REFINE_BYTES_PER_PIXEL = 5_000
REFINE_FIXED_BYTES = 200_000_000
# The longer side a painting is read at, as training reads the styles folder's images.
STYLE_IMAGE_SIZE = 512


def check_refine(refine):
    """`refine` as an int, or ConfigError unless it is a whole number >= 0."""
    if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
        raise ConfigError(f"refine must be a whole number of steps >= 0; received: {refine!r}")
    return int(refine)


@dataclass(frozen=True)
class ImageStyle:
    """The style of one or more paintings: a target, and the trained blend to start from.

    Attributes:
        grams: {style layer: (C, C)} the paintings' Gram matrices (their weighted mean).
        start: the `Blend` of the model's styles whose Gram matrices are nearest.
        distance: the style loss between the two (the loss's units: style weight included).
        nearest_single: (style index, distance) of the nearest single style.
        label: a file-name-safe name ("painting", "a50-b50").
    """

    grams: dict
    start: Blend
    distance: float
    nearest_single: tuple
    label: str

    @property
    def vector(self):
        """The network paints the start blend (so a `StyleField` takes an ImageStyle too)."""
        return self.start.vector


class Refiner:
    """The loss network and loss weights of a model's style targets.

    Args:
        model: a `StyleTransferNetwork` with `style_targets`.
        vgg_weights: the VGG-16 weights to use; None: those the targets name ("hed",
            "imagenet"); needed when they were made with a weights file, which must then
            have the recorded fingerprint.

    Raises:
        ConfigError: the model has no style targets, or the weights are missing or others.
    """

    def __init__(self, model, vgg_weights=None):
        targets = model.style_targets
        if targets is None:
            raise ConfigError(
                "this model carries no style targets, which refining needs: add them from "
                "the styles folder it was trained on (`stylecbn add-targets`, or "
                "`stylecbn.training.style_targets.add_targets`)")
        recorded = LossWeights.recorded(model.metadata)
        multipliers = dict(zip(recorded.style_layers, recorded.style_layer_weights
                               or (1.0,) * len(recorded.style_layers)))
        self.weights = LossWeights(content=recorded.content, style=recorded.style,
                                   total_variation=recorded.total_variation,
                                   content_layer=recorded.content_layer,
                                   style_layers=targets.layers,
                                   style_layer_weights=[multipliers.get(layer, 1.0)
                                                        for layer in targets.layers])
        kind = targets.loss_network["weights"]
        if vgg_weights is None and kind == "file":
            raise ConfigError(
                "the model's style targets were made with a VGG-16 weights file; pass that "
                "file as `vgg_weights`")
        self.loss_network, self.description = build_loss_network(
            kind if vgg_weights is None else vgg_weights, self.weights.layers)
        if kind == "file" and loss_network_identity(self.loss_network, self.description)[
                "fingerprint"] != targets.loss_network["fingerprint"]:
            raise ConfigError(
                f"{vgg_weights} are not the VGG-16 weights the model's style targets were made "
                "with (another fingerprint); pass that file")
        self.targets = targets

    def goal(self, style):
        """The target Gram matrices of a `Blend` or an `ImageStyle`."""
        if isinstance(style, ImageStyle):
            return style.grams
        return self.targets.blended(style.vector)

    def refine(self, photo, start, field, steps, progress=None, method=DEFAULT_METHOD):
        """The output `start` (H, W, 3) float32 of `photo` refined `steps` steps towards the
        style of a `StyleField` (its mask, if any, splits the image into two regions)."""
        check_memory(photo.shape[1], photo.shape[0])
        if field.mask is None:
            regions = [(None, self.goal(field.outside))]
        else:
            regions = [(field.mask, self.goal(field.inside)),
                       (1.0 - field.mask, self.goal(field.outside))]
        loss = ImageLoss(self.loss_network, self.weights, photo, regions)
        image, _ = optimize_image(loss, start, steps, method, progress)
        return image

    def image_style(self, paintings, weights=None, max_pixels=None):
        """The `ImageStyle` of paintings (any `read_image` sources) mixed by `weights`.

        Raises:
            ImageError: a painting cannot be read. ConfigError: bad weights.
        """
        paintings = list(paintings)
        if not paintings:
            raise ConfigError("give at least one style image")
        weights = np.ones(len(paintings)) if weights is None else np.asarray(weights, float)
        if weights.shape != (len(paintings),) or not np.all(np.isfinite(weights)) \
                or np.any(weights < 0) or weights.sum() <= 0:
            raise ConfigError(
                f"style image weights must be {len(paintings)} numbers >= 0, not all 0; "
                f"received: {weights.tolist()}")
        weights = weights / weights.sum()
        images, names = [], []
        for painting in paintings:
            loaded = read_image(painting, max_pixels=max_pixels)
            names.append(_stem(loaded.source))
            # as training reads a styles folder's images, but never enlarged
            images.append(resize_to_max(loaded.frames[0], STYLE_IMAGE_SIZE).astype(np.float32)
                          / 255.0)
        grams = compute_style_grams(self.loss_network, images, self.weights.style_layers)
        grams = {layer: np.tensordot(weights.astype(np.float32), value, axes=1)
                 for layer, value in grams.items()}
        start, distance, single = self.nearest(grams)
        used = [i for i in np.argsort(-weights, kind="stable") if weights[i] > 0]
        label = names[used[0]] if len(used) == 1 else "-".join(
            f"{names[i]}{round(100 * weights[i])}" for i in used)
        return ImageStyle(grams, start, distance, single, label)

    def nearest(self, grams):
        """(Blend, distance, (index, distance)): the blend of the model's styles whose Gram
        matrices are nearest to `grams` by the style loss, and the nearest single style
        (`StyleTargets.nearest`)."""
        weights, distance, single = self.targets.nearest(grams, self.weights.layer_style_weights())
        return Blend.from_weights(weights, self.targets.style_names), distance, single


def _stem(source):
    name = str(source).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return "".join(ch if ch.isalnum() or ch in "_." else "_" for ch in name) or "painting"


def check_memory(width, height):
    """ImageError unless refining a width x height image fits in the available memory."""
    needed = REFINE_FIXED_BYTES + REFINE_BYTES_PER_PIXEL * width * height
    available = available_memory()
    if available is not None and needed > available:
        raise ImageError(
            f"refining a {width}x{height} image needs about {format_bytes(needed)} of memory and "
            f"{format_bytes(available)} is available: use a smaller `max_size` (memory grows "
            "with the pixels)")

"""Optimizing an image against the perceptual loss (Gatys et al.): the refinement of an output.

`ImageLoss` is the training objective (`stylecbn.perceptual.losses`: content loss at the content
layer, weighted Gram-matrix loss at the style layers) for one image with a fixed photo and
fixed target Gram matrices; the photo's content features are computed once. With regions (a
mask), each region's Gram matrices are those of its own pixels (features weighted by the
region's map at each layer's resolution) and move towards its own target, weighted by the
region's share of the image.

`optimize_image` runs L-BFGS-B (SciPy, pixels bounded to [0, 1]) or Adam on the pixels and
counts steps as loss-and-gradient evaluations, so the two cost the same per step;
`benchmarks/refine_optimizer.py` chose L-BFGS (see `DEFAULT_METHOD`).

The loss is `keras.ops`; only its gradient needs the backend's own tool (`tf.GradientTape`,
`jax.value_and_grad`), which `value_and_grad` wraps: Keras has no backend-neutral gradient
of a function.
"""

import keras
import numpy as np
from keras import ops
from PIL import Image

from stylecbn.errors import ConfigError
from stylecbn.perceptual.losses import LossWeights, _check_outputs, gram_matrix, total_variation

__all__ = ["DEFAULT_METHOD", "METHODS", "ImageLoss", "optimize_image", "value_and_grad"]

METHODS = ("lbfgs", "adam")
DEFAULT_METHOD = "lbfgs"
# Adam's step on [0, 1] pixels (the learning rate benchmarks/quality.py used for Gatys).
ADAM_LEARNING_RATE = 0.02


class ImageLoss:
    """The perceptual loss of one image against a photo and target Gram matrices.

    Args:
        loss_network: a model returning {layer name: features} for RGB images in [0, 1].
        weights: a `LossWeights` (content and style weights and layers).
        photo: (H, W, 3) float32 in [0, 1], the content target.
        regions: a list of (map, grams): `map` None (the whole image) or an (H, W) float32
            array in [0, 1], the region's share of each pixel (the maps sum to 1 at every
            pixel); `grams` {style layer: (C, C)} the region's target.

    Call: `loss(image)` with image (1, H, W, 3) returns (total, {"content_loss",
        "style_loss", "total_variation_loss", "total_loss"}), float32 scalars: the training
        loss's terms (total variation weighted by `weights.total_variation`, 0 by default).
    """

    def __init__(self, loss_network, weights, photo, regions):
        if not isinstance(weights, LossWeights):
            raise ConfigError(f"weights must be a LossWeights. Received: {weights!r}")
        _check_outputs(loss_network, weights.layers)
        photo = np.asarray(photo, np.float32)
        features = loss_network(photo[None])
        self.loss_network = loss_network
        self.weights = weights
        self._layer_weights = weights.layer_style_weights()
        self._content = ops.stop_gradient(ops.cast(features[weights.content_layer], "float32"))
        self._regions = []
        for region_map, grams in regions:
            missing = [layer for layer in weights.style_layers if layer not in grams]
            if missing:
                raise ConfigError(f"the target Gram matrices lack layer(s) {', '.join(missing)}")
            share = 1.0 if region_map is None else float(np.mean(region_map))
            maps = {layer: None if region_map is None
                    else _resized(region_map, features[layer].shape[1:3])
                    for layer in weights.style_layers}
            # A region with no pixel at a layer has no Gram matrix there (0 / 0): no term.
            maps = {layer: value for layer, value in maps.items()
                    if value is None or value.max() > 0}
            targets = {layer: ops.convert_to_tensor(np.asarray(grams[layer], np.float32)[None])
                       for layer in maps}
            if share > 0:
                self._regions.append((share, {layer: None if value is None
                                              else ops.convert_to_tensor(value)
                                              for layer, value in maps.items()}, targets))

    def __call__(self, image):
        features = self.loss_network(ops.cast(image, "float32"))
        layer = self.weights.content_layer
        content = self.weights.content * ops.mean(
            ops.square(ops.cast(features[layer], "float32") - self._content))
        style = ops.convert_to_tensor(0.0, "float32")
        layer_weights = self._layer_weights
        for share, maps, targets in self._regions:
            for layer in maps:
                values = ops.cast(features[layer], "float32")
                weight_map = maps[layer]
                if weight_map is None:
                    gram = gram_matrix(values)
                else:  # sum of m * F^T F over the region, divided by the sum of m
                    gram = gram_matrix(values * ops.sqrt(weight_map), weight_map)
                style = style + share * layer_weights[layer] * ops.mean(
                    ops.square(gram - targets[layer]))
        tv = self.weights.total_variation * total_variation(image)
        total = content + style + tv
        return total, {"content_loss": content, "style_loss": style,
                       "total_variation_loss": tv, "total_loss": total}


def _resized(region_map, size):
    """The map at a feature map's (height, width), by area averaging: (1, h, w, 1) float32."""
    height, width = int(size[0]), int(size[1])
    resized = Image.fromarray(np.asarray(region_map, np.float32), mode="F").resize(
        (width, height), Image.Resampling.BOX)
    return np.clip(np.asarray(resized, np.float32), 0.0, 1.0)[None, ..., None]


def value_and_grad(function):
    """A compiled `pixels -> ((total, terms), gradient)` of `function(pixels) -> (total, terms)`.

    Raises:
        ConfigError: a Keras backend other than TensorFlow or JAX.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(jax.value_and_grad(function, has_aux=True))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=False, reduce_retracing=True)
        def step(pixels):
            with tf.GradientTape() as tape:
                tape.watch(pixels)
                total, terms = function(pixels)
            return (total, terms), tape.gradient(total, pixels)

        return step
    raise ConfigError(f"optimizing an image needs the tensorflow or jax Keras backend, not {backend}")


def optimize_image(loss, start, steps, method=DEFAULT_METHOD, progress=None, snapshots=None):
    """Optimize an image's pixels against `loss`, from `start`.

    Args:
        loss: an `ImageLoss` (or any `image -> (total, terms)` of (1, H, W, 3) images).
        start: (H, W, 3) float32 in [0, 1].
        steps: the number of loss-and-gradient evaluations (L-BFGS may stop earlier when it
            has converged).
        method: "lbfgs" or "adam".
        progress: optional `callback(step, steps, terms)` after each evaluation, with terms
            {name: float}; it may raise (KeyboardInterrupt) to stop.
        snapshots: optional dict whose keys are step counts; each gets the best image after
            that many steps (the image a run of that many steps returns).

    Returns:
        (image, terms): the (H, W, 3) float32 image in [0, 1] with the lowest loss seen and its
        terms (those of `start` when steps is 0).
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ConfigError(f"steps must be a whole number >= 0; got {steps!r}")
    start = np.clip(np.asarray(start, np.float32), 0.0, 1.0)
    shape = (1, *start.shape)
    evaluate = value_and_grad(loss)
    best = {"total": np.inf, "image": start, "terms": None}
    count = [0]

    def evaluated(pixels):
        (total, terms), gradient = evaluate(ops.convert_to_tensor(pixels.reshape(shape)))
        values = {name: float(ops.convert_to_numpy(value)) for name, value in terms.items()}
        if values["total_loss"] < best["total"]:
            best.update(total=values["total_loss"], image=pixels.reshape(start.shape).copy(),
                        terms=values)
        return values, np.asarray(ops.convert_to_numpy(gradient), np.float32)

    def counted(pixels):
        values, gradient = evaluated(pixels)
        count[0] += 1
        if snapshots is not None and count[0] in snapshots:
            snapshots[count[0]] = best["image"]
        if progress is not None:
            progress(count[0], steps, values)
        return values, gradient

    if steps == 0:
        evaluated(start)
    elif method == "adam":
        _adam(counted, start, steps)
    else:
        _lbfgs(counted, start, steps)
    return best["image"], best["terms"]


def _adam(counted, start, steps):
    pixels = start.copy()
    first, second = np.zeros_like(pixels), np.zeros_like(pixels)
    beta1, beta2, epsilon = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        _, gradient = counted(pixels)
        gradient = gradient.reshape(pixels.shape)
        first = beta1 * first + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient * gradient
        update = (first / (1 - beta1**step)) / (np.sqrt(second / (1 - beta2**step)) + epsilon)
        pixels = np.clip(pixels - ADAM_LEARNING_RATE * update, 0.0, 1.0).astype(np.float32)


def _lbfgs(counted, start, steps):
    from scipy.optimize import Bounds, minimize

    class Done(Exception):
        """`steps` evaluations made (L-BFGS-B may ask for one more in its last line search)."""

    made = [0]

    def function(flat):
        if made[0] >= steps:
            raise Done
        made[0] += 1
        values, gradient = counted(flat.astype(np.float32))
        return values["total_loss"], gradient.reshape(-1).astype(np.float64)

    try:
        minimize(function, start.reshape(-1).astype(np.float64), jac=True, method="L-BFGS-B",
                 bounds=Bounds(0.0, 1.0), options={"maxfun": steps, "maxiter": steps})
    except Done:
        pass

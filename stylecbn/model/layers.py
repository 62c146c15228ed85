"""Conditional normalization layers and the conditional residual block.

Each style owns one row of a (num_classes, channels) gamma/beta table; the conditioning input
selects or mixes rows. The maths uses `keras.ops` only, so the layers run on every Keras 3
backend (TensorFlow, JAX, PyTorch).

The conditioning input (`style`) takes one of three forms, told apart by rank:
- integer labels, shape (B,): row `label` of each table;
- style weights, shape (B, num_classes): gamma = weights @ gamma_table (a blend);
- per-pixel style weights, shape (B, h, w, num_classes): resized (bilinear) to the layer's
  (H, W), then mixed per pixel (regional styles).
The layers use the weights as given; `stylecbn.model.network` normalizes them to sum 1.
"""

import math
import random

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import keras
import numpy as np
from keras import ops

from stylecbn.errors import check_int, check_number

__all__ = [
    "ConditionalBatchNormalization",
    "ConditionalInstanceNormalization",
    "ConditionalResidualBlock",
    "HostGlorotUniform",
    "conditional_normalization",
]


@keras.saving.register_keras_serializable(package="stylecbn")
class HostGlorotUniform(keras.initializers.Initializer):
    """Glorot-uniform kernels drawn with NumPy on the host.

    `keras.initializers.GlorotUniform`'s distribution: uniform in [-limit, limit],
    `limit = sqrt(6 / (fan_in + fan_out))`. On JAX, Keras' own random initializers compile
    one program per kernel shape (1-2 s each on a 2-core CPU, 7 shapes in the style network);
    NumPy compiles nothing. Each call draws its seed from Python's `random`, as Keras'
    unseeded initializers do, so seeding `random` makes the weights reproducible.
    """

    def __call__(self, shape, dtype=None):
        shape = tuple(int(n) for n in shape)
        receptive_field = math.prod(shape[:-2]) if len(shape) > 2 else 1
        fan_in = (shape[-2] if len(shape) > 1 else shape[-1]) * receptive_field
        fan_out = shape[-1] * receptive_field
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        values = np.random.default_rng(random.getrandbits(64)).uniform(-limit, limit, shape)
        return values.astype(keras.backend.standardize_dtype(dtype or "float32"))


def _style_affine(gamma_table, beta_table, style, spatial_shape):
    """Per-sample (or per-pixel) gamma and beta, broadcastable against (B, H, W, C).

    Args:
        gamma_table, beta_table: (num_classes, C) tables.
        style: labels (B,), weights (B, K) or per-pixel weights (B, h, w, K).
        spatial_shape: (H, W) of the normalized tensor, for per-pixel weights.

    Returns:
        (gamma, beta), each (B, 1, 1, C) or (B, H, W, C), float32.
    """
    rank = len(style.shape)
    if rank == 1:
        # The gathered rows broadcast per sample: (B, 1, 1, C).
        labels = ops.cast(style, "int32")
        gamma = ops.take(gamma_table, labels, axis=0)[:, None, None, :]
        beta = ops.take(beta_table, labels, axis=0)[:, None, None, :]
        return gamma, beta
    style = ops.cast(style, "float32")
    if rank == 2:
        gamma = ops.matmul(style, gamma_table)[:, None, None, :]
        beta = ops.matmul(style, beta_table)[:, None, None, :]
        return gamma, beta
    if rank == 4:
        if tuple(style.shape[1:3]) != tuple(spatial_shape):
            style = ops.image.resize(
                style, spatial_shape, interpolation="bilinear", antialias=True
            )
        gamma = ops.einsum("bhwk,kc->bhwc", style, gamma_table)
        beta = ops.einsum("bhwk,kc->bhwc", style, beta_table)
        return gamma, beta
    raise ValueError(
        "The style input must be labels (B,), style weights (B, num_classes) or per-pixel "
        f"style weights (B, H, W, num_classes). Received: shape={tuple(style.shape)}"
    )


class _ConditionalNormalization(keras.layers.Layer):
    """Shared parts of the conditional normalization layers: tables, config, checks."""

    def __init__(
        self,
        num_classes,
        epsilon=1e-3,
        gamma_initializer="ones",
        beta_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.epsilon = check_number("epsilon", epsilon, above=0)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.supports_masking = False

    def build(self, inputs_shape, style_shape=None):
        if len(inputs_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects (B, H, W, C) inputs. "
                f"Received: inputs_shape={inputs_shape}"
            )
        channels = inputs_shape[-1]
        if channels is None:
            raise ValueError(f"The channel dimension must be known. Received: {inputs_shape}")
        self.channels = int(channels)
        self.gamma = self.add_weight(
            shape=(self.num_classes, channels),
            initializer=self.gamma_initializer,
            name="gamma",
        )
        self.beta = self.add_weight(
            shape=(self.num_classes, channels),
            initializer=self.beta_initializer,
            name="beta",
        )

    def _check_style(self, inputs, style):
        rank = len(style.shape)
        if rank in (2, 4) and style.shape[-1] is not None and style.shape[-1] != self.num_classes:
            raise ValueError(
                f"{self.name}: style weights have {style.shape[-1]} entries per sample but the "
                f"layer has num_classes={self.num_classes}."
            )

    def _normalize(self, inputs, style, mean, variance):
        x = ops.cast(inputs, "float32")
        gamma, beta = _style_affine(
            ops.cast(self.gamma, "float32"),
            ops.cast(self.beta, "float32"),
            style,
            tuple(x.shape[1:3]) if None not in x.shape[1:3] else tuple(ops.shape(x)[1:3]),
        )
        outputs = (x - mean) * ops.rsqrt(variance + self.epsilon) * gamma + beta
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, inputs_shape, style_shape=None):
        return inputs_shape

    def get_config(self):
        base_config = super().get_config()
        config = {
            "num_classes": self.num_classes,
            "epsilon": self.epsilon,
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
        }
        return {**base_config, **config}


@keras.saving.register_keras_serializable(package="stylecbn")
class ConditionalBatchNormalization(_ConditionalNormalization):
    """Batch normalization with one gamma/beta row per class (style).

    `y = (x - mean) / sqrt(var + epsilon) * gamma[style] + beta[style]`

    In training, `mean` and `var` are the batch moments over (N, H, W) and the moving
    statistics are updated as `moving = moving * momentum + batch * (1 - momentum)`; at
    inference the moving statistics are used. Statistics are computed in float32 whatever the
    dtype policy. The seed article's defects and their fixes: docs/seed_defects.md.

    Args:
        num_classes: number of styles (rows of the gamma/beta tables).
        momentum: momentum of the moving mean and variance.
        epsilon: added to the variance before the square root.
        gamma_initializer, beta_initializer: initializers of the tables (ones, zeros).
        moving_mean_initializer, moving_variance_initializer: zeros, ones.

    Call arguments:
        inputs: (B, H, W, C) tensor.
        style: labels (B,), style weights (B, num_classes) or per-pixel weights
            (B, h, w, num_classes); see the module docstring.
        training: whether to use batch statistics and update the moving ones.

    Reference:
        de Vries et al., "Modulating early visual processing by language", 2017;
        Dumoulin et al., "A Learned Representation for Artistic Style", 2017.
    """

    def __init__(
        self,
        num_classes,
        momentum=0.99,
        epsilon=1e-3,
        gamma_initializer="ones",
        beta_initializer="zeros",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        **kwargs,
    ):
        super().__init__(
            num_classes,
            epsilon=epsilon,
            gamma_initializer=gamma_initializer,
            beta_initializer=beta_initializer,
            **kwargs,
        )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum}")
        self.momentum = float(momentum)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)

    def build(self, inputs_shape, style_shape=None):
        super().build(inputs_shape, style_shape)
        self.moving_mean = self.add_weight(
            shape=(self.channels,),
            initializer=self.moving_mean_initializer,
            trainable=False,
            name="moving_mean",
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=(self.channels,),
            initializer=self.moving_variance_initializer,
            trainable=False,
            name="moving_variance",
            autocast=False,
        )

    def call(self, inputs, style, training=None):
        self._check_style(inputs, style)
        if training and self.trainable:
            x = ops.cast(inputs, "float32")
            mean, variance = ops.moments(x, axes=(0, 1, 2))
            self.moving_mean.assign(
                self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            mean = ops.cast(self.moving_mean, "float32")
            variance = ops.cast(self.moving_variance, "float32")
        return self._normalize(inputs, style, mean, variance)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "momentum": self.momentum,
            "moving_mean_initializer": keras.initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": keras.initializers.serialize(
                self.moving_variance_initializer
            ),
        }
        return {**base_config, **config}


@keras.saving.register_keras_serializable(package="stylecbn")
class ConditionalInstanceNormalization(_ConditionalNormalization):
    """Instance normalization with one gamma/beta row per class (style).

    `y = (x - mean_hw) / sqrt(var_hw + epsilon) * gamma[style] + beta[style]`, with the moments
    taken per sample and channel over (H, W), in training and inference alike (no moving
    statistics), so one image's style never depends on the rest of its batch.

    Args:
        num_classes: number of styles.
        epsilon: added to the variance before the square root.
        gamma_initializer, beta_initializer: initializers of the tables (ones, zeros).

    Call arguments:
        inputs: (B, H, W, C) tensor.
        style: labels (B,), style weights (B, num_classes) or per-pixel weights
            (B, h, w, num_classes).
        training: unused (same output in training and inference).

    Reference:
        Ulyanov et al., "Instance Normalization", 2016;
        Dumoulin et al., "A Learned Representation for Artistic Style", 2017.
    """

    def call(self, inputs, style, training=None):
        self._check_style(inputs, style)
        x = ops.cast(inputs, "float32")
        mean, variance = ops.moments(x, axes=(1, 2), keepdims=True)
        return self._normalize(inputs, style, mean, variance)


NORMALIZATIONS = {
    "batch": ConditionalBatchNormalization,
    "instance": ConditionalInstanceNormalization,
}


def conditional_normalization(kind, num_classes, name=None, **kwargs):
    """Make a conditional normalization layer of `kind` ("batch" or "instance")."""
    if kind not in NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization kind {kind!r}; use one of {sorted(NORMALIZATIONS)}."
        )
    return NORMALIZATIONS[kind](num_classes, name=name, **kwargs)


def reflect_pad(x, amount):
    """Reflect-pad the two spatial axes of (B, H, W, C) by `amount` on each side."""
    if amount == 0:
        return x
    return ops.pad(x, ((0, 0), (amount, amount), (amount, amount), (0, 0)), mode="reflect")


def space_to_depth(x, factor):
    """(B, H, W, C) -> (B, H/f, W/f, f*f*C): each f x f block of pixels becomes one pixel.

    The channel order is tf.nn.space_to_depth's: channel (dy * f + dx) * C + c holds pixel
    (dy, dx) of the block, channel c. H and W must be multiples of f. Built from 4-D
    reshapes and transposes only, which every export (TFLite, ONNX, OpenVINO) converts.
    """
    if factor == 1:
        return x
    shape = ops.shape(x)
    height, width, channels = shape[1], shape[2], x.shape[-1]
    # (B*H/f, f, W/f, f*C): the row within the block; then the block's row to the channels.
    x = ops.reshape(x, (-1, factor, width // factor, factor * channels))
    x = ops.transpose(x, (0, 2, 1, 3))
    return ops.reshape(x, (-1, height // factor, width // factor, factor * factor * channels))


def depth_to_space(x, factor):
    """(B, h, w, f*f*C) -> (B, h*f, w*f, C): the inverse of `space_to_depth`."""
    if factor == 1:
        return x
    shape = ops.shape(x)
    height, width = shape[1], shape[2]
    channels = x.shape[-1] // (factor * factor)
    x = ops.reshape(x, (-1, width, factor, factor * channels))
    x = ops.transpose(x, (0, 2, 1, 3))
    return ops.reshape(x, (-1, height * factor, width * factor, channels))


_ACTIVATIONS = {
    "leaky_relu": lambda x: ops.leaky_relu(x, negative_slope=0.2),
    "relu": ops.relu,
}


@keras.saving.register_keras_serializable(package="stylecbn")
class ConditionalResidualBlock(keras.layers.Layer):
    """A residual block whose normalizations are conditional on the style.

    Main path: conv 3x3 -> norm -> activation -> conv 3x3 -> norm [-> activation], added to
    the skip. When the input has a different number of channels than `filters`, the skip is
    learned: conv 1x1 -> norm -> activation.

    The defaults are the style network's block (Dumoulin et al.: ReLU, no activation after the
    second norm, reflect padding against border artefacts). The seed article's block is the
    same class with `normalization="batch"`, `activation="leaky_relu"` (slope 0.2),
    `activation_after_add_path=True` and `padding="same"` (zeros).

    Args:
        filters: output channels.
        num_classes: number of styles.
        normalization: "batch" or "instance".
        activation: "leaky_relu" (slope 0.2) or "relu".
        activation_after_add_path: whether the main path ends with the activation.
        padding: "same" (zeros) or "reflect".
        epsilon, momentum: passed to the normalization layers (momentum for "batch" only).
        separable: depthwise-separable 3x3 convolutions (`keras.layers.SeparableConv2D`:
            a 3x3 depthwise then a 1x1 convolution) instead of full ones.

    Call arguments:
        inputs: (B, H, W, C_in) tensor.
        style: labels, style weights or per-pixel style weights.
        training: passed to the normalizations.
    """

    def __init__(
        self,
        filters,
        num_classes,
        normalization="instance",
        activation="relu",
        activation_after_add_path=False,
        padding="reflect",
        epsilon=1e-3,
        momentum=0.99,
        separable=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}. Received: {activation!r}"
            )
        if padding not in ("same", "reflect"):
            raise ValueError(f"padding must be 'same' or 'reflect'. Received: {padding!r}")
        self.filters = int(filters)
        self.num_classes = int(num_classes)
        self.normalization = normalization
        self.activation = activation
        self.activation_after_add_path = bool(activation_after_add_path)
        self.padding = padding
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.separable = bool(separable)
        conv_padding = "same" if padding == "same" else "valid"
        if self.separable:
            def conv(name):
                return keras.layers.SeparableConv2D(
                    filters, 3, padding=conv_padding, use_bias=False, name=name,
                    depthwise_initializer=HostGlorotUniform(),
                    pointwise_initializer=HostGlorotUniform(),
                )
        else:
            def conv(name):
                return keras.layers.Conv2D(
                    filters, 3, padding=conv_padding, use_bias=False, name=name,
                    kernel_initializer=HostGlorotUniform(),
                )
        self.conv_1 = conv("conv_1")
        self.conv_2 = conv("conv_2")
        self.norm_1 = self._make_norm("norm_1")
        self.norm_2 = self._make_norm("norm_2")
        self.conv_skip = None
        self.norm_skip = None

    def _make_norm(self, name):
        extra = {"momentum": self.momentum} if self.normalization == "batch" else {}
        return conditional_normalization(
            self.normalization, self.num_classes, name=name, epsilon=self.epsilon, **extra
        )

    def build(self, inputs_shape, style_shape=None):
        in_channels = inputs_shape[-1]
        if in_channels != self.filters:
            self.conv_skip = keras.layers.Conv2D(
                self.filters, 1, use_bias=False, name="conv_skip",
                kernel_initializer=HostGlorotUniform(),
            )
            self.norm_skip = self._make_norm("norm_skip")
            self.conv_skip.build(inputs_shape)
            self.norm_skip.build(self.conv_skip.compute_output_shape(inputs_shape))
        pad = 2 if self.padding == "reflect" else 0
        padded = (inputs_shape[0], _add(inputs_shape[1], pad), _add(inputs_shape[2], pad), in_channels)
        self.conv_1.build(padded)
        mid = self.conv_1.compute_output_shape(padded)
        self.norm_1.build(mid)
        mid_padded = (mid[0], _add(mid[1], pad), _add(mid[2], pad), mid[3])
        self.conv_2.build(mid_padded)
        self.norm_2.build(self.conv_2.compute_output_shape(mid_padded))

    def _conv(self, conv, x):
        if self.padding == "reflect":
            x = reflect_pad(x, 1)
        return conv(x)

    def call(self, inputs, style, training=None):
        act = _ACTIVATIONS[self.activation]
        x = self._conv(self.conv_1, inputs)
        x = act(self.norm_1(x, style, training=training))
        x = self._conv(self.conv_2, x)
        x = self.norm_2(x, style, training=training)
        if self.activation_after_add_path:
            x = act(x)
        if self.conv_skip is not None:
            skip = act(self.norm_skip(self.conv_skip(inputs), style, training=training))
        else:
            skip = inputs
        return ops.cast(skip, x.dtype) + x

    def compute_output_shape(self, inputs_shape, style_shape=None):
        return (*inputs_shape[:-1], self.filters)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "filters": self.filters,
            "num_classes": self.num_classes,
            "normalization": self.normalization,
            "activation": self.activation,
            "activation_after_add_path": self.activation_after_add_path,
            "padding": self.padding,
            "epsilon": self.epsilon,
            "momentum": self.momentum,
        }
        if self.separable:  # absent from the files of blocks made before the option
            config["separable"] = True
        return {**base_config, **config}


def _add(dim, n):
    return None if dim is None else dim + n

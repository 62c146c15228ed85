"""Layer-by-layer inference in horizontal strips, for images too large for one call.

The network's forward pass is the public sequence `StyleTransferNetwork.stages`; this module
runs those same stages in order, each convolution on one strip (plus its halo) at a time,
storing each stage's output and accumulating its exact per-channel statistics. Instance
normalization therefore sees whole-image statistics, and the result equals `network.call`
up to float rounding (tests/test_strips.py runs both on every stage and normalization
kind), with memory bounded by about two stored activations instead of the whole graph's
temporaries.
"""

import numpy as np

from stylecbn.model.layers import (
    ConditionalBatchNormalization, ConditionalResidualBlock, depth_to_space, space_to_depth,
)
from stylecbn.model.network import ConvStage

__all__ = ["run_in_strips", "STRIP_PIXELS"]

# Output pixels per strip: bounds the per-strip temporaries.
STRIP_PIXELS = 1 << 19

# The stage activations, in NumPy (the strips apply them row by row on stored outputs).
_ACTIVATIONS = {
    None: None,
    "relu": lambda x: np.maximum(x, 0.0, out=x),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


def run_in_strips(network, photo, field, strip_pixels=STRIP_PIXELS):
    """Run `network` on one image, strip by strip, with whole-image statistics.

    Args:
        network: a `StyleTransferNetwork`.
        photo: (H, W, 3) float32 RGB in [0, 1].
        field: what the network is conditioned on (`stylecbn.applying.conditioning.StyleField`: the
            `outside` blend, and optionally an `inside` blend and an (H, W) `mask`).
        strip_pixels: output pixels per strip.

    Returns:
        (H, W, 3) float32 RGB in [0, 1], equal to the whole-image output up to rounding.
    """
    return _StripRunner(network, field, strip_pixels).run(photo)


def _reflect(indices, size):
    """Row indices of a reflect-padded axis (as `ops.pad(mode="reflect")`) mapped inside."""
    indices = np.abs(indices)
    return np.where(indices >= size, 2 * (size - 1) - indices, indices)


class _Activation:
    """A stored stage output, read back a few rows at a time.

    `raw` is the convolution output before normalization; `rows(idx)` applies the
    normalization (with the whole-image statistics), the activation and an optional nearest
    upsampling on just those rows.
    """

    def __init__(self, raw, affine=None, activation=None, upsample=1):
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"Strip inference supports the activations {sorted(filter(None, _ACTIVATIONS))}; "
                f"received: {activation!r}"
            )
        self.raw, self.affine, self.activation, self.upsample = raw, affine, activation, upsample

    @property
    def height(self):
        return self.raw.shape[0] * self.upsample

    @property
    def width(self):
        return self.raw.shape[1] * self.upsample

    def upsampled(self, factor):
        return _Activation(self.raw, self.affine, self.activation, self.upsample * factor)

    def rows(self, indices):
        source = indices // self.upsample
        x = self.raw[source]
        if self.affine is not None:
            x = self.affine(x, source)
        if self.activation is not None:
            x = _ACTIVATIONS[self.activation](x)
        if self.upsample > 1:
            x = np.repeat(x, self.upsample, axis=1)
        return x


class _StripRunner:
    """Runs the network's stages one after another, each strip by strip."""

    def __init__(self, network, field, strip_pixels):
        from keras import ops

        self.network = network
        self.field = field
        self.strip_pixels = int(strip_pixels)
        self.ops = ops
        self.mask_cache = {}

    def run(self, photo):
        height, width = photo.shape[:2]
        # As in `network.call`: reflect-pad to a multiple of 4 x shuffle, space to depth;
        # depth to space and crop back at the end.
        architecture = self.network.architecture
        multiple, shuffle = architecture.multiple, architecture.shuffle
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        image = np.pad(photo, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        ops = self.ops
        image = space_to_depth(image[None].astype(np.float32), shuffle)
        x = _Activation(ops.convert_to_numpy(image)[0])
        for stage in self.network.stages:
            if isinstance(stage, ConvStage):
                x = self._conv_stage(stage, x)
            elif isinstance(stage, ConditionalResidualBlock):
                x = self._residual_block(stage, x)
            else:
                raise TypeError(f"Strip inference cannot run a {type(stage).__name__} stage.")
        out = np.empty((height, width, 3), np.float32)
        for start, stop in self._strips(-(-height // shuffle), x.width * shuffle**2):
            rows = depth_to_space(x.rows(np.arange(start, stop))[None], shuffle)
            rows = ops.convert_to_numpy(rows)[0]
            out[start * shuffle:stop * shuffle] = rows[:height - start * shuffle, :width]
        return out

    def _conv_stage(self, stage, x):
        if stage.upsample is not None:
            if stage.upsample.interpolation != "nearest" or len(set(stage.upsample.size)) != 1:
                raise ValueError("Strip inference supports square nearest upsampling only.")
            x = x.upsampled(stage.upsample.size[0])
        return self._conv_norm(stage.conv, stage.norm, x, stage.activation)

    def _residual_block(self, block, x):
        if block.conv_skip is not None or block.padding != "reflect":
            raise ValueError(
                "Strip inference supports residual blocks that keep their width (identity "
                "skip) with reflect padding."
            )
        h = self._conv_norm(block.conv_1, block.norm_1, x, block.activation)
        h = self._conv_norm(
            block.conv_2,
            block.norm_2,
            h,
            block.activation if block.activation_after_add_path else None,
        )
        return self._add(x, h)

    def _strips(self, height, width):
        step = max(1, self.strip_pixels // max(1, width))
        return [(a, min(height, a + step)) for a in range(0, height, step)]

    def _conv_norm(self, conv, norm, source, activation):
        """Convolve `source` (reflect-padded) strip by strip; return the output with its
        normalization and activation, to be applied when its rows are read."""
        ops = self.ops
        kernel, stride = conv.kernel_size[0], conv.strides[0]
        pad = kernel // 2
        out_h = (source.height + 2 * pad - kernel) // stride + 1
        out_w = (source.width + 2 * pad - kernel) // stride + 1
        raw = None
        total = total_sq = None
        for start, stop in self._strips(out_h, out_w):
            rows = _reflect(
                np.arange(start * stride - pad, (stop - 1) * stride + kernel - pad), source.height
            )
            strip = source.rows(rows)
            strip = np.pad(strip, ((0, 0), (pad, pad), (0, 0)), mode="reflect")
            y = ops.convert_to_numpy(conv(strip[None]))[0].astype(np.float32, copy=False)
            if raw is None:
                raw = np.empty((out_h, out_w, y.shape[-1]), np.float32)
                total = np.zeros(y.shape[-1])
                total_sq = np.zeros(y.shape[-1])
            raw[start:stop] = y
            total += y.sum(axis=(0, 1), dtype=np.float64)
            total_sq += np.square(y, dtype=np.float64).sum(axis=(0, 1))
        if isinstance(norm, ConditionalBatchNormalization):
            mean = ops.convert_to_numpy(norm.moving_mean).astype(np.float64)
            variance = ops.convert_to_numpy(norm.moving_variance).astype(np.float64)
        else:
            count = out_h * out_w
            mean = total / count
            variance = np.maximum(total_sq / count - mean**2, 0.0)
        scale = (1.0 / np.sqrt(variance + norm.epsilon)).astype(np.float32)
        mean = mean.astype(np.float32)
        affine = self._affine(norm, mean, scale, (out_h, out_w))
        return _Activation(raw, affine, activation)

    def _affine(self, norm, mean, scale, shape):
        gamma_table = self.ops.convert_to_numpy(norm.gamma).astype(np.float32)
        beta_table = self.ops.convert_to_numpy(norm.beta).astype(np.float32)
        field = self.field
        outside = field.outside.vector
        gamma_out, beta_out = outside @ gamma_table, outside @ beta_table
        if field.mask is None:

            def affine(x, rows):
                return (x - mean) * (scale * gamma_out) + beta_out

            return affine
        inside = field.inside.vector
        gamma_in, beta_in = inside @ gamma_table, inside @ beta_table
        # Resizing is linear, so resizing the mask equals resizing the per-pixel weights.
        weight = self._mask_at(shape)

        def affine(x, rows):
            m = weight[rows][..., None]
            gamma = m * (gamma_in - gamma_out) + gamma_out
            beta = m * (beta_in - beta_out) + beta_out
            return (x - mean) * scale * gamma + beta

        return affine

    def _mask_at(self, shape):
        """The mask at a stage's size, resized exactly as the layers resize style weights."""
        if shape not in self.mask_cache:
            mask = self.field.mask
            if tuple(mask.shape) == tuple(shape):
                resized = mask
            else:
                resized = self.ops.convert_to_numpy(
                    self.ops.image.resize(
                        mask[None, :, :, None], shape, interpolation="bilinear", antialias=True
                    )
                )[0, :, :, 0]
            self.mask_cache[shape] = resized.astype(np.float32)
        return self.mask_cache[shape]

    def _add(self, skip, residual):
        """Materialize `skip + residual` (a residual block's output) strip by strip."""
        out = np.empty_like(residual.raw)
        for start, stop in self._strips(residual.height, residual.width):
            rows = np.arange(start, stop)
            out[start:stop] = skip.rows(rows) + residual.rows(rows)
        return _Activation(out)

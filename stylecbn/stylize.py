"""The Python API for applying a trained model: `Stylizer` and `parse_style_spec`.

Everything the `stylecbn apply`, `styles`, `sheet` and `interpolate` commands do goes through
this module; the commands only parse options and write files.

How the options work:
- **Style**: an index, a name, a blend string ("3:0.5,12:0.5", "starry:1,wave:2"), a dict
  {index_or_name: weight} or a weight vector. Weights are normalized to sum 1 and mix the
  gamma/beta rows of every conditional normalization layer.
- **Strength** (0..1): a pixel-space mix, `out = strength * stylized + (1 - strength) * photo`.
  The network has no "identity" style to interpolate its gamma/beta towards (every style
  row was trained to paint), so mixing in style space cannot reach the photo at 0; the pixel
  mix is exact at both ends and linear in between.
- **Preserve colour**: luminance-only transfer (Gatys et al. 2017): the output's Y channel
  with the photo's Cb and Cr (full-range BT.601 YCbCr, as in JPEG).
- **Regional styles**: a mask (white = inside, soft edges allowed) resized to the photo gives
  per-pixel style weights `mask * mask_style + (1 - mask) * style`; the network mixes
  gamma/beta per pixel in every layer, so the two styles meet without a pasted seam.
- **Large images**: up to `max_untiled_pixels` the whole image goes through one compiled call.
  Above it, the network is run layer by layer in horizontal strips (each convolution on a
  strip plus its halo), storing each layer's output and accumulating its exact per-channel
  statistics. Instance normalization therefore sees whole-image statistics, and the result
  equals the untiled output up to float rounding, with memory bounded by about two stored
  activations instead of the whole graph's temporaries.
"""

import numbers
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import ConfigError, ImageError, ModelFileError, StyleSpecError
from .images import MIN_SIDE, LoadedImage, read_image, resize_to_max
from .layers import ConditionalBatchNormalization

__all__ = ["Stylizer", "parse_style_spec", "style_label", "DEFAULT_MAX_SIZE"]

DEFAULT_MAX_SIZE = 1024
# Whole-image inference up to this many pixels (about 2048x2048: peak RSS 2.2 GB measured at
# 2048x1365 with the full-width network); larger images go layer by layer in strips.
MAX_UNTILED_PIXELS = 2048 * 2048
# Automatic XLA on TensorFlow from this size up (measured slower below, faster above).
XLA_MIN_PIXELS = 512 * 512
# Output pixels per strip in the layer-by-layer path: bounds the per-strip temporaries.
STRIP_PIXELS = 1 << 19


# --- style specifications ---------------------------------------------------------------


def _valid_styles(model):
    listing = ", ".join(f"{i}={name}" for i, name in enumerate(model.style_names))
    return (
        f"valid styles (index or name): {listing}; blends look like "
        f"'0:0.5,{min(1, model.num_styles - 1)}:0.5' or 'name:1,other:2'"
    )


def _resolve_index(key, model):
    """Index of a style key (int, digit string or name), with errors that list the styles."""
    if isinstance(key, str):
        key = key.strip()
        if key in model.style_names:
            return model.style_names.index(key)
        if key.lstrip("-").isdigit():
            key = int(key)
        else:
            raise StyleSpecError(f"Unknown style {key!r}: {_valid_styles(model)}.")
    if isinstance(key, bool) or not isinstance(key, numbers.Integral):
        raise StyleSpecError(
            f"A style must be an index or a name; got {key!r}: {_valid_styles(model)}."
        )
    if not 0 <= int(key) < model.num_styles:
        raise StyleSpecError(
            f"Style index {int(key)} is out of range (this model has {model.num_styles} styles, "
            f"0..{model.num_styles - 1}): {_valid_styles(model)}."
        )
    return int(key)


def _parse_weight(text, part, spec):
    try:
        weight = float(text)
    except ValueError:
        raise StyleSpecError(
            f"Bad blend {spec!r}: {part!r} needs a number after ':' (like 'starry:0.5')."
        ) from None
    return weight


def _normalized(weights, spec):
    weights = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(weights)):
        raise StyleSpecError(f"Bad blend {spec!r}: weights must be finite numbers.")
    if np.any(weights < 0):
        raise StyleSpecError(f"Bad blend {spec!r}: weights must not be negative.")
    if weights.sum() <= 0:
        raise StyleSpecError(f"Bad blend {spec!r}: at least one weight must be above 0.")
    return (weights / weights.sum()).astype(np.float32)


def parse_style_spec(spec, model):
    """Turn a style specification into a normalized weight vector.

    Args:
        spec: an index (int or digit string), a style name, a blend string such as
            "3:0.5,12:0.5" or "starry:1,wave:2" (an entry without ":" has weight 1; repeated
            entries add up), a dict {index_or_name: weight}, or a sequence/array of one weight
            per style.
        model: the network (anything with `style_names` and `num_styles`).

    Returns:
        float32 array of shape (num_styles,), summing to 1.

    Raises:
        StyleSpecError: unknown name, out-of-range index, malformed blend, negative or
            non-finite weights, all-zero weights, or a vector of the wrong length. The
            message lists the valid indices and names.
    """
    num_styles = model.num_styles
    if isinstance(spec, dict):
        if not spec:
            raise StyleSpecError(f"Empty style blend {{}}: {_valid_styles(model)}.")
        weights = np.zeros(num_styles)
        for key, weight in spec.items():
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
                raise StyleSpecError(f"Bad blend {spec!r}: weight {weight!r} is not a number.")
            weights[_resolve_index(key, model)] += float(weight)
        return _normalized(weights, spec)
    if isinstance(spec, str):
        text = spec.strip()
        if text in model.style_names or (":" not in text and "," not in text):
            return np.eye(num_styles, dtype=np.float32)[_resolve_index(text, model)]
        weights = np.zeros(num_styles)
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise StyleSpecError(
                    f"Bad blend {spec!r}: empty entry; write it like 'starry:1,wave:2'."
                )
            if part in model.style_names:
                key, weight = part, 1.0
            elif ":" in part:
                key, _, weight_text = part.rpartition(":")
                weight = _parse_weight(weight_text, part, spec)
            else:
                key, weight = part, 1.0
            weights[_resolve_index(key, model)] += weight
        return _normalized(weights, spec)
    if isinstance(spec, (numbers.Integral, np.integer)) and not isinstance(spec, bool):
        return np.eye(num_styles, dtype=np.float32)[_resolve_index(int(spec), model)]
    if isinstance(spec, (list, tuple, np.ndarray)):
        weights = np.asarray(spec, dtype=np.float64) if len(spec) else np.zeros(0)
        if weights.shape != (num_styles,):
            raise StyleSpecError(
                f"A style weight vector needs one entry per style ({num_styles}); got shape "
                f"{weights.shape}: {_valid_styles(model)}."
            )
        return _normalized(weights, list(np.round(weights, 4)))
    raise StyleSpecError(
        f"Cannot use {spec!r} ({type(spec).__name__}) as a style: {_valid_styles(model)}."
    )


def style_label(weights, model):
    """A short file-name-safe label for a weight vector: "starry" or "starry50-wave50"."""
    weights = np.asarray(weights)
    used = [i for i in np.argsort(-weights, kind="stable") if weights[i] > 0]
    if len(used) == 1:
        return _safe(model.style_names[used[0]])
    return "-".join(f"{_safe(model.style_names[i])}{round(100 * weights[i])}" for i in used)


def _safe(name):
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


# --- colour and mixing ------------------------------------------------------------------

# Full-range BT.601 (JPEG) RGB -> YCbCr; Cb and Cr are centred on 0 here.
_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=np.float32,
)
_FROM_YCBCR = np.linalg.inv(_TO_YCBCR).astype(np.float32)


def preserve_colors(stylized, photo):
    """Luminance-only transfer: Y from `stylized`, Cb and Cr from `photo`.

    Args:
        stylized, photo: (H, W, 3) float32 RGB in [0, 1] of one size.

    Returns:
        (H, W, 3) float32 RGB in [0, 1].
    """
    luma = stylized @ _TO_YCBCR[0]
    chroma = photo @ _TO_YCBCR[1:].T
    ycbcr = np.concatenate([luma[..., None], chroma], axis=-1)
    return np.clip(ycbcr @ _FROM_YCBCR.T, 0.0, 1.0)


def _check_strength(strength):
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real):
        raise ConfigError(f"strength must be a number from 0 to 1; received: {strength!r}")
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(
            f"strength must be from 0 (the photo) to 1 (full style); received: {strength:g}"
        )
    return strength


def _check_max_size(max_size):
    if isinstance(max_size, bool) or not isinstance(max_size, numbers.Integral) or (
        max_size != 0 and max_size < MIN_SIDE
    ):
        raise ConfigError(
            f"max_size must be 0 (keep the size) or a whole number of pixels >= {MIN_SIDE}; "
            f"received: {max_size!r}"
        )
    return int(max_size)


def _to_uint8(image):
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


# --- the mask ---------------------------------------------------------------------------


def _load_mask(mask, size):
    """A (H, W) float32 map in [0, 1] from a mask image, resized to `size` = (width, height)."""
    loaded = mask if isinstance(mask, LoadedImage) else read_image(mask, name=None)
    gray = Image.fromarray(loaded.frames[0]).convert("L")
    if gray.size != size:
        gray = gray.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.float32) / 255.0


@dataclass
class _StyleField:
    """What the network is conditioned on: one blend, or two blends mixed by a mask.

    Per-pixel weights are `mask * inside + (1 - mask) * outside`; `mask` None means `outside`
    everywhere.
    """

    outside: np.ndarray
    inside: np.ndarray | None = None
    mask: np.ndarray | None = None

    def network_input(self):
        if self.mask is None:
            return self.outside[None]
        m = self.mask[..., None]
        return (m * self.inside + (1.0 - m) * self.outside)[None].astype(np.float32)


# --- the model ----------------------------------------------------------------------------


def _resolve_model(model):
    from .modelfile import load_default_model, load_model
    from .network import StyleTransferNetwork

    if model is None:
        return load_default_model()
    if isinstance(model, StyleTransferNetwork):
        return model
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        return load_model(model)
    raise ModelFileError(
        f"model must be a path to a .keras file, a StyleTransferNetwork or None (the built-in "
        f"model); got a {type(model).__name__}"
    )


class Stylizer:
    """Apply a multi-style network to photos.

    The model is loaded once; compiled inference functions are reused for every input of the
    same size (Keras' predict function: `tf.function` on TensorFlow, `jax.jit` on JAX).

    Args:
        model: a path to a `.keras` model file, a loaded `StyleTransferNetwork`, or None for
            the built-in model.
        jit_compile: XLA-compile inference: True, False, or None (default) for automatic:
            on JAX always (its un-jitted path runs op by op); on TensorFlow for images of
            at least XLA_MIN_PIXELS, where XLA measured 1.5-2x faster on this CPU, and not
            below, where it measured slower (benchmarks/apply_latency.py).
        max_untiled_pixels: largest image (width * height) run in one call; larger ones run
            layer by layer in strips with exact whole-image statistics.

    Raises:
        ModelFileError: the model file is missing or unusable, or no built-in model is
            installed.

    Examples:
    >>> stylizer = Stylizer("styles.keras")
    >>> stylizer.stylize("photo.jpg", style="starry:1,wave:1", strength=0.8).save("out.png")
    """

    def __init__(self, model=None, *, jit_compile=None, max_untiled_pixels=MAX_UNTILED_PIXELS):
        import keras

        self.model = _resolve_model(model)
        self.jit_compile = jit_compile
        self._backend = keras.backend.backend()
        self._predict_functions = {}  # (style rank, XLA) -> compiled predict function
        self.max_untiled_pixels = int(max_untiled_pixels)

    @property
    def style_names(self):
        """The model's style names, by index."""
        return list(self.model.style_names)

    @property
    def style_credits(self):
        """The model's credit lines, by index."""
        return list(self.model.style_credits)

    @property
    def num_styles(self):
        """How many styles the model holds."""
        return self.model.num_styles

    def style_weights(self, style):
        """`parse_style_spec(style, model)`: the normalized weight vector of a style spec."""
        return parse_style_spec(style, self.model)

    # --- public entry points ----------------------------------------------------------

    def stylize(
        self,
        image,
        style=0,
        strength=1.0,
        preserve_color=False,
        max_size=DEFAULT_MAX_SIZE,
        mask=None,
        mask_style=None,
    ):
        """Stylize one image.

        Args:
            image: a path, bytes, a binary stream, a PIL image or a NumPy array (see
                `stylecbn.images.read_image`). For an animated image only the first frame
                is used; `stylize_frames` returns every frame.
            style: index, name, blend string, {index_or_name: weight} dict or weight
                vector (see `parse_style_spec`).
            strength: 0 gives the photo, 1 the full style; a pixel-space mix in between.
            preserve_color: keep the photo's colours (luminance-only transfer).
            max_size: longest side in pixels after shrinking (never enlarged); 0 keeps the
                size. Large images are processed in strips (exact, see module docstring).
            mask: optional mask image (any source `read_image` takes); resized to the photo,
                read as gray levels: white = inside, black = outside, soft edges allowed.
            mask_style: the style inside the mask (required with `mask`); `style` applies
                outside.

        Returns:
            An RGB PIL image.

        Raises:
            ImageError: the image (or mask) is unreadable or too small.
            StyleSpecError: a bad style specification.
            ConfigError: bad strength, max_size or mask options.
        """
        result = self.stylize_frames(
            image, style, strength, preserve_color, max_size, mask, mask_style, first_only=True
        )
        return Image.fromarray(result.frames[0])

    def stylize_frames(
        self,
        image,
        style=0,
        strength=1.0,
        preserve_color=False,
        max_size=DEFAULT_MAX_SIZE,
        mask=None,
        mask_style=None,
        *,
        first_only=False,
    ):
        """Stylize every frame of an image (animated GIF/PNG/WebP included).

        Arguments as in `stylize`; `first_only` stops after the first frame.

        Returns:
            A `LoadedImage` with uint8 RGB frames and the input's durations and loop count.
        """
        strength = _check_strength(strength)
        max_size = _check_max_size(max_size)
        if (mask is None) != (mask_style is None):
            raise ConfigError(
                "a mask needs a mask style and a mask style needs a mask: pass both "
                "(mask_style is the style inside the white part of the mask)"
            )
        outside = self.style_weights(style)
        inside = None if mask_style is None else self.style_weights(mask_style)
        loaded = image if isinstance(image, LoadedImage) else read_image(image)
        frames = loaded.frames[:1] if first_only else loaded.frames
        field = None
        results = []
        for frame in frames:
            photo = resize_to_max(frame, max_size)
            height, width = photo.shape[:2]
            if min(height, width) < MIN_SIDE:
                raise ImageError(
                    f"{loaded.source} becomes {width}x{height} at max size {max_size}, under "
                    f"{MIN_SIDE} px on a side; use a larger max size"
                )
            if field is None:
                mask_map = None if mask is None else _load_mask(mask, (width, height))
                field = _StyleField(outside, inside, mask_map)
            results.append(self._stylize_array(photo, field, strength, preserve_color))
        return LoadedImage(
            frames=results,
            source=loaded.source,
            format=loaded.format,
            durations=loaded.durations if len(results) > 1 else None,
            loop=loaded.loop if len(results) > 1 else None,
        )

    def style_sheet(
        self, image, styles=None, tile_size=256, columns=None, include_original=True, **options
    ):
        """Every style (or the chosen ones) on one photo, each tile labelled "index name".

        Args:
            image: the photo (any `read_image` source).
            styles: indices or names to show; default all.
            tile_size: longest side of each tile.
            columns: tiles per row; default about the square root of the count.
            include_original: put the unstyled photo first, labelled "original".
            **options: `strength`, `preserve_color` as in `stylize`.

        Returns:
            An RGB PIL image.
        """
        from .sheets import labelled_sheet

        indices = range(self.num_styles) if styles is None else [
            _resolve_index(s, self.model) for s in styles
        ]
        loaded = image if isinstance(image, LoadedImage) else read_image(image)
        tiles, labels = [], []
        if include_original:
            tiles.append(self.stylize(loaded, 0, strength=0.0, max_size=tile_size))
            labels.append("original")
        for index in indices:
            tiles.append(self.stylize(loaded, index, max_size=tile_size, **options))
            labels.append(f"{index} {self.model.style_names[index]}")
        return labelled_sheet(tiles, labels, columns=columns)

    def interpolate(self, image, from_style, to_style, frames=24, max_size=512, **options):
        """Frames that move from one style (or blend) to another in equal weight steps.

        Args:
            image: the photo (any `read_image` source).
            from_style, to_style: style specifications.
            frames: number of frames (>= 2), ends included.
            max_size: longest side of the frames.
            **options: `strength`, `preserve_color` as in `stylize`.

        Returns:
            A list of (H, W, 3) uint8 frames.
        """
        if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 2:
            raise ConfigError(f"frames must be a whole number >= 2; received: {frames!r}")
        start, end = self.style_weights(from_style), self.style_weights(to_style)
        loaded = image if isinstance(image, LoadedImage) else read_image(image)
        steps = np.linspace(0.0, 1.0, int(frames))
        return [
            np.asarray(
                self.stylize(loaded, (1 - t) * start + t * end, max_size=max_size, **options)
            )
            for t in steps
        ]

    def blend_grid(self, image, corners, steps=5, max_size=256, **options):
        """A steps x steps grid of bilinear blends between four styles at the corners.

        Args:
            image: the photo.
            corners: four style specifications: top-left, top-right, bottom-left,
                bottom-right.
            steps: cells per side (>= 2).
            max_size: longest side of each cell.
            **options: `strength`, `preserve_color` as in `stylize`.

        Returns:
            (rows, weights): rows of (H, W, 3) uint8 images, and the matching weight vectors.
        """
        if len(corners) != 4:
            raise ConfigError(f"a blend grid needs 4 corner styles; received {len(corners)}")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
            raise ConfigError(f"steps must be a whole number >= 2; received: {steps!r}")
        tl, tr, bl, br = (self.style_weights(c) for c in corners)
        loaded = image if isinstance(image, LoadedImage) else read_image(image)
        rows, weight_rows = [], []
        for v in np.linspace(0.0, 1.0, int(steps)):
            row, weight_row = [], []
            for u in np.linspace(0.0, 1.0, int(steps)):
                w = (1 - v) * ((1 - u) * tl + u * tr) + v * ((1 - u) * bl + u * br)
                row.append(np.asarray(self.stylize(loaded, w, max_size=max_size, **options)))
                weight_row.append(w)
            rows.append(row)
            weight_rows.append(weight_row)
        return rows, weight_rows

    # --- inference --------------------------------------------------------------------

    def _stylize_array(self, photo, field, strength, preserve_color):
        """Stylize one uint8 (H, W, 3) frame; returns a uint8 frame of the same size."""
        if strength == 0.0:
            return photo.copy()
        photo_f = photo.astype(np.float32) / 255.0
        if photo.shape[0] * photo.shape[1] <= self.max_untiled_pixels:
            styled = self._run_whole(photo_f, field)
        else:
            styled = _StripRunner(self.model).run(photo_f, field)
        if preserve_color:
            styled = preserve_colors(styled, photo_f)
        if strength < 1.0:
            styled = strength * styled + (1.0 - strength) * photo_f
        return _to_uint8(styled)

    def _run_whole(self, photo_f, field):
        style = field.network_input()
        xla = self.jit_compile
        if xla is None:
            pixels = photo_f.shape[0] * photo_f.shape[1]
            xla = self._backend != "tensorflow" or pixels >= XLA_MIN_PIXELS
        # One compiled predict function per style rank (Keras relaxes the shapes of a
        # function that sees a new rank to "unknown rank", which the network cannot trace)
        # and per XLA setting; each compiles once per input size and is reused.
        key = (style.ndim, bool(xla))
        self.model.jit_compile = bool(xla)
        self.model.predict_function = self._predict_functions.get(key)
        outputs = self.model.predict_on_batch({"images": photo_f[None], "style": style})
        self._predict_functions[key] = self.model.predict_function
        return np.asarray(outputs)[0]


# --- layer-by-layer inference in strips ---------------------------------------------------


def _reflect(indices, size):
    """Row indices of a reflect-padded axis (as `ops.pad(mode="reflect")`) mapped inside."""
    indices = np.abs(indices)
    return np.where(indices >= size, 2 * (size - 1) - indices, indices)


class _Activation:
    """A stored layer output, read back a few rows at a time.

    `raw` is the convolution output before normalization; `rows(idx)` applies the
    normalization (with the whole-image statistics), the activation and an optional nearest
    upsampling on just those rows.
    """

    def __init__(self, raw, affine=None, relu=False, upsample=1):
        self.raw, self.affine, self.relu, self.upsample = raw, affine, relu, upsample

    @property
    def height(self):
        return self.raw.shape[0] * self.upsample

    @property
    def width(self):
        return self.raw.shape[1] * self.upsample

    def upsampled(self, factor):
        return _Activation(self.raw, self.affine, self.relu, self.upsample * factor)

    def rows(self, indices):
        source = indices // self.upsample
        x = self.raw[source]
        if self.affine is not None:
            x = self.affine(x, source)
        if self.relu:
            np.maximum(x, 0.0, out=x)
        if self.upsample > 1:
            x = np.repeat(x, self.upsample, axis=1)
        return x


class _StripRunner:
    """Runs a StyleTransferNetwork layer by layer on horizontal strips (see module docstring).

    Mirrors `StyleTransferNetwork.call` step by step; tests pin it to the whole-image output.
    """

    def __init__(self, network, strip_pixels=STRIP_PIXELS):
        self.network = network
        self.strip_pixels = int(strip_pixels)

    def run(self, photo_f, field):
        from keras import ops

        net = self.network
        height, width = photo_f.shape[:2]
        self._ops = ops
        self._field = field
        self._mask_cache = {}
        pad_h, pad_w = (-height) % 4, (-width) % 4
        image = np.pad(photo_f, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        x = _Activation(image.astype(np.float32))
        for (kernel, stride, _, _), conv, norm in zip(net._conv_specs, net.convs, net.norms):
            x = self._conv_norm(conv, norm, x, kernel, stride, relu=True)
        for block in net.residual_blocks:
            # The network's blocks keep their width, so the skip is the identity (no conv_skip).
            h = self._conv_norm(block.conv_1, block.norm_1, x, 3, 1, relu=True)
            h = self._conv_norm(block.conv_2, block.norm_2, h, 3, 1, relu=False)
            x = self._add(x, h)
        for (kernel, _, _, _), conv, norm in zip(net._up_specs, net.up_convs, net.up_norms):
            x = self._conv_norm(conv, norm, x.upsampled(2), kernel, 1, relu=True)
        x = self._conv_norm(net.conv_out, net.norm_out, x, 9, 1, relu=False)
        out = np.empty((height, width, 3), np.float32)
        for start, stop in self._strips(height, width):
            rows = x.rows(np.arange(start, stop))[:, :width]
            out[start:stop] = 1.0 / (1.0 + np.exp(-rows))
        return out

    def _strips(self, height, width):
        step = max(1, self.strip_pixels // max(1, width))
        return [(a, min(height, a + step)) for a in range(0, height, step)]

    def _conv_norm(self, conv, norm, source, kernel, stride, relu):
        """Convolve `source` strip by strip; return the output with its normalization."""
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
            y = self._ops.convert_to_numpy(conv(strip[None]))[0].astype(np.float32, copy=False)
            if raw is None:
                raw = np.empty((out_h, out_w, y.shape[-1]), np.float32)
                total = np.zeros(y.shape[-1])
                total_sq = np.zeros(y.shape[-1])
            raw[start:stop] = y
            total += y.sum(axis=(0, 1), dtype=np.float64)
            total_sq += np.square(y, dtype=np.float64).sum(axis=(0, 1))
        if isinstance(norm, ConditionalBatchNormalization):
            mean = self._ops.convert_to_numpy(norm.moving_mean).astype(np.float64)
            variance = self._ops.convert_to_numpy(norm.moving_variance).astype(np.float64)
        else:
            count = out_h * out_w
            mean = total / count
            variance = np.maximum(total_sq / count - mean**2, 0.0)
        scale = (1.0 / np.sqrt(variance + norm.epsilon)).astype(np.float32)
        mean = mean.astype(np.float32)
        affine = self._affine(norm, mean, scale, (out_h, out_w))
        return _Activation(raw, affine, relu)

    def _affine(self, norm, mean, scale, shape):
        gamma_table = self._ops.convert_to_numpy(norm.gamma).astype(np.float32)
        beta_table = self._ops.convert_to_numpy(norm.beta).astype(np.float32)
        field = self._field
        gamma_out, beta_out = field.outside @ gamma_table, field.outside @ beta_table
        if field.mask is None:

            def affine(x, rows):
                return (x - mean) * (scale * gamma_out) + beta_out

            return affine
        gamma_in, beta_in = field.inside @ gamma_table, field.inside @ beta_table
        # Resizing is linear, so resizing the mask equals resizing the per-pixel weights.
        weight = self._mask_at(shape)

        def affine(x, rows):
            m = weight[rows][..., None]
            gamma = m * (gamma_in - gamma_out) + gamma_out
            beta = m * (beta_in - beta_out) + beta_out
            return (x - mean) * scale * gamma + beta

        return affine

    def _mask_at(self, shape):
        """The mask at a layer's size, resized exactly as the layers resize style weights."""
        if shape not in self._mask_cache:
            mask = self._field.mask
            if tuple(mask.shape) == tuple(shape):
                resized = mask
            else:
                resized = self._ops.convert_to_numpy(
                    self._ops.image.resize(
                        mask[None, :, :, None], shape, interpolation="bilinear", antialias=True
                    )
                )[0, :, :, 0]
            self._mask_cache[shape] = resized.astype(np.float32)
        return self._mask_cache[shape]

    def _add(self, skip, residual):
        """Materialize `skip + residual` (a residual block's output) strip by strip."""
        out = np.empty_like(residual.raw)
        for start, stop in self._strips(residual.height, residual.width):
            rows = np.arange(start, stop)
            out[start:stop] = skip.rows(rows) + residual.rows(rows)
        return _Activation(out)

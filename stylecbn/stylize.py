"""The Python API for applying a trained model: `Stylizer`, colour and masks.

Everything the `stylecbn apply`, `styles`, `sheet` and `interpolate` commands do goes through
this module; the commands only parse options and write files.

How the options work:
- **Style**: an index, a name, a blend string ("3:0.5,12:0.5", "starry:1,wave:2"), a dict
  {index_or_name: weight}, a weight vector, or a `Blend` already resolved by
  `Stylizer.blend` (`stylecbn.blend` is the one parser). Weights are normalized to sum 1
  and mix the gamma/beta rows of every conditional normalization layer.
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
  Above it, `stylecbn.strips` runs the network's stages layer by layer in horizontal strips
  with exact whole-image statistics (the same result up to float rounding, bounded memory).
- **Video and animations**: frames are stylized one after the other, streamed for video files
  (`stylecbn.video`); a style can travel (`to_style`), and flicker is reduced by
  `stylecbn.temporal.FlickerReducer` unless `stabilize=False`.
"""

import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .blend import Blend, mix, resolve_style, style_index
from .errors import ConfigError, ImageError, ModelFileError, VideoError
from .images import MIN_SIDE, LoadedImage, fit_size, read_image, resize_to_max
from .strips import run_in_strips
from .temporal import FlickerReducer, shift_for_grid
from .video import probe_video, stream_video

__all__ = ["Stylizer", "StyleField", "preserve_colors", "DEFAULT_MAX_SIZE"]

DEFAULT_MAX_SIZE = 1024
# Whole-image inference up to this many pixels (about 2048x2048: peak RSS 2.2 GB measured at
# 2048x1365 with the full-width network); larger images go layer by layer in strips.
MAX_UNTILED_PIXELS = 2048 * 2048


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


def _check_options(strength, max_size, mask, mask_style):
    """Checked (strength, max_size); a mask and a mask style come together."""
    if (mask is None) != (mask_style is None):
        raise ConfigError(
            "a mask needs a mask style and a mask style needs a mask: pass both "
            "(mask_style is the style inside the white part of the mask)"
        )
    return _check_strength(strength), _check_max_size(max_size)


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


@dataclass(frozen=True)
class StyleField:
    """What the network is conditioned on: one blend, or two blends mixed by a mask.

    Per-pixel weights are `mask * inside + (1 - mask) * outside`; `mask` None means `outside`
    everywhere.

    Attributes:
        outside: the `Blend` outside the mask (everywhere without one).
        inside: the `Blend` inside the mask, or None.
        mask: (H, W) float32 in [0, 1] at the photo's size, or None.
    """

    outside: Blend
    inside: Blend | None = None
    mask: np.ndarray | None = None

    def shifted(self, top, left):
        """The field for a photo shifted by `stylecbn.temporal.shift_for_grid`."""
        if self.mask is None:
            return self
        return StyleField(self.outside, self.inside, shift_for_grid(self.mask, top, left))

    def network_input(self):
        """The network's style input: (1, num_styles) or per-pixel (1, H, W, num_styles)."""
        if self.mask is None:
            return self.outside.vector[None]
        m = self.mask[..., None]
        return (m * self.inside.vector + (1.0 - m) * self.outside.vector)[None].astype(np.float32)


def _flicker_reducer(stabilize):
    if isinstance(stabilize, FlickerReducer):
        stabilize.reset()
        return stabilize
    return FlickerReducer() if stabilize else None


def _same_path(a, b):
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


# --- the model ----------------------------------------------------------------------------


def _resolve_model(model):
    from .modelfile import load_model, resolve_model_path
    from .network import StyleTransferNetwork

    if isinstance(model, StyleTransferNetwork):
        return model
    if model is None or isinstance(model, str) or hasattr(model, "__fspath__"):
        return load_model(resolve_model_path(model))
    raise ModelFileError(
        f"model must be a built-in model name, a path to a .keras file, a StyleTransferNetwork "
        f"or None (the built-in default model); got a {type(model).__name__}"
    )


class Stylizer:
    """Apply a multi-style network to photos.

    The model is loaded once; compiled inference functions are reused for every input of the
    same size (Keras' predict function: `tf.function` on TensorFlow, `jax.jit` on JAX).

    Args:
        model: a built-in model name ("default", "fast"; see
            `stylecbn.modelfile.BUILT_IN_MODELS`), a path to a `.keras` model file, a loaded
            `StyleTransferNetwork`, or None for the built-in default model.
        jit_compile: XLA-compile inference: True, False, or None (default) for automatic:
            on JAX always (its un-jitted path runs op by op); on TensorFlow never, where
            XLA measured 1.05-1.7x slower than the plain graph (oneDNN convolutions) at 256 to
            1024 px for both presets on this CPU (benchmarks/cpu_runtime.py).
        max_untiled_pixels: largest image (width * height) run in one call; larger ones run
            layer by layer in strips with exact whole-image statistics.
        max_pixels: the largest image the Stylizer reads from a file, bytes or a stream
            (`read_image`'s limit); None: what this machine's free memory allows.

    Raises:
        ModelFileError: the model file is missing or unusable, or the built-in model asked
            for is not installed in this build.

    Examples:
    >>> stylizer = Stylizer("styles.keras")
    >>> stylizer.stylize("photo.jpg", style="starry:1,wave:1", strength=0.8).save("out.png")
    """

    def __init__(self, model=None, *, jit_compile=None, max_untiled_pixels=MAX_UNTILED_PIXELS,
                 max_pixels=None):
        import keras

        self.model = _resolve_model(model)
        self.jit_compile = jit_compile
        self._backend = keras.backend.backend()
        self._predict_functions = {}  # (style rank, XLA) -> compiled predict function
        self.max_untiled_pixels = int(max_untiled_pixels)
        self.max_pixels = max_pixels  # for read_image: None is the machine's default

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

    def blend(self, style):
        """Resolve a style specification once (see `stylecbn.blend.resolve_style`).

        Args:
            style: an index, a name, a blend string, an {index_or_name: weight} dict, a
                weight vector, or a `Blend` (returned as it is).

        Returns:
            A `Blend`: the weights (summing to 1) and a file-name-safe label. Every method
            below accepts it wherever it takes a style, and uses it without parsing again.

        Raises:
            StyleSpecError: a bad specification; the message lists the valid styles.
        """
        return resolve_style(style, self.model)

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
            style: a `Blend` from `blend()`, or anything `blend()` takes (index, name,
                blend string, {index_or_name: weight} dict or weight vector).
            strength: 0 gives the photo, 1 the full style; a pixel-space mix in between.
            preserve_color: keep the photo's colours (luminance-only transfer).
            max_size: longest side in pixels after shrinking (never enlarged); 0 keeps the
                size. Large images are processed in strips (exact, see module docstring).
            mask: optional mask image (any source `read_image` takes); resized to the photo,
                read as gray levels: white = inside, black = outside, soft edges allowed.
            mask_style: the style inside the mask (required with `mask`), a `Blend` or any
                specification; `style` applies outside.

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
        to_style=None,
        stabilize=True,
        first_only=False,
    ):
        """Stylize every frame of an image (animated GIF/PNG/WebP included).

        Arguments as in `stylize`; `first_only` stops after the first frame. `to_style` and
        `stabilize` work on animations as in `stylize_video`.

        Returns:
            A `LoadedImage` with uint8 RGB frames and the input's durations and loop count.

        Raises:
            As `stylize`; ConfigError also for `to_style` with a single-frame image.
        """
        strength, max_size = _check_options(strength, max_size, mask, mask_style)
        start = self.blend(style)
        end = start if to_style is None else self.blend(to_style)
        inside = None if mask_style is None else self.blend(mask_style)
        loaded = image if isinstance(image, LoadedImage) else read_image(
            image, max_pixels=self.max_pixels)
        frames = loaded.frames[:1] if first_only else loaded.frames
        if to_style is not None and len(frames) < 2:
            raise ConfigError(
                f"{loaded.source} has one frame: a style that travels (to_style) needs a video "
                "or an animated image"
            )
        mask_map = None
        reducer = _flicker_reducer(stabilize) if len(frames) > 1 else None
        results = []
        for index, frame in enumerate(frames):
            photo = resize_to_max(frame, max_size)
            height, width = photo.shape[:2]
            if min(height, width) < MIN_SIDE:
                raise ImageError(
                    f"{loaded.source} becomes {width}x{height} at max size {max_size}, under "
                    f"{MIN_SIDE} px on a side; use a larger max size"
                )
            if mask is not None and mask_map is None:
                mask_map = _load_mask(mask, (width, height))
            field = StyleField(self._morph(start, end, index, len(frames)), inside, mask_map)
            results.append(self._stylize_array(photo, field, strength, preserve_color, reducer))
        return LoadedImage(
            frames=results,
            source=loaded.source,
            format=loaded.format,
            durations=loaded.durations if len(results) > 1 else None,
            loop=loaded.loop if len(results) > 1 else None,
        )

    def stylize_video(
        self,
        source,
        output,
        style=0,
        strength=1.0,
        preserve_color=False,
        max_size=DEFAULT_MAX_SIZE,
        mask=None,
        mask_style=None,
        *,
        to_style=None,
        stabilize=True,
        progress=None,
    ):
        """Stylize a video file into another, streamed frame by frame (see `stylecbn.video`).

        Memory does not grow with the clip's length. The frame rate, every frame's timing, the
        rotation flag and the audio (copied, not re-encoded) are kept.

        Args:
            source: the input video path (.mp4, .mov, .mkv, .webm, .avi, or anything else
                FFmpeg reads).
            output: the output path; its suffix picks the format (`stylecbn.video`).
            style, strength, preserve_color, max_size, mask, mask_style: as in `stylize`,
                applied to every frame. The mask is one image for the whole clip, drawn the
                way the video plays (upright).
            to_style: optional second style (a `Blend` or any specification): the blend moves
                from `style` on the first frame to `to_style` on the last, in equal steps
                (gamma/beta interpolation in time).
            stabilize: True reduces flicker (a default `stylecbn.temporal.FlickerReducer`:
                the network's grid follows the camera and the previous output is carried
                along the motion); False stylizes each frame on its own; a FlickerReducer
                is used as it is (reset first).
            progress: optional `callback(frames_done, frames_total)`.

        Returns:
            A `stylecbn.video.VideoResult`: frames, width, height, frame rate, audio
            streams copied, seconds.

        Raises:
            VideoError: the video is unreadable or damaged, or the output cannot be written
                (unknown suffix, an audio codec its container cannot hold, a missing folder);
                the output is then left untouched.
            ImageError: the mask is unreadable, or frames become too small at `max_size`.
            StyleSpecError: a bad style specification.
            ConfigError: bad strength, max_size or mask options.
        """
        strength, max_size = _check_options(strength, max_size, mask, mask_style)
        start = self.blend(style)
        end = start if to_style is None else self.blend(to_style)
        inside = None if mask_style is None else self.blend(mask_style)
        info = probe_video(source)
        if _same_path(source, output):
            raise VideoError(f"writing {output} would overwrite the input; choose another output")
        width, height = fit_size(info.width, info.height, max_size)
        if min(width, height) < MIN_SIDE:
            raise ImageError(
                f"{info.source} becomes {width}x{height} at max size {max_size}, under "
                f"{MIN_SIDE} px on a side; use a larger max size"
            )
        mask_map = None
        if mask is not None:  # drawn upright: turn it the way the frames are stored
            turns = info.rotation // 90
            shown = (height, width) if turns % 2 else (width, height)
            mask_map = np.ascontiguousarray(np.rot90(_load_mask(mask, shown), -turns))
        reducer = _flicker_reducer(stabilize)

        def process(frame, index):
            field = StyleField(self._morph(start, end, index, info.frames), inside, mask_map)
            photo = resize_to_max(frame, max_size)
            return self._stylize_array(photo, field, strength, preserve_color, reducer)

        return stream_video(source, output, process, (width, height), info=info,
                            progress=progress)

    def style_sheet(
        self, image, styles=None, tile_size=256, columns=None, include_original=True, **options
    ):
        """Every style (or the chosen ones) on one photo, each tile labelled "index name".

        Args:
            image: the photo (any `read_image` source).
            styles: the styles to show, each an index, a name or a `Blend` (a mix is
                labelled with its `label`); default all.
            tile_size: longest side of each tile.
            columns: tiles per row; default about the square root of the count.
            include_original: put the unstyled photo first, labelled "original".
            **options: `strength`, `preserve_color` as in `stylize`.

        Returns:
            An RGB PIL image.
        """
        from .sheets import labelled_sheet

        if styles is None:
            styles = range(self.num_styles)
        blends = [
            self.blend(s) if isinstance(s, Blend) else self.blend(style_index(s, self.model))
            for s in styles
        ]
        loaded = image if isinstance(image, LoadedImage) else read_image(
            image, max_pixels=self.max_pixels)
        tiles, labels = [], []
        if include_original:
            tiles.append(self.stylize(loaded, 0, strength=0.0, max_size=tile_size))
            labels.append("original")
        for blend in blends:
            tiles.append(self.stylize(loaded, blend, max_size=tile_size, **options))
            index = blend.index
            labels.append(blend.label if index is None else f"{index} {self.style_names[index]}")
        return labelled_sheet(tiles, labels, columns=columns)

    def interpolate(self, image, from_style, to_style, frames=24, max_size=512, **options):
        """Frames that move from one style (or blend) to another in equal weight steps.

        Args:
            image: the photo (any `read_image` source).
            from_style, to_style: `Blend`s or style specifications.
            frames: number of frames (>= 2), ends included.
            max_size: longest side of the frames.
            **options: `strength`, `preserve_color` as in `stylize`.

        Returns:
            A list of (H, W, 3) uint8 frames.
        """
        if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 2:
            raise ConfigError(f"frames must be a whole number >= 2; received: {frames!r}")
        start, end = self.blend(from_style), self.blend(to_style)
        loaded = image if isinstance(image, LoadedImage) else read_image(
            image, max_pixels=self.max_pixels)
        return [
            np.asarray(
                self.stylize(
                    loaded,
                    mix([(1 - t, start), (t, end)], self.style_names),
                    max_size=max_size,
                    **options,
                )
            )
            for t in np.linspace(0.0, 1.0, int(frames))
        ]

    def blend_grid(self, image, corners, steps=5, max_size=256, **options):
        """A steps x steps grid of bilinear blends between four styles at the corners.

        Args:
            image: the photo.
            corners: four `Blend`s or style specifications: top-left, top-right,
                bottom-left, bottom-right.
            steps: cells per side (>= 2).
            max_size: longest side of each cell.
            **options: `strength`, `preserve_color` as in `stylize`.

        Returns:
            (rows, blends): rows of (H, W, 3) uint8 images, and the matching `Blend`s.
        """
        if len(corners) != 4:
            raise ConfigError(f"a blend grid needs 4 corner styles; received {len(corners)}")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
            raise ConfigError(f"steps must be a whole number >= 2; received: {steps!r}")
        tl, tr, bl, br = (self.blend(c) for c in corners)
        loaded = image if isinstance(image, LoadedImage) else read_image(
            image, max_pixels=self.max_pixels)
        rows, blend_rows = [], []
        for v in np.linspace(0.0, 1.0, int(steps)):
            row, blend_row = [], []
            for u in np.linspace(0.0, 1.0, int(steps)):
                cell = mix(
                    [((1 - v) * (1 - u), tl), ((1 - v) * u, tr), (v * (1 - u), bl), (v * u, br)],
                    self.style_names,
                )
                row.append(np.asarray(self.stylize(loaded, cell, max_size=max_size, **options)))
                blend_row.append(cell)
            rows.append(row)
            blend_rows.append(blend_row)
        return rows, blend_rows

    # --- inference --------------------------------------------------------------------

    def _morph(self, start, end, index, count):
        """The blend of frame `index` of `count`, moving from `start` to `end` in equal steps."""
        if end is start:
            return start
        t = min(1.0, index / max(1, count - 1))
        return mix([(1.0 - t, start), (t, end)], self.style_names)

    def _stylize_array(self, photo, field, strength, preserve_color, reducer=None):
        """Stylize one uint8 (H, W, 3) frame; returns a uint8 frame of the same size.

        `reducer` (a FlickerReducer) stabilizes the network's output before colour and strength.
        """
        if strength == 0.0:
            return photo.copy()
        photo_f = photo.astype(np.float32) / 255.0
        if reducer is None:
            styled = self._run_network(photo_f, field)
        else:
            height, width = photo.shape[:2]

            def shifted(top, left):
                image = shift_for_grid(photo_f, top, left)
                out = self._run_network(image, field.shifted(top, left))
                return out[top : top + height, left : left + width]

            styled = reducer(photo_f, shifted)
        if preserve_color:
            styled = preserve_colors(styled, photo_f)
        if strength < 1.0:
            styled = strength * styled + (1.0 - strength) * photo_f
        return _to_uint8(styled)

    def _run_network(self, photo_f, field):
        if photo_f.shape[0] * photo_f.shape[1] <= self.max_untiled_pixels:
            return self._run_whole(photo_f, field)
        return run_in_strips(self.model, photo_f, field)

    def _run_whole(self, photo_f, field):
        style = field.network_input()
        xla = self.jit_compile
        if xla is None:
            xla = self._backend != "tensorflow"
        # One compiled predict function per style rank (Keras relaxes the shapes of a
        # function that sees a new rank to "unknown rank", which the network cannot trace)
        # and per XLA setting; each compiles once per input size and is reused. Per-pixel
        # styles (masks) get one function per size: relaxed to unknown height and width,
        # the layers could not tell whether the style map needs resizing.
        key = (style.ndim, bool(xla), style.shape if style.ndim == 4 else None)
        self.model.jit_compile = bool(xla)
        self.model.predict_function = self._predict_functions.get(key)
        outputs = self.model.predict_on_batch({"images": photo_f[None], "style": style})
        self._predict_functions[key] = self.model.predict_function
        return np.asarray(outputs)[0]

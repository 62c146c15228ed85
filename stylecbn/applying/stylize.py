"""The Python API for applying a trained model: `Stylizer`, colour and masks.

Everything the `stylecbn apply`, `styles`, `sheet` and `interpolate` commands do goes through
this module; the commands only parse options and write files.

How the options work (made once into a `StylizeOptions`, checked when made, passed down):
- **Style**: an index, a name, a blend string ("3:0.5,12:0.5", "starry:1,wave:2"), a dict
  {index_or_name: weight}, a weight vector, or a `Blend` already resolved by
  `Stylizer.blend` (`stylecbn.applying.blend` is the one parser). Weights are normalized to sum 1
  and mix the gamma/beta rows of every conditional normalization layer.
- **Strength** and **preserve colour**: applied to the network's output by `stylecbn.applying.finish`
  (a pixel-space mix with the photo; luminance-only transfer).
- **Regional styles**: a mask (white = inside, soft edges allowed) resized to the photo gives
  per-pixel style weights (`stylecbn.applying.conditioning.StyleField`); the network mixes gamma/beta
  per pixel in every layer, so the two styles meet without a pasted seam.
- **Large images**: up to `max_untiled_pixels` the whole image goes through one compiled call.
  Above it, `stylecbn.applying.strips` runs the network's stages layer by layer in horizontal strips
  with exact whole-image statistics (the same result up to float rounding, bounded memory).
- **Runtime**: the network runs in Keras or, converted, in OpenVINO (bfloat16 by default where
  the CPU has it and the network is wide); `stylecbn.applying.runtimes` chooses. Masks and
  strips always run in Keras.
- **Refine** (`refine=N`) and **a painting's style** (`Stylizer.image_style`): the network's
  output optimized N steps more against the training loss (`stylecbn.applying.refine`);
  single images only.
- **Video and animations**: frames are stylized one after the other, streamed for video files
  (`stylecbn.media.video`); a style can travel (`to_style`), and flicker is reduced by
  `stylecbn.applying.flicker.FlickerReducer` unless `stabilize=False`.
"""

import dataclasses
import os

import numpy as np
from PIL import Image

from stylecbn.applying import overviews
from stylecbn.applying.blend import resolve_style
from stylecbn.applying.conditioning import StyleField, load_mask, morph
from stylecbn.applying.refine import DEFAULT_IMAGE_REFINE, ImageStyle, Refiner, check_refine
from stylecbn.errors import ConfigError, ImageError, ModelFileError, VideoError, check_int
from stylecbn.fileio import same_file
from stylecbn.applying.finish import check_strength, finish
from stylecbn.media.reading import MIN_SIDE, LoadedImage, read_image
from stylecbn.media.pixels import fit_size, resize_to_max
from stylecbn.applying.runtimes import RuntimeChoice, choose_runtime, open_runtime
from stylecbn.applying.strips import run_in_strips
from stylecbn.applying.flicker import FlickerReducer, shift_for_grid, warp_to
from stylecbn.media.video import probe_video, stream_video

__all__ = ["Stylizer", "StylizeOptions", "LiveStream", "DEFAULT_MAX_SIZE", "NO_REFINED_FRAMES",
           "check_max_size"]

DEFAULT_MAX_SIZE = 1024
RUNTIME_ENV = "STYLECBN_RUNTIME"  # the runtime when Stylizer(runtime=None)
# Whole-image inference up to this many pixels (about 2048x2048: peak RSS 2.2 GB measured at
# 2048x1365 with the full-width network); larger images go layer by layer in strips.
MAX_UNTILED_PIXELS = 2048 * 2048


def check_max_size(max_size):
    """`max_size` as an int, or ConfigError unless it is 0 or a side of at least MIN_SIDE."""
    max_size = check_int("max_size", max_size, minimum=0, hint="0 keeps the size")
    if 0 < max_size < MIN_SIDE:
        raise ConfigError(
            f"`max_size` must be 0 (keep the size) or at least {MIN_SIDE} px. "
            f"Received: max_size={max_size}"
        )
    return max_size


@dataclasses.dataclass(frozen=True)
class StylizeOptions:
    """How photos are stylized, apart from their style: made once from the keyword arguments
    of `Stylizer.stylize`, `stylize_frames`, `stylize_video` and the overviews, checked when
    made, then passed down unchanged.

    Attributes:
        strength: 0 gives the photo, 1 the full style; a pixel-space mix in between.
        preserve_color: keep the photo's colours (luminance-only transfer).
        max_size: longest side in pixels after shrinking (never enlarged); 0 keeps the size.
        mask: a mask image (any source `read_image` takes) or None; white = inside.
        mask_style: the style inside the mask (a `Blend` or any specification); given
            with `mask` and only with it.
        to_style: the style (or None) that the blend moves to on the last frame.
        stabilize: True (a default `FlickerReducer`), False, or a `FlickerReducer` to use.
        refine: optimization steps on the network's output (0: none); None: 0, or
            `DEFAULT_IMAGE_REFINE` when a style is an `ImageStyle` (a painting's).
        refine_progress: optional `callback(step, steps, terms)` after each refine step,
            terms {"total_loss", "content_loss", "style_loss", "total_variation_loss"}; it
            may raise to stop.

    Raises:
        ConfigError: a bad strength, max_size or refine, or a mask without a mask style (or
            the reverse).
    """

    strength: float = 1.0
    preserve_color: bool = False
    max_size: int = DEFAULT_MAX_SIZE
    mask: object = None
    mask_style: object = None
    to_style: object = None
    stabilize: object = True
    refine: object = None
    refine_progress: object = None

    def __post_init__(self):
        if (self.mask is None) != (self.mask_style is None):
            raise ConfigError(
                "a mask needs a mask style and a mask style needs a mask: pass both "
                "(mask_style is the style inside the white part of the mask)"
            )
        # frozen: the checked values are stored the way dataclasses' own __init__ does
        object.__setattr__(self, "strength", check_strength(self.strength))
        object.__setattr__(self, "max_size", check_max_size(self.max_size))
        if self.refine is not None:
            object.__setattr__(self, "refine", check_refine(self.refine))

    def refine_steps(self, *styles):
        """The refine steps for these styles (`refine`, or its default when None)."""
        if self.refine is not None:
            return self.refine
        return DEFAULT_IMAGE_REFINE if any(isinstance(s, ImageStyle) for s in styles) else 0


# Why videos and animations are not refined.
NO_REFINED_FRAMES = (
    "refining (and a painting's style, which needs it) works on single images only: each "
    "frame would be optimized on its own, a minute or more per frame on a CPU, and the "
    "independent optimizations would flicker; use a trained style (train the painting in with "
    "`stylecbn train --base`)")


class LiveStream:
    """Frames of a live source (a camera), stylized one at a time as they arrive.

    Unlike a video file, the clip's length is unknown and the settings may change from one
    frame to the next (the page's style mix, strength or mask). One flicker reducer follows
    the frames (none with `stabilize=False`); a frame of another size starts it afresh, as a
    scene cut does. Make one with `Stylizer.live()`; one per camera, used by one thread at a
    time.
    """

    def __init__(self, stylizer, reducer):
        self.stylizer = stylizer
        self.reducer = reducer
        self.frames = 0
        self._mask = None  # (mask source, (width, height), map): the last mask, resized

    def paint(self, frame, style=0, strength=1.0, preserve_color=False, max_size=640,
              mask=None, mask_style=None):
        """Stylize the next frame.

        Args:
            frame: an (H, W, 3) uint8 array (or anything `stylize` takes as one image).
            style, strength, preserve_color, max_size, mask, mask_style: as in `stylize`;
                a painting's style (`ImageStyle`) is refused (it needs minutes of
                refining per frame). The mask is read once and kept while it and the
                frame size stay the same.

        Returns:
            The stylized frame, an (h, w, 3) uint8 array at the frame's size after `max_size`.
        """
        options = StylizeOptions(strength, preserve_color, max_size, mask, mask_style,
                                 stabilize=False)
        if any(isinstance(s, ImageStyle) for s in (style, mask_style)):
            raise ConfigError(NO_REFINED_FRAMES)
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3):
            frame = read_image(frame, name="the frame").frames[0]
        photo = resize_to_max(frame, options.max_size)
        height, width = photo.shape[:2]
        mask_map = None if mask is None else self._mask_map(mask, (width, height))
        inside = None if mask_style is None else self.stylizer.blend(mask_style)
        field = StyleField(self.stylizer.blend(style), inside, mask_map)
        painted = self.stylizer._stylize_array(photo, field, options.strength,
                                               options.preserve_color, self.reducer)
        self.frames += 1
        return painted

    def reset(self):
        """Forget the previous frames (the next one is painted afresh)."""
        if self.reducer is not None:
            self.reducer.reset()

    def _mask_map(self, mask, size):
        if self._mask is not None and self._mask[0] is mask and self._mask[1] == size:
            return self._mask[2]
        result = load_mask(mask, size)  # read once per mask and size, as every mask is
        self._mask = (mask, size, result)
        return result


def _flicker_reducer(stabilize):
    if isinstance(stabilize, FlickerReducer):
        stabilize.reset()
        return stabilize
    return FlickerReducer() if stabilize else None


def _fitted_size(source, width, height, max_size):
    """The (width, height) that frames of this size get at `max_size`; ImageError if too small."""
    width, height = fit_size(width, height, max_size)
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{source} becomes {width}x{height} at max size {max_size}, under "
            f"{MIN_SIDE} px on a side; use a larger max size"
        )
    return width, height


# --- the model ----------------------------------------------------------------------------


def _resolve_model(model):
    from stylecbn.model.saving import load_model, resolve_model_path
    from stylecbn.model.network import StyleTransferNetwork

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
            `stylecbn.model.saving.BUILT_IN_MODELS`), a path to a `.keras` model file, a loaded
            `StyleTransferNetwork`, or None for the built-in default model.
        jit_compile: XLA-compile inference: True, False, or None (default) for automatic:
            on JAX always (its un-jitted path runs op by op); on TensorFlow never, where
            XLA measured 1.05-1.7x slower than the plain graph (oneDNN convolutions) at 256 to
            1024 px for both presets on this CPU (benchmarks/cpu_runtime.py).
        max_untiled_pixels: largest image (width * height) run in one call; larger ones run
            layer by layer in strips with exact whole-image statistics.
        max_pixels: the largest image the Stylizer reads from a file, bytes or a stream
            (`read_image`'s limit); None: what this machine's free memory allows.
        runtime: what runs the network (`stylecbn.applying.runtimes.RUNTIMES`): "auto" for
            the fastest whose output stays within `runtimes.TOLERANCE` of float32 Keras for
            this network on this CPU (`runtimes.choose_runtime`), "keras", "openvino" or
            "openvino-bf16"; None (default): the STYLECBN_RUNTIME environment variable,
            else "auto". Masks and images above `max_untiled_pixels` always run in Keras;
            `jit_compile` concerns Keras only. The attribute `runtime` is the
            `RuntimeChoice` made: its name and why.
        vgg_weights: the loss network's VGG-16 weights for refining (`refine`,
            `image_style`); None: those the model's style targets name.

    Raises:
        ModelFileError: the model file is missing or unusable, or the built-in model asked
            for is not installed in this build.
        ConfigError: an unknown runtime, or one asked for that cannot run here.

    Examples:
    >>> stylizer = Stylizer("styles.keras")
    >>> stylizer.stylize("photo.jpg", style="starry:1,wave:1", strength=0.8).save("out.png")
    """

    def __init__(self, model=None, *, jit_compile=None, max_untiled_pixels=MAX_UNTILED_PIXELS,
                 max_pixels=None, runtime=None, vgg_weights=None):
        import keras

        if runtime is None:
            runtime = os.environ.get(RUNTIME_ENV) or "auto"
        if runtime != "auto":
            choose_runtime(runtime)  # a forced runtime is checked before the model loads
        self.model = _resolve_model(model)
        self.runtime = choose_runtime(runtime, self.model)
        self._engine = None  # the converted network, opened at the first image
        self.jit_compile = jit_compile
        self._backend = keras.backend.backend()
        self._predict_functions = {}  # (style rank, XLA) -> compiled predict function
        self.max_untiled_pixels = int(max_untiled_pixels)
        self.max_pixels = max_pixels  # for read_image: None is the machine's default
        self.vgg_weights = vgg_weights
        self._refiner = None

    @property
    def refiner(self):
        """The `Refiner` of the model's style targets, built on first use.

        Raises:
            ConfigError: the model carries no style targets, or the VGG weights are missing.
        """
        if self._refiner is None:
            self._refiner = Refiner(self.model, self.vgg_weights)
        return self._refiner

    def image_style(self, paintings, weights=None):
        """The style of one or more paintings, usable wherever a style is taken (`stylize`'s
        `style` and `mask_style`): refining moves the output towards the paintings' Gram
        matrices, from the trained style or blend whose Gram matrices are nearest.

        Args:
            paintings: a painting or a list (or tuple) of them (any `read_image` source).
            weights: one weight per painting (normalized); default equal.

        Returns:
            An `stylecbn.applying.refine.ImageStyle`: its `start` blend, `distance`, and
            `nearest_single` (index, distance) say how near the model's styles come.

        Raises:
            ConfigError: the model has no style targets, or bad weights.
            ImageError: a painting cannot be read.
        """
        if not isinstance(paintings, (list, tuple)):  # one painting (a path, an array, ...)
            paintings = [paintings]
        return self.refiner.image_style(paintings, weights, max_pixels=self.max_pixels)

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
        """Resolve a style specification once (see `stylecbn.applying.blend.resolve_style`).

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
        *,
        refine=None,
        refine_progress=None,
    ):
        """Stylize one image.

        Args:
            image: a path, bytes, a binary stream, a PIL image or a NumPy array (see
                `stylecbn.media.reading.read_image`). For an animated image only the first frame
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
            refine: optimization steps of the training loss on the network's output, towards
                the style's Gram matrices (the model's style targets; a blend: their
                weighted mean; with a mask, each region towards its own); None: 0, or
                100 for an `ImageStyle` (`image_style`). Refining runs the loss network at
                the image's size (after `max_size`): memory and time grow with the pixels,
                and an image that cannot fit is refused (ImageError).
            refine_progress: optional `callback(step, steps, terms)` after each step.

        Returns:
            An RGB PIL image.

        Raises:
            ImageError: the image (or mask) is unreadable or too small, or too large to refine.
            StyleSpecError: a bad style specification.
            ConfigError: bad strength, max_size, mask or refine options, or refining with a
                model without style targets.
        """
        options = StylizeOptions(strength, preserve_color, max_size, mask, mask_style,
                                 refine=refine, refine_progress=refine_progress)
        result = self._stylize_frames(image, style, options, first_only=True)
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
        refine=None,
        refine_progress=None,
    ):
        """Stylize every frame of an image (animated GIF/PNG/WebP included).

        Arguments as in `stylize`; `first_only` stops after the first frame. `to_style` and
        `stabilize` work on animations as in `stylize_video`; refining does not (see
        `stylize_video`).

        Returns:
            A `LoadedImage` with uint8 RGB frames and the input's durations and loop count.

        Raises:
            As `stylize`; ConfigError also for `to_style` with a single-frame image, and for
            refining an animation.
        """
        options = StylizeOptions(strength, preserve_color, max_size, mask, mask_style, to_style,
                                 stabilize, refine, refine_progress)
        return self._stylize_frames(image, style, options, first_only)

    def _stylize_frames(self, image, style, options, first_only=False):
        """`stylize_frames` with its options made (a `StylizeOptions`); the overviews call it
        too."""
        loaded = image if isinstance(image, LoadedImage) else read_image(
            image, max_pixels=self.max_pixels)
        frames = loaded.frames[:1] if first_only else loaded.frames
        if options.to_style is not None and len(frames) < 2:
            raise ConfigError(
                f"{loaded.source} has one frame: a style that travels (to_style) needs a video "
                "or an animated image"
            )
        width, height = _fitted_size(loaded.source, *loaded.size, options.max_size)
        mask_map = None if options.mask is None else load_mask(options.mask, (width, height))
        paint = self._frame_painter(style, options, mask_map, len(frames))
        results = [paint(frame, index) for index, frame in enumerate(frames)]
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
        """Stylize a video file into another, streamed frame by frame (see `stylecbn.media.video`).

        Memory does not grow with the clip's length. The frame rate, every frame's timing, the
        rotation flag and the audio (copied, not re-encoded) are kept.

        Args:
            source: the input video path (.mp4, .mov, .mkv, .webm, .avi, or anything else
                FFmpeg reads).
            output: the output path; its suffix picks the format (`stylecbn.media.video`).
            style, strength, preserve_color, max_size, mask, mask_style: as in `stylize`,
                applied to every frame. The mask is one image for the whole clip, drawn the
                way the video plays (upright).
            to_style: optional second style (a `Blend` or any specification): the blend moves
                from `style` on the first frame to `to_style` on the last, in equal steps
                (gamma/beta interpolation in time).
            stabilize: True reduces flicker (a default `stylecbn.applying.flicker.FlickerReducer`:
                the network's grid follows the camera and the previous output is carried
                along the motion); False stylizes each frame on its own; a FlickerReducer
                is used as it is (reset first).
            progress: optional `callback(frames_done, frames_total)`.

        Returns:
            A `stylecbn.media.video.VideoResult`: frames, width, height, frame rate, audio
            streams copied, seconds.

        Raises:
            VideoError: the video is unreadable or damaged, or the output cannot be written
                (unknown suffix, an audio codec its container cannot hold, a missing folder);
                the output is then left untouched.
            ImageError: the mask is unreadable, or frames become too small at `max_size`.
            StyleSpecError: a bad style specification.
            ConfigError: bad strength, max_size or mask options.
        """
        options = StylizeOptions(strength, preserve_color, max_size, mask, mask_style, to_style,
                                 stabilize)
        if any(isinstance(s, ImageStyle) for s in (style, mask_style, to_style)):
            raise ConfigError(NO_REFINED_FRAMES)
        info = probe_video(source)
        if same_file(source, output):
            raise VideoError(f"writing {output} would overwrite the input; choose another output")
        width, height = _fitted_size(info.source, info.width, info.height, options.max_size)
        mask_map = None
        if options.mask is not None:  # drawn upright: turn it the way the frames are stored
            turns = info.rotation // 90
            shown = (height, width) if turns % 2 else (width, height)
            mask_map = np.ascontiguousarray(np.rot90(load_mask(options.mask, shown), -turns))
        process = self._frame_painter(style, options, mask_map, info.frames)
        return stream_video(source, output, process, (width, height), info=info,
                            progress=progress)

    def live(self, stabilize=True):
        """A `LiveStream`: frames that arrive one at a time (a camera), each stylized with the
        settings it comes with, flicker reduced across them (`stabilize`, as in
        `stylize_video`)."""
        return LiveStream(self, _flicker_reducer(stabilize))

    # --- many stylizations of one photo (`stylecbn.applying.overviews`) -------------------

    def style_sheet(self, image, styles=None, tile_size=256, columns=None, include_original=True,
                    progress=None, **options):
        """Every style (or the chosen ones) on one photo, each tile labelled "index name".

        Arguments and result as in `stylecbn.applying.overviews.style_sheet`; `tile_size` is
        each tile's longest side and `**options` are `stylize`'s (strength, preserve_color,
        mask, mask_style).
        """
        return overviews.style_sheet(self, image, StylizeOptions(max_size=tile_size, **options),
                                     styles, columns, include_original, progress)

    def interpolate(self, image, from_style, to_style, frames=24, max_size=512, progress=None,
                    **options):
        """Frames that move from one style (or blend) to another in equal weight steps.

        Arguments and result as in `stylecbn.applying.overviews.interpolate`; `max_size` and
        `**options` as in `stylize`.
        """
        return overviews.interpolate(self, image, from_style, to_style, frames,
                                     StylizeOptions(max_size=max_size, **options), progress)

    def blend_grid(self, image, corners, steps=5, max_size=256, progress=None, **options):
        """A steps x steps grid of bilinear blends between four styles at the corners.

        Arguments and result as in `stylecbn.applying.overviews.blend_grid`; `max_size` (of
        each cell) and `**options` as in `stylize`.
        """
        return overviews.blend_grid(self, image, corners, steps,
                                    StylizeOptions(max_size=max_size, **options), progress)

    # --- inference --------------------------------------------------------------------

    def _frame_painter(self, style, options, mask_map, count):
        """`paint(frame, index)`: frame `index` of `count` resized to `options.max_size` and
        stylized with the style of its place in the clip (moving from `style` to
        `options.to_style`), the mask map (already at the frames' size, or None) and one
        flicker reducer for the clip: none for one frame, which it would leave as it is."""
        start = self._style(style)
        end = start if options.to_style is None else self.blend(options.to_style)
        inside = None if options.mask_style is None else self._style(options.mask_style)
        refine = options.refine_steps(start, inside)
        if refine and count > 1:
            raise ConfigError(NO_REFINED_FRAMES)
        reducer = _flicker_reducer(options.stabilize) if count > 1 else None

        def paint(frame, index):
            photo = resize_to_max(frame, options.max_size)
            blend = morph(start, end, index, count, self.style_names)
            field = StyleField(blend, inside, mask_map)
            return self._stylize_array(photo, field, options.strength, options.preserve_color,
                                       reducer, refine, options.refine_progress)

        return paint

    def _style(self, style):
        """A `Blend`, or an `ImageStyle` as it is (the network paints its start blend)."""
        return style if isinstance(style, ImageStyle) else self.blend(style)

    def _stylize_array(self, photo, field, strength, preserve_color, reducer=None, refine=0,
                       refine_progress=None):
        """Stylize one uint8 (H, W, 3) frame; returns a uint8 frame of the same size.

        `reducer` (a FlickerReducer) stabilizes the network's output before colour and strength;
        `refine` steps optimize it (single images only) before colour and strength.
        """
        if strength == 0.0:
            return photo.copy()
        photo_f = photo.astype(np.float32) / 255.0
        if refine:
            refiner = self.refiner  # fails before the network runs when there are no targets
            styled = refiner.refine(photo_f, self._run_network(photo_f, field), field, refine,
                                    refine_progress)
        elif reducer is None:
            styled = self._run_network(photo_f, field)
        else:
            height, width = photo.shape[:2]

            def shifted(top, left, matrix=None):
                image, moved = photo_f, field
                if matrix is not None:
                    image, moved = warp_to(photo_f, matrix), field.warped(matrix)
                out = self._run_network(shift_for_grid(image, top, left),
                                        moved.shifted(top, left))
                return out[top : top + height, left : left + width]

            styled = reducer(photo_f, shifted)
        return finish(styled, photo_f, strength, preserve_color)

    def _run_network(self, photo_f, field):
        if photo_f.shape[0] * photo_f.shape[1] <= self.max_untiled_pixels:
            return self._run_whole(photo_f, field)
        return run_in_strips(self.model, photo_f, field)

    def _run_whole(self, photo_f, field):
        style = field.network_input()
        if style.ndim == 2 and self.runtime.name != "keras":
            if self._engine is None:
                self._engine = open_runtime(self.model, self.runtime)
            if self._engine is None:  # auto, and the conversion failed: Keras from now on
                self.runtime = RuntimeChoice("keras", f"auto: {self.runtime.name} could not "
                                             "take this network")
            else:
                return self._engine(photo_f, style)
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

"""Pixel data of any kind to uint8 RGB, and resizing.

`pil_to_rgb` turns a decoded PIL frame of any mode (palette, grayscale, 16-bit, 32-bit, float,
CMYK, with or without transparency) into an (H, W, 3) uint8 array; `array_to_rgb` does the same
for a caller's NumPy array (uint8, uint16 or float in [0, 1]). Transparency is composited on
white, exactly. `resize_to_max`, `fit_size` and `center_square` resize (Lanczos);
`check_frame` says in words what is wrong with an array that is not a uint8 image.
"""

import numpy as np
from PIL import Image

from stylecbn.errors import ImageError, check_int

__all__ = ["pil_to_rgb", "array_to_rgb", "resize_to_max", "fit_size", "center_square",
           "check_frame"]

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def pil_to_rgb(image, name):
    """Convert one decoded PIL frame of any mode to an (H, W, 3) uint8 array."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return _gray_to_rgb(_scale_16_bit(np.asarray(image)))
    if mode == "I":
        return _gray_to_rgb(_scale_32_bit(np.asarray(image)))
    if mode == "F":
        return _gray_to_rgb(_scale_float_image(np.asarray(image)))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        return _composite_on_white(np.asarray(rgba))
    if mode == "RGB":
        return np.asarray(image)
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError as exc:  # e.g. LAB or HSV, which Pillow cannot convert on its own
        raise ImageError(
            f"{name} uses the colour mode {mode}, which cannot be converted to RGB; "
            "save it as RGB first"
        ) from exc


def _scale_16_bit(values):
    """uint16 (0..65535) to uint8, rounding: 65535 -> 255, 257 -> 1."""
    values = values.astype(np.uint32)
    return ((values * 255 + 32767) // 65535).astype(np.uint8)


def _scale_32_bit(values):
    """Mode "I" (int32) to uint8.

    In practice these are 16-bit samples (older Pillow opens 16-bit PNGs as "I"), so the
    0..65535 range maps to 0..255; data beyond 16 bits is scaled by its own maximum instead
    so that it is not clipped to white. Negative values become 0.
    """
    values = np.clip(values.astype(np.int64), 0, None)
    top = int(values.max(initial=0))
    if top <= 65535:
        return _scale_16_bit(values)
    return ((values * 255 + top // 2) // top).astype(np.uint8)


def _scale_float_image(values):
    """Mode "F" to uint8: [0, 1] data if it fits there, else Pillow's own 0..255 scale."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if values.max(initial=0.0) <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _gray_to_rgb(gray):
    return np.repeat(gray[:, :, None], 3, axis=2)


def _composite_on_white(rgba):
    """Composite (H, W, 4) uint8 RGBA over white, exactly: out = (c*a + 255*(255-a)) / 255."""
    # uint16 is enough: c*a + 255*(255-a) <= 255*255, plus 127 for rounding. In place, so the
    # peak stays near 13 bytes a pixel (benchmarks/decode_memory.py) instead of twice that.
    color = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:].astype(np.uint16)
    color *= alpha
    np.subtract(255, alpha, out=alpha)
    alpha *= 255
    color += alpha
    del alpha
    color += 127
    color //= 255
    return color.astype(np.uint8)


def array_to_rgb(array, name):
    """Convert a caller's NumPy array to (H, W, 3) uint8 RGB."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"{name} has shape {array.shape}; images must be (H, W), (H, W, 1), "
            "(H, W, 3) or (H, W, 4)"
        )
    if array.dtype == np.uint8:
        array8 = array
    elif array.dtype == np.uint16:
        array8 = _scale_16_bit(array)
    elif np.issubdtype(array.dtype, np.floating):
        array8 = _float_array_to_uint8(array, name)
    else:
        raise ImageError(
            f"{name} has dtype {array.dtype}; images must be uint8, uint16 or float in "
            "[0, 1] (convert with .astype(np.uint8) if the values are 0..255)"
        )
    if array8.shape[2] == 4:
        return _composite_on_white(array8)
    if array8.shape[2] == 1:
        return _gray_to_rgb(array8[:, :, 0])
    return array8.copy() if array8 is array else array8  # never alias the caller's array


def _float_array_to_uint8(array, name):
    if not np.all(np.isfinite(array)):
        raise ImageError(f"{name} contains NaN or infinite values")
    low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
    # A little overshoot (model outputs, resampling ringing) is clipped; 0..255 floats are not.
    if low < -0.01 or high > 1.01:
        raise ImageError(
            f"{name} holds floats in [{low:g}, {high:g}]; float images must be in [0, 1] "
            "(divide by 255 if they are 0..255)"
        )
    return np.clip(np.rint(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


# --- resizing ----------------------------------------------------------------------------


def resize_to_max(array, max_size):
    """Shrink an image so that its longer side is at most `max_size` (Lanczos, aspect kept).

    Args:
        array: (H, W), (H, W, 3) or (H, W, 4) uint8 image.
        max_size: the longest side allowed, in pixels; 0 keeps the size.

    Returns:
        The resized array, or `array` itself when it already fits (never upsampled).

    Raises:
        ConfigError: `max_size` is negative or not an integer.
        ImageError: `array` is not a uint8 image.
    """
    max_size = check_int("max_size", max_size, minimum=0, hint="0 keeps the size")
    check_frame(array, "image", channels=(3, 4))
    height, width = array.shape[:2]
    new_size = fit_size(width, height, max_size)
    if new_size == (width, height):
        return array
    resized = Image.fromarray(array).resize(new_size, Image.Resampling.LANCZOS)
    return np.array(resized)  # np.asarray would give a read-only view


def fit_size(width, height, max_size):
    """The (width, height) that `resize_to_max` gives an image of this size."""
    longer = max(height, width)
    if max_size == 0 or longer <= max_size:
        return width, height
    scale = max_size / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def center_square(array, size):
    """The largest centred square of an (H, W, 3) uint8 image, as a (size, size, 3) uint8 array
    (Lanczos-resized unless its side is `size`; an odd leftover pixel goes right/bottom)."""
    height, width = array.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = array[top:top + side, left:left + side]
    if side == size:
        return square
    return np.array(Image.fromarray(square).resize((size, size), Image.Resampling.LANCZOS))


def check_frame(frame, what, channels=(3,)):
    if not isinstance(frame, np.ndarray):
        raise ImageError(f"{what} is a {type(frame).__name__}; expected a NumPy array")
    if frame.dtype != np.uint8:
        raise ImageError(
            f"{what} has dtype {frame.dtype}; expected uint8 (H, W, 3) RGB "
            "(float images in [0, 1]: np.rint(x * 255).astype(np.uint8))"
        )
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in channels)):
        expected = ", ".join(f"(H, W, {count})" for count in channels)
        raise ImageError(f"{what} has shape {frame.shape}; expected (H, W) or {expected}")

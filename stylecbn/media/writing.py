"""Writing images: one frame or an animation, to a file or a stream.

`write_image` picks the format from the suffix (or `format=`), and writes files through
`stylecbn.fileio.atomic_path`, so an output file appears whole or not at all; a stream gets the
encoded bytes in one write, once encoding has succeeded.
"""

import contextlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from stylecbn.errors import ImageError, check_int, is_integer
from stylecbn.fileio import atomic_path
from stylecbn.media.reading import DEFAULT_FRAME_MS, FORMAT_ALIASES, stream_name
from stylecbn.media.pixels import check_frame

__all__ = ["write_image", "OUTPUT_SUFFIXES"]

# What write_image can produce, by suffix and by format name.
_SUFFIX_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF",
                   ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
OUTPUT_SUFFIXES = tuple(_SUFFIX_FORMATS)
_ANIMATED_FORMATS = ("GIF", "WEBP")


def write_image(dest, frames, *, format=None, durations=None, loop=None, quality=95):
    """Write one image or an animation.

    Args:
        dest: a path (str or Path), written atomically (a finished file or none), or a binary
            file-like object such as `sys.stdout.buffer` (the encoded bytes are written in
            one call once encoding has succeeded).
        frames: a list of (H, W) or (H, W, 3) uint8 arrays of one size; a single array is
            one frame. Several frames make an animated GIF or WebP; note that GIF merges
            consecutive identical frames (adding their durations).
        format: "PNG", "JPEG"/"JPG", "WEBP", "GIF", "TIFF"/"TIF" or "BMP"; defaults to the
            suffix of `dest`. Required for streams.
        durations: per-frame milliseconds (a list, or one int for all); default 100 ms.
        loop: animation loop count, 0 = forever (the default).
        quality: JPEG/WebP quality, 1..100.

    Raises:
        ImageError: bad frames, an unknown suffix or format, several frames for a
            single-frame format, or the destination cannot be written.
    """
    frames = _frame_list(frames)
    label = str(dest) if isinstance(dest, (str, os.PathLike)) else stream_name(dest)
    file_format = _output_format(dest, format)
    if len(frames) > 1 and file_format not in _ANIMATED_FORMATS:
        raise ImageError(
            f"cannot write {len(frames)} frames to {label}: {file_format} holds one picture; "
            "use .gif (or .webp) for an animation"
        )
    quality = check_int("quality", quality, minimum=1, maximum=100, error=ImageError)
    images = [Image.fromarray(frame) for frame in frames]
    options = _save_options(file_format, len(images), durations, loop, quality)
    if len(images) > 1:
        options.update(save_all=True, append_images=images[1:])

    if isinstance(dest, (str, os.PathLike)):
        _write_path(Path(dest), images[0], file_format, options)
    elif hasattr(dest, "write"):
        _write_stream(dest, label, images[0], file_format, options)
    else:
        raise ImageError(
            f"cannot write an image to a {type(dest).__name__}; pass a path or a binary file"
        )


def _frame_list(frames):
    if isinstance(frames, (np.ndarray, Image.Image)):
        frames = [frames]
    frames = [np.asarray(frame) if isinstance(frame, Image.Image) else frame for frame in frames]
    if not frames:
        raise ImageError("no frames to write")
    for index, frame in enumerate(frames):
        check_frame(frame, f"frame {index}")
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise ImageError(f"all frames must have the same shape; received: {sorted(shapes)}")
    return frames


def _output_format(dest, format):
    supported = ", ".join(OUTPUT_SUFFIXES)
    if format is not None:
        name = str(format).upper().lstrip(".")
        name = FORMAT_ALIASES.get(name, name)
        if name not in _SUFFIX_FORMATS.values():
            raise ImageError(
                f"unknown image format {format!r}; supported: PNG, JPEG, WEBP, GIF, TIFF, BMP"
            )
        return name
    if not isinstance(dest, (str, os.PathLike)):
        raise ImageError("writing to a stream needs format= (e.g. format='PNG')")
    suffix = Path(dest).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise ImageError(
            f"cannot tell the image format of {dest} from its suffix "
            f"{suffix or '(none)'!r}; use one of: {supported}"
        )
    return _SUFFIX_FORMATS[suffix]


def _save_options(file_format, frame_count, durations, loop, quality):
    options = {}
    if file_format in ("JPEG", "WEBP"):
        options["quality"] = int(quality)
    if frame_count > 1:
        if durations is None:
            durations = [DEFAULT_FRAME_MS] * frame_count
        elif is_integer(durations):
            durations = [int(durations)] * frame_count
        durations = [int(d) for d in durations]
        if len(durations) != frame_count or any(d <= 0 for d in durations):
            raise ImageError(
                f"durations must be {frame_count} positive numbers of milliseconds, one per "
                f"frame; received: {durations}"
            )
        options["duration"] = durations
        options["loop"] = 0 if loop is None else int(loop)
    return options


def _save(image, target, file_format, options):
    image.save(target, format=file_format, **options)


def _write_path(path, image, file_format, options):
    try:
        if path.is_dir():  # inside the try: a name too long for the file system raises here
            raise ImageError(f"cannot write {path}: it is a folder")
        with atomic_path(path) as tmp:
            _save(image, tmp, file_format, options)
    except FileNotFoundError as exc:
        raise ImageError(f"cannot write {path}: the folder {path.parent} does not exist") from exc
    except NotADirectoryError as exc:
        raise ImageError(f"cannot write {path}: {path.parent} is not a folder") from exc
    except PermissionError as exc:
        raise ImageError(
            f"cannot write {path}: permission denied in the folder {path.parent}"
        ) from exc
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:  # encoder refused the options
        raise ImageError(f"cannot write {path} as {file_format}: {exc}") from exc


def _write_stream(stream, label, image, file_format, options):
    # Encode fully in memory first, so a failed encode writes nothing to the stream.
    buffer = io.BytesIO()
    try:
        _save(image, buffer, file_format, options)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"cannot encode the image as {file_format}: {exc}") from exc
    try:
        stream.write(buffer.getvalue())
        with contextlib.suppress(AttributeError, ValueError):
            stream.flush()
    except TypeError as exc:
        raise ImageError(
            f"{label} is a text stream; pass a binary one (e.g. sys.stdout.buffer)"
        ) from exc
    except OSError as exc:
        raise ImageError(f"cannot write to {label}: {exc.strerror or exc}") from exc

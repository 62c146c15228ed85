"""Reading images: any common file, bytes, stream, PIL image or array in, uint8 RGB frames out.

Reading turns every input (a file, bytes, a binary stream such as stdin, a PIL image or a
NumPy array) into one or more (H, W, 3) uint8 RGB frames: EXIF orientation applied, every
frame of an animation kept, and every pixel kind converted by `stylecbn.media.pixels`. Files are
read header first and only as far as needed; a picture larger than the pixel limit (what the
machine's free memory can decode) is refused before decoding, and one whose data ends early
(`stylecbn.media.truncation`) is refused rather than padded. Anything that cannot be read becomes an
`ImageError` that names the input. Resizing is in `stylecbn.media.pixels`, writing in
`stylecbn.media.writing`.
"""

import contextlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from stylecbn.errors import ImageError, check_int
from stylecbn.memory import available_memory, format_bytes
from stylecbn.media.pixels import array_to_rgb, pil_to_rgb
from stylecbn.media.truncation import missing_data

MIN_SIDE = 16  # images smaller than this on either side are rejected

# Suffixes (lower case, with the dot) that folder scanning treats as images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")

# Format names Pillow reports (or users write) and the format they are.
FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "MPO": "JPEG"}
# Formats whose extra frames are an animation; others (MPO stereo/depth pictures from cameras,
# multi-page TIFF) keep only their first picture.
_ANIMATION_SOURCES = ("GIF", "PNG", "WEBP")
DEFAULT_FRAME_MS = 100


@dataclass
class LoadedImage:
    """An image read by `read_image`.

    Attributes:
        frames: one or more (H, W, 3) uint8 RGB arrays of the same size.
        source: the name used in messages: a file path, "<stdin>", "<PIL image>", "<array>".
        format: the input's format ("PNG", "JPEG", "GIF", ...) when known, else None.
        durations: per-frame display time in milliseconds for animations, else None.
        loop: the animation's loop count (0 = forever) when it has one, else None.
    """

    frames: list[np.ndarray]
    source: str
    format: str | None = None
    durations: list[int] | None = None
    loop: int | None = None

    @property
    def is_animated(self):
        """Whether the image has more than one frame."""
        return len(self.frames) > 1

    @property
    def size(self):
        """(width, height) of the frames."""
        height, width = self.frames[0].shape[:2]
        return width, height


# --- reading -----------------------------------------------------------------------------

# Decoding peaks at about this many bytes of memory per pixel (every frame counted): the file's
# bytes, Pillow's decoded picture, the uint16 arithmetic of compositing transparency on white,
# and the RGB frame we return. benchmarks/decode_memory.py measures 10.7 (RGB JPEG) to 19.8
# (RGBA PNG); rounded up for the formats it does not try.
DECODE_BYTES_PER_PIXEL = 24

# Without a memory figure from the system, the pixel limit falls back to this: a 30000x30000
# scan is legitimate, much more is almost certainly a decompression bomb.
FALLBACK_MAX_PIXELS = 30000 * 30000

# Largest raw data per pixel an image file can hold (uncompressed 16-bit RGBA), plus room for
# metadata (ICC profiles, EXIF, XMP): what reading a file may pull into memory, at most.
_MAX_FILE_BYTES_PER_PIXEL = 8
_MAX_METADATA_BYTES = 64 * 2**20


def default_max_pixels():
    """The largest image (pixels of every frame together) `read_image` decodes by default.

    It is what this machine's available memory can decode (`stylecbn.memory.available_memory`
    over DECODE_BYTES_PER_PIXEL), so it follows the machine: about 670 megapixels with 16 GB
    free. FALLBACK_MAX_PIXELS where the system does not report its memory.
    """
    available = available_memory()
    if available is None:
        return FALLBACK_MAX_PIXELS
    return max(MIN_SIDE * MIN_SIDE, available // DECODE_BYTES_PER_PIXEL)


def read_image(source, *, name=None, max_pixels=None, reduce_to=None):
    """Read an image into uint8 RGB frames.

    Files are read lazily: the header first (a file that is no image is refused after its
    first bytes, whatever its size), then the picture's size is checked against `max_pixels`
    before anything is decoded, then the pixels; a file whose data ends before the picture
    does is an error, never a picture padded with black or grey.

    Args:
        source: a path (str or Path; devices and pipes such as /dev/stdin are read like
            streams); bytes; a binary file-like object (e.g. `sys.stdin.buffer`); a PIL image;
            or a NumPy array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) with dtype
            uint8, uint16 (scaled to 8 bit) or float in [0, 1]. Alpha is composited on white.
        name: what to call the input in messages; defaults to the path, the stream's name
            ("<stdin>"), "<bytes>", "<PIL image>" or "<array>".
        max_pixels: the largest picture to decode, counting the pixels of every frame;
            None means `default_max_pixels()` (what this machine's free memory allows).
            Arrays, already in memory, are not limited.
        reduce_to: JPEG only: decode at a reduced scale (1/2, 1/4 or 1/8, Pillow's `draft`)
            as long as both sides stay at least this many pixels; several times faster for
            large photos when a smaller picture will do. None decodes at full size.

    Returns:
        A LoadedImage. Animated GIF, PNG and WebP inputs give every frame with their
        durations and loop count; other multi-picture files give their first picture.

    Raises:
        ImageError: the file does not exist or is a folder, the data is not a readable image
            (unknown format, corrupt, truncated, missing rows or frames), it has more than
            `max_pixels` pixels, it is smaller than MIN_SIDE on a side, or the array's shape
            or dtype is unsupported.
        ConfigError: `max_pixels` or `reduce_to` is not a positive whole number.
    """
    max_pixels = default_max_pixels() if max_pixels is None else check_int(
        "max_pixels", max_pixels, minimum=1)
    if reduce_to is not None:
        check_int("reduce_to", reduce_to, minimum=1)
    if isinstance(source, np.ndarray):
        name = name or "<array>"
        loaded = LoadedImage(frames=[array_to_rgb(source, name)], source=name)
    elif isinstance(source, Image.Image):
        loaded = _read_pil(source, name or "<PIL image>", max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        loaded = _read_path(Path(source), name, max_pixels, reduce_to)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "<bytes>"
        reader = _LazyReader(io.BytesIO(source), name, _byte_limit(max_pixels))
        loaded = _read_file(reader, name, max_pixels, reduce_to)
    elif hasattr(source, "read"):
        name = name or stream_name(source)
        reader = _LazyReader(source, name, _byte_limit(max_pixels))
        loaded = _read_file(reader, name, max_pixels, reduce_to)
    else:
        raise ImageError(
            f"cannot read an image from a {type(source).__name__}; pass a path, bytes, a "
            "binary file, a PIL image or a NumPy array"
        )
    _check_size(loaded)
    return loaded


def looks_like_image(path):
    """Whether the file at `path` starts like an image (only its header is read), whatever its
    suffix says. False for folders, unreadable files and everything Pillow does not know."""
    return image_size(path) is not None


def image_size(path):
    """The (width, height) an image file's header announces, or None where it has none that
    Pillow can read. Nothing is decoded: this is for planning before reading many files."""
    try:
        with open(path, "rb") as file, _our_pixel_limit():
            with Image.open(_LazyReader(file, str(path), _MAX_METADATA_BYTES)) as image:
                return image.size
    except Exception:  # unreadable: reading the file itself will say why
        return None


def _byte_limit(max_pixels):
    return max_pixels * _MAX_FILE_BYTES_PER_PIXEL + _MAX_METADATA_BYTES


def stream_name(stream):
    name = getattr(stream, "name", None)
    return name if isinstance(name, str) else "<stream>"


class _LazyReader(io.RawIOBase):
    """A seekable file over any binary source that reads it only as far as asked.

    Pillow reads a header, seeks back and forth in it, then reads the pixel data; this serves
    those reads from the bytes read so far and pulls more from the source only when a read
    goes past them. So a source that is no image (`/dev/zero`, a 3 GB archive) is refused
    after its first bytes, pipes and stdin work although they cannot seek, and no source can
    make us hold more than `limit` bytes.
    """

    _CHUNK = 1 << 16

    def __init__(self, source, name, limit):
        super().__init__()
        self._source, self._name, self._limit = source, name, limit
        self._data = bytearray()
        self._position = 0
        self._ended = False

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._position

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            self._fill(None)
            position = len(self._data) + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError("negative seek position")
        self._position = position
        return position

    def read(self, size=-1):
        # Overridden so that a size taken from a lying header is never allocated up front.
        end = None if size is None or size < 0 else self._position + size
        self._fill(end)
        stop = len(self._data) if end is None else min(end, len(self._data))
        chunk = bytes(self._data[self._position:stop])
        self._position += len(chunk)
        return chunk

    def readinto(self, buffer):
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def _fill(self, end):
        """Read from the source until `end` bytes are held (None: to its end) or it ends."""
        while not self._ended and (end is None or len(self._data) < end):
            want = self._CHUNK if end is None else max(self._CHUNK, end - len(self._data))
            want = min(want, self._limit + 1 - len(self._data))
            try:
                chunk = self._source.read(want)
            except OSError as exc:
                raise ImageError(f"cannot read {self._name}: {exc.strerror or exc}") from exc
            if isinstance(chunk, str):
                raise ImageError(
                    f"{self._name} is a text stream; pass a binary one (e.g. sys.stdin.buffer)"
                )
            if not chunk:
                self._ended = True
            self._data += chunk
            if len(self._data) > self._limit:
                raise ImageError(
                    f"{self._name} holds more than {self._limit:,} bytes, more than any image "
                    "within the pixel limit can hold; it is not an image we can read"
                )


def _read_path(path, name, max_pixels, reduce_to):
    name = name or str(path)
    if not path.exists():
        raise ImageError(f"{name} does not exist")
    if path.is_dir():
        raise ImageError(f"{name} is a folder, not an image")
    try:
        file = path.open("rb")
    except OSError as exc:
        raise ImageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    with file:
        reader = _LazyReader(file, name, _byte_limit(max_pixels))
        return _read_file(reader, name, max_pixels, reduce_to)


def _read_file(reader, name, max_pixels, reduce_to):
    """Open, check and decode the image in `reader` (a _LazyReader)."""
    if not reader.read(1):
        raise ImageError(f"{name} is empty, not an image")
    reader.seek(0)
    with _our_pixel_limit():
        try:
            image = Image.open(reader)  # reads the header only
        except ImageError:
            raise
        except UnidentifiedImageError as exc:
            raise ImageError(
                f"{name} is not a readable image (unknown or unsupported file format)"
            ) from exc
        except Exception as exc:  # Pillow raises many kinds on malformed headers
            raise _unreadable(name, exc) from exc
        with image:
            if reduce_to is not None and image.format == "JPEG":
                image.draft("RGB", (reduce_to, reduce_to))
            frame_count = _checked_frame_count(image, name, max_pixels)
            # Before decoding, so a short file never costs the memory of its announced size;
            # our reads of the file leave Pillow's position where it was.
            position = reader.tell()
            try:
                missing = missing_data(reader, image.format, image.mode)
            except ImageError:
                raise
            except Exception as exc:  # damage can show up here first
                raise _unreadable(name, exc) from exc
            if missing:
                raise ImageError(
                    f"{name} is incomplete: {missing}; it may be damaged or cut short: "
                    "re-export or re-download it"
                )
            reader.seek(position)
            return _decode(image, name, frame_count)


def _read_pil(image, name, max_pixels):
    # A caller's image may be a lazily opened file: decode it under the same limit, and
    # leave it on the frame it was on.
    start = image.tell()
    with _our_pixel_limit():
        try:
            return _decode(image, name, _checked_frame_count(image, name, max_pixels))
        finally:
            with contextlib.suppress(Exception):
                image.seek(start)


_limit_lock = threading.Lock()
_active_reads = 0
_saved_pixel_limit = None


@contextlib.contextmanager
def _our_pixel_limit():
    """Turn Pillow's own decompression-bomb check off while our reads run; ours replaces it.

    Pillow checks `Image.MAX_IMAGE_PIXELS` (a module global, 89 megapixels by default) at open,
    on GIF seeks and on TIFF loads, so it would refuse pictures our limit allows; our check
    (`_checked_frame_count`) counts every frame from the header before decoding. Concurrent
    reads share one change (counted under a lock), and the caller's value comes back when the
    last one ends.
    """
    global _active_reads, _saved_pixel_limit
    with _limit_lock:
        if _active_reads == 0:
            _saved_pixel_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _active_reads += 1
    try:
        yield
    finally:
        with _limit_lock:
            _active_reads -= 1
            if _active_reads == 0:
                Image.MAX_IMAGE_PIXELS = _saved_pixel_limit


def _checked_frame_count(image, name, max_pixels):
    """The number of frames to decode, after checking their pixels against `max_pixels`.

    Uses the header only: every frame is as large as the picture's canvas, so the memory a
    picture needs is known before any of it is decoded.
    """
    file_format = FORMAT_ALIASES.get(image.format, image.format)
    try:
        # Counting a GIF's frames reads through the file, so it can fail on broken data too.
        frame_count = image.n_frames if file_format in _ANIMATION_SOURCES else 1
    except Exception as exc:
        raise _unreadable(name, exc) from exc
    if image.width * image.height * frame_count > max_pixels:
        raise _too_large(name, image.width, image.height, frame_count, max_pixels)
    return frame_count


def _decode(image, name, frame_count):
    """Decode `frame_count` frames of an opened PIL image into a LoadedImage."""
    file_format = image.format
    file_format = FORMAT_ALIASES.get(file_format, file_format) if file_format else None
    frames, durations = [], []
    animated = frame_count > 1
    try:
        for index in range(frame_count):
            if animated:
                image.seek(index)
            image.load()  # full decode now: truncation shows up here, not later
            frame = pil_to_rgb(_oriented(image), name)
            # Arrays viewed from Pillow are read-only; callers get arrays they own.
            frames.append(frame if frame.flags.writeable else frame.copy())
            durations.append(_frame_duration(image))
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError(f"{name} is too large to decode in the memory available") from exc
    except Exception as exc:  # truncated data, bad chunks, decoder errors
        raise _unreadable(name, exc) from exc
    if not animated:
        return LoadedImage(frames=frames, source=name, format=file_format)
    loop = image.info.get("loop")
    return LoadedImage(
        frames=frames,
        source=name,
        format=file_format,
        durations=durations,
        loop=int(loop) if loop is not None else None,
    )


def _oriented(image):
    """The frame turned upright by its EXIF orientation tag."""
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
            return image  # upright already; exif_transpose would copy the whole picture
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not make a good picture unreadable
        return image


def _frame_duration(image):
    duration = image.info.get("duration")
    if duration is None or duration <= 0:
        return DEFAULT_FRAME_MS
    return int(round(duration))


def _unreadable(name, exc):
    reason = str(exc).strip() or type(exc).__name__
    return ImageError(
        f"{name} is not a readable image ({reason}); it may be damaged or incomplete: "
        "re-export or re-download it"
    )


def _too_large(name, width, height, frame_count, max_pixels):
    frames = f" x {frame_count} frames" if frame_count > 1 else ""
    return ImageError(
        f"{name} is {width}x{height} px{frames}, more than the {max_pixels:,} pixels allowed "
        f"(about {format_bytes(max_pixels * DECODE_BYTES_PER_PIXEL)} to decode); downscale it, "
        "or raise the limit (`max_pixels`, or the environment variable STYLECBN_MAX_PIXELS) "
        "if the machine has the memory"
    )


def _check_size(loaded):
    width, height = loaded.size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(
            f"{loaded.source} is {width}x{height} px; images must be at least "
            f"{MIN_SIDE} px on each side"
        )

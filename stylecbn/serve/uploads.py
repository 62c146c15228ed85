"""Reading `POST /api/stylize` requests: the multipart form, its limits, and the uploaded images.

Everything stays in memory (nothing from a client touches the disk, and no client value is
ever used as a file path). Limits are enforced before the expensive step they protect:
the body's size before it is read (Content-Length) and while it is read (chunked uploads),
each file's bytes before it is opened, and its pixels from the image header, which Pillow
reads without decoding the picture, before `stylecbn.media.reading.read_image` decodes it.
"""

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import FormParser, parse_options_header

from stylecbn.errors import ConfigError, ImageError, check_int
from stylecbn.media.pixels import fit_size
from stylecbn.media.reading import read_image

__all__ = ["UploadLimits", "UploadForm", "UploadTooLargeError", "read_form", "read_upload"]

MB = 1_000_000
# Pillow refuses to open headers above twice Image.MAX_IMAGE_PIXELS (179 megapixels by
# default) as decompression bombs; the pixel limit stays below that, so the header check
# always gets to answer with the server's own limit.
MAX_PIXELS_LIMIT = 170_000_000
# The text fields of one request (style, options) fit easily in this; the files come on top.
FIELDS_BYTES = 64 * 1024


class UploadTooLargeError(ImageError):
    """An upload is over the server's byte or pixel limit (HTTP 413)."""


class BadRequestError(ConfigError):
    """The request is not a well-formed stylize form (HTTP 400)."""


@dataclass(frozen=True)
class UploadLimits:
    """How much one request may send, and how much painting it may ask for.

    Attributes:
        max_bytes: largest file (the photo or the mask), in bytes.
        max_pixels: largest image, width * height summed over its frames.
        max_result_pixels: largest result, width * height after `max_size`: what goes through
            the network for one request (its time and memory grow with it), whatever
            `max_size` asks. 12 megapixels holds a 4000x3000 photo whole.
        max_concurrent: requests whose images are decoded and painted at once; the others
            wait their turn holding only their upload's bytes. Two keep the model busy (one
            request decodes while another is painted).
    """

    max_bytes: int = 50 * MB
    max_pixels: int = 50_000_000
    max_result_pixels: int = 12_000_000
    max_concurrent: int = 2

    def __post_init__(self):
        check_int("max_bytes", self.max_bytes, minimum=1)
        check_int("max_pixels", self.max_pixels, minimum=1, maximum=MAX_PIXELS_LIMIT)
        check_int("max_result_pixels", self.max_result_pixels, minimum=1,
                  maximum=MAX_PIXELS_LIMIT)
        check_int("max_concurrent", self.max_concurrent, minimum=1)

    @property
    def max_body_bytes(self):
        """The whole request: a photo, a mask and the text fields."""
        return 2 * self.max_bytes + FIELDS_BYTES

    def describe_bytes(self):
        return f"{self.max_bytes / MB:g} MB"

    def describe_pixels(self):
        return f"{self.max_pixels / 1e6:g} megapixels"

    def describe_result_pixels(self):
        return f"{self.max_result_pixels / 1e6:g} megapixels"


@dataclass
class UploadedFile:
    """One file part: its bytes and the name to use in messages (never as a path)."""

    data: bytes
    name: str


@dataclass
class UploadForm:
    """The parsed form: text fields by name, files by name."""

    fields: dict
    files: dict

    def check_names(self, text_names, file_names):
        """Refuse fields this endpoint does not know, so a misspelt option is not ignored."""
        for name in self.fields:
            if name not in text_names:
                hint = f" (it is a file field: {_FILE_PART})" if name in file_names else ""
                raise BadRequestError(
                    f"unknown form field {name!r}{hint}; the fields are: "
                    f"{', '.join(sorted((*text_names, *file_names)))}"
                )
        for name in self.files:
            if name not in file_names:
                raise BadRequestError(
                    f"form field {name!r} must be text, not a file; the files are: "
                    f"{', '.join(sorted(file_names))}"
                )


async def read_form(request, limits):
    """Read a multipart/form-data request body into an `UploadForm`, within `limits`.

    Raises:
        BadRequestError: not multipart/form-data, malformed, or a field given twice.
        UploadTooLargeError: the body is larger than `limits.max_body_bytes`.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise BadRequestError(
            "send the photo as multipart/form-data (curl: -F image=@photo.jpg); "
            f"received Content-Type {request.headers.get('content-type', '(none)')!r}"
        )
    limit = limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(int(declared), limits)
    body, received = bytearray(), 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _body_too_large(received, limits, at_least=True)
        body += chunk
    return _parse_multipart(bytes(body), boundary)


def _body_too_large(size, limits, at_least=False):
    return UploadTooLargeError(
        f"the upload is {'over ' if at_least else ''}{size / MB:.1f} MB; this server takes "
        f"photos up to {limits.describe_bytes()} (start it with a larger --max-upload-mb)"
    )


# python-multipart takes a part without filename= for a text field (it does not read RFC
# 5987's filename*=), so a file sent that way arrives as text.
_FILE_PART = ('send a file with filename="..." in its Content-Disposition (filename*= alone '
              "is not read)")
# RFC 2046 allows 70 characters; python-multipart refuses over 256 with an error of its own.
MAX_BOUNDARY = 70


def _parse_multipart(body, boundary):
    if len(boundary) > MAX_BOUNDARY:
        raise BadRequestError(
            f"the multipart boundary is {len(boundary)} characters; at most {MAX_BOUNDARY} "
            "(RFC 2046): send the form as browsers and curl -F do"
        )
    fields, files = {}, {}

    def add(target, name, value):
        if name in fields or name in files:
            raise BadRequestError(f"form field {name!r} is given more than once")
        target[name] = value

    def on_field(field):
        name = _text(field.field_name)
        try:
            value = (field.value or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError(
                f"form field {name!r} is not UTF-8 text; if it is a file, {_FILE_PART}"
            ) from None
        add(fields, name, value)

    def on_file(file):
        file.file_object.seek(0)
        name = _text(file.field_name)
        add(files, name, UploadedFile(file.file_object.read(), _display_name(file.file_name)))

    # The whole body is in memory already; files stay in memory too (never spooled to disk).
    config = {"MAX_MEMORY_FILE_SIZE": len(body) + 1}
    parser = FormParser("multipart/form-data", on_field, on_file, boundary=boundary, config=config)
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise BadRequestError(f"the form data is malformed ({exc})") from None
    return UploadForm(fields, files)


def _text(raw):
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")


def _display_name(raw):
    """The client's file name, made safe to show in a message: printable, at most 80 chars."""
    name = "".join(c for c in _text(raw) if c.isprintable()).strip()
    return name[:80] if name else ""


def read_upload(upload, limits, what, max_size=None):
    """Check an uploaded image against `limits` and decode it with `read_image`.

    Args:
        upload: an `UploadedFile`.
        limits: the `UploadLimits`.
        what: what the file is, for messages ("the photo", "the mask").
        max_size: for the photo, the `max_size` it is to be painted at: the result's size is
            checked against `limits.max_result_pixels` (from the header, before decoding).

    Returns:
        A `LoadedImage`.

    Raises:
        UploadTooLargeError: too many bytes, too many pixels by the image header, or a result
            larger than the limit.
        ImageError: the file is not a readable image (`read_image`'s message).
    """
    name = f"{what} {upload.name}" if upload.name else what
    size = len(upload.data)
    if size > limits.max_bytes:
        raise UploadTooLargeError(
            f"{name} is {size / MB:.1f} MB; this server takes files up to "
            f"{limits.describe_bytes()} (start it with a larger --max-upload-mb)"
        )
    header = _header_size(upload.data, name, limits)
    if header is not None:
        width, height, frames = header
        pixels = width * height * frames
        if pixels > limits.max_pixels:
            shape = f"{width}x{height}" + (f" x {frames} frames" if frames > 1 else "")
            raise UploadTooLargeError(
                f"{name} is {shape} ({pixels / 1e6:.3g} megapixels); this server takes images "
                f"up to {limits.describe_pixels()} (downscale it, or start the server with a "
                "larger --max-megapixels)"
            )
        if max_size is not None:
            _check_result_size(width, height, max_size, limits, name)
    loaded = read_image(upload.data, name=name)
    if header is None and max_size is not None:  # a header Pillow could not read alone
        _check_result_size(*loaded.size, max_size, limits, name)
    return loaded


def _check_result_size(width, height, max_size, limits, name):
    result_width, result_height = fit_size(width, height, max_size)
    if result_width * result_height <= limits.max_result_pixels:
        return
    # The longest side whose result fits: from the area ratio, then down past rounding.
    fitting = int(max(width, height) * math.sqrt(limits.max_result_pixels / (width * height)))
    while fitting > 1 and math.prod(fit_size(width, height, fitting)) > limits.max_result_pixels:
        fitting -= 1
    asked = "its own size (max_size 0)" if max_size == 0 else f"max_size {max_size}"
    raise UploadTooLargeError(
        f"{name} at {asked} would be painted at {result_width}x{result_height} "
        f"({result_width * result_height / 1e6:.3g} megapixels); this server paints up to "
        f"{limits.describe_result_pixels()} per request: send max_size at most {fitting}, "
        "or start the server with a larger --max-result-megapixels"
    )


def _header_size(data, name, limits):
    """(width, height, frames) from the image header, or None where it is unreadable.

    `Image.open` parses only the header; nothing is decoded until `load()`. An unreadable
    header is left to `read_image`, which explains it in its own words.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                frames = getattr(image, "n_frames", 1)
    except Image.DecompressionBombError:
        # Pillow refuses headers over twice its own cap, which MAX_PIXELS_LIMIT stays under.
        raise UploadTooLargeError(
            f"{name} is far larger than this server's limit of {limits.describe_pixels()}; "
            "downscale it first"
        ) from None
    except Exception:  # Pillow raises many kinds on malformed headers
        return None
    return width, height, frames

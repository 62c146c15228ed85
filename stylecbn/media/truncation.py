"""Find image files whose data ends before the picture does.

Pillow decodes some incomplete files without an error and fills what is missing: a PNG whose
compressed stream ends (properly closed) after a few of its rows gets black rows, a JPEG whose
scan is cut short by an end marker gets grey blocks, and a GIF cut between two frames simply
has fewer frames. `missing_data` looks at the file itself, after Pillow has decoded it, and
says what is missing, so that the reader can refuse the file instead of returning a picture
that is not the one in the file.
"""

import struct
import zlib

try:
    import simplejpeg
except ImportError:
    # A declared dependency, but the GPU machine trains from a bundle of a few wheels without
    # it: there, JPEGs cut short by an end marker are read as Pillow fills them.
    simplejpeg = None

# Adam7 interlacing: (first column, first row, column step, row step) of each pass.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type
_INFLATE_STEP = 1 << 20  # inflate at most this much at a time: the output is only counted


def missing_data(file, file_format, mode):
    """What the image data of `file` lacks, in words, or None when it is complete.

    Args:
        file: the image file, a seekable binary file positioned anywhere (it is rewound).
        file_format: Pillow's format name ("PNG", "GIF", "JPEG", ...); formats not checked
            here (WebP, TIFF, BMP, ...) are ones whose decoders already refuse missing data.
        mode: Pillow's mode of the decoded picture (a JPEG check decodes in a matching
            colour space).
    """
    if file_format == "PNG":
        return _png_missing(file)
    if file_format == "GIF":
        return _gif_missing(file)
    if file_format in ("JPEG", "MPO"):
        return _jpeg_missing(file, mode)
    return None


# --- PNG -----------------------------------------------------------------------------------


def _png_row_sizes(width, height, bit_depth, colour_type, interlaced):
    """Bytes per row (one filter byte included) of each row a PNG frame's zlib stream holds,
    as (row size, row count) runs: one run, or one per Adam7 pass when interlaced."""
    bits = _PNG_CHANNELS.get(colour_type, 4) * bit_depth
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    runs = []
    for x0, y0, dx, dy in passes:
        columns, rows = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if columns > 0 and rows > 0:
            runs.append((1 + (columns * bits + 7) // 8, rows))
    return runs


class _Stream:
    """One zlib stream (a PNG's IDAT chunks, or one APNG frame's fdAT chunks), inflated only to
    count its output."""

    def __init__(self, row_sizes):
        self.row_sizes = row_sizes
        self.expected = sum(size * count for size, count in row_sizes)
        self.produced = 0
        self._inflater = zlib.decompressobj()

    def feed(self, data):
        try:
            while data and self.produced < self.expected and not self._inflater.eof:
                self.produced += len(self._inflater.decompress(data, _INFLATE_STEP))
                data = self._inflater.unconsumed_tail
        except zlib.error:
            self.expected = -1  # corrupt, not short: Pillow judges such data itself

    @property
    def complete(self):
        return self.produced >= self.expected

    def describe(self):
        if len(self.row_sizes) == 1:
            size, count = self.row_sizes[0]
            return f"{self.produced // size:,} of its {count:,} rows"
        return f"{self.produced:,} of its {self.expected:,} bytes of interlaced rows"


def _png_missing(file):
    file.seek(8)  # the signature
    header, frame_size, streams, current = None, None, [], None
    while True:
        head = file.read(8)
        if len(head) < 8:
            break  # cut after the last data chunk: the pixels are all there
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            break
        if kind == b"IHDR" and length >= 13:
            header = struct.unpack(">IIBBBBB", file.read(13))
            frame_size = header[:2]
            length -= 13
        elif kind == b"fcTL" and length >= 12:
            frame_size = struct.unpack(">II", file.read(12)[4:])
            current = None  # the next data chunk starts this frame's stream
            length -= 12
        elif kind in (b"IDAT", b"fdAT") and header is not None:
            if kind == b"fdAT":  # a sequence number, then the data
                file.seek(4, 1)
                length -= 4
            if current is None or current[0] != kind:
                width, height = frame_size
                _, _, bit_depth, colour_type, _, _, interlace = header
                rows = _png_row_sizes(width, height, bit_depth, colour_type, interlace == 1)
                current = (kind, _Stream(rows))
                streams.append(current[1])
            while length > 0:  # in pieces: one IDAT may be as large as the whole picture
                piece = file.read(min(length, _INFLATE_STEP))
                if not piece:
                    break
                current[1].feed(piece)
                length -= len(piece)
        file.seek(max(length, 0) + 4, 1)  # the rest of the chunk, and its CRC (Pillow checks it)
    if header is not None and not streams:
        return "it holds no pixel data (no IDAT chunk)"
    short = [index for index, stream in enumerate(streams) if not stream.complete]
    if not short:
        return None
    stream = streams[short[0]]
    if len(streams) == 1:
        return f"its pixel data ends after {stream.describe()}"
    frame = f"frame {short[0] + 1} of {len(streams)}"
    return f"the pixel data of {frame} ends after {stream.describe()}"


# --- GIF -----------------------------------------------------------------------------------


def _gif_missing(file):
    """A GIF ends with a trailer byte (;) after its last frame; without it, frames may be
    missing (a file cut between two frames still decodes, with fewer frames)."""
    file.seek(0)
    screen = file.read(13)
    if len(screen) < 13:
        return "it ends inside its header"
    if screen[10] & 0x80:
        file.seek(3 << ((screen[10] & 7) + 1), 1)  # global colour table
    while True:
        block = file.read(1)
        if not block:
            return "it ends without the GIF trailer: frames may be missing"
        if block == b";":
            return None
        if block == b"!":
            file.seek(1, 1)  # extension label
        elif block == b",":
            descriptor = file.read(9)
            if len(descriptor) < 9:
                return "it ends inside a frame"
            if descriptor[8] & 0x80:
                file.seek(3 << ((descriptor[8] & 7) + 1), 1)  # local colour table
            file.seek(1, 1)  # LZW minimum code size
        else:
            continue  # stray byte between blocks: Pillow skips those too
        if not _skip_sub_blocks(file):
            return "it ends inside a frame"


def _skip_sub_blocks(file):
    while True:
        size = file.read(1)
        if not size:
            return False
        if size[0] == 0:
            return True
        file.seek(size[0], 1)


# --- JPEG ----------------------------------------------------------------------------------


def _jpeg_missing(file, mode):
    """libjpeg fills the rest of a scan with grey when an end marker comes too soon and only
    warns; Pillow drops the warning. simplejpeg in strict mode turns it into an error. Decoding
    at 1/8 scale still reads every coefficient (the entropy decoding is what notices)."""
    if simplejpeg is None:
        return None
    file.seek(0)
    data = file.read()
    colour_space = {"CMYK": "CMYK", "L": "GRAY"}.get(mode, "RGB")
    try:
        simplejpeg.decode_jpeg(data, colorspace=colour_space, min_factor=8, strict=True)
    except ValueError as exc:
        # Other warnings ("extraneous bytes before marker", which many cameras write) and
        # files libjpeg-turbo cannot read but Pillow can are not about missing data.
        if "premature end" in str(exc).lower():
            return "its compressed data ends before the last rows (they would be grey)"
    return None

"""Tests for stylecbn.media.reading: every input kind and mode, every error path, atomic writes."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from stylecbn.media import reading as images
from stylecbn.errors import ConfigError, ImageError
from stylecbn.media.reading import IMAGE_SUFFIXES, MIN_SIDE, LoadedImage, read_image
from stylecbn.media.writing import write_image
from stylecbn.media.pixels import center_square, resize_to_max

HAS_WEBP = features.check("webp")


def noise(height=32, width=48, seed=0):
    """A random RGB uint8 image (random data keeps compressed files large enough to cut)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(image, path, **options):
    image.save(path, **options)
    return path


def only_entries(folder):
    return sorted(p.name for p in folder.iterdir())


# --- plain reads -------------------------------------------------------------------------


def test_rgb_png_reads_exactly(tmp_path):
    pixels = noise()
    path = save(Image.fromarray(pixels), tmp_path / "photo.png")
    loaded = read_image(path)
    assert isinstance(loaded, LoadedImage)
    assert len(loaded.frames) == 1 and not loaded.is_animated
    np.testing.assert_array_equal(loaded.frames[0], pixels)
    assert loaded.frames[0].dtype == np.uint8
    assert loaded.frames[0].flags.writeable
    assert loaded.source == str(path)
    assert loaded.format == "PNG"
    assert loaded.durations is None and loaded.loop is None
    assert loaded.size == (48, 32)


def test_str_path_and_name_override(tmp_path):
    path = save(Image.fromarray(noise()), tmp_path / "a.png")
    assert read_image(str(path)).source == str(path)
    assert read_image(path, name="my photo").source == "my photo"


def test_exif_orientation_6_is_applied(tmp_path):
    # Stored 48 wide x 32 high: top half red, bottom half blue. Orientation 6 means "rotate
    # 90 degrees clockwise to display": upright it is 32 wide x 48 high, red on the right.
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:16] = (255, 0, 0)
    stored[16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(Image.fromarray(stored), tmp_path / "rotated.jpg", exif=exif, quality=95)
    frame = read_image(path).frames[0]
    assert frame.shape == (48, 32, 3)
    left, right = frame[:, 2:12].reshape(-1, 3), frame[:, 20:30].reshape(-1, 3)
    np.testing.assert_allclose(left.mean(0), (0, 0, 255), atol=12)
    np.testing.assert_allclose(right.mean(0), (255, 0, 0), atol=12)


def test_grayscale_l(tmp_path):
    gray = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 256
    path = save(Image.fromarray(gray.astype(np.uint8), "L"), tmp_path / "gray.png")
    frame = read_image(path).frames[0]
    assert frame.shape == (32, 32, 3)
    for channel in range(3):
        np.testing.assert_array_equal(frame[:, :, channel], gray)


def test_one_bit(tmp_path):
    bits = (np.indices((32, 32)).sum(0) % 2).astype(bool)
    path = save(Image.fromarray(bits), tmp_path / "bits.png")
    assert Image.open(path).mode == "1"
    frame = read_image(path).frames[0]
    np.testing.assert_array_equal(frame[:, :, 0], np.where(bits, 255, 0))
    np.testing.assert_array_equal(frame[:, :, 0], frame[:, :, 2])


def test_rgba_half_transparent_red_over_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (255, 0, 0, 128)  # half-transparent red
    rgba[:, 8:12] = (0, 0, 0, 0)  # fully transparent black
    rgba[:, 12:] = (10, 20, 30, 255)  # opaque
    path = save(Image.fromarray(rgba, "RGBA"), tmp_path / "alpha.png")
    frame = read_image(path).frames[0]
    np.testing.assert_array_equal(frame[0, 0], (255, 127, 127))
    np.testing.assert_array_equal(frame[0, 9], (255, 255, 255))
    np.testing.assert_array_equal(frame[0, 13], (10, 20, 30))


def test_la_composited_on_white(tmp_path):
    la = np.zeros((16, 16, 2), np.uint8)
    la[:8] = (100, 128)
    la[8:] = (100, 255)
    path = save(Image.fromarray(la, "LA"), tmp_path / "la.png")
    assert Image.open(path).mode == "LA"
    frame = read_image(path).frames[0]
    expected_half = round(100 * 128 / 255 + 255 * 127 / 255)  # 177
    np.testing.assert_array_equal(frame[0, 0], [expected_half] * 3)
    np.testing.assert_array_equal(frame[15, 0], [100] * 3)


def test_pa_composited_on_white():
    image = Image.new("PA", (16, 16))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putdata([(1, 128)] * 128 + [(1, 255)] * 128)
    frame = read_image(image).frames[0]
    np.testing.assert_array_equal(frame[0, 0], (255, 127, 127))
    np.testing.assert_array_equal(frame[15, 15], (255, 0, 0))


def test_palette_without_transparency(tmp_path):
    image = Image.new("P", (16, 16))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.paste(1, (0, 0, 8, 16))
    path = save(image, tmp_path / "palette.png")
    frame = read_image(path).frames[0]
    np.testing.assert_array_equal(frame[0, 0], (200, 100, 50))
    np.testing.assert_array_equal(frame[0, 15], (10, 20, 30))


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency(tmp_path, suffix):
    image = Image.new("P", (16, 16))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.paste(1, (0, 0, 8, 16))
    path = save(image, tmp_path / f"palette{suffix}", transparency=1)
    frame = read_image(path).frames[0]
    np.testing.assert_array_equal(frame[0, 0], (255, 255, 255))  # transparent index -> white
    np.testing.assert_array_equal(frame[0, 15], (10, 20, 30))


def test_sixteen_bit_png_is_scaled(tmp_path):
    values = np.array([0, 257, 1000, 32896, 65535], np.uint16)
    data = np.tile(np.repeat(values, 4), (16, 1))  # 16 x 20
    path = save(Image.fromarray(data), tmp_path / "deep.png")
    assert Image.open(path).mode in ("I;16", "I")  # "I" in older Pillow
    frame = read_image(path).frames[0]
    # round(v / 257): 1000 would come out as 255 if the values were clipped, not scaled.
    np.testing.assert_array_equal(frame[0, ::4, 0], [0, 1, 4, 128, 255])
    np.testing.assert_array_equal(frame[:, :, 0], frame[:, :, 1])


def test_thirty_two_bit_integer_mode():
    sixteen = np.tile(np.array([[-5, 0, 257, 65535]], np.int32).repeat(4, 1), (16, 1))
    frame = read_image(Image.fromarray(sixteen, "I")).frames[0]
    np.testing.assert_array_equal(frame[0, ::4, 0], [0, 0, 1, 255])
    wide = np.tile(np.array([[0, 500_000, 1_000_000, 1_000_000]], np.int32).repeat(4, 1), (16, 1))
    frame = read_image(Image.fromarray(wide, "I")).frames[0]
    np.testing.assert_array_equal(frame[0, ::4, 0], [0, 128, 255, 255])  # scaled by the max


def test_float_mode_tiff(tmp_path):
    unit = np.tile(np.array([[0.0, 0.25, 0.5, 1.0]], np.float32).repeat(4, 1), (16, 1))
    path = save(Image.fromarray(unit, "F"), tmp_path / "unit.tif")
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(read_image(path).frames[0][0, ::4, 0], [0, 64, 128, 255])
    byte_range = np.tile(np.array([[0.0, 100.0, 200.0, 300.0]], np.float32).repeat(4, 1), (16, 1))
    frame = read_image(Image.fromarray(byte_range, "F")).frames[0]
    np.testing.assert_array_equal(frame[0, ::4, 0], [0, 100, 200, 255])


def test_cmyk_jpeg_converted_to_rgb(tmp_path):
    path = save(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), tmp_path / "print.jpg")
    assert Image.open(path).mode == "CMYK"
    loaded = read_image(path)
    assert loaded.format == "JPEG"
    np.testing.assert_allclose(loaded.frames[0].reshape(-1, 3).mean(0), (255, 0, 0), atol=8)


# --- animations --------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def make_gif(path, durations=(50, 120, 200), loop=2):
    frames = [Image.new("RGB", (24, 20), colour) for colour in COLOURS]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=list(durations),
                   loop=loop)
    return path


def test_animated_gif_every_frame_with_durations_and_loop(tmp_path):
    loaded = read_image(make_gif(tmp_path / "anim.gif"))
    assert loaded.is_animated and loaded.format == "GIF"
    assert len(loaded.frames) == 3
    for frame, colour in zip(loaded.frames, COLOURS):
        assert frame.shape == (20, 24, 3)
        np.testing.assert_array_equal(frame.reshape(-1, 3), np.tile(colour, (480, 1)))
    assert loaded.durations == [50, 120, 200]
    assert loaded.loop == 2


def test_animated_gif_written_back_as_gif(tmp_path):
    loaded = read_image(make_gif(tmp_path / "anim.gif"))
    out = tmp_path / "out.gif"
    write_image(out, loaded.frames, durations=loaded.durations, loop=loaded.loop)
    with Image.open(out) as written:
        assert written.n_frames == 3
        seen = []
        for index in range(3):
            written.seek(index)
            seen.append(written.info["duration"])
        assert seen == [50, 120, 200]
        assert written.info["loop"] == 2
    again = read_image(out)
    assert len(again.frames) == 3 and again.durations == [50, 120, 200]
    for frame, colour in zip(again.frames, COLOURS):
        np.testing.assert_array_equal(frame[5, 5], colour)


def test_pil_animated_image_input_keeps_its_frame(tmp_path):
    with Image.open(make_gif(tmp_path / "anim.gif")) as image:
        image.seek(1)
        loaded = read_image(image)
        assert len(loaded.frames) == 3 and loaded.source == "<PIL image>"
        assert image.tell() == 1


def test_gif_frames_counted_against_pixel_limit(tmp_path):
    path = make_gif(tmp_path / "anim.gif")
    with pytest.raises(ImageError, match=r"24x20 px x 3 frames, more than the 960 pixels"):
        read_image(path, max_pixels=24 * 20 * 2)  # room for two frames of three
    assert len(read_image(path, max_pixels=24 * 20 * 3).frames) == 3


# --- errors while reading ----------------------------------------------------------------


@pytest.mark.parametrize("size", [(10, 8), (8, 40), (40, 15)])
def test_tiny_image_rejected(tmp_path, size):
    path = save(Image.new("RGB", size, "white"), tmp_path / "tiny.png")
    width, height = size
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert str(info.value) == (
        f"{path} is {width}x{height} px; images must be at least 16 px on each side"
    )


def test_min_side_itself_is_accepted():
    assert read_image(np.zeros((MIN_SIDE, MIN_SIDE, 3), np.uint8)).size == (16, 16)


def test_tiny_array_rejected():
    with pytest.raises(ImageError, match=r"<array> is 10x8 px; images must be at least 16 px"):
        read_image(np.zeros((8, 10, 3), np.uint8))


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".gif"])
def test_truncated_file_is_a_clear_error(tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(noise(64, 64)).save(whole)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        read_image(cut)
    assert str(info.value).startswith(f"{cut} is incomplete: ")
    assert "re-export or re-download it" in str(info.value)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # we never switch Pillow's global on


@pytest.mark.parametrize(
    "content",
    [b"hello, this is text\n", b"\x89PNG\r\n\x1a\n" + os.urandom(200), b"\xff\xd8\xff" + bytes(50)],
    ids=["text", "png-signature-garbage", "jpeg-signature-garbage"],
)
def test_corrupt_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=r"broken\.jpg is not a readable image"):
        read_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png is empty"):
        read_image(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match=r"nope\.jpg does not exist"):
        read_image(path)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def png_header_only(width, height):
    """A PNG whose header claims width x height (no pixel data): what a bomb looks like."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_decompression_bomb_is_a_clear_error(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(40000, 40000))
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError) as info:
        read_image(path, max_pixels=10**9)
    assert str(info.value) == (
        f"{path} is 40000x40000 px, more than the 1,000,000,000 pixels allowed (about 24 GB to "
        "decode); downscale it, or raise the limit (`max_pixels`, or the environment variable "
        "STYLECBN_MAX_PIXELS) if the machine has the memory"
    )
    assert Image.MAX_IMAGE_PIXELS == before


def test_default_pixel_limit_follows_free_memory(tmp_path, monkeypatch):
    # 2.4 GB free at 24 bytes a pixel: 100 megapixels. A 2.7 MB PNG of 30000x30000 (the
    # issue's bomb) would need about 21.6 GB; it is refused from its header.
    monkeypatch.setattr(images, "available_memory", lambda: 2_400_000_000)
    assert images.default_max_pixels() == 100_000_000
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(30000, 30000))
    with pytest.raises(ImageError, match=r"30000x30000 px, more than the 100,000,000 pixels"):
        read_image(path)
    path.write_bytes(png_header_only(10000, 10000))  # exactly the limit: not refused for size
    with pytest.raises(ImageError, match="is incomplete"):
        read_image(path)
    monkeypatch.setattr(images, "available_memory", lambda: None)
    assert images.default_max_pixels() == images.FALLBACK_MAX_PIXELS


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True])
def test_bad_max_pixels(bad):
    with pytest.raises(ConfigError, match="`max_pixels` must be an integer >= 1"):
        read_image(png_bytes(noise()), max_pixels=bad)


def test_pixel_limit_turned_off_only_during_our_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # stands in for Pillow's default
    path = save(Image.fromarray(noise(64, 64)), tmp_path / "big.png")
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)  # plain Pillow refuses it...
    assert read_image(path).size == (64, 64)  # ...we accept it (our own limit applies)
    assert Image.MAX_IMAGE_PIXELS == 1000  # and the global limit is back


def png_with_rows(width, height, rows, interlace=0):
    """An RGB PNG whose header says width x height but whose (properly closed) zlib stream
    holds only `rows` rows: Pillow decodes it without an error and fills the rest with black."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlace)
    raw = b"".join(b"\x00" + bytes([200]) * (3 * width) for _ in range(rows))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def test_png_missing_rows_is_an_error(tmp_path):
    # The case: under 1 kB, 30,000 rows announced, 10 present.
    path = tmp_path / "short.png"
    path.write_bytes(png_with_rows(16, 30000, 10))
    assert path.stat().st_size < 1000
    with Image.open(path) as image:
        image.load()  # Pillow alone: no error, 29,990 black rows
        assert np.asarray(image)[-1].max() == 0
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert str(info.value) == (
        f"{path} is incomplete: its pixel data ends after 10 of its 30,000 rows; it may be "
        "damaged or cut short: re-export or re-download it"
    )
    np.testing.assert_array_equal(read_image(png_with_rows(16, 20, 20)).frames[0], 200)


def test_interlaced_png_missing_data_is_an_error():
    whole = io.BytesIO()
    Image.fromarray(noise(40, 40)).save(whole, format="PNG", interlace=1)
    assert read_image(whole.getvalue()).size == (40, 40)  # a complete interlaced PNG reads
    with pytest.raises(ImageError, match="bytes of interlaced rows"):
        read_image(png_with_rows(40, 40, 3, interlace=1))


def gif_bytes(count):
    buffer = io.BytesIO()
    frames = [Image.fromarray(noise(20, 24, seed=index)) for index in range(count)]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def test_gif_cut_between_frames_is_an_error():
    two, three = gif_bytes(2), gif_bytes(3)
    cut = three[: len(two) - 1]  # the first two frames of three, without the trailer
    with Image.open(io.BytesIO(cut)) as image:
        assert image.n_frames == 2  # Pillow alone: a shorter animation, no error
    with pytest.raises(ImageError, match="without the GIF trailer: frames may be missing"):
        read_image(cut)
    assert len(read_image(three).frames) == 3


def jpeg_bytes(pixels, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def test_jpeg_scan_cut_short_by_an_end_marker_is_an_error():
    whole = jpeg_bytes(noise(64, 64), quality=90)
    cut = whole[: len(whole) // 2] + b"\xff\xd9"  # half the scan, then "end of image"
    with Image.open(io.BytesIO(cut)) as image:
        image.load()  # Pillow alone: no error, the missing blocks grey
    with pytest.raises(ImageError, match="is incomplete: its compressed data ends before"):
        read_image(cut)


def test_jpeg_header_claiming_more_rows_is_an_error():
    data = bytearray(jpeg_bytes(noise(16, 16)))
    start = data.find(b"\xff\xc0")  # SOF0: length (2), precision (1), height (2), width (2)
    struct.pack_into(">H", data, start + 5, 300)
    with pytest.raises(ImageError, match="is incomplete"):
        read_image(bytes(data))


class EndlessStream:
    """A stream of one byte value without end (like /dev/zero) that records what was asked."""

    def __init__(self, byte=b"\0", prefix=b""):
        self.byte, self.prefix, self.consumed = byte, prefix, 0

    def read(self, size=-1):
        assert size is not None and 0 <= size <= 1 << 24, f"read({size}) of an endless stream"
        data = (self.prefix + self.byte * size)[:size]
        self.prefix = self.prefix[size:]
        self.consumed += len(data)
        return data


def test_endless_non_image_is_refused_after_its_first_bytes():
    stream = EndlessStream()
    with pytest.raises(ImageError, match=r"<stream> is not a readable image \(unknown"):
        read_image(stream)
    assert stream.consumed <= 1 << 16  # one read-ahead chunk, not the stream


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_is_refused_at_once():
    with pytest.raises(ImageError, match=r"^/dev/zero is not a readable image"):
        read_image("/dev/zero")


def test_large_file_that_is_no_image_is_not_read_whole(tmp_path, monkeypatch):
    path = tmp_path / "archive.bin"
    with path.open("wb") as file:
        file.truncate(3 * 2**30)  # 3 GB, sparse: costs no disk
    requested = []
    real_open = type(path).open

    def counting_open(self, *args, **kwargs):
        file = real_open(self, *args, **kwargs)
        if self == path:
            real_read = file.read
            file.read = lambda size=-1: requested.append(size) or real_read(size)
        return file

    monkeypatch.setattr(type(path), "open", counting_open)
    with pytest.raises(ImageError, match="is not a readable image"):
        read_image(path)
    assert requested and all(0 <= size <= 1 << 16 for size in requested)


def test_stream_that_never_ends_is_capped(monkeypatch):
    # A valid PNG start, then one unknown ancillary chunk announced as 2 GB: Pillow skips such
    # chunks by reading them, so only the byte cap stops it.
    monkeypatch.setattr(images, "_MAX_METADATA_BYTES", 1 << 20)
    start = png_header_only(16, 16)[:33]  # signature and IHDR
    stream = EndlessStream(prefix=start + struct.pack(">I", 2**31 - 1) + b"abCd")
    with pytest.raises(ImageError, match=r"<stream> holds more than 1,050,624 bytes"):
        read_image(stream, max_pixels=16 * 16)
    assert stream.consumed <= (1 << 20) + 2048 + (1 << 16)


def test_reduce_to_decodes_jpeg_smaller(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes(noise(256, 512)))
    assert read_image(path, reduce_to=64).size == (128, 64)  # 1/4: the smallest >= 64
    assert read_image(path).size == (512, 256)
    with pytest.raises(ConfigError, match="reduce_to"):
        read_image(path, reduce_to=0)


def test_large_photo_loads(tmp_path):
    # 6000x4000 is above Pillow's warning threshold on some versions and must just work.
    path = save(Image.new("RGB", (6000, 4000), (20, 40, 60)), tmp_path / "big.jpg", quality=50)
    # An explicit limit: the default follows the free memory of the moment, which a busy
    # machine can bring below what 24 megapixels need.
    loaded = read_image(path, max_pixels=6000 * 4000)
    assert loaded.frames[0].shape == (4000, 6000, 3)
    small = resize_to_max(loaded.frames[0], 1024)
    assert small.shape == (683, 1024, 3)
    np.testing.assert_allclose(small[300, 500], (20, 40, 60), atol=3)


# --- other sources -----------------------------------------------------------------------


def png_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_bytes_input():
    pixels = noise()
    loaded = read_image(png_bytes(pixels))
    np.testing.assert_array_equal(loaded.frames[0], pixels)
    assert loaded.source == "<bytes>" and loaded.format == "PNG"


def test_stream_input_like_stdin():
    pixels = noise()
    stream = io.BytesIO(png_bytes(pixels))
    stream.name = "<stdin>"  # what sys.stdin.buffer is called
    loaded = read_image(stream)
    np.testing.assert_array_equal(loaded.frames[0], pixels)
    assert loaded.source == "<stdin>"


def test_unnamed_stream_and_corrupt_stream():
    assert read_image(io.BytesIO(png_bytes(noise()))).source == "<stream>"
    with pytest.raises(ImageError, match=r"<stdin> is not a readable image"):
        read_image(io.BytesIO(b"not an image at all"), name="<stdin>")
    with pytest.raises(ImageError, match=r"<stdin> is empty"):
        read_image(io.BytesIO(b""), name="<stdin>")


def test_text_stream_rejected():
    with pytest.raises(ImageError, match="text stream"):
        read_image(io.StringIO("abc"))


def test_unsupported_source_type():
    with pytest.raises(ImageError, match="cannot read an image from a int"):
        read_image(42)


def test_pil_image_input():
    pixels = noise()
    loaded = read_image(Image.fromarray(pixels))
    np.testing.assert_array_equal(loaded.frames[0], pixels)
    assert loaded.source == "<PIL image>" and loaded.format is None


# --- arrays ------------------------------------------------------------------------------


def test_uint8_rgb_array_is_copied():
    pixels = noise()
    frame = read_image(pixels).frames[0]
    np.testing.assert_array_equal(frame, pixels)
    frame[0, 0] = 0
    assert not np.shares_memory(frame, pixels)


def test_gray_and_single_channel_arrays():
    gray = noise()[:, :, 0]
    for array in (gray, gray[:, :, None]):
        frame = read_image(array).frames[0]
        assert frame.shape == (32, 48, 3)
        np.testing.assert_array_equal(frame[:, :, 1], gray)


def test_rgba_array_composited():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[...] = (255, 0, 0, 128)
    np.testing.assert_array_equal(read_image(rgba).frames[0][3, 3], (255, 127, 127))


def test_uint16_array_scaled():
    array = np.zeros((16, 16, 3), np.uint16)
    array[0, 0] = (0, 257, 65535)
    np.testing.assert_array_equal(read_image(array).frames[0][0, 0], (0, 1, 255))


def test_float_array():
    array = np.zeros((16, 16, 3), np.float32)
    array[0, 0] = (0.0, 0.5, 1.0)
    array[0, 1] = (-0.001, 1.004, 0.25)  # small overshoot is clipped
    frame = read_image(array).frames[0]
    np.testing.assert_array_equal(frame[0, 0], (0, 128, 255))
    np.testing.assert_array_equal(frame[0, 1], (0, 255, 64))


@pytest.mark.parametrize(
    "array, message",
    [
        (np.full((16, 16, 3), 200.0), r"floats in \[0, 200\]; float images must be in \[0, 1\]"),
        (np.full((16, 16, 3), np.nan), "NaN or infinite"),
        (np.zeros((16, 16, 3), np.int64), "dtype int64"),
        (np.zeros((16, 16, 2), np.uint8), r"shape \(16, 16, 2\)"),
        (np.zeros((2, 16, 16, 3), np.uint8), r"shape \(2, 16, 16, 3\)"),
    ],
    ids=["float-0-255", "nan", "int64", "two-channels", "4d"],
)
def test_bad_arrays(array, message):
    with pytest.raises(ImageError, match=message):
        read_image(array)


# --- center_square -----------------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(30, 41), (41, 30)])
def test_center_square_crops_the_middle_and_matches_pillow_lanczos(height, width):
    pixels = noise(height, width)
    # The 30 px square starts (41 - 30) // 2 = 5 px in: the middle, not the top-left corner.
    middle = pixels[5:35] if height > width else pixels[:, 5:35]
    np.testing.assert_array_equal(center_square(pixels, 30), middle)
    expected = np.asarray(Image.fromarray(middle).resize((16, 16), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(center_square(pixels, 16), expected)


# --- resize_to_max -----------------------------------------------------------------------


def test_resize_keeps_aspect_and_matches_pillow_lanczos():
    pixels = noise(30, 100)
    small = resize_to_max(pixels, 50)
    assert small.shape == (15, 50, 3)
    expected = np.asarray(Image.fromarray(pixels).resize((50, 15), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(small, expected)
    tall = resize_to_max(noise(64, 32), 16)
    assert tall.shape == (16, 8, 3)
    assert small.flags.writeable


def test_resize_never_upsamples_and_zero_keeps_size():
    pixels = noise()
    assert resize_to_max(pixels, 0) is pixels
    assert resize_to_max(pixels, 48) is pixels
    assert resize_to_max(pixels, 4000) is pixels


@pytest.mark.parametrize("bad", [-1, 1.5, "512", True])
def test_resize_bad_max_size(bad):
    with pytest.raises(ConfigError, match="max_size"):
        resize_to_max(noise(), bad)


def test_resize_bad_array():
    with pytest.raises(ImageError, match="dtype float32"):
        resize_to_max(np.zeros((32, 32, 3), np.float32), 16)


# --- write_image -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, file_format, exact",
    [
        (".png", "PNG", True),
        (".PNG", "PNG", True),
        (".bmp", "BMP", True),
        (".tif", "TIFF", True),
        (".tiff", "TIFF", True),
        (".jpg", "JPEG", False),
        (".jpeg", "JPEG", False),
        pytest.param(".webp", "WEBP", False,
                     marks=pytest.mark.skipif(not HAS_WEBP, reason="Pillow without WebP")),
    ],
)
def test_write_each_format(tmp_path, suffix, file_format, exact):
    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[:, :24] = (200, 30, 60)
    pixels[:, 24:] = (20, 160, 220)
    path = tmp_path / f"out{suffix}"
    write_image(path, [pixels])
    loaded = read_image(path)
    assert loaded.format == file_format
    if exact:
        np.testing.assert_array_equal(loaded.frames[0], pixels)
    else:
        np.testing.assert_allclose(loaded.frames[0][16, 8], (200, 30, 60), atol=10)
        np.testing.assert_allclose(loaded.frames[0][16, 40], (20, 160, 220), atol=10)
    assert only_entries(tmp_path) == [path.name]


def test_write_single_array_and_gray(tmp_path):
    write_image(tmp_path / "a.png", noise())
    gray = noise()[:, :, 0]
    write_image(tmp_path / "g.png", gray)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png").frames[0][:, :, 2], gray)


def test_explicit_format_overrides_suffix(tmp_path):
    path = tmp_path / "out.img"
    write_image(path, [noise()], format="jpg")
    assert Image.open(path).format == "JPEG"


def test_quality_changes_jpeg_size(tmp_path):
    write_image(tmp_path / "low.jpg", [noise(64, 64)], quality=10)
    write_image(tmp_path / "high.jpg", [noise(64, 64)], quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size


def test_gif_defaults_loop_forever_and_100ms(tmp_path):
    frames = [np.full((16, 16, 3), colour, np.uint8) for colour in COLOURS]
    path = tmp_path / "a.gif"
    write_image(path, frames)
    loaded = read_image(path)
    assert len(loaded.frames) == 3 and loaded.durations == [100, 100, 100] and loaded.loop == 0


@pytest.mark.skipif(not HAS_WEBP, reason="Pillow without WebP")
def test_animated_webp(tmp_path):
    frames = [np.full((16, 16, 3), colour, np.uint8) for colour in COLOURS]
    path = tmp_path / "a.webp"
    write_image(path, frames, durations=[40, 80, 120])
    loaded = read_image(path)
    assert loaded.format == "WEBP" and len(loaded.frames) == 3
    assert loaded.durations == [40, 80, 120]
    np.testing.assert_allclose(loaded.frames[1][8, 8], (0, 255, 0), atol=10)


def test_unknown_suffix_lists_supported(tmp_path):
    with pytest.raises(ImageError) as info:
        write_image(tmp_path / "out.xyz", [noise()])
    for suffix in (".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".bmp"):
        assert suffix in str(info.value)
    with pytest.raises(ImageError, match="'\\(none\\)'"):
        write_image(tmp_path / "noext", [noise()])
    assert only_entries(tmp_path) == []


def test_unknown_format_name(tmp_path):
    with pytest.raises(ImageError, match="unknown image format 'HEIC'"):
        write_image(tmp_path / "out.png", [noise()], format="HEIC")


def test_several_frames_to_jpeg_leaves_nothing(tmp_path):
    (tmp_path / "out.jpg").write_bytes(b"previous")
    with pytest.raises(ImageError, match=r"use \.gif"):
        write_image(tmp_path / "out.jpg", [noise(), noise(seed=1)])
    assert only_entries(tmp_path) == ["out.jpg"]
    assert (tmp_path / "out.jpg").read_bytes() == b"previous"


def test_wrong_dtype_frame_leaves_nothing(tmp_path):
    with pytest.raises(ImageError, match="frame 1 has dtype float32"):
        write_image(tmp_path / "out.gif", [noise(), noise().astype(np.float32)])
    assert only_entries(tmp_path) == []


def test_failure_inside_the_encoder_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(self, target, *args, **kwargs):
        with open(target, "wb") as file:
            file.write(b"\x89PNG half written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    (tmp_path / "out.png").write_bytes(b"previous")
    with pytest.raises(ImageError, match=r"cannot write .*out\.png: disk full"):
        write_image(tmp_path / "out.png", [noise()])
    assert only_entries(tmp_path) == ["out.png"]
    assert (tmp_path / "out.png").read_bytes() == b"previous"


@pytest.mark.parametrize(
    "frames, message",
    [
        ([], "no frames"),
        ([np.zeros((16, 16, 3), np.uint8), np.zeros((16, 20, 3), np.uint8)], "same shape"),
        ([np.zeros((16, 16, 5), np.uint8)], r"shape \(16, 16, 5\)"),
        ([np.zeros((16, 16, 4), np.uint8)], r"\(16, 16, 4\); expected \(H, W\) or \(H, W, 3\)"),
        (["not an array"], "frame 0 is a str"),
    ],
    ids=["empty", "mixed-sizes", "five-channels", "rgba", "not-array"],
)
def test_bad_frames(tmp_path, frames, message):
    with pytest.raises(ImageError, match=message):
        write_image(tmp_path / "out.gif", frames)
    assert only_entries(tmp_path) == []


def test_bad_durations_and_quality(tmp_path):
    frames = [noise(), noise(seed=1)]
    with pytest.raises(ImageError, match="durations must be 2 positive"):
        write_image(tmp_path / "a.gif", frames, durations=[100])
    with pytest.raises(ImageError, match="durations must be 2 positive"):
        write_image(tmp_path / "a.gif", frames, durations=[100, 0])
    with pytest.raises(ImageError, match="`quality` must be an integer from 1 to 100"):
        write_image(tmp_path / "a.jpg", [noise()], quality=0)
    assert only_entries(tmp_path) == []


def test_missing_folder_named(tmp_path):
    dest = tmp_path / "no" / "such" / "out.png"
    with pytest.raises(ImageError, match=r"cannot write .*out\.png: the folder .*such does not"):
        write_image(dest, [noise()])


def test_parent_is_a_file(tmp_path):
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(ImageError, match=r"afile is not a folder"):
        write_image(tmp_path / "afile" / "out.png", [noise()])


def test_file_name_too_long_is_an_image_error(tmp_path):
    dest = tmp_path / ("b" * 300 + ".png")
    with pytest.raises(ImageError, match=r"cannot write .*bbb\.png: File name too long"):
        write_image(dest, [noise()])
    assert only_entries(tmp_path) == []


def test_destination_is_a_folder(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(ImageError, match="it is a folder"):
        write_image(tmp_path / "out.png", [noise()])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ImageError, match=r"out\.png: permission denied in the folder"):
            write_image(locked / "out.png", [noise()])
    finally:
        locked.chmod(0o700)


def test_write_to_bytes_stream():
    pixels = noise()
    buffer = io.BytesIO()
    write_image(buffer, [pixels], format="PNG")
    np.testing.assert_array_equal(read_image(buffer.getvalue()).frames[0], pixels)


def test_write_gif_to_stream():
    buffer = io.BytesIO()
    write_image(buffer, [np.full((16, 16, 3), c, np.uint8) for c in COLOURS], format="gif")
    assert len(read_image(buffer.getvalue()).frames) == 3


def test_stream_needs_format_and_binary_mode():
    with pytest.raises(ImageError, match="needs format="):
        write_image(io.BytesIO(), [noise()])
    text = io.StringIO()
    with pytest.raises(ImageError, match="text stream"):
        write_image(text, [noise()], format="PNG")
    assert text.getvalue() == ""


def test_failed_encode_writes_nothing_to_stream(monkeypatch):
    def failing_save(self, target, *args, **kwargs):
        target.write(b"partial")
        raise OSError("encoder broke")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    stream = io.BytesIO()
    with pytest.raises(ImageError, match="encoder broke"):
        write_image(stream, [noise()], format="PNG")
    assert stream.getvalue() == b""


def test_image_suffixes():
    assert set(IMAGE_SUFFIXES) == {
        ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"
    }
    assert all(suffix == suffix.lower() for suffix in IMAGE_SUFFIXES)

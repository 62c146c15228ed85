"""`stylecbn serve`'s JSON API, in-process: styles, stylize, limits, errors, the model queue.

Images come back as PNG (lossless), so every answer is compared with the `Stylizer` call it
stands for, exactly.
"""

import asyncio
import io
import logging
import socket
import struct
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason='the web extra is not installed: pip install -e ".[dev]"')
pytest.importorskip("httpx", reason='httpx is not installed: pip install -e ".[dev]"')

from click.testing import CliRunner  # noqa: E402
from serve_helpers import (  # noqa: E402
    STYLE_CREDITS,
    STYLE_NAMES,
    call,
    decode,
    encode,
    save_tiny_model,
)

from stylecbn.cli.root import main  # noqa: E402
from stylecbn.media.reading import read_image  # noqa: E402
from stylecbn.serve import (  # noqa: E402
    UploadLimits,
    create_app,
    uploads,
)
from stylecbn.serve.app import THUMBNAIL_SIZE, ClientGone, ModelQueue  # noqa: E402
from stylecbn.media.sample import sample_photo  # noqa: E402
from stylecbn.applying.stylize import Stylizer  # noqa: E402


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.keras")


@pytest.fixture(scope="module")
def stylizer(model_path):
    return Stylizer(model_path)


@pytest.fixture
def app(stylizer):
    return create_app(stylizer)


PHOTO = sample_photo(56, 40)


def post(app, data=None, files=None, **kwargs):
    files = {"image": ("photo.png", encode(PHOTO))} if files is None else files
    return call(app, "POST", "/api/stylize", data=data or {}, files=files, **kwargs)


def assert_error(response, status, *words):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message
    return message


# --- GET --------------------------------------------------------------------------------


def test_styles_lists_names_credits_thumbnails_and_limits(app):
    body = call(app, "GET", "/api/styles").json()
    assert [s["name"] for s in body["styles"]] == STYLE_NAMES
    assert [s["credit"] for s in body["styles"]] == STYLE_CREDITS
    assert [s["index"] for s in body["styles"]] == [0, 1, 2]
    assert body["styles"][2]["thumbnail"] == "/api/styles/2/thumbnail.png"
    assert body["preview_size"] == 384 and body["default_max_size"] == 1024
    assert body["limits"] == {"max_bytes": 50_000_000, "max_pixels": 50_000_000,
                              "max_result_pixels": 12_000_000}


def test_thumbnail_is_the_style_on_the_sample_photo_and_is_cached(app, stylizer, monkeypatch):
    response = call(app, "GET", "/api/styles/1/thumbnail.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    photo = sample_photo(THUMBNAIL_SIZE, THUMBNAIL_SIZE * 2 // 3)
    expected = np.asarray(stylizer.stylize(photo, style=1, max_size=0))
    np.testing.assert_array_equal(decode(response.content), expected)

    def no_second_run(*args, **kwargs):
        raise AssertionError("the thumbnail was computed twice")

    monkeypatch.setattr(stylizer, "stylize", no_second_run)
    assert call(app, "GET", "/api/styles/1/thumbnail.png").content == response.content
    assert_error(call(app, "GET", "/api/styles/3/thumbnail.png"), 404, "0..2")


def test_page_and_its_files_are_served(app):
    page = call(app, "GET", "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert call(app, "GET", asset).status_code == 200
    # Static files come from the package folder only: no way out of it.
    assert call(app, "GET", "/static/../app.py").status_code == 404
    assert call(app, "GET", "/static/%2e%2e/app.py").status_code == 404


# --- POST /api/stylize ----------------------------------------------------------------------


def test_stylize_matches_the_stylizer_call(app, stylizer):
    options = {"strength": "0.6", "preserve_color": "true", "max_size": "32"}
    response = post(app, {"style": "red_dots:1,2:3", **options})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    expected = stylizer.stylize(
        PHOTO, style="0:1,2:3", strength=0.6, preserve_color=True, max_size=32
    )
    np.testing.assert_array_equal(decode(response.content), np.asarray(expected))
    assert decode(response.content).shape == (23, 32, 3)  # 40x56 shrunk to a longest side of 32


def test_defaults_are_style_0_at_full_strength_and_1024_px(app, stylizer):
    response = post(app)
    np.testing.assert_array_equal(decode(response.content), np.asarray(stylizer.stylize(PHOTO)))


def test_mask_gives_the_mask_style_inside(app, stylizer):
    mask = np.zeros((20, 28), np.uint8)
    mask[:, :14] = 255
    mask[:, 14:17] = 128  # a soft edge
    files = {"image": ("photo.png", encode(PHOTO)), "mask": ("mask.png", encode(mask))}
    response = post(app, {"style": "0", "mask_style": "1:1,2:1"}, files=files)
    assert response.status_code == 200, response.text
    expected = stylizer.stylize(PHOTO, style=0, mask=mask, mask_style="1:1,2:1")
    np.testing.assert_array_equal(decode(response.content), np.asarray(expected))


def test_jpeg_answer(app, stylizer):
    response = post(app, {"style": "1", "format": "jpeg", "quality": "90"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "JPEG" and image.size == (56, 40)
        styled = np.asarray(stylizer.stylize(PHOTO, style=1)).astype(int)
        # JPEG at quality 90 is lossy: compare the means only (a per-pixel bound would be
        # a guess about the encoder). Chroma subsampling and quantization keep the mean
        # within a couple of levels on smooth content.
        assert abs(np.asarray(image.convert("RGB")).mean() - styled.mean()) < 3


@pytest.mark.parametrize(
    "file_format, options",
    [("JPEG", {"quality": 95}), ("WEBP", {"lossless": True}), ("GIF", {}), ("BMP", {}),
     ("TIFF", {}), ("PNG", {})],
)
def test_every_format_apply_reads_is_accepted(app, file_format, options):
    data = encode(PHOTO, file_format, **options)
    # strength 0 returns the photo as read, so the answer shows exactly what was decoded.
    response = post(app, {"strength": "0"}, files={"image": (f"p.{file_format}", data)})
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(decode(response.content), read_image(data).frames[0])


def test_uploads_stay_in_memory(app, monkeypatch):
    # 2 MB of noise is above python-multipart's default 1 MiB in-memory threshold; with it,
    # the file would be spooled to a temporary file on disk.
    noise = np.random.default_rng(0).integers(0, 256, (900, 800, 3), dtype=np.uint8)
    data = encode(noise)
    assert len(data) > 2_000_000

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was written to disk")

    import tempfile

    for name in ("NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
    response = post(app, {"strength": "0", "max_size": "0"}, files={"image": ("n.png", data)})
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(decode(response.content), noise)


# --- errors in words ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, files, words",
    [
        ({}, {"image": ("broken.jpg", b"\xff\xd8 not really a JPEG")},
         ["the photo broken.jpg", "not a readable image"]),
        ({}, {"image": ("empty.png", b"")}, ["empty.png is empty"]),
        ({}, {"image": ("truncated.png", encode(PHOTO)[:300])}, ["truncated.png", "damaged"]),
        ({}, {"image": ("tiny.png", encode(PHOTO[:8, :8]))}, ["8x8", "at least 16"]),
        ({"style": "starry"}, None, ["Unknown style 'starry'", "0=red_dots"]),
        ({"style": "0:-1"}, None, ["must not be negative"]),
        ({"style": "9" * 5000}, None, ["Style index '99999", "out of range"]),
        ({"strength": "strong"}, None, ["`strength` must be a number", "'strong'"]),
        ({"strength": "2"}, None, ["`strength` must be a finite number from 0 to 1"]),
        ({"max_size": "8"}, None, ["`max_size` must be 0 (keep the size) or at least 16 px"]),
        ({"max_size": "big"}, None, ["`max_size` must be an integer"]),
        ({"preserve_color": "maybe"}, None, ["preserve_color must be true or false"]),
        ({"format": "gif"}, None, ["format must be png or jpeg"]),
        ({"quality": "0"}, None, ["`quality` must be an integer from 1 to 100"]),
        ({"mask_style": "1"}, None, ["'mask' and 'mask_style' go together"]),
        ({"strenght": "1"}, None, ["unknown form field 'strenght'", "strength"]),
        ({"image": "photo.png"}, {"mask": ("m.png", encode(PHOTO))},
         ["'image'", "it is a file field"]),
        ({}, {"style": ("s.txt", b"0")}, ["'style' must be text"]),
        ({"mask_style": "1"}, {"mask": ("m.png", encode(PHOTO))}, ["no photo", "'image'"]),
    ],
)
def test_bad_requests_are_400_with_a_message(app, data, files, words):
    assert_error(post(app, data, files), 400, *words)


def test_a_bad_mask_is_named(app):
    files = {"image": ("photo.png", encode(PHOTO)), "mask": ("sky.png", b"junk")}
    assert_error(post(app, {"mask_style": "1"}, files), 400, "the mask sky.png", "not a readable")


def raw_form(disposition, data, boundary="xyz"):
    """A multipart body of one part with this Content-Disposition, and its content type."""
    body = (f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_odd_multipart_parts_are_answered_in_words(app):
    photo = encode(PHOTO)
    # An empty file name is still a file (browsers send it for a file chosen without a name).
    body, headers = raw_form('name="image"; filename=""', photo)
    assert call(app, "POST", "/api/stylize", content=body, headers=headers).status_code == 200
    # Only RFC 5987's filename*=: the multipart parser takes the part for a text field.
    body, headers = raw_form("name=\"image\"; filename*=UTF-8''photo.png", photo)
    response = call(app, "POST", "/api/stylize", content=body, headers=headers)
    assert_error(response, 400, "'image'", 'filename="', "filename*=")
    body, headers = raw_form("name=\"image\"; filename*=UTF-8''notes.txt", b"some text")
    response = call(app, "POST", "/api/stylize", content=body, headers=headers)
    assert_error(response, 400, "'image'", 'filename="')
    # A boundary over the multipart parser's 256 characters (RFC 2046 allows 70).
    body, headers = raw_form('name="image"; filename="p.png"', photo, boundary="b" * 300)
    response = call(app, "POST", "/api/stylize", content=body, headers=headers)
    assert_error(response, 400, "boundary", "300 characters", "70")


def test_a_field_given_twice_is_refused(app):
    response = call(
        app, "POST", "/api/stylize", files=[("image", ("a.png", encode(PHOTO))),
                                            ("image", ("b.png", encode(PHOTO)))],
    )
    assert_error(response, 400, "'image' is given more than once")


def test_not_a_form_is_refused(app):
    response = call(app, "POST", "/api/stylize", content=encode(PHOTO),
                    headers={"content-type": "image/png"})
    assert_error(response, 400, "multipart/form-data", "image/png")
    assert call(app, "GET", "/api/stylize").status_code == 405


def test_a_cross_site_post_is_refused_and_a_same_site_one_is_not(app):
    foreign = post(app, headers={"origin": "http://example.com"})
    assert_error(foreign, 403, "http://example.com")
    assert post(app, headers={"origin": "http://testserver"}).status_code == 200


def test_allowed_hosts_guard_against_dns_rebinding(stylizer):
    guarded = create_app(stylizer, allowed_hosts=["127.0.0.1", "localhost"])
    assert_error(call(guarded, "GET", "/api/styles"), 400, "testserver")  # Host: testserver
    ok = call(guarded, "GET", "/api/styles", headers={"host": "localhost:8765"})
    assert ok.status_code == 200


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_loopback_hosts_guard_ipv4_and_ipv6(stylizer, address):
    from stylecbn.cli.serve import allowed_hosts

    guarded = create_app(stylizer, allowed_hosts=allowed_hosts(address))
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost"):
        assert call(guarded, "GET", "/api/styles", headers={"host": host}).status_code == 200
    for host in ("evil.example:8765", "[::2]:8765", "[::1", "::1"):
        response = call(guarded, "GET", "/api/styles", headers={"host": host})
        assert_error(response, 400, "127.0.0.1, localhost or [::1]")
    # A cross-site post names its own origin; the page's own carries the IPv6 host.
    headers = {"host": "[::1]:8765", "origin": "http://[::1]:8765"}
    assert post(guarded, headers=headers).status_code == 200
    headers["origin"] = "http://evil.example"
    assert_error(post(guarded, headers=headers), 403)
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::") is None


def test_an_unexpected_failure_is_a_500_in_words(stylizer, monkeypatch):
    app = create_app(stylizer)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(stylizer, "stylize", broken)
    assert_error(post(app), 500, "RuntimeError", "terminal")


# --- limits ---------------------------------------------------------------------------------


def png_header_only(width, height):
    """A PNG with a header and no pixel data: Pillow opens it and reads its size."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@pytest.fixture
def never_decoded(monkeypatch):
    """Fail the test if an upload reaches the full decoder."""

    def refuse(*args, **kwargs):
        raise AssertionError("the image was decoded despite its header")

    monkeypatch.setattr(uploads, "read_image", refuse)


def test_too_many_bytes_is_413_before_decoding(stylizer, never_decoded):
    app = create_app(stylizer, UploadLimits(max_bytes=5_000))
    data = encode(sample_photo(80, 80))
    assert len(data) > 5_000
    message = assert_error(post(app, files={"image": ("big.png", data)}), 413, "big.png")
    assert "0.005 MB" in message and "--max-upload-mb" in message


def test_a_body_over_the_limit_is_413_before_it_is_read(stylizer):
    app = create_app(stylizer, UploadLimits(max_bytes=1_000))
    body = b"x" * 200_000
    response = call(app, "POST", "/api/stylize", content=body, headers={
        "content-type": "multipart/form-data; boundary=xyz"})
    assert_error(response, 413, "0.2 MB", "0.001 MB")

    async def chunks():  # no Content-Length: the limit applies as the body arrives
        for _ in range(100):
            yield b"x" * 2_000

    response = call(app, "POST", "/api/stylize", content=chunks(), headers={
        "content-type": "multipart/form-data; boundary=xyz"})
    assert_error(response, 413, "the upload is over 0.1 MB", "0.001 MB")


def test_too_many_pixels_is_413_from_the_header(stylizer, never_decoded):
    app = create_app(stylizer, UploadLimits(max_pixels=1_000_000))
    # 2000x2000 of one colour compresses to a few kB: the bytes pass, the pixels do not.
    flat = np.full((2000, 2000, 3), 90, np.uint8)
    message = assert_error(post(app, files={"image": ("flat.png", encode(flat))}), 413)
    assert "2000x2000 (4 megapixels)" in message and "up to 1 megapixels" in message
    # A header alone claiming 40000x40000 (a decompression bomb) is refused the same way.
    bomb = png_header_only(40_000, 40_000)
    assert_error(post(app, files={"image": ("bomb.png", bomb)}), 413, "bomb.png")


def test_animation_pixels_count_every_frame(stylizer, never_decoded):
    app = create_app(stylizer, UploadLimits(max_pixels=10_000))
    # Shifted copies: GIF would merge identical frames into one.
    frames = [Image.fromarray(np.roll(sample_photo(50, 50), 7 * s, axis=1)) for s in range(5)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    # 50 * 50 = 2,500 pixels a frame passes; 5 frames make 12,500.
    response = post(app, files={"image": ("anim.gif", buffer.getvalue())})
    assert_error(response, 413, "50x50 x 5 frames (0.0125 megapixels)")


def test_what_one_request_paints_is_bounded_whatever_max_size_asks(stylizer, never_decoded):
    # A 7000x7000 header (49 MP, a few hundred bytes) at max_size=0: refused before decoding.
    bomb = png_header_only(7_000, 7_000)
    response = post(create_app(stylizer), {"max_size": "0"}, {"image": ("big.png", bomb)})
    message = assert_error(response, 413, "big.png", "7000x7000 (49 megapixels)",
                           "up to 12 megapixels", "max_size", "--max-result-megapixels")
    # The largest max_size that fits is named, and is the largest: 3464^2 <= 12e6 < 3465^2.
    assert "at most 3464" in message
    response = post(create_app(stylizer), {"max_size": "3465"}, {"image": ("big.png", bomb)})
    assert_error(response, 413, "3465x3465")


def test_a_result_within_the_bound_is_painted(stylizer):
    app = create_app(stylizer, UploadLimits(max_result_pixels=56 * 40))
    assert post(app, {"max_size": "0"}).status_code == 200  # 56x40: just fits
    app = create_app(stylizer, UploadLimits(max_result_pixels=56 * 40 - 1))
    assert_error(post(app, {"max_size": "0"}), 413, "56x40", "at most 55")
    assert post(app, {"max_size": "55"}).status_code == 200


def test_limits_are_checked():
    from stylecbn.errors import ConfigError

    with pytest.raises(ConfigError, match="max_pixels"):
        UploadLimits(max_pixels=500_000_000)
    with pytest.raises(ConfigError, match="max_bytes"):
        UploadLimits(max_bytes=0)
    with pytest.raises(ConfigError, match="max_result_pixels"):
        UploadLimits(max_result_pixels=0)
    with pytest.raises(ConfigError, match="max_concurrent"):
        UploadLimits(max_concurrent=0)


# --- the model queue ------------------------------------------------------------------------


def test_model_calls_never_overlap(stylizer, monkeypatch):
    app = create_app(stylizer)
    running, overlaps, calls = [0], [], []
    real = stylizer.stylize
    lock = threading.Lock()

    def watched(*args, **kwargs):
        with lock:
            running[0] += 1
            overlaps.append(running[0] > 1)
        try:
            calls.append(threading.get_ident())
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(stylizer, "stylize", watched)
    responses = post_together(app, [{"style": str(i % 3)} for i in range(6)])
    assert [r.status_code for r in responses] == [200] * 6
    assert len(overlaps) == 6 and not any(overlaps)
    assert threading.get_ident() not in calls  # off the event loop's thread


def post_together(app, forms):
    """One stylize request per form (the fields besides the image), all sent at once to `app`
    in-process; their responses, in order."""
    import httpx

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await asyncio.gather(*[
                client.post("/api/stylize", data=form, files={"image": ("p.png", encode(PHOTO))})
                for form in forms
            ])

    return asyncio.run(burst())


def test_decoding_waits_for_a_free_slot(stylizer, monkeypatch):
    # Each decode takes 0.2 s here, while six requests arrive together: without a bound all
    # six pictures would be decoded (and held) at once. Decodes wait for a partner (six come
    # in three pairs), so two do run together however late a loaded machine starts the
    # second, rather than only when it starts within the 0.2 s.
    app = create_app(stylizer, UploadLimits(max_concurrent=2))
    running, most = [0], [0]
    lock = threading.Lock()
    pairs = threading.Barrier(2, timeout=60)
    real = uploads.read_image

    def slow_read(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            pairs.wait()
            time.sleep(0.2)
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(uploads, "read_image", slow_read)
    assert [r.status_code for r in post_together(app, [{}] * 6)] == [200] * 6
    assert most[0] == 2


def length_app():
    """A bare ASGI app answering the length of the body it reads."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def echo(request):
        return PlainTextResponse(str(len(await request.body())))

    return Starlette(routes=[Route("/", echo, methods=["GET", "POST"])])


def connect(url):
    host, port = url.rsplit("/", 1)[1].split(":")
    return socket.create_connection((host, int(port)), timeout=20)


def closed_by_server(sock):
    """Whether the server closes the connection (within the socket's 20 s timeout)."""
    try:
        while sock.recv(4096):
            pass  # a 4xx answer before the close is allowed
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    finally:
        sock.close()


def test_stalled_and_idle_connections_are_closed():
    from serve_helpers import running_server

    with running_server(length_app(), read_timeout=0.5) as url:
        idle = connect(url)  # says nothing at all
        headers = connect(url)  # starts a request and stops mid-headers
        headers.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        body = connect(url)  # sends its headers and part of the body it announced
        body.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n12345")
        assert closed_by_server(idle) and closed_by_server(headers) and closed_by_server(body)
        # A request that arrives whole is answered, however long the answer takes to compute.
        whole = connect(url)
        whole.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                      b"Connection: close\r\n\r\n12345")
        answer = b""
        while chunk := whole.recv(4096):
            answer += chunk
        whole.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n5")


def test_a_stalled_upload_is_cut_off_quietly(stylizer, caplog):
    from serve_helpers import running_server

    with running_server(create_app(stylizer), read_timeout=0.5) as url:
        sock = connect(url)
        sock.sendall(b"POST /api/stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 900\r\n"
                     b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n--xyz\r\n")
        assert closed_by_server(sock)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_connections_are_bounded_with_503():
    from serve_helpers import running_server

    import httpx

    with running_server(length_app(), max_connections=3) as url:
        assert httpx.get(url + "/").status_code == 200
        held = [connect(url), connect(url)]
        try:
            response = httpx.get(url + "/")
            assert response.status_code == 503
        finally:
            for sock in held:
                sock.close()


def test_a_request_whose_client_left_never_reaches_the_model():
    class LeftRequest:
        async def is_disconnected(self):
            return True

    def model_call():
        raise AssertionError("the model ran for a client that had left")

    with pytest.raises(ClientGone):
        asyncio.run(ModelQueue().run(LeftRequest(), model_call))


# --- the command ------------------------------------------------------------------------------


def test_serve_without_the_web_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` fail
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ['Error: stylecbn serve needs the web extra: in a clone, pip install -e ".[web]" '
                     "(missing: uvicorn)"]


def test_serve_refuses_a_port_in_use(model_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        result = CliRunner().invoke(
            main, ["serve", "--model", str(model_path), "--port", str(port)]
        )
    finally:
        taken.close()
    assert result.exit_code == 2
    assert f"Error: port {port} on 127.0.0.1 is in use; pick another with --port" in result.output


def test_serve_refuses_an_unknown_host(model_path):
    result = CliRunner().invoke(
        main, ["serve", "--model", str(model_path), "--host", "no.such.host.invalid"]
    )
    assert result.exit_code == 2
    assert "--host no.such.host.invalid is not an address of this machine" in result.output


@pytest.mark.slow
def test_serve_command_serves_until_ctrl_c(model_path, tmp_path):
    """The real `stylecbn serve` process: the address it prints answers, Ctrl-C stops it."""
    import signal
    import subprocess
    import urllib.request

    import httpx

    process = subprocess.Popen(
        [sys.executable, "-m", "stylecbn", "serve", "--model", str(model_path), "--port", "0",
         "--host", "0.0.0.0"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        lines = []
        while not lines or "open http://" not in lines[-1]:
            line = process.stderr.readline()
            assert line, f"serve exited early: {''.join(lines)}"
            lines.append(line)
        assert lines[0] == "Loading the model…\n"
        assert lines[1].startswith("Warning: listening on 0.0.0.0: anyone who can reach")
        port = int(lines[-1].split("http://0.0.0.0:")[1].split("/")[0])
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/api/styles", timeout=30) as answer:
            assert b"red_dots" in answer.read()
        response = httpx.post(f"{base}/api/stylize", data={"style": "2"}, timeout=60,
                              files={"image": ("p.png", encode(PHOTO))})
        assert response.status_code == 200
        assert decode(response.content).shape == PHOTO.shape
    finally:
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    assert process.returncode == 130  # the CLI's code for an interrupted command
    assert rest.strip().splitlines()[-1] == "Interrupted."


def test_open_waits_for_the_server_then_opens_the_page(monkeypatch):
    from stylecbn.cli import serve as serve_command

    opened = threading.Event()
    urls = []

    def fake_open(url):
        urls.append(url)
        opened.set()

    class Server:
        started = False
        should_exit = False

    monkeypatch.setattr(serve_command.webbrowser, "open", fake_open)
    server = Server()
    serve_command._open_when_started(server, "http://127.0.0.1:8765/")
    assert not opened.wait(0.3)  # not before the server is up
    server.started = True
    assert opened.wait(5) and urls == ["http://127.0.0.1:8765/"]

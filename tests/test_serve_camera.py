"""The camera of `stylecbn serve`: the WebSocket `/api/camera`, in-process (Starlette's test
client). Frames come back as PNG when asked, so each is compared exactly with the `Stylizer`
call it stands for; the browser's side is in test_serve_browser.py."""

import base64
import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason='the web extra is not installed: pip install -e ".[dev]"')
pytest.importorskip("httpx", reason='httpx is not installed: pip install -e ".[dev]"')

from serve_helpers import decode, encode, save_tiny_model  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from stylecbn.applying.stylize import LiveStream, Stylizer  # noqa: E402
from stylecbn.media.sample import sample_photo  # noqa: E402
from stylecbn.serve import app as app_module  # noqa: E402
from stylecbn.serve import create_app  # noqa: E402

FRAME = sample_photo(64, 48)
MOVED = np.roll(FRAME, 3, axis=1)  # the camera moved three pixels


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory):
    return Stylizer(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.keras"))


@pytest.fixture
def app(stylizer):
    return create_app(stylizer)


def settings(socket, **values):
    socket.send_text(json.dumps(values))


def frame(socket, image):
    """Send a frame; return (the JSON message before it, the frame decoded)."""
    socket.send_bytes(encode(image))
    return json.loads(socket.receive_text()), decode(socket.receive_bytes())


def error(socket):
    message = json.loads(socket.receive_text())
    assert set(message) == {"error"}, message
    return message["error"]


def test_frames_are_painted_as_the_stylizer_paints_them(app, stylizer):
    with TestClient(app).websocket_connect("/api/camera") as socket:
        settings(socket, format="png", style="1:1,2:3", strength=0.75, steady=False)
        info, image = frame(socket, FRAME)
        assert info["frame"] == 1 and (info["width"], info["height"]) == (64, 48)
        assert info["dropped"] == 0 and info["ms"] >= 0
        expected = stylizer.stylize(FRAME, style="1:1,2:3", strength=0.75, max_size=0)
        np.testing.assert_array_equal(image, np.asarray(expected))
        settings(socket, preserve_color=True, style=0)  # settings change between frames
        _, image = frame(socket, FRAME)
        expected = stylizer.stylize(FRAME, style=0, strength=0.75, preserve_color=True,
                                    max_size=0)
        np.testing.assert_array_equal(image, np.asarray(expected))


def test_steady_frames_follow_the_flicker_reducer(app, stylizer):
    """With `steady` (the default) the connection keeps one LiveStream: its second frame
    carries the first along the motion, as `Stylizer.live()` does with the same frames."""
    reference = stylizer.live()
    assert isinstance(reference, LiveStream) and reference.reducer is not None
    with TestClient(app).websocket_connect("/api/camera") as socket:
        settings(socket, format="png", style=2)
        for photo in (FRAME, MOVED):
            _, image = frame(socket, photo)
            np.testing.assert_array_equal(image, reference.paint(photo, style=2, max_size=0))
    # and the carry is real: without the reducer the second frame differs
    plain = np.asarray(stylizer.stylize(MOVED, style=2, max_size=0))
    assert np.abs(image.astype(int) - plain).max() > 0


def test_a_painted_mask_takes_its_own_style(app, stylizer):
    mask = np.zeros((48, 64), np.uint8)
    mask[:, 32:] = 255
    url = "data:image/png;base64," + base64.b64encode(encode(mask)).decode()
    with TestClient(app).websocket_connect("/api/camera") as socket:
        settings(socket, format="png", style=0, steady=False, mask=url, mask_style=1)
        _, image = frame(socket, FRAME)
        expected = stylizer.stylize(FRAME, style=0, mask=mask, mask_style=1, max_size=0)
        np.testing.assert_array_equal(image, np.asarray(expected))
        settings(socket, mask=None, mask_style=None)  # cleared
        _, image = frame(socket, FRAME)
        np.testing.assert_array_equal(
            image, np.asarray(stylizer.stylize(FRAME, style=0, max_size=0)))


def test_jpeg_frames_by_default(app):
    with TestClient(app).websocket_connect("/api/camera") as socket:
        socket.send_bytes(encode(FRAME, "JPEG", quality=90))
        json.loads(socket.receive_text())
        assert socket.receive_bytes()[:3] == b"\xff\xd8\xff"  # JPEG's start of image


@pytest.mark.parametrize("message, words", [
    ("not json", "must be JSON settings"),
    ("[1, 2]", "must be a JSON object"),
    ('{"zoom": 2}', "unknown setting(s) zoom"),
    ('{"style": 9}', "9"),
    ('{"strength": 2}', "strength"),
    ('{"steady": "yes"}', "steady must be true or false"),
    ('{"format": "gif"}', "format must be png or jpeg"),
    ('{"mask": "%%%"}', "mask must be an image"),
    ('{"mask_style": 1}', "'mask' and 'mask_style' go together"),
])
def test_bad_settings_are_answered_and_the_stream_goes_on(app, message, words):
    with TestClient(app).websocket_connect("/api/camera") as socket:
        socket.send_text(message)
        assert words in error(socket)
        settings(socket, format="png")
        info, image = frame(socket, FRAME)  # the stream goes on, with the earlier settings
        assert info["frame"] == 1 and image.shape == (48, 64, 3)


def test_bad_frames_are_answered_and_the_stream_goes_on(app, monkeypatch):
    monkeypatch.setattr(app_module, "CAMERA_MAX_PIXELS", 64 * 48)
    monkeypatch.setattr(app_module, "CAMERA_MAX_BYTES", 50_000)
    with TestClient(app).websocket_connect("/api/camera") as socket:
        socket.send_bytes(b"not an image at all")
        assert "camera frame" in error(socket)
        socket.send_bytes(encode(sample_photo(80, 48)))
        assert "80x48" in error(socket)
        socket.send_bytes(b"\x89PNG" + bytes(60_000))
        assert "frames may take up to" in error(socket)
        info, _ = frame(socket, FRAME)
        assert info["frame"] == 1


def test_frames_arriving_while_one_is_painted_replace_each_other(app, monkeypatch):
    """Latency stays one frame: of the frames that arrive while one is painted, only the
    newest is painted next; the others are dropped and counted."""
    release, painting = threading.Event(), threading.Event()
    paint = LiveStream.paint

    def slow_paint(self, photo, **options):
        painting.set()
        assert release.wait(30)
        return paint(self, photo, **options)

    monkeypatch.setattr(LiveStream, "paint", slow_paint)
    with TestClient(app).websocket_connect("/api/camera") as socket:
        settings(socket, format="png", steady=False)
        socket.send_bytes(encode(FRAME))
        assert painting.wait(30)
        for shift in (1, 2, 3):
            socket.send_bytes(encode(np.roll(FRAME, shift, axis=0)))
        (stream,) = app.state.cameras
        deadline = time.monotonic() + 30
        while stream.dropped < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        first = json.loads(socket.receive_text())
        socket.receive_bytes()
        second = json.loads(socket.receive_text())
        image = decode(socket.receive_bytes())
    assert (first["frame"], second["frame"], second["dropped"]) == (1, 2, 2)
    np.testing.assert_array_equal(
        image, np.asarray(stream.stylizer.stylize(np.roll(FRAME, 3, axis=0), max_size=0)))


def test_a_closed_connection_frees_its_stream(app):
    with TestClient(app).websocket_connect("/api/camera") as socket:
        frame(socket, FRAME)
        assert len(app.state.cameras) == 1
    deadline = time.monotonic() + 30
    while app.state.cameras and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not app.state.cameras


def test_too_many_cameras_and_foreign_pages_are_refused(app, monkeypatch):
    monkeypatch.setattr(app_module, "CAMERA_MAX_STREAMS", 1)
    client = TestClient(app)
    with client.websocket_connect("/api/camera") as first:
        frame(first, FRAME)
        with client.websocket_connect("/api/camera") as second:
            assert "already streams 1 cameras" in error(second)
            with pytest.raises(WebSocketDisconnect) as closed:
                second.receive_text()
            assert closed.value.code == 1013
    with client.websocket_connect("/api/camera",
                                  headers={"origin": "http://elsewhere.example"}) as socket:
        assert "requests from http://elsewhere.example are refused" in error(socket)
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_text()
        assert closed.value.code == 1008


def test_a_foreign_host_is_refused_at_the_handshake(stylizer):
    app = create_app(stylizer, allowed_hosts=["127.0.0.1"])
    with pytest.raises(WebSocketDisconnect) as refused:
        with TestClient(app).websocket_connect("/api/camera", headers={"host": "evil.example"}):
            pass
    assert refused.value.code == 1008


def test_live_stream_frames_of_another_size_and_refusals(stylizer):
    from stylecbn.applying.refine import ImageStyle
    from stylecbn.errors import ConfigError

    live = stylizer.live(stabilize=False)
    assert live.reducer is None
    assert live.paint(FRAME, style=1, max_size=0).shape == (48, 64, 3)
    larger = sample_photo(96, 72)
    np.testing.assert_array_equal(live.paint(larger, style=1, max_size=0),
                                  np.asarray(stylizer.stylize(larger, style=1, max_size=0)))
    assert live.paint(larger, style=1, max_size=48).shape == (36, 48, 3)  # shrunk, as stylize
    assert live.frames == 3
    steady = stylizer.live()
    steady.paint(FRAME, style=1, max_size=0)
    # a frame of another size starts the reducer afresh: nothing is carried into it
    np.testing.assert_array_equal(steady.paint(larger, style=1, max_size=0),
                                  np.asarray(stylizer.stylize(larger, style=1, max_size=0)))
    painting = ImageStyle({}, stylizer.blend(0), 0.0, (0, 0.0), "painting")
    with pytest.raises(ConfigError, match="works on single images only"):
        live.paint(FRAME, style=painting)
    with pytest.raises(ConfigError, match="a mask needs a mask style"):
        live.paint(FRAME, mask=np.ones((48, 64), np.float32))


def test_a_failure_in_the_server_is_said_and_the_stream_goes_on(app, monkeypatch, caplog):
    paint = LiveStream.paint
    calls = []

    def failing_once(self, photo, **options):
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("a bug")
        return paint(self, photo, **options)

    monkeypatch.setattr(LiveStream, "paint", failing_once)
    with TestClient(app).websocket_connect("/api/camera") as socket:
        socket.send_bytes(encode(FRAME))
        assert "the server failed (ZeroDivisionError)" in error(socket)
        info, _ = frame(socket, FRAME)
        assert info["frame"] == 1
    assert "a camera frame failed" in caplog.text

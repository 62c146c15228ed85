"""The `stylecbn serve` ASGI app: the page, `GET /api/styles`, `POST /api/stylize` and the
camera's WebSocket `/api/camera`.

One `Stylizer` (the model loaded once) serves every request. Keras models are not safe to
call from several threads at once (`Stylizer` swaps the model's compiled predict function
per call), so inference runs one call at a time in a worker thread, off the event loop,
behind an `asyncio.Lock`. A request whose client has gone away while it waited (the page
cancels an outdated preview when a newer one starts) is dropped before it reaches the model,
so a burst of slider moves costs one inference, not one per move.

The camera (`/api/camera`, one stream per WebSocket connection): the page sends its settings
as JSON text messages ({"style", "strength", "preserve_color", "steady", "mask",
"mask_style", "format"}; any subset, whenever they change) and frames as binary messages
(JPEG or PNG). Each frame is stylized with the settings in force when it is painted, through
the connection's own `LiveStream` (its flicker reducer follows the frames), and sent back as
a binary message after a JSON text message {"frame", "width", "height", "ms", "dropped"}. A
frame that arrives while another is painted replaces any frame still waiting, which is
dropped, so the latency stays one frame whatever the camera's rate; the page sends its next
frame when the previous one comes back. Errors come as {"error": message} and the stream
goes on; too many cameras at once, or a page of another site, are refused with a message
and the connection closed. Closing the connection frees everything it held.
"""

import asyncio
import base64
import binascii
import io
import json
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from stylecbn.errors import ConfigError, StylecbnError, shorten
from stylecbn.applying.finish import check_strength
from stylecbn.media.reading import read_image
from stylecbn.media.writing import write_image
from stylecbn.applying.stylize import DEFAULT_MAX_SIZE
from stylecbn.media.sample import sample_photo
from stylecbn.serve.uploads import (
    BadRequestError,
    UploadLimits,
    UploadTooLargeError,
    read_form,
    read_upload,
)

__all__ = ["create_app", "PREVIEW_SIZE", "THUMBNAIL_SIZE"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREVIEW_SIZE = 384  # longest side of the page's live preview
THUMBNAIL_SIZE = 128  # longest side of a gallery thumbnail

TEXT_FIELDS = ("style", "mask_style", "strength", "preserve_color", "max_size", "format", "quality")
FILE_FIELDS = ("image", "mask")
FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
}

# The camera: frames up to this many pixels (1280x720) and bytes; at most this many cameras
# at once (each holds its flicker reducer's frames and takes its turn at the model).
CAMERA_MAX_PIXELS = 1280 * 720
CAMERA_MAX_BYTES = 4 * 1024 * 1024
CAMERA_MAX_STREAMS = 4
CAMERA_SETTINGS = ("style", "strength", "preserve_color", "steady", "mask", "mask_style",
                   "format")

log = logging.getLogger("stylecbn.serve")


class ClientGone(Exception):
    """The client closed the connection while its request waited for the model."""


class ModelQueue:
    """Runs model calls one at a time in a worker thread, skipping requests nobody awaits."""

    def __init__(self):
        self._lock = asyncio.Lock()

    async def run(self, request, func, /, *args, **kwargs):
        async with self._lock:
            if request is not None and await request.is_disconnected():
                raise ClientGone()
            return await run_in_threadpool(func, *args, **kwargs)


def create_app(stylizer, limits=None, allowed_hosts=None):
    """The web app for one loaded `Stylizer`.

    Args:
        stylizer: a `stylecbn.applying.stylize.Stylizer`.
        limits: `UploadLimits` for uploads; default `UploadLimits()`.
        allowed_hosts: the host names (without port; IPv6 in brackets, "[::1]") that the
            Host header may name (protection against DNS rebinding when it listens on a
            loopback address); None answers any.

    Returns:
        A Starlette application.
    """
    limits = limits or UploadLimits()
    queue = ModelQueue()
    slots = asyncio.Semaphore(limits.max_concurrent)
    thumbnails = {}  # style index -> PNG bytes, made on first request

    async def index(request):
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def styles(request):
        return JSONResponse(
            {
                "styles": [
                    {
                        "index": index,
                        "name": name,
                        "credit": credit,
                        "thumbnail": f"/api/styles/{index}/thumbnail.png",
                    }
                    for index, (name, credit) in enumerate(
                        zip(stylizer.style_names, stylizer.style_credits)
                    )
                ],
                "preview_size": PREVIEW_SIZE,
                "default_max_size": DEFAULT_MAX_SIZE,
                "limits": {
                    "max_bytes": limits.max_bytes,
                    "max_pixels": limits.max_pixels,
                    "max_result_pixels": limits.max_result_pixels,
                },
            }
        )

    async def thumbnail(request):
        index = request.path_params["index"]
        count = len(stylizer.style_names)
        if not 0 <= index < count:
            return _error(404, f"no style {index}; this model has styles 0..{count - 1}")
        if index not in thumbnails:
            photo = sample_photo(THUMBNAIL_SIZE, THUMBNAIL_SIZE * 2 // 3)
            image = await queue.run(request, stylizer.stylize, photo, style=index, max_size=0)
            thumbnails[index] = _encode(image, "PNG")
        # no-cache: a server restarted with another model must not show the old pictures.
        return Response(
            thumbnails[index], media_type="image/png", headers={"Cache-Control": "no-cache"}
        )

    async def stylize(request):
        refusal = _foreign_origin(request)
        if refusal:
            return refusal
        form = await read_form(request, limits)
        form.check_names(TEXT_FIELDS, FILE_FIELDS)
        options = _stylize_options(form, stylizer)
        if "image" not in form.files:
            raise BadRequestError("the form has no photo: send it as the file field 'image'")
        file_format, media_type = options.pop("format")
        quality = options.pop("quality")
        # Decoded pictures are the big memory (hundreds of MB at 50 megapixels): only
        # `max_concurrent` requests hold them, from decoding to the encoded answer.
        async with slots:
            photo = await run_in_threadpool(
                read_upload, form.files["image"], limits, "the photo", options["max_size"]
            )
            if "mask" in form.files:
                options["mask"] = await run_in_threadpool(
                    read_upload, form.files["mask"], limits, "the mask"
                )
            image = await queue.run(request, stylizer.stylize, photo, **options)
            data = await run_in_threadpool(_encode, image, file_format, quality)
        return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})

    cameras = set()  # the open camera streams

    async def camera(websocket):
        await websocket.accept()
        origin = websocket.headers.get("origin")
        if origin and urlsplit(origin).netloc != websocket.headers.get("host"):
            await _refuse(websocket, f"requests from {origin} are refused; use the page this "
                          "server serves", 1008)
            return
        if len(cameras) >= CAMERA_MAX_STREAMS:
            await _refuse(websocket, f"this server already streams {CAMERA_MAX_STREAMS} "
                          "cameras; close one of them and try again", 1013)
            return
        stream = CameraStream(stylizer, queue)
        cameras.add(stream)
        try:
            await stream.serve(websocket)
        finally:
            cameras.discard(stream)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/styles", styles),
            Route("/api/styles/{index:int}/thumbnail.png", thumbnail),
            Route("/api/stylize", stylize, methods=["POST"]),
            WebSocketRoute("/api/camera", camera),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[Middleware(HostGuard, allowed=tuple(allowed_hosts))] if allowed_hosts else [],
        exception_handlers={
            StylecbnError: _library_error,
            ClientGone: _client_gone,
            ClientDisconnect: _client_gone,  # left (or was cut off) while sending the form
            Exception: _internal_error,
        },
    )
    app.state.cameras = cameras
    return app


async def _refuse(websocket, message, code):
    await websocket.send_text(json.dumps({"error": message}))
    await websocket.close(code=code, reason=message[:120])


class CameraStream:
    """One camera's frames on one WebSocket connection (see the module's docstring)."""

    def __init__(self, stylizer, queue):
        self.stylizer = stylizer
        self.queue = queue
        self.live = stylizer.live()
        self.settings = {"style": stylizer.blend("0"), "strength": 1.0, "preserve_color": False,
                         "mask": None, "mask_style": None, "format": FORMATS["jpeg"]}
        self.waiting = None  # the newest frame not yet painted (bytes)
        self.dropped = 0
        self.painted = 0
        self._arrived = asyncio.Event()

    async def serve(self, websocket):
        painter = asyncio.create_task(self._paint_frames(websocket))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    self._frame(message["bytes"])
                elif message.get("text") is not None:
                    error = self._update(message["text"])
                    if error:
                        await websocket.send_text(json.dumps({"error": error}))
        except WebSocketDisconnect:
            pass
        finally:
            painter.cancel()
            try:
                await painter
            except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                pass  # cancelled, or the answer could not go out: the client has gone
            self.live = self.waiting = None

    def _frame(self, data):
        if self.waiting is not None:
            self.dropped += 1
        self.waiting = data
        self._arrived.set()

    def _update(self, text):
        """Apply a settings message; the error message, or None."""
        try:
            changes = json.loads(text)
        except ValueError:
            return "a text message must be JSON settings, e.g. {\"style\": \"3:0.5,12:0.5\"}"
        if not isinstance(changes, dict):
            return "the settings must be a JSON object"
        unknown = sorted(set(changes) - set(CAMERA_SETTINGS))
        if unknown:
            return f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(CAMERA_SETTINGS)}"
        settings = dict(self.settings)
        try:
            for name in ("style", "mask_style"):
                if changes.get(name) is not None:
                    settings[name] = self.stylizer.blend(changes[name])
                elif name in changes:
                    settings[name] = None
            if "strength" in changes:
                settings["strength"] = check_strength(changes["strength"])
            for name in ("preserve_color", "steady"):
                if name in changes and not isinstance(changes[name], bool):
                    return f"{name} must be true or false; received: {changes[name]!r}"
            if "preserve_color" in changes:
                settings["preserve_color"] = changes["preserve_color"]
            if "mask" in changes:
                settings["mask"] = None if changes["mask"] is None else _mask_image(changes["mask"])
            if "format" in changes:
                name = str(changes["format"]).strip().lower()
                if name not in FORMATS:
                    return f"format must be png or jpeg; received: {changes['format']!r}"
                settings["format"] = FORMATS[name]
        except StylecbnError as exc:
            return str(exc)
        if (settings["mask"] is None) != (settings["mask_style"] is None):
            if "mask" in changes or "mask_style" in changes:
                return ("'mask' and 'mask_style' go together: send both (mask_style is the "
                        "style inside the white part of the mask)")
        if "steady" in changes:
            wanted = changes["steady"]
            if wanted != (self.live.reducer is not None):
                self.live = self.stylizer.live(stabilize=wanted)
        self.settings = settings
        return None

    async def _paint_frames(self, websocket):
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            data, self.waiting = self.waiting, None
            if data is None:
                continue
            started = time.perf_counter()
            settings = dict(self.settings)
            try:
                frame = await run_in_threadpool(_camera_frame, data)
                masked = settings["mask"] is not None and settings["mask_style"] is not None
                image = await self.queue.run(
                    None, self.live.paint, frame, style=settings["style"],
                    strength=settings["strength"], preserve_color=settings["preserve_color"],
                    max_size=0, mask=settings["mask"] if masked else None,
                    mask_style=settings["mask_style"] if masked else None)
                file_format, _ = settings["format"]
                encoded = await run_in_threadpool(_encode, image, file_format, 90)
            except StylecbnError as exc:
                await websocket.send_text(json.dumps({"error": str(exc)}))
                continue
            except Exception as exc:  # a bug: say so, log it, and go on with the next frame
                log.exception("stylecbn serve: a camera frame failed")
                await websocket.send_text(json.dumps({
                    "error": f"the server failed ({type(exc).__name__}); see its terminal "
                             "for details"}))
                continue
            self.painted += 1
            await websocket.send_text(json.dumps({
                "frame": self.painted, "width": int(image.shape[1]),
                "height": int(image.shape[0]), "dropped": self.dropped,
                "ms": round(1000 * (time.perf_counter() - started), 1)}))
            await websocket.send_bytes(encoded)


def _camera_frame(data):
    """A camera frame's bytes decoded to (H, W, 3) uint8, within the camera's limits."""
    if len(data) > CAMERA_MAX_BYTES:
        raise UploadTooLargeError(
            f"a camera frame is {len(data) / 1e6:.1f} MB; frames may take up to "
            f"{CAMERA_MAX_BYTES // (1024 * 1024)} MB (send JPEG)")
    frame = read_image(io.BytesIO(data), name="the camera frame",
                       max_pixels=CAMERA_MAX_PIXELS).frames[0]
    return frame


def _mask_image(value):
    """A mask sent as a data URL or base64 PNG/JPEG, decoded (a `LoadedImage`); the frame's
    `LiveStream` reads it as every mask is read (`load_mask`), at the frame's size."""
    text = str(value)
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("mask must be an image as a data URL or base64 text") from None
    if len(data) > CAMERA_MAX_BYTES:
        raise UploadTooLargeError("the mask is larger than a camera frame may be")
    return read_image(io.BytesIO(data), name="the mask", max_pixels=CAMERA_MAX_PIXELS)


class HostGuard:
    """ASGI middleware: a 400 answer to requests whose Host header names another host.

    Starlette's TrustedHostMiddleware cuts the port at the first colon, which leaves "[" of
    an IPv6 host such as "[::1]:8765"; this one reads the bracketed form.
    """

    def __init__(self, app, allowed):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "")
            if _host_name(host) not in self.allowed:
                names = f"{', '.join(self.allowed[:-1])} or {self.allowed[-1]}"
                if scope["type"] == "websocket":  # refused at the handshake (HTTP 403)
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await _error(
                    400, f"this server answers only requests addressed to {names}; received "
                    f"Host {host[:80]!r}: open the address it printed"
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(host):
    """The host of a Host header without its port: "[::1]:80" -> "[::1]", "a:80" -> "a"."""
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else None
    return host.split(":")[0]


def _stylize_options(form, stylizer):
    """The keyword arguments of `Stylizer.stylize` (plus format and quality) from the form.

    Style specifications are resolved here into `Blend` values, once, before the request
    waits for the model, so a bad one is answered at once.
    """
    fields = form.fields
    has_mask = "mask" in form.files
    if has_mask != ("mask_style" in fields):
        raise BadRequestError(
            "'mask' and 'mask_style' go together: mask_style is the style inside the white "
            "part of the mask"
        )
    options = {
        "style": stylizer.blend(fields.get("style", "0")),
        "strength": _number(fields, "strength", float, 1.0),
        "preserve_color": _flag(fields, "preserve_color"),
        "max_size": _number(fields, "max_size", int, DEFAULT_MAX_SIZE),
        "quality": _number(fields, "quality", int, 95),
    }
    if has_mask:
        options["mask_style"] = stylizer.blend(fields["mask_style"])
    name = fields.get("format", "png").strip().lower()
    if name not in FORMATS:
        raise BadRequestError(f"format must be png or jpeg; received: {fields['format']!r}")
    options["format"] = FORMATS[name]
    return options


def _number(fields, name, kind, default):
    if name not in fields:
        return default
    try:
        return kind(fields[name])
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(
            f"`{name}` must be {what}. Received: {name}={shorten(fields[name])}"
        ) from None


def _flag(fields, name):
    value = fields.get(name, "false").strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no", ""):
        return False
    raise ConfigError(f"{name} must be true or false; received: {fields[name]!r}")


def _foreign_origin(request):
    """A 403 answer to a post that another web site's page makes to this server, else None.

    Browsers send Origin with every cross-site POST, and a multipart form needs no CORS
    preflight, so without this check any page the user visits could keep the model busy.
    """
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return _error(403, f"requests from {origin} are refused; use the page this server serves")
    return None


def _encode(image, file_format, quality=95):
    buffer = io.BytesIO()
    write_image(buffer, np.asarray(image), format=file_format, quality=quality)
    return buffer.getvalue()


def _error(status, message):
    return JSONResponse({"error": message}, status_code=status)


async def _library_error(request, exc):
    if isinstance(exc, UploadTooLargeError):
        return _error(413, str(exc))
    return _error(400, str(exc))


async def _client_gone(request, exc):
    return Response(status_code=499)  # nobody reads it: the client has left


async def _internal_error(request, exc):
    log.exception("stylecbn serve: %s %s failed", request.method, request.url.path)
    return _error(500, f"the server failed ({type(exc).__name__}); see its terminal for details")

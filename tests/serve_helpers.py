"""Shared by the `stylecbn serve` tests: a tiny model, photos, the app in-process or on a port."""

import asyncio
import contextlib
import io
import socket
import threading
import time

import numpy as np
from helpers import randomize_style_tables, seeded_network
from PIL import Image

from stylecbn.model.saving import save_model

STYLE_NAMES = ["red_dots", "blue_waves", "green_glass"]
STYLE_CREDITS = ["Dots, test painter, 2024", "Waves, test painter, 2024", ""]


def save_tiny_model(path, normalization="instance"):
    """A 3-style network at a quarter width with random gamma/beta rows (and, with batch
    normalization, random moving statistics), saved to `path`."""
    net = seeded_network(
        3,
        style_names=STYLE_NAMES,
        style_credits=STYLE_CREDITS,
        normalization=normalization,
        width_multiplier=0.25,
    )
    randomize_style_tables(net, seed=3)
    save_model(net, path)
    return path


def encode(array, file_format="PNG", **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=file_format, **options)
    return buffer.getvalue()


def decode(data):
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@contextlib.contextmanager
def running_server(app, **settings):
    """Serve `app` with uvicorn, set up as `stylecbn serve` sets it up (`server_config`, given
    `settings`), on a free 127.0.0.1 port in a thread; yields the base URL."""
    import uvicorn

    from stylecbn.serve.server import server_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(server_config(app, **settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def call(app, method, url, **kwargs):
    """One request to `app` in-process (httpx's ASGI transport); returns the httpx response."""
    import httpx

    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())

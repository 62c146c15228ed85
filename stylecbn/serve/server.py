"""How uvicorn runs the app: a bounded number of connections, and deadlines for reading.

uvicorn on its own never closes a connection that sends nothing, stops in the middle of its
request headers or stops sending the body it announced: each holds a connection (and the
bytes it sent) for ever. Here a request's headers must arrive within `read_timeout` seconds
of the connection opening (or of the previous answer on a kept-alive connection), and its
body may not pause for longer than that; otherwise the connection is closed. Past
`max_connections` open connections, new requests are answered 503 at once.
"""

import functools

import h11
from uvicorn import Config
from uvicorn.protocols.http.h11_impl import H11Protocol

from stylecbn.serve.app import CAMERA_MAX_BYTES

__all__ = ["MAX_CONNECTIONS", "READ_TIMEOUT", "server_config"]

MAX_CONNECTIONS = 32
READ_TIMEOUT = 30.0  # seconds: a 100 MB upload at 30 kB/s still never pauses this long


def server_config(app, *, read_timeout=READ_TIMEOUT, max_connections=MAX_CONNECTIONS):
    """The `uvicorn.Config` that `stylecbn serve` runs `app` with."""
    return Config(
        app,
        http=functools.partial(ReadDeadlineProtocol, read_timeout=read_timeout),
        limit_concurrency=max_connections,
        # a camera frame (JPEG, at most CAMERA_MAX_BYTES) is the largest message the page sends
        ws_max_size=CAMERA_MAX_BYTES + 64 * 1024,
        log_level="warning",
        access_log=False,
    )


class ReadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol that closes connections whose client stalls while it sends."""

    def __init__(self, *args, read_timeout, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout

    def connection_made(self, transport):
        super().connection_made(transport)
        self.waiting_since = self.last_read = self.loop.time()
        self.loop.call_later(self.read_timeout, self.check_deadlines)

    def data_received(self, data):
        self.last_read = self.loop.time()
        super().data_received(data)

    def on_response_complete(self):
        super().on_response_complete()
        self.waiting_since = self.loop.time()  # the next request's headers are due from now

    def check_deadlines(self):
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # waiting for (the rest of) a request's headers
            due = self.waiting_since + self.read_timeout
        elif state is h11.SEND_BODY:  # reading the body: no pause longer than the timeout
            due = self.last_read + self.read_timeout
        else:  # the request is in: the app is answering it
            due = self.loop.time() + self.read_timeout
        if self.loop.time() >= due:
            self.transport.close()
        else:
            self.loop.call_later(due - self.loop.time(), self.check_deadlines)

"""`stylecbn serve`: the local web page (stylecbn.serve) run by uvicorn."""

import ipaddress
import socket
import threading
import time
import webbrowser

import click

from stylecbn.cli.root import fail, handle_errors
from stylecbn.cli.common import model_option, runtime_option

WEB_PACKAGES = ("starlette", "uvicorn", "python_multipart")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _check_web_extra():
    missing = []
    for name in WEB_PACKAGES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name.replace("_", "-"))
    if missing:
        fail(
            f'stylecbn serve needs the web extra: in a clone, pip install -e ".[web]" '
            f"(missing: {', '.join(missing)})"
        )


def _listen(host, port):
    """A listening socket on host:port, or a one-line error saying what to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror:
        fail(f"--host {host} is not an address of this machine; try 127.0.0.1 or 0.0.0.0")
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if port and exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            fail(f"port {port} on {host} is in use; pick another with --port (0 picks a free one)")
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    return sock


def allowed_hosts(address):
    """The host names a server listening on `address` answers: on a loopback address (IPv4 or
    IPv6) only those of this machine (a DNS-rebinding guard); elsewhere any (None)."""
    if ipaddress.ip_address(address.split("%")[0]).is_loopback:
        return LOOPBACK_NAMES
    return None


def _url(sock):
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _open_when_started(server, url):
    def wait_and_open():
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            webbrowser.open(url)

    threading.Thread(target=wait_and_open, daemon=True).start()


@click.command()
@model_option
@runtime_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Only this machine can reach 127.0.0.1; 0.0.0.0 opens the "
    "page to the network (there is no login).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--max-upload-mb", type=click.FloatRange(0.001, None), default=50.0, show_default=True,
    help="Largest photo (or mask) accepted, in megabytes.",
)
@click.option(
    "--max-megapixels", type=click.FloatRange(0.001, 170.0), default=50.0, show_default=True,
    help="Largest image accepted, in megapixels (all frames together), checked from the "
    "image header before decoding.",
)
@click.option(
    "--max-result-megapixels", type=click.FloatRange(0.001, 170.0), default=12.0,
    show_default=True,
    help="Largest result one request may ask for, in megapixels (after its max_size): bounds "
    "the time and memory of one request.",
)
@handle_errors
def serve(model_path, runtime, host, port, open_browser, max_upload_mb, max_megapixels,
          max_result_megapixels):
    """A local web page to mix styles on your photo, paint regions and download the result.

    \b
    Examples:
      stylecbn serve --open
      stylecbn serve --model mystyles.keras --port 8000
    """
    _check_web_extra()
    import uvicorn

    from stylecbn.serve import UploadLimits, create_app
    from stylecbn.serve.server import server_config
    from stylecbn.applying.stylize import Stylizer

    limits = UploadLimits(
        max_bytes=round(max_upload_mb * 1e6), max_pixels=round(max_megapixels * 1e6),
        max_result_pixels=round(max_result_megapixels * 1e6),
    )
    click.echo("Loading the model…", err=True)
    stylizer = Stylizer(model_path, runtime=runtime)
    sock = _listen(host, port)
    address = sock.getsockname()[0]
    hosts = allowed_hosts(address)
    app = create_app(stylizer, limits, allowed_hosts=hosts)
    url = _url(sock)
    if hosts is None:
        click.echo(
            f"Warning: listening on {address}: anyone who can reach this machine can use the "
            "page and its API (there is no login).",
            err=True,
        )
    click.echo(f"stylecbn serve: open {url} in a browser (Ctrl-C stops)", err=True)
    server = uvicorn.Server(server_config(app))
    if open_browser:
        _open_when_started(server, url)
    try:
        # uvicorn shuts down gracefully on Ctrl-C, then raises it again: handle_errors
        # reports it and exits 130 like every command.
        server.run(sockets=[sock])
    finally:
        sock.close()

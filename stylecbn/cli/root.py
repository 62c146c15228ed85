"""The `stylecbn` command line: a thin layer over the library.

Each command parses its options, builds a configuration and calls one library function.
Library errors (`StylecbnError`) become one-line messages; exit codes: 0 = all done,
1 = some inputs failed, 2 = usage or bad input, 130 = interrupted (Ctrl-C), 143 = terminated
(SIGTERM).
"""

import contextlib
import functools
import importlib
import os
import re
import signal
import sys
import threading
import warnings

import click
import PIL

from stylecbn import __version__
from stylecbn.errors import StylecbnError, StylecbnWarning

EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 128 + signal.SIGTERM
_PILLOW_FOLDER = os.path.dirname(os.path.abspath(PIL.__file__)) + os.sep
_LONG_VALUE = re.compile(r"'[^']{79,}'|\"[^\"]{79,}\"|\S{81,}")


def _cut_values(message, limit=80):
    """click quotes a bad option value whole in its message: cut each long one to `limit`
    characters, and the whole line to a few of them, so a 100 kB value does not become a
    100 kB error line."""
    message = _LONG_VALUE.sub(lambda match: match.group()[:limit - 1] + "…", message)
    return message if len(message) <= 3 * limit else message[:3 * limit - 1] + "…"

# Command name -> "module:function"; modules load only when their command runs, so
# `stylecbn --help` and `stylecbn styles` don't pay for importing training code.
COMMANDS = {
    "apply": "stylecbn.cli.apply:apply",
    "styles": "stylecbn.cli.info:styles",
    "sheet": "stylecbn.cli.sheets:sheet",
    "interpolate": "stylecbn.cli.sheets:interpolate",
    "info": "stylecbn.cli.info:info",
    "train": "stylecbn.cli.train:train",
    "distill": "stylecbn.cli.train:distill",
    "vgg-weights": "stylecbn.cli.train:vgg_weights",
    "add-targets": "stylecbn.cli.train:add_targets",
    "export": "stylecbn.cli.export:export",
    "serve": "stylecbn.cli.serve:serve",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("stylecbn.cli."):
                return None  # that command is not part of this build
            raise
        return getattr(module, attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            exc.message = _cut_values(exc.message)
            raise


def fail(message, code=EXIT_BAD_INPUT):
    """Print `Error: message` on stderr (one line) and exit with `code`."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is as Ctrl-C is, so the same cleanups run (temporary
    outputs removed); the default action would end the process at once and leave them."""


_SIGNALLED = []  # the signal that asked this process to stop, once one has


def _raise_signalled(signum, frame):
    _SIGNALLED.append(signum)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _record_signal(signum, frame):
    _SIGNALLED.append(signum)


@contextlib.contextmanager
def signals_deferred():
    """For a loop that calls `check_signals` between its items (a video's frames): SIGINT and
    SIGTERM are only recorded while it runs, and the loop stops at its next item.

    Raised by the handler, the signal's exception lands wherever the main thread is, and
    inside a C library's callback (TensorFlow's `nest` flattening calls back into Python)
    it becomes a SystemError that the library may print as a traceback before the command
    stops. An item of a loop takes well under a second, so deferring costs no
    responsiveness. Only the handlers `handle_errors` set are replaced."""
    replaced = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is _raise_signalled:
                replaced[signum] = signal.signal(signum, _record_signal)
    try:
        yield
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
    check_signals()


def check_signals():
    """Raise again for a SIGINT or SIGTERM that arrived: an exception raised by the handler
    inside a C library's callback (PyAV's) can be lost there or turned into another error,
    so long loops call this between items to stop for certain."""
    if _SIGNALLED:
        raise Terminated if _SIGNALLED[-1] == signal.SIGTERM else KeyboardInterrupt


def raise_if_terminated(exc):
    """Re-raise `exc` as the interruption when SIGINT or SIGTERM arrived: raised inside C code
    (a decoder's loop), the signal's exception can surface as another error (a SystemError),
    which must stop the command as the signal does, not count as one input's failure."""
    if _SIGNALLED:
        try:
            check_signals()
        except KeyboardInterrupt as interruption:
            raise interruption from exc


@contextlib.contextmanager
def _terminate_like_ctrl_c():
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers (the CLI runs there)
        return
    _SIGNALLED.clear()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_signalled)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an ignored one stays so
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _raise_signalled)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def handle_errors(func):
    """Turn library errors into one-line messages and exit codes; Ctrl-C into exit 130 and
    SIGTERM into 143, both after cleaning up; library warnings (`StylecbnWarning`) into one
    `Warning:` line each."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings(), _terminate_like_ctrl_c():
                warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
                return func(*args, **kwargs)
        except StylecbnError as exc:
            fail(str(exc))
        except Terminated:
            click.echo("Terminated.", err=True)
            sys.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def _show_warning(fallback, message, category, filename, lineno, file=None, line=None):
    if issubclass(category, StylecbnWarning):
        click.echo(f"Warning: {message}", err=True)
    elif os.path.abspath(filename).startswith(_PILLOW_FOLDER):
        pass  # damaged metadata Pillow works around: the file is read, or refused in one line
    else:  # other libraries' warnings keep Python's own form
        fallback(message, category, filename, lineno, file, line)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stylecbn")
def main():
    """stylecbn: many painting styles in one network. Train, apply, blend, export."""


if __name__ == "__main__":
    main()

"""What the apply-side commands share: the --model option, the loaded model, stdin/stdout,
the output-not-input check and writing one image.

Library errors become one-line messages through `stylecbn.cli.root.handle_errors`; the checks here
`fail` with exit code 2 before any work starts.
"""

import contextlib
import json
import sys
import time

import click

from stylecbn.media.outputs import STDIO
from stylecbn.applying.runtimes import RUNTIMES
from stylecbn.cli.root import fail
from stylecbn.fileio import same_file
from stylecbn.media.reading import read_image
from stylecbn.media.writing import write_image

model_option = click.option(
    "--model",
    "-m",
    "model_path",
    default=None,
    metavar="NAME|FILE",
    help="A built-in model (default, fast) or a model file (.keras). Default: default.",
)


runtime_option = click.option(
    "--runtime",
    default=None,
    envvar="STYLECBN_RUNTIME",
    show_envvar=True,
    type=click.Choice(RUNTIMES),
    help="What runs the network: auto (default: the fastest within tolerance of float32 on "
    "this CPU; `stylecbn info` says which), keras, openvino or openvino-bf16.",
)


_LOADED = {}  # (model file, its mtime and size, xla, runtime, vgg weights) -> Stylizer


def load_stylizer(model_path, jit_compile=None, runtime=None, vgg_weights=None):
    """A Stylizer for `model_path` (a built-in model name or a file; None: the built-in
    default model) run by `runtime` (None: the Stylizer's default), with `vgg_weights` as in
    `Stylizer`, reused within this process."""
    from stylecbn.model.saving import resolve_model_path
    from stylecbn.applying.stylize import Stylizer

    path = resolve_model_path(model_path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, jit_compile, runtime,
               vgg_weights)
    except OSError:
        key = None  # missing: let Stylizer raise its clear error
    if key is None or key not in _LOADED:
        stylizer = Stylizer(path, jit_compile=jit_compile, runtime=runtime,
                            vgg_weights=vgg_weights)
        if key is None:
            return stylizer
        _LOADED[key] = stylizer
    return _LOADED[key]


@contextlib.contextmanager
def progress_bar(label, unit):
    """A `progress(done, total)` callback that draws a bar (count, `unit`s per second, time
    left) on stderr when it is a terminal; None elsewhere, where click would print only the
    label and pipes and logs want no bar."""
    if not sys.stderr.isatty():
        yield None
        return
    started = time.perf_counter()
    with click.progressbar(length=1, label=label, file=sys.stderr, show_pos=True,
                           show_eta=True, item_show_func=lambda text: text) as bar:

        def progress(done, total):
            bar.length = total
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(done - bar.pos, f"{rate:.2f} {unit}/s")

        yield progress


def stdout():
    """The binary stdout stream."""
    return click.open_file(STDIO, "wb")


max_pixels_option = click.option(
    "--max-pixels",
    type=click.IntRange(1, None),
    default=None,
    envvar="STYLECBN_MAX_PIXELS",
    show_envvar=True,
    help="Largest image to read, in pixels (every frame counted). Default: what the "
    "machine's available memory can decode (24 bytes a pixel).",
)


def read_input(source, max_pixels=None):
    """Read an input path, or stdin for "-"; `max_pixels` None: the machine's default."""
    if source == STDIO:
        return read_image(click.open_file(STDIO, "rb"), name="<stdin>", max_pixels=max_pixels)
    return read_image(source, max_pixels=max_pixels)


def check_output_not_input(output, source):
    """Fail when writing -o `output` would overwrite the input `source`."""
    if output != STDIO and source != STDIO and same_file(output, source):
        fail(f"Writing {output} would overwrite the input {source}; choose another -o.")


def echo_json(record):
    click.echo(json.dumps(record, sort_keys=True))


def save_image(image, output):
    """Write one image to a file (saying so on stderr) or to stdout ("-", as PNG)."""
    import numpy as np

    if output == STDIO:
        write_image(stdout(), np.asarray(image), format="PNG")
    else:
        write_image(output, np.asarray(image))
        click.echo(f"Wrote {output}", err=True)

"""The everyday commands: `apply`, `styles`, `sheet`, `interpolate`, `info`.

Each command parses its options, plans where outputs go (refusing to overwrite an input) and
calls `stylecbn.stylize.Stylizer`; library errors become one-line messages through
`handle_errors`. Exit codes: 0 = all done, 1 = some inputs failed, 2 = usage or bad input.
"""

import json
import platform
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import click

from .. import __version__
from ..cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_SOME_FAILED, fail, handle_errors
from ..errors import StylecbnError
from ..images import IMAGE_SUFFIXES, OUTPUT_SUFFIXES, read_image, write_image

DEFAULT_NAME = "{stem}_{style}.{ext}"
NAME_FIELDS = ("stem", "style", "ext", "index")
FORMATS = ("png", "jpg", "webp", "gif", "tif", "bmp")
STDIO = "-"

model_option = click.option(
    "--model",
    "-m",
    "model_path",
    default=None,
    metavar="FILE",
    help="Model file (.keras). Default: the built-in model.",
)


_LOADED = {}  # (model file, its mtime and size, xla) -> Stylizer: load once per process


def _stylizer(model_path, jit_compile=None):
    """A Stylizer for `model_path` (None: the built-in model), reused within this process."""
    from ..modelfile import default_model_path
    from ..stylize import Stylizer

    path = Path(model_path) if model_path else default_model_path()
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, jit_compile)
    except OSError:
        key = None  # missing: let Stylizer raise its clear error
    if key is None or key not in _LOADED:
        stylizer = Stylizer(model_path, jit_compile=jit_compile)
        if key is None:
            return stylizer
        _LOADED[key] = stylizer
    return _LOADED[key]


def _stdin():
    return click.open_file(STDIO, "rb")


def _stdout():
    return click.open_file(STDIO, "wb")


def _read(source):
    """Read an input path, or stdin for "-"."""
    if source == STDIO:
        return read_image(_stdin(), name="<stdin>")
    return read_image(source)


def _same_file(a, b):
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


# --- apply --------------------------------------------------------------------------------


@dataclass
class _Job:
    """One input and where its output goes (`output` None = stdout)."""

    source: str  # a path, or "-" for stdin
    relative: Path  # the input's path below the folder it was found in (its name otherwise)
    output: Path | None = None


def _collect_inputs(inputs, recursive):
    """Expand files and folders into jobs; missing paths and empty folders are usage errors."""
    jobs, seen = [], set()
    for item in inputs:
        if item == STDIO:
            jobs.append(_Job(STDIO, Path("stdin")))
            continue
        path = Path(item)
        if not path.exists():
            fail(f"{path} does not exist.")
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(
                p
                for p in path.glob(pattern)
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                where = "or its subfolders " if recursive else ""
                hint = "" if recursive else " (use --recursive to look in subfolders)"
                fail(
                    f"No images in {path} {where}(looked for {', '.join(IMAGE_SUFFIXES)}){hint}."
                )
            files = [(p, p.relative_to(path)) for p in found]
        else:
            files = [(path, Path(path.name))]
        for file, relative in files:
            key = str(file.resolve())
            if key not in seen:
                seen.add(key)
                jobs.append(_Job(str(file), relative))
    if sum(job.source == STDIO for job in jobs) > 1:
        fail("stdin ('-') can be given only once.")
    return jobs


def _check_name_pattern(pattern):
    try:
        name = pattern.format(stem="a", style="b", ext="png", index=0)
    except (KeyError, IndexError, ValueError) as exc:
        fail(
            f"Bad --name pattern {pattern!r} ({exc}); use the fields "
            f"{', '.join('{' + f + '}' for f in NAME_FIELDS)}, e.g. {DEFAULT_NAME!r}."
        )
    if "/" in name or "\\" in name:
        fail(f"--name pattern {pattern!r} must give a file name, not a path; use -o for the folder.")


def _output_mode(output, jobs, from_folder):
    """'stdout', 'file', 'dir' or 'beside' (no -o), checking that the target can exist."""
    stdin_input = any(job.source == STDIO for job in jobs)
    if output == STDIO or (output is None and stdin_input):
        if len(jobs) > 1:
            fail("Only one image can go to stdout; give -o a folder for several inputs.")
        return "stdout"
    if output is None:
        return "beside"
    path = Path(output)
    if path.is_dir():
        return "dir"
    if len(jobs) > 1 or from_folder:
        fail(f"-o {output} is not an existing folder; several images need one (create it first).")
    if output.endswith(("/", "\\")) or not path.suffix:
        fail(f"Output folder {output} does not exist; create it first.")
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        fail(f"Cannot tell the image format of -o {output}; use one of {', '.join(OUTPUT_SUFFIXES)}.")
    if not path.parent.is_dir():
        fail(f"Cannot write {output}: the folder {path.parent} does not exist.")
    return "file"


def _plan_outputs(jobs, mode, output, pattern, style_name, out_format):
    """Fill in each job's output path; refuse to overwrite an input or write one file twice."""
    if mode == "stdout":
        return
    for index, job in enumerate(jobs):
        if mode == "file":
            job.output = Path(output)
            continue
        source_ext = Path(job.source).suffix.lower().lstrip(".") if job.source != STDIO else ""
        ext = out_format or (source_ext if "." + source_ext in OUTPUT_SUFFIXES else "png")
        name = pattern.format(stem=job.relative.stem, style=style_name, ext=ext, index=index)
        if mode == "beside":
            job.output = Path(job.source).parent / name
        else:
            job.output = Path(output) / job.relative.parent / name
    outputs = {}
    for job in jobs:
        for other in jobs:
            if other.source != STDIO and _same_file(job.output, other.source):
                fail(
                    f"Writing {job.output} would overwrite the input {other.source}; inputs are "
                    "never overwritten: choose another -o or --name."
                )
        key = str(job.output.resolve())
        if key in outputs:
            fail(
                f"{outputs[key]} and {job.source} would both be written to {job.output}; "
                "use -o with a folder and a --name pattern that keeps them apart."
            )
        outputs[key] = job.source


def _write_format(job, loaded, out_format):
    if out_format:
        return out_format
    if job.output is not None:
        return None  # from the suffix
    return loaded.format if loaded.format in ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP") else "PNG"


def _echo_json(record):
    click.echo(json.dumps(record, sort_keys=True))


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    default=None,
    help="Output file, folder, or '-' for stdout. Default: beside each input "
    "(stdout when reading stdin).",
)
@model_option
@click.option(
    "-s",
    "--style",
    default="0",
    show_default=True,
    help="Style index or name, or a blend such as '3:0.5,12:0.5' or 'starry:1,wave:2'.",
)
@click.option(
    "--strength",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="0 = the photo, 1 = full style (a pixel mix of the two).",
)
@click.option(
    "--preserve-color",
    is_flag=True,
    help="Keep the photo's colours; transfer luminance only.",
)
@click.option("--mask", default=None, metavar="IMAGE", help="Mask image: white = --mask-style.")
@click.option(
    "--mask-style",
    default=None,
    help="Style (or blend) inside the white part of --mask; --style applies outside.",
)
@click.option(
    "--max-size",
    type=int,
    default=1024,
    show_default=True,
    help="Longest side in pixels (images are never enlarged); 0 keeps the size.",
)
@click.option("-r", "--recursive", is_flag=True, help="Look for images in subfolders too.")
@click.option(
    "--name",
    "name_pattern",
    default=DEFAULT_NAME,
    show_default=True,
    help="Output file names: fields {stem}, {style}, {ext}, {index}.",
)
@click.option(
    "--format",
    "out_format",
    type=click.Choice(FORMATS, case_sensitive=False),
    default=None,
    help="Output format (default: the input's, PNG for stdin).",
)
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per output.")
@click.option(
    "--xla/--no-xla",
    default=None,
    help="XLA-compile inference. Default: automatic (on for JAX, and on TensorFlow for "
    "images of 512x512 px and more, where it measured faster).",
)
@handle_errors
def apply(
    inputs,
    output,
    model_path,
    style,
    strength,
    preserve_color,
    mask,
    mask_style,
    max_size,
    recursive,
    name_pattern,
    out_format,
    quality,
    as_json,
    xla,
):
    """Stylize photos: files, folders, or '-' for stdin.

    \b
    Examples:
      stylecbn apply photo.jpg --style starry -o out.jpg
      stylecbn apply photos/ -r --style 3:0.5,12:0.5 -o styled/ --name {stem}_{style}.png
      cat photo.jpg | stylecbn apply - --style 2 > out.png
    """
    from ..stylize import _check_max_size, style_label

    _check_max_size(max_size)
    if (mask is None) != (mask_style is None):
        fail("--mask and --mask-style go together: --mask-style is the style inside the mask.")
    _check_name_pattern(name_pattern)
    jobs = _collect_inputs(inputs, recursive)
    from_folder = any(Path(i).is_dir() for i in inputs if i != STDIO)
    mode = _output_mode(output, jobs, from_folder)
    if mode == "stdout" and as_json:
        fail("--json prints to stdout, which the image already uses; write to a file with -o.")
    out_format = out_format.lower() if out_format else None

    stylizer = _stylizer(model_path, jit_compile=xla)
    weights = stylizer.style_weights(style)
    label = style_label(weights, stylizer.model)
    mask_image = None
    if mask is not None:
        label += "+" + style_label(stylizer.style_weights(mask_style), stylizer.model)
        mask_image = read_image(mask)
    _plan_outputs(jobs, mode, output, name_pattern, label, out_format)
    blend = {
        stylizer.style_names[i]: round(float(w), 6) for i, w in enumerate(weights) if w > 0
    }

    failures = 0
    show_bar = len(jobs) > 1 and not as_json
    with click.progressbar(
        jobs, label="Stylizing", file=sys.stderr, show_pos=True, item_show_func=lambda j: None
    ) if show_bar else _nullbar(jobs) as bar:
        for job in bar:
            started = time.perf_counter()
            target = str(job.output) if job.output is not None else "<stdout>"
            try:
                loaded = _read(job.source)
                if mode == "dir":  # mirror the input's subfolders below the existing -o folder
                    job.output.parent.mkdir(parents=True, exist_ok=True)
                result = stylizer.stylize_frames(
                    loaded,
                    weights,
                    strength=strength,
                    preserve_color=preserve_color,
                    max_size=max_size,
                    mask=mask_image,
                    mask_style=mask_style,
                )
                write_image(
                    job.output if job.output is not None else _stdout(),
                    result.frames,
                    format=_write_format(job, result, out_format),
                    durations=result.durations,
                    loop=result.loop,
                    quality=quality,
                )
            except StylecbnError as exc:
                failures += 1
                if show_bar:
                    click.echo("", err=True)
                click.echo(f"Error: {exc}", err=True)
                if as_json:
                    _echo_json(
                        {"input": job.source, "output": target, "status": "error", "error": str(exc)}
                    )
                continue
            if as_json:
                width, height = result.size
                _echo_json(
                    {
                        "input": job.source,
                        "output": target,
                        "status": "ok",
                        "style": blend,
                        "strength": strength,
                        "preserve_color": preserve_color,
                        "width": width,
                        "height": height,
                        "frames": len(result.frames),
                        "seconds": round(time.perf_counter() - started, 3),
                    }
                )
            elif mode != "stdout" and len(jobs) == 1:
                click.echo(f"Wrote {target}", err=True)
    if len(jobs) > 1 and not as_json:
        click.echo(f"Wrote {len(jobs) - failures} of {len(jobs)} images; {failures} failed.", err=True)
    if failures:
        sys.exit(EXIT_BAD_INPUT if len(jobs) == 1 else EXIT_SOME_FAILED)
    sys.exit(EXIT_OK)


class _nullbar:
    """Stands in for click.progressbar when no bar is shown."""

    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return self.items

    def __exit__(self, *exc):
        return False


# --- styles -------------------------------------------------------------------------------


@click.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per style.")
@handle_errors
def styles(model_path, as_json):
    """List the model's styles: index, name and credits."""
    model = _stylizer(model_path).model
    rows = list(zip(range(model.num_styles), model.style_names, model.style_credits))
    if as_json:
        for index, name, credit in rows:
            _echo_json({"index": index, "name": name, "credits": credit})
        return
    width = max(len(name) for _, name, _ in rows)
    for index, name, credit in rows:
        click.echo(f"{index:>3}  {name:<{width}}  {credit}".rstrip())


# --- sheet --------------------------------------------------------------------------------


def _check_output_not_input(output, source):
    if output != STDIO and source != STDIO and _same_file(output, source):
        fail(f"Writing {output} would overwrite the input {source}; choose another -o.")


def _save(image, output, fmt=None):
    import numpy as np

    if output == STDIO:
        write_image(_stdout(), np.asarray(image), format=fmt or "PNG")
    else:
        write_image(output, np.asarray(image))
        click.echo(f"Wrote {output}", err=True)


@click.command()
@click.argument("photo")
@click.option("-o", "--output", required=True, help="Output image file, or '-' for stdout (PNG).")
@model_option
@click.option("--tile-size", type=click.IntRange(16, None), default=256, show_default=True)
@click.option("--columns", type=click.IntRange(1, None), default=None, help="Tiles per row.")
@click.option("--styles", "only", default=None, help="Comma-separated indices or names to show.")
@click.option("--no-original", is_flag=True, help="Leave out the unstyled photo.")
@handle_errors
def sheet(photo, output, model_path, tile_size, columns, only, no_original):
    """Every style on one photo, each tile labelled with its index and name."""
    _check_output_not_input(output, photo)
    stylizer = _stylizer(model_path)
    chosen = None if only is None else [s.strip() for s in only.split(",") if s.strip()]
    image = stylizer.style_sheet(
        _read(photo),
        styles=chosen,
        tile_size=tile_size,
        columns=columns,
        include_original=not no_original,
    )
    _save(image, output)


# --- interpolate ----------------------------------------------------------------------------


@click.command()
@click.argument("photo")
@click.option("--from", "from_style", default=None, help="Starting style or blend.")
@click.option("--to", "to_style", default=None, help="Final style or blend.")
@click.option("--frames", type=click.IntRange(2, 1000), default=24, show_default=True)
@click.option(
    "--grid",
    nargs=4,
    default=None,
    metavar="TL TR BL BR",
    help="Instead of --from/--to: a 2-D grid of blends between four corner styles.",
)
@click.option("--steps", type=click.IntRange(2, 20), default=5, show_default=True,
              help="Cells per side of --grid.")
@click.option(
    "-o",
    "--output",
    required=True,
    help=".gif/.webp: an animation; another image file: a labelled strip (or the grid); "
    "an existing folder: one PNG per frame.",
)
@model_option
@click.option("--max-size", type=click.IntRange(16, None), default=None,
              help="Longest side of each frame [default: 512; 256 for --grid].")
@click.option("--duration", type=click.IntRange(1, None), default=80, show_default=True,
              help="Milliseconds per animation frame.")
@handle_errors
def interpolate(photo, from_style, to_style, frames, grid, steps, output, model_path, max_size,
                duration):
    """Blend smoothly from one style to another, or between four styles on a grid.

    \b
    Examples:
      stylecbn interpolate photo.jpg --from 3 --to 12 --frames 24 -o anim.gif
      stylecbn interpolate photo.jpg --from starry --to wave -o frames/
      stylecbn interpolate photo.jpg --grid 0 3 7 12 --steps 5 -o grid.png
    """
    from ..sheets import blend_grid_sheet, labelled_sheet
    from ..stylize import style_label

    if grid and (from_style or to_style):
        fail("Use either --grid or --from/--to, not both.")
    if not grid and not (from_style and to_style):
        fail("Give --from and --to (or --grid with four styles).")
    _check_output_not_input(output, photo)
    out = Path(output)
    is_folder = output != STDIO and out.is_dir()
    suffix = out.suffix.lower()
    if output != STDIO and not is_folder:
        if output.endswith(("/", "\\")) or not suffix:
            fail(f"Output folder {output} does not exist; create it first.")
        if suffix not in OUTPUT_SUFFIXES:
            fail(f"Cannot tell the image format of -o {output}; use one of {', '.join(OUTPUT_SUFFIXES)}.")
        if not out.parent.is_dir():
            fail(f"Cannot write {output}: the folder {out.parent} does not exist.")
    if grid and is_folder:
        fail("--grid writes one image: give -o a file such as grid.png.")

    stylizer = _stylizer(model_path)
    loaded = _read(photo)
    if grid:
        rows, _ = stylizer.blend_grid(loaded, list(grid), steps=steps, max_size=max_size or 256)
        labels = [style_label(stylizer.style_weights(c), stylizer.model) for c in grid]
        _save(blend_grid_sheet(rows, labels), output)
        return
    images = stylizer.interpolate(loaded, from_style, to_style, frames=frames,
                                  max_size=max_size or 512)
    if is_folder:
        stem = Path(photo).stem if photo != STDIO else "stdin"
        for i, frame in enumerate(images):
            write_image(out / f"{stem}_{i:03d}.png", frame)
        click.echo(f"Wrote {len(images)} frames to {out}", err=True)
    elif output == STDIO or suffix in (".gif", ".webp"):
        fmt = "GIF" if output == STDIO else None
        if output == STDIO:
            write_image(_stdout(), images, format=fmt, durations=duration)
        else:
            write_image(out, images, durations=duration)
            click.echo(f"Wrote {output}", err=True)
    else:
        ts = [i / (len(images) - 1) for i in range(len(images))]
        _save(labelled_sheet(images, [f"{t:.2f}" for t in ts], columns=len(images)), output)


# --- info -----------------------------------------------------------------------------------


def _version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@click.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
@handle_errors
def info(model_path, as_json):
    """Versions, Keras backend, devices, and a summary of the model."""
    import keras

    from ..modelfile import default_model_path

    backend = keras.backend.backend()
    record = {
        "stylecbn": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _version({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(
            backend, backend)),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "click": _version("click"),
        "devices": [str(d) for d in keras.distribution.list_devices()],
    }
    path = Path(model_path) if model_path else default_model_path()
    if model_path or path.is_file():
        model = _stylizer(model_path).model
        record["model"] = {
            "path": str(path),
            "file_bytes": path.stat().st_size,
            "num_styles": model.num_styles,
            "styles": model.style_names,
            "normalization": model.normalization,
            "width_multiplier": model.width_multiplier,
            "parameters": int(model.count_params()),
            "metadata": model.metadata,
        }
    else:
        record["model"] = None
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True, default=str))
        return
    for key in ("stylecbn", "python", "platform", "keras", "backend", "backend_version", "numpy",
                "pillow", "click"):
        click.echo(f"{key + ':':<17}{record[key]}")
    click.echo(f"{'devices:':<17}{', '.join(record['devices']) or 'none found'}")
    model = record["model"]
    if model is None:
        click.echo(f"{'model:':<17}no built-in model installed (expected {path}); pass --model FILE")
        return
    click.echo(f"{'model:':<17}{model['path']} ({model['file_bytes'] / 1e6:.1f} MB)")
    click.echo(
        f"{'':<17}{model['num_styles']} styles, {model['normalization']} normalization, "
        f"width x{model['width_multiplier']:g}, {model['parameters']:,} parameters"
    )
    click.echo(f"{'styles:':<17}{', '.join(f'{i}={n}' for i, n in enumerate(model['styles']))}")
    for key, value in sorted(model["metadata"].items()):
        text = json.dumps(value, sort_keys=True, default=str)
        click.echo(f"{'  ' + key + ':':<17}{text if len(text) <= 100 else text[:97] + '...'}")

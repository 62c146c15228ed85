"""`stylecbn apply`: stylize photos and videos from files, folders or stdin.

Parses the options, plans where outputs go with `stylecbn.media.outputs.OutputPlan` (which
refuses to overwrite an input or to write one file twice) and calls `Stylizer.stylize_frames`
(images) or `Stylizer.stylize_video` (videos) once per input; library errors become one-line
messages through `handle_errors`. Exit codes:
0 = all done, 1 = some inputs failed, 2 = usage or bad input, 130 = interrupted.
"""

import contextlib
import sys
import time
from pathlib import Path

import click

from stylecbn.media.outputs import DEFAULT_NAME, FORMATS, OutputPlan
from stylecbn.cli.root import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_SOME_FAILED,
    check_signals,
    fail,
    handle_errors,
    raise_if_terminated,
    signals_deferred,
)
from stylecbn.errors import StylecbnError
from stylecbn.media.reading import read_image
from stylecbn.media.writing import write_image
from stylecbn.media.video import is_video
from stylecbn.cli.common import (
    echo_json,
    load_stylizer,
    max_pixels_option,
    model_option,
    progress_bar,
    runtime_option,
    read_input,
    stdout,
)

# The library names its arguments; on this command line two of them are options.
_OPTION_WORDS = (("name pattern", "--name pattern"), ("recursive=True", "--recursive"))


def _plan_error(exc):
    """Fail with a planning error's message, worded with this command's option names."""
    message = str(exc)
    for argument, option in _OPTION_WORDS:
        message = message.replace(argument, option, 1)
    fail(message)


def _write_format(job, result, out_format):
    if out_format:
        return out_format
    if job.output is not None:
        return None  # from the suffix
    return "GIF" if len(result.frames) > 1 else "PNG"  # stdout: PNG holds one picture


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
    default=None,
    help="Style index or name, or a blend such as '3:0.5,12:0.5' or 'starry:1,wave:2'. [0]",
)
@click.option(
    "--style-image",
    "style_images",
    multiple=True,
    metavar="IMAGE",
    help="Any painting (repeat for several): start from the trained style or blend whose "
    "Gram matrices are nearest, then refine towards the painting (instead of --style).",
)
@click.option(
    "--style-image-weights",
    default=None,
    metavar="W1,W2,...",
    help="One weight per --style-image (normalized). [equal]",
)
@click.option(
    "--refine",
    type=int,
    default=None,
    metavar="N",
    help="Optimize the network's output N more steps against the training loss, at the "
    "size --max-size gives (time and memory grow with the pixels; images only). "
    "[0; 100 with --style-image]",
)
@click.option(
    "--vgg-weights",
    default=None,
    help="VGG-16 weights for --refine: imagenet, hed or a file. [those the model's style "
    "targets name]",
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
@click.option(
    "--to-style",
    default=None,
    help="Videos and animations: the blend moves from --style on the first frame to this "
    "style (or blend) on the last.",
)
@click.option(
    "--stabilize/--no-stabilize",
    default=True,
    show_default=True,
    help="Videos and animations: reduce flicker (the network's grid follows the camera and "
    "the previous frame is carried along the motion); --no-stabilize paints every frame on "
    "its own.",
)
@click.option("-r", "--recursive", is_flag=True, help="Look for images and videos in subfolders too.")
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
    help="Image output format (default: the input's; on stdout PNG, GIF for an animation); "
    "videos keep theirs.",
)
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG and WebP quality.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per output.")
@max_pixels_option
@runtime_option
@click.option(
    "--xla/--no-xla",
    default=None,
    help="XLA-compile inference. Default: automatic (on for JAX; off on TensorFlow, where it "
    "measured slower on CPU).",
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
    to_style,
    stabilize,
    recursive,
    name_pattern,
    out_format,
    quality,
    as_json,
    max_pixels,
    runtime,
    xla,
    style_images,
    style_image_weights,
    refine,
    vgg_weights,
):
    """Stylize photos and videos: files, folders, or '-' for stdin (images).

    Videos (.mp4, .mov, .mkv, .webm, .avi) are streamed frame by frame with their audio,
    timing and rotation kept.

    \b
    Examples:
      stylecbn apply photo.jpg --style starry_night -o out.jpg
      stylecbn apply photos/ -r --style 3:0.5,12:0.5 -o styled/ --name {stem}_{style}.png
      cat photo.jpg | stylecbn apply - --style 2 > out.png
      stylecbn apply clip.mp4 --style 3 --to-style 7 -o out.mp4
      stylecbn apply photo.jpg --style 4 --refine 100 -o refined.jpg
      stylecbn apply photo.jpg --style-image painting.jpg -o mine.jpg
    """
    if style_images and style is not None:
        fail("--style and --style-image exclude each other: the style image is the style.")
    if style_images and to_style is not None:
        fail("--to-style works on videos and animations, which --style-image cannot refine.")
    if style_image_weights is not None and not style_images:
        fail("--style-image-weights goes with --style-image.")
    weights = _image_weights(style_image_weights, len(style_images))
    style = "0" if style is None else style
    if (mask is None) != (mask_style is None):
        fail("--mask and --mask-style go together: --mask-style is the style inside the mask.")
    try:
        plan = OutputPlan(inputs, output, name=name_pattern, format=out_format,
                          recursive=recursive)
    except StylecbnError as exc:
        _plan_error(exc)
    if plan.kind == "stdout" and as_json:
        fail("--json prints to stdout, which the image already uses; write to a file with -o.")

    # Keras starts here, not for --help or usage errors
    from stylecbn.applying.refine import DEFAULT_IMAGE_REFINE, check_refine
    from stylecbn.applying.stylize import NO_REFINED_FRAMES, check_max_size

    check_max_size(max_size)
    if refine is not None:
        check_refine(refine)
    stylizer = load_stylizer(model_path, jit_compile=xla, runtime=runtime, vgg_weights=vgg_weights)
    if style_images:
        blend = stylizer.image_style(style_images, weights)
        _tell_start(stylizer, blend, style_images)
    else:
        blend = stylizer.blend(style)
    label = blend.label
    to_blend = None if to_style is None else stylizer.blend(to_style)
    if to_blend is not None:
        label += "-to-" + to_blend.label
    mask_blend = mask_image = None
    if mask is not None:
        mask_blend = stylizer.blend(mask_style)
        label += "+" + mask_blend.label
        mask_image = read_image(mask, max_pixels=max_pixels)
    try:
        jobs = plan.jobs(label)
    except StylecbnError as exc:
        _plan_error(exc)
    refining = bool(refine) or (refine is None and bool(style_images))
    if refining and any(is_video(job.source) for job in jobs):
        fail(f"{next(job.source for job in jobs if is_video(job.source))}: {NO_REFINED_FRAMES}")
    if refining:
        stylizer.refiner  # noqa: B018 - a model without style targets fails once, here
    style_record = {
        stylizer.style_names[i]: round(w, 6)
        for i, w in enumerate(getattr(blend, "start", blend).weights) if w > 0
    }

    options = dict(strength=strength, preserve_color=preserve_color, max_size=max_size,
                   mask=mask_image, mask_style=mask_blend, to_style=to_blend, stabilize=stabilize)
    image_options = dict(options, refine=refine)
    refine_record = {"refine": refine if refine is not None else (
        DEFAULT_IMAGE_REFINE if style_images else 0)}
    if style_images:
        refine_record["style_images"] = list(style_images)
    failures = 0
    show_bar = len(jobs) > 1 and not as_json
    with click.progressbar(
        jobs, label="Stylizing", file=sys.stderr, show_pos=True, item_show_func=lambda j: None
    ) if show_bar else contextlib.nullcontext(jobs) as bar:
        for job in bar:
            started = time.perf_counter()
            target = str(job.output) if job.output is not None else "<stdout>"
            try:
                if plan.kind == "folder":  # mirror the input's subfolders below the -o folder
                    job.output.parent.mkdir(parents=True, exist_ok=True)
                if is_video(job.source):
                    video = _apply_video(stylizer, job, blend, options, show_bar=not as_json)
                    if as_json:
                        echo_json({"input": job.source, "output": target, "status": "ok",
                                   "style": style_record, **_video_record(video, options)})
                    elif len(jobs) == 1:
                        click.echo(f"Wrote {target} ({video.frames} frames, {video.width}x"
                                   f"{video.height}, {video.seconds:.1f} s)", err=True)
                    continue
                loaded = read_input(job.source, max_pixels)
                with _refine_progress(job, refining and not as_json) as progress:
                    result = stylizer.stylize_frames(loaded, blend, refine_progress=progress,
                                                     **image_options)
                write_image(
                    job.output if job.output is not None else stdout(),
                    result.frames,
                    format=_write_format(job, result, plan.format),
                    durations=result.durations,
                    loop=result.loop,
                    quality=quality,
                )
            except Exception as exc:  # any failure is this input's, and the batch goes on
                raise_if_terminated(exc)
                failures += 1
                message = _input_error(job, exc)
                if show_bar:
                    click.echo("", err=True)
                click.echo(f"Error: {message}", err=True)
                if as_json:
                    echo_json(
                        {"input": job.source, "output": target, "status": "error", "error": message}
                    )
                continue
            if as_json:
                width, height = result.size
                echo_json({"input": job.source, "output": target, "status": "ok",
                           "style": style_record, **refine_record, "strength": strength,
                           "preserve_color": preserve_color, "width": width, "height": height,
                           "frames": len(result.frames),
                           "seconds": round(time.perf_counter() - started, 3)})
            elif plan.kind != "stdout" and len(jobs) == 1:
                width, height = result.size
                click.echo(f"Wrote {target} ({width}x{height}, "
                           f"{time.perf_counter() - started:.1f} s)", err=True)
    if len(jobs) > 1 and not as_json:
        click.echo(f"Wrote {len(jobs) - failures} of {len(jobs)} images; {failures} failed.", err=True)
    if failures:
        sys.exit(EXIT_BAD_INPUT if len(jobs) == 1 else EXIT_SOME_FAILED)
    sys.exit(EXIT_OK)


def _input_error(job, exc):
    """One line for a failure of one input: the library's own message, an OS error's text,
    or (a bug) the exception's type and message."""
    if isinstance(exc, StylecbnError):
        return str(exc)
    if isinstance(exc, OSError):
        where = exc.filename or job.output or job.source
        return f"{where}: {exc.strerror or exc}"
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return (f"{job.source}: unexpected {type(exc).__name__}: {first_line}; the other inputs go "
            "on (please report this)")


def _image_weights(text, count):
    """The --style-image-weights as floats (None: equal), or a usage error."""
    if text is None:
        return None
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        fail(f"--style-image-weights {text!r}: give numbers separated by commas, e.g. 1,2.")
    if len(weights) != count:
        fail(f"--style-image-weights gives {len(weights)} weight(s) for {count} --style-image.")
    return weights


def _tell_start(stylizer, style, paintings):
    """Say which trained style or blend a painting's style starts from, and how near it is."""
    index, distance = style.nearest_single
    click.echo(
        f"{', '.join(map(str, paintings))}: starting from {style.start.label} (style loss "
        f"{style.distance:.4g} to the painting; the nearest single style, "
        f"{stylizer.style_names[index]}, {distance:.4g})", err=True)


@contextlib.contextmanager
def _refine_progress(job, show):
    """A refine progress callback: a bar with the loss on a terminal, else a line every 25
    steps; None when not shown."""
    if not show:
        yield None
        return
    name = Path(str(job.source)).name
    if not sys.stderr.isatty():
        def line(step, steps, terms):
            if step % 25 == 0 or step == steps:
                click.echo(f"{name}: refine step {step}/{steps}, loss "
                           f"{terms['total_loss']:.4g}", err=True)

        yield line
        return
    with click.progressbar(length=1, label=f"Refining {name}", file=sys.stderr, show_pos=True,
                           show_eta=True, item_show_func=lambda text: text) as bar:

        def update(step, steps, terms):
            bar.length = steps
            bar.update(step - bar.pos, f"loss {terms['total_loss']:.4g}")

        yield update


def _apply_video(stylizer, job, blend, options, show_bar):
    """Stylize one video with a progress bar (frames, frames/s, time left) on a terminal."""
    with progress_bar(Path(job.source).name, "frames") if show_bar else \
            contextlib.nullcontext() as bar:

        def progress(done, total):
            check_signals()  # a signal lost inside the decoder stops the clip here
            if bar is not None:
                bar(done, total)

        with signals_deferred():  # stopped between two frames, not inside a library
            return stylizer.stylize_video(job.source, job.output, blend, progress=progress,
                                          **options)


def _video_record(video, options):
    """The --json fields of a stylized video: frames, speed (fps), seconds and the settings."""
    to_style = options["to_style"]
    return {
        "to_style": None if to_style is None else to_style.label,
        "strength": options["strength"],
        "preserve_color": options["preserve_color"],
        "stabilize": options["stabilize"],
        "width": video.width,
        "height": video.height,
        "frames": video.frames,
        "frame_rate": round(video.frame_rate, 6),
        "audio_streams": video.audio_streams,
        "fps": round(video.frames_per_second, 3),
        "seconds": round(video.seconds, 3),
    }

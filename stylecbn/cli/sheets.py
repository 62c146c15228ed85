"""`stylecbn sheet` and `stylecbn interpolate`: many styles or blends of one photo.

`sheet` puts every style (or the chosen ones) on one labelled image; `interpolate` moves
from one style to another (an animation, a strip or a folder of frames) or fills a grid of
blends between four corner styles. Both call `Stylizer` and write what it returns.
"""

from pathlib import Path

import click

from stylecbn.media.outputs import STDIO, check_image_output
from stylecbn.cli.root import fail, handle_errors
from stylecbn.media.writing import write_image
from stylecbn.cli.common import (
    check_output_not_input,
    load_stylizer,
    max_pixels_option,
    model_option,
    progress_bar,
    read_input,
    runtime_option,
    save_image,
    stdout,
)


@click.command()
@click.argument("photo")
@click.option("-o", "--output", required=True, help="Output image file, or '-' for stdout (PNG).")
@model_option
@click.option("--tile-size", type=click.IntRange(16, None), default=256, show_default=True)
@click.option("--columns", type=click.IntRange(1, None), default=None, help="Tiles per row.")
@click.option("--styles", "only", default=None, help="Comma-separated indices or names to show.")
@click.option("--no-original", is_flag=True, help="Leave out the unstyled photo.")
@max_pixels_option
@runtime_option
@handle_errors
def sheet(photo, output, model_path, tile_size, columns, only, no_original, max_pixels, runtime):
    """Every style on one photo, each tile labelled with its index and name."""
    check_output_not_input(output, photo)
    if output != STDIO and not Path(output).is_dir():
        check_image_output(output)
    stylizer = load_stylizer(model_path, runtime=runtime)
    chosen = None if only is None else [s.strip() for s in only.split(",") if s.strip()]
    with progress_bar("Styles", "styles") as progress:
        image = stylizer.style_sheet(
            read_input(photo, max_pixels),
            styles=chosen,
            tile_size=tile_size,
            columns=columns,
            include_original=not no_original,
            progress=progress,
        )
    save_image(image, output)


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
@max_pixels_option
@runtime_option
@handle_errors
def interpolate(photo, from_style, to_style, frames, grid, steps, output, model_path, max_size,
                duration, max_pixels, runtime):
    """Blend smoothly from one style to another, or between four styles on a grid.

    \b
    Examples:
      stylecbn interpolate photo.jpg --from 3 --to 12 --frames 24 -o anim.gif
      stylecbn interpolate photo.jpg --from starry_night --to great_wave -o frames/
      stylecbn interpolate photo.jpg --grid 0 3 7 12 --steps 5 -o grid.png
    """
    from stylecbn.media.sheets import blend_grid_sheet, labelled_sheet

    if grid and (from_style or to_style):
        fail("Use either --grid or --from/--to, not both.")
    if not grid and not (from_style and to_style):
        fail("Give --from and --to (or --grid with four styles).")
    check_output_not_input(output, photo)
    out = Path(output)
    is_folder = output != STDIO and out.is_dir()
    suffix = out.suffix.lower()
    if output != STDIO and not is_folder:
        check_image_output(output)
    if grid and is_folder:
        fail("--grid writes one image: give -o a file such as grid.png.")

    stylizer = load_stylizer(model_path, runtime=runtime)
    loaded = read_input(photo, max_pixels)
    if grid:
        corners = [stylizer.blend(c) for c in grid]
        with progress_bar("Blends", "cells") as progress:
            rows, _ = stylizer.blend_grid(loaded, corners, steps=steps, max_size=max_size or 256,
                                          progress=progress)
        save_image(blend_grid_sheet(rows, [c.label for c in corners]), output)
        return
    with progress_bar("Frames", "frames") as progress:
        images = stylizer.interpolate(loaded, from_style, to_style, frames=frames,
                                      max_size=max_size or 512, progress=progress)
    if is_folder:
        stem = Path(photo).stem if photo != STDIO else "stdin"
        for i, frame in enumerate(images):
            write_image(out / f"{stem}_{i:03d}.png", frame)
        click.echo(f"Wrote {len(images)} frames to {out}", err=True)
    elif output == STDIO or suffix in (".gif", ".webp"):
        fmt = "GIF" if output == STDIO else None
        if output == STDIO:
            write_image(stdout(), images, format=fmt, durations=duration)
        else:
            write_image(out, images, durations=duration)
            click.echo(f"Wrote {output}", err=True)
    else:
        ts = [i / (len(images) - 1) for i in range(len(images))]
        save_image(labelled_sheet(images, [f"{t:.2f}" for t in ts], columns=len(images)), output)

"""Many stylizations of one photo: a style sheet, an interpolation, a blend grid.

Functions of a `Stylizer` and one `StylizeOptions` (made and checked once, whose `max_size`
is the size of every tile, frame or cell), so that `stylecbn.applying.stylize` keeps to one
image at a time. `Stylizer.style_sheet`, `.interpolate` and `.blend_grid` call them with the
options made from `stylize`'s keyword arguments. `stylecbn.media.sheets` lays the results out.
"""

import dataclasses

import numpy as np

from stylecbn.applying.blend import Blend, mix, style_index
from stylecbn.errors import ConfigError, check_int
from stylecbn.media.reading import LoadedImage, read_image
from stylecbn.media.sheets import labelled_sheet

__all__ = ["style_sheet", "interpolate", "blend_grid"]


def style_sheet(stylizer, image, options, styles=None, columns=None, include_original=True,
                progress=None):
    """Every style (or the chosen ones) on one photo, each tile labelled "index name".

    Args:
        stylizer: the `Stylizer`.
        image: the photo (any `read_image` source).
        options: a `StylizeOptions`; its `max_size` is each tile's longest side.
        styles: the styles to show, each an index, a name or a `Blend` (a mix is
            labelled with its `label`); default all.
        columns: tiles per row; default about the square root of the count.
        include_original: put the unstyled photo first, labelled "original".
        progress: optional `callback(tiles_done, tiles_total)`, called after each style.

    Returns:
        An RGB PIL image.
    """
    if styles is None:
        styles = range(stylizer.num_styles)
    blends = [
        s if isinstance(s, Blend) else stylizer.blend(style_index(s, stylizer.model))
        for s in styles
    ]
    loaded = image if isinstance(image, LoadedImage) else read_image(
        image, max_pixels=stylizer.max_pixels)
    tiles, labels = [], []
    if include_original:  # strength 0, no mask: the photo at the tile size
        original = dataclasses.replace(options, strength=0.0, mask=None, mask_style=None)
        tiles.append(_paint(stylizer, loaded, 0, original))
        labels.append("original")
    for done, blend in enumerate(blends, 1):
        tiles.append(_paint(stylizer, loaded, blend, options))
        index = blend.index
        labels.append(blend.label if index is None else f"{index} {stylizer.style_names[index]}")
        _report(progress, done, len(blends))
    return labelled_sheet(tiles, labels, columns=columns)


def interpolate(stylizer, image, from_style, to_style, frames, options, progress=None):
    """Frames that move from one style (or blend) to another in equal weight steps.

    Args:
        stylizer: the `Stylizer`.
        image: the photo (any `read_image` source).
        from_style, to_style: `Blend`s or style specifications.
        frames: number of frames (>= 2), ends included.
        options: a `StylizeOptions`; its `max_size` is the frames' longest side.
        progress: optional `callback(frames_done, frames_total)`, called after each frame.

    Returns:
        A list of (H, W, 3) uint8 frames.
    """
    frames = check_int("frames", frames, minimum=2)
    start, end = stylizer.blend(from_style), stylizer.blend(to_style)
    loaded = image if isinstance(image, LoadedImage) else read_image(
        image, max_pixels=stylizer.max_pixels)
    images = []
    for t in np.linspace(0.0, 1.0, frames):
        blend = mix([(1 - t, start), (t, end)], stylizer.style_names)
        images.append(_paint(stylizer, loaded, blend, options))
        _report(progress, len(images), frames)
    return images


def blend_grid(stylizer, image, corners, steps, options, progress=None):
    """A steps x steps grid of bilinear blends between four styles at the corners.

    Args:
        stylizer: the `Stylizer`.
        image: the photo.
        corners: four `Blend`s or style specifications: top-left, top-right,
            bottom-left, bottom-right.
        steps: cells per side (>= 2).
        options: a `StylizeOptions`; its `max_size` is each cell's longest side.
        progress: optional `callback(cells_done, cells_total)`, called after each cell.

    Returns:
        (rows, blends): rows of (H, W, 3) uint8 images, and the matching `Blend`s.
    """
    if len(corners) != 4:
        raise ConfigError(f"a blend grid needs 4 corner styles; received {len(corners)}")
    steps = check_int("steps", steps, minimum=2)
    tl, tr, bl, br = (stylizer.blend(c) for c in corners)
    loaded = image if isinstance(image, LoadedImage) else read_image(
        image, max_pixels=stylizer.max_pixels)
    rows, blend_rows = [], []
    for v in np.linspace(0.0, 1.0, steps):
        row, blend_row = [], []
        for u in np.linspace(0.0, 1.0, steps):
            cell = mix(
                [((1 - v) * (1 - u), tl), ((1 - v) * u, tr), (v * (1 - u), bl), (v * u, br)],
                stylizer.style_names,
            )
            row.append(_paint(stylizer, loaded, cell, options))
            blend_row.append(cell)
            _report(progress, len(rows) * steps + len(row), steps ** 2)
        rows.append(row)
        blend_rows.append(blend_row)
    return rows, blend_rows


def _paint(stylizer, loaded, style, options):
    """One stylization of the photo: an (H, W, 3) uint8 array."""
    return stylizer._stylize_frames(loaded, style, options, first_only=True).frames[0]


def _report(progress, done, total):
    if progress is not None:
        progress(done, total)

"""Many stylizations of one photo: a style sheet, an interpolation, a blend grid.

These are `Stylizer` methods (`Stylizer.style_sheet`, `.interpolate`, `.blend_grid`), defined
here so that `stylecbn.applying.stylize` keeps to one image at a time; their first argument is the
`Stylizer`. `stylecbn.media.sheets` lays the results out.
"""

import numbers

import numpy as np

from stylecbn.applying.blend import Blend, mix, style_index
from stylecbn.errors import ConfigError
from stylecbn.media.reading import LoadedImage, read_image
from stylecbn.media.sheets import labelled_sheet

__all__ = ["style_sheet", "interpolate", "blend_grid"]


def style_sheet(
    stylizer, image, styles=None, tile_size=256, columns=None, include_original=True,
    progress=None, **options
):
    """Every style (or the chosen ones) on one photo, each tile labelled "index name".

    Args:
        stylizer: the `Stylizer` (this is its `style_sheet` method).
        image: the photo (any `read_image` source).
        styles: the styles to show, each an index, a name or a `Blend` (a mix is
            labelled with its `label`); default all.
        tile_size: longest side of each tile.
        columns: tiles per row; default about the square root of the count.
        include_original: put the unstyled photo first, labelled "original".
        progress: optional `callback(tiles_done, tiles_total)`, called after each style.
        **options: `strength`, `preserve_color` as in `stylize`.

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
    if include_original:
        tiles.append(stylizer.stylize(loaded, 0, strength=0.0, max_size=tile_size))
        labels.append("original")
    for done, blend in enumerate(blends, 1):
        tiles.append(stylizer.stylize(loaded, blend, max_size=tile_size, **options))
        index = blend.index
        labels.append(blend.label if index is None else f"{index} {stylizer.style_names[index]}")
        _report(progress, done, len(blends))
    return labelled_sheet(tiles, labels, columns=columns)

def interpolate(stylizer, image, from_style, to_style, frames=24, max_size=512, progress=None,
                **options):
    """Frames that move from one style (or blend) to another in equal weight steps.

    Args:
        image: the photo (any `read_image` source).
        from_style, to_style: `Blend`s or style specifications.
        frames: number of frames (>= 2), ends included.
        max_size: longest side of the frames.
        progress: optional `callback(frames_done, frames_total)`, called after each frame.
        **options: `strength`, `preserve_color` as in `stylize`.

    Returns:
        A list of (H, W, 3) uint8 frames.
    """
    if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 2:
        raise ConfigError(f"frames must be a whole number >= 2; received: {frames!r}")
    start, end = stylizer.blend(from_style), stylizer.blend(to_style)
    loaded = image if isinstance(image, LoadedImage) else read_image(
        image, max_pixels=stylizer.max_pixels)
    images = []
    for t in np.linspace(0.0, 1.0, int(frames)):
        blend = mix([(1 - t, start), (t, end)], stylizer.style_names)
        images.append(np.asarray(stylizer.stylize(loaded, blend, max_size=max_size, **options)))
        _report(progress, len(images), int(frames))
    return images

def blend_grid(stylizer, image, corners, steps=5, max_size=256, progress=None, **options):
    """A steps x steps grid of bilinear blends between four styles at the corners.

    Args:
        image: the photo.
        corners: four `Blend`s or style specifications: top-left, top-right,
            bottom-left, bottom-right.
        steps: cells per side (>= 2).
        max_size: longest side of each cell.
        progress: optional `callback(cells_done, cells_total)`, called after each cell.
        **options: `strength`, `preserve_color` as in `stylize`.

    Returns:
        (rows, blends): rows of (H, W, 3) uint8 images, and the matching `Blend`s.
    """
    if len(corners) != 4:
        raise ConfigError(f"a blend grid needs 4 corner styles; received {len(corners)}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
        raise ConfigError(f"steps must be a whole number >= 2; received: {steps!r}")
    tl, tr, bl, br = (stylizer.blend(c) for c in corners)
    loaded = image if isinstance(image, LoadedImage) else read_image(
        image, max_pixels=stylizer.max_pixels)
    rows, blend_rows = [], []
    for v in np.linspace(0.0, 1.0, int(steps)):
        row, blend_row = [], []
        for u in np.linspace(0.0, 1.0, int(steps)):
            cell = mix(
                [((1 - v) * (1 - u), tl), ((1 - v) * u, tr), (v * (1 - u), bl), (v * u, br)],
                stylizer.style_names,
            )
            row.append(np.asarray(stylizer.stylize(loaded, cell, max_size=max_size, **options)))
            blend_row.append(cell)
            _report(progress, len(rows) * int(steps) + len(row), int(steps) ** 2)
        rows.append(row)
        blend_rows.append(blend_row)
    return rows, blend_rows


def _report(progress, done, total):
    if progress is not None:
        progress(done, total)

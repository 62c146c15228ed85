"""Layouts for looking at styles: labelled contact sheets and blend grids, as PIL images.

Pure Pillow: the images come in as uint8 arrays or PIL images, already stylized.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["labelled_sheet", "blend_grid_sheet"]

PADDING = 6
BACKGROUND = "white"
TEXT_COLOR = "black"


def _font(size):
    """Pillow's default font at `size` px (a bitmap fallback where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError):
        return ImageFont.load_default()


def _pil(tile):
    return tile if isinstance(tile, Image.Image) else Image.fromarray(np.asarray(tile))


def _fit_text(draw, text, font, width):
    """`text`, shortened with "..." until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def labelled_sheet(tiles, labels, columns=None, font_size=14):
    """Tiles in a grid, each with its label underneath.

    Args:
        tiles: images (uint8 arrays or PIL images); cells are as large as the largest tile.
        labels: one string per tile (e.g. "3 starry").
        columns: tiles per row; default about the square root of the count.
        font_size: label height in pixels.

    Returns:
        An RGB PIL image.
    """
    if len(tiles) != len(labels):
        raise ValueError(f"{len(tiles)} tiles but {len(labels)} labels")
    if not tiles:
        raise ValueError("a sheet needs at least one tile")
    images = [_pil(t).convert("RGB") for t in tiles]
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    cell_w = max(im.width for im in images)
    cell_h = max(im.height for im in images)
    label_h = font_size + 6
    sheet = Image.new(
        "RGB",
        (columns * (cell_w + PADDING) + PADDING, rows * (cell_h + label_h + PADDING) + PADDING),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    font = _font(font_size)
    for i, (image, label) in enumerate(zip(images, labels)):
        x = PADDING + (i % columns) * (cell_w + PADDING)
        y = PADDING + (i // columns) * (cell_h + label_h + PADDING)
        sheet.paste(image, (x, y))
        text = _fit_text(draw, label, font, cell_w)
        draw.text((x, y + cell_h + 2), text, fill=TEXT_COLOR, font=font)
    return sheet


def blend_grid_sheet(rows, corner_labels, font_size=14):
    """A grid of blends with the four corner styles named above and below it.

    Args:
        rows: a list of rows, each a list of images of one size.
        corner_labels: labels of the top-left, top-right, bottom-left and bottom-right styles.
        font_size: label height in pixels.

    Returns:
        An RGB PIL image.
    """
    images = [[_pil(t).convert("RGB") for t in row] for row in rows]
    cell_w, cell_h = images[0][0].size
    n_rows, n_cols = len(images), len(images[0])
    label_h = font_size + 6
    width = n_cols * (cell_w + PADDING) + PADDING
    height = n_rows * (cell_h + PADDING) + PADDING + 2 * label_h
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(font_size)
    for r, row in enumerate(images):
        for c, image in enumerate(row):
            x = PADDING + c * (cell_w + PADDING)
            sheet.paste(image, (x, label_h + PADDING + r * (cell_h + PADDING)))
    half = width // 2 - PADDING
    top_left, top_right, bottom_left, bottom_right = (
        _fit_text(draw, label, font, half) for label in corner_labels
    )
    bottom_y = height - label_h + 2
    draw.text((PADDING, 2), top_left, fill=TEXT_COLOR, font=font)
    draw.text((width - PADDING, 2), top_right, fill=TEXT_COLOR, font=font, anchor="ra")
    draw.text((PADDING, bottom_y), bottom_left, fill=TEXT_COLOR, font=font)
    draw.text((width - PADDING, bottom_y), bottom_right, fill=TEXT_COLOR, font=font, anchor="ra")
    return sheet

"""Preview grids: held-out photos (rows) stylized with every style (columns).

The trainer writes one every few steps, so a run can be judged by eye while it trains.
"""

import numpy as np
from keras import ops

from stylecbn.media.writing import write_image

__all__ = ["preview_grid", "write_preview"]

# Grey line between tiles, so neighbouring stylizations don't run into each other.
_GAP = 2
_GAP_VALUE = 128


def preview_grid(network, photos, style_indices=None):
    """Stylize each photo with each style and tile the results.

    Args:
        network: a `StyleTransferNetwork`.
        photos: float32 array (N, S, S, 3) in [0, 1], e.g. `ContentPhotos.preview_photos(S)`.
        style_indices: the styles to show, in column order (default: all).

    Returns:
        uint8 array (N*S + (N-1)*gap, (1+K)*S + K*gap, 3): row i is photo i, then the photo
        in each style.

    Raises:
        ValueError: no photos, or photos that are not (N, S, S, 3).
    """
    photos = np.asarray(photos, dtype=np.float32)
    if photos.ndim != 4 or photos.shape[0] == 0 or photos.shape[-1] != 3:
        raise ValueError(f"photos must be a non-empty (N, S, S, 3) array; got {photos.shape}.")
    if style_indices is None:
        style_indices = range(network.num_styles)
    columns = [photos]
    for index in style_indices:
        labels = np.full((photos.shape[0],), index, dtype=np.int32)
        columns.append(ops.convert_to_numpy(network((photos, labels), training=False)))
    count, size = photos.shape[0], photos.shape[1]
    height = count * size + (count - 1) * _GAP
    width = len(columns) * photos.shape[2] + (len(columns) - 1) * _GAP
    grid = np.full((height, width, 3), _GAP_VALUE, dtype=np.uint8)
    for column, images in enumerate(columns):
        tiles = np.clip(np.round(np.asarray(images, np.float32) * 255), 0, 255).astype(np.uint8)
        left = column * (photos.shape[2] + _GAP)
        for row, tile in enumerate(tiles):
            top = row * (size + _GAP)
            grid[top:top + size, left:left + photos.shape[2]] = tile
    return grid


def write_preview(path, network, photos, style_indices=None):
    """Write `preview_grid(network, photos, style_indices)` as a PNG (atomically)."""
    write_image(path, preview_grid(network, photos, style_indices))

"""Preview grids: held-out photos (rows) stylized with every style (columns), labelled.

The trainer writes one every few steps, so a run can be judged by eye while it trains.
"""

import numpy as np
from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

from keras import ops

from stylecbn.media.sheets import labelled_sheet
from stylecbn.media.writing import write_image

__all__ = ["preview_grid", "write_preview"]

def preview_grid(network, photos, style_indices=None):
    """Stylize each photo with each style and lay the results out, each tile labelled as
    `stylecbn sheet` labels its tiles ("original", then "index name").

    Args:
        network: a `StyleTransferNetwork`.
        photos: float32 array (N, S, S, 3) in [0, 1], e.g. `ContentPhotos.preview_photos(S)`.
        style_indices: the styles to show, in column order (default: all).

    Returns:
        uint8 array (H, W, 3), a `stylecbn.media.sheets.labelled_sheet`: row i is photo i,
        then the photo in each style.

    Raises:
        ValueError: no photos, or photos that are not (N, S, S, 3).
    """
    photos = np.asarray(photos, dtype=np.float32)
    if photos.ndim != 4 or photos.shape[0] == 0 or photos.shape[-1] != 3:
        raise ValueError(f"photos must be a non-empty (N, S, S, 3) array; got {photos.shape}.")
    style_indices = list(range(network.num_styles) if style_indices is None else style_indices)
    columns = [photos]
    for index in style_indices:
        labels = np.full((photos.shape[0],), index, dtype=np.int32)
        columns.append(ops.convert_to_numpy(network((photos, labels), training=False)))
    columns = [np.clip(np.round(np.asarray(c, np.float32) * 255), 0, 255).astype(np.uint8)
               for c in columns]
    names = ["original"] + [f"{i} {network.style_names[i]}" for i in style_indices]
    tiles = [column[row] for row in range(photos.shape[0]) for column in columns]
    return np.asarray(labelled_sheet(tiles, names * photos.shape[0], columns=len(columns)))


def write_preview(path, network, photos, style_indices=None):
    """Write `preview_grid(network, photos, style_indices)` as a PNG (atomically)."""
    write_image(path, preview_grid(network, photos, style_indices))

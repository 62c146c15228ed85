"""What the network is conditioned on, pixel by pixel and frame by frame.

- `StyleField`: one `Blend` everywhere, or two mixed by a mask. The network mixes gamma/beta
  per pixel in every layer (`mask * inside + (1 - mask) * outside`), so the two styles meet
  without a pasted seam.
- `load_mask`: a mask image (white = inside, soft edges allowed) as a map at the photo's size.
- `morph`: a style that travels over the frames of a video or an animation, in equal steps.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image

from stylecbn.applying.blend import Blend, mix
from stylecbn.media.reading import LoadedImage, read_image
from stylecbn.applying.flicker import shift_for_grid, warp_to

__all__ = ["StyleField", "load_mask", "morph"]


def load_mask(mask, size):
    """A (H, W) float32 map in [0, 1] from a mask image, resized to `size` = (width, height)."""
    loaded = mask if isinstance(mask, LoadedImage) else read_image(mask, name=None)
    gray = Image.fromarray(loaded.frames[0]).convert("L")
    if gray.size != size:
        gray = gray.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.float32) / 255.0


def morph(start, end, index, count, style_names):
    """The blend of frame `index` of `count`, moving from `start` to `end` in equal steps."""
    if end is start:
        return start
    t = min(1.0, index / max(1, count - 1))
    return mix([(1.0 - t, start), (t, end)], style_names)


@dataclass(frozen=True)
class StyleField:
    """What the network is conditioned on: one blend, or two blends mixed by a mask.

    Per-pixel weights are `mask * inside + (1 - mask) * outside`; `mask` None means `outside`
    everywhere.

    Attributes:
        outside: the `Blend` outside the mask (everywhere without one).
        inside: the `Blend` inside the mask, or None.
        mask: (H, W) float32 in [0, 1] at the photo's size, or None.
    """

    outside: Blend
    inside: Blend | None = None
    mask: np.ndarray | None = None

    def shifted(self, top, left):
        """The field for a photo shifted by `stylecbn.applying.flicker.shift_for_grid`."""
        if self.mask is None:
            return self
        return StyleField(self.outside, self.inside, shift_for_grid(self.mask, top, left))

    def warped(self, matrix):
        """The field for a photo drawn through `stylecbn.applying.flicker.warp_to`."""
        if self.mask is None:
            return self
        return StyleField(self.outside, self.inside,
                          np.clip(warp_to(self.mask, matrix), 0.0, 1.0).astype(np.float32))

    def network_input(self):
        """The network's style input: (1, num_styles) or per-pixel (1, H, W, num_styles)."""
        if self.mask is None:
            return self.outside.vector[None]
        m = self.mask[..., None]
        return (m * self.inside.vector + (1.0 - m) * self.outside.vector)[None].astype(np.float32)

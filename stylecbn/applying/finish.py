"""What becomes of the network's output before it is a picture: colour and strength.

- **Preserve colour**: luminance-only transfer (Gatys et al. 2017): the output's Y channel
  with the photo's Cb and Cr (full-range BT.601 YCbCr, as in JPEG).
- **Strength** (0..1): a pixel-space mix, `out = strength * stylized + (1 - strength) * photo`.
  The network has no "identity" style to interpolate its gamma/beta towards (every style
  row was trained to paint), so mixing in style space cannot reach the photo at 0; the pixel
  mix is exact at both ends and linear in between.
"""


import numpy as np

from stylecbn.errors import check_number

__all__ = ["preserve_colors", "check_strength", "finish"]

# Full-range BT.601 (JPEG) RGB -> YCbCr; Cb and Cr are centred on 0 here.
_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=np.float32,
)
_FROM_YCBCR = np.linalg.inv(_TO_YCBCR).astype(np.float32)


def preserve_colors(stylized, photo):
    """Luminance-only transfer: Y from `stylized`, Cb and Cr from `photo`.

    Args:
        stylized, photo: (H, W, 3) float32 RGB in [0, 1] of one size.

    Returns:
        (H, W, 3) float32 RGB in [0, 1].
    """
    luma = stylized @ _TO_YCBCR[0]
    chroma = photo @ _TO_YCBCR[1:].T
    ycbcr = np.concatenate([luma[..., None], chroma], axis=-1)
    return np.clip(ycbcr @ _FROM_YCBCR.T, 0.0, 1.0)


def check_strength(strength):
    """`strength` as a float, or ConfigError unless it is a number from 0 to 1."""
    return check_number(
        "strength", strength, minimum=0, maximum=1, hint="0 the photo, 1 the full style"
    )


def finish(styled, photo, strength, preserve_color):
    """The uint8 picture from the network's output `styled` and the `photo` it was given
    (both (H, W, 3) float32 in [0, 1]): colour kept if asked, then mixed by `strength`."""
    if preserve_color:
        styled = preserve_colors(styled, photo)
    if strength < 1.0:
        styled = strength * styled + (1.0 - strength) * photo
    return np.clip(np.rint(styled * 255.0), 0, 255).astype(np.uint8)

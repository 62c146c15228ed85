"""A small synthetic photo drawn in code: the picture of README's quick start and of the web
page's style thumbnails.

Drawn rather than shipped so that the package carries no third-party photo and a new user
has a photo to stylize before finding one of their own: a sky, a sun, two mountain ranges, a
lake with a reflection and a shore with trees, with a little deterministic noise for texture.

    python -m stylecbn.media.sample photo.png [WIDTH HEIGHT]   # default 384 x 256
"""

import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stylecbn.media.writing import write_image


def sample_photo(width=384, height=256):
    """The sample landscape as an (height, width, 3) uint8 RGB array (the same every call)."""
    # Drawn at a fixed size and resized, so every size shows the same picture.
    base_w, base_h = 768, 512
    y = np.linspace(0.0, 1.0, base_h)[:, None, None]
    sky = (1 - y) * np.array([70, 120, 200]) + y * np.array([250, 200, 150])
    image = Image.fromarray(np.broadcast_to(sky, (base_h, base_w, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((520, 90, 610, 180), fill=(255, 236, 170))
    xs = np.arange(0, base_w + 16, 16)
    far = 250 - 70 * np.sin(xs / 90.0) ** 2 - 30 * np.cos(xs / 37.0)
    near = 320 - 50 * np.sin(xs / 140.0 + 1.0) ** 2 - 18 * np.sin(xs / 23.0)
    draw.polygon([(0, 360), *zip(xs, far), (base_w, 360)], fill=(96, 110, 150))
    draw.polygon([(0, 360), *zip(xs, near), (base_w, 360)], fill=(58, 92, 70))
    # The lake mirrors the upper picture, darkened and bluer.
    above = np.asarray(image)[360 - 150 : 360][::-1].astype(np.float32)
    lake = np.clip(above * np.array([0.6, 0.7, 0.85]) + np.array([0, 10, 30]), 0, 255)
    pixels = np.array(image)
    pixels[360:510] = lake.astype(np.uint8)
    pixels[510:] = (60, 80, 50)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 440, base_w, base_h), fill=(84, 120, 60))
    for x, h in ((40, 120), (95, 90), (150, 140), (620, 110), (690, 150), (735, 95)):
        draw.rectangle((x - 5, 450 - h // 4, x + 5, 455), fill=(80, 55, 35))
        draw.polygon([(x - 32, 450 - h // 4), (x, 450 - h), (x + 32, 450 - h // 4)],
                     fill=(30, 75, 45))
    draw.rectangle((330, 390, 430, 450), fill=(200, 180, 150))
    draw.polygon([(320, 392), (380, 345), (440, 392)], fill=(150, 60, 50))
    draw.rectangle((370, 415, 390, 450), fill=(90, 60, 40))
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    noise = np.random.default_rng(0).normal(0.0, 6.0, (base_h, base_w, 1))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    resized = Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(resized).copy()


def main(argv):
    if len(argv) not in (1, 3) or not all(a.isdigit() and int(a) >= 16 for a in argv[1:]):
        print("usage: python -m stylecbn.media.sample PHOTO.png [WIDTH HEIGHT] (sides >= 16 px)",
              file=sys.stderr)
        return 2
    size = [int(a) for a in argv[1:]] or [384, 256]
    write_image(argv[0], sample_photo(*size))
    print(f"Wrote {argv[0]} ({size[0]}x{size[1]}, a landscape drawn in code)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

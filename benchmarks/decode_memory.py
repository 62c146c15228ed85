"""Peak memory of `stylecbn.media.reading.read_image` per decoded pixel, for each kind of input.

The reader's pixel limit (`stylecbn.media.reading.DECODE_BYTES_PER_PIXEL`) divides the machine's free
memory by the worst of these figures. Each case is written to a file, then read in a fresh
process whose peak resident memory (VmHWM in /proc/self/status, so Linux only) is taken
before and after the read; the difference over the pixel count is the figure. Pillow's
`Image.open` alone is the baseline (printed as "open only"):

    python benchmarks/decode_memory.py [--size 3000x2000]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

# The child's peak comes from /proc/self/status (VmHWM): ru_maxrss would carry the parent's
# peak over fork and exec, and hide a smaller one.
CHILD = """
import sys
from PIL import Image
from stylecbn.media.reading import read_image

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

path, read = sys.argv[1], sys.argv[2] == "read"
before = peak()
if read:
    loaded = read_image(path)
else:
    Image.open(path).close()
print(peak() - before)
"""


def cases(width, height):
    rng = np.random.default_rng(0)
    # Smooth content compresses like a photo; a little noise keeps it from being trivial.
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    rgb = np.clip(ramp + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
    alpha = np.full((height, width, 1), 128, np.uint8)
    yield "rgb.png", Image.fromarray(rgb), {}
    yield "rgba.png", Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA"), {}
    yield "rgb.jpg", Image.fromarray(rgb), {"quality": 90}
    yield "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), {"quality": 90}
    yield "gray16.png", Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), {}
    yield "palette.gif", Image.fromarray(rgb).quantize(256), {"transparency": 0}
    yield "rgb.tif", Image.fromarray(rgb), {}


def peak(path, mode):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True,
        check=True,
    )
    return int(result.stdout.strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="3000x2000", help="WIDTHxHEIGHT of the test images")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    pixels = width * height
    print(f"{width}x{height} = {pixels / 1e6:.1f} megapixels")
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for name, image, options in cases(width, height):
            path = Path(folder) / name
            image.save(path, **options)
            baseline = peak(path, "open")
            read = peak(path, "read")
            per_pixel = read / pixels
            worst = max(worst, per_pixel)
            print(f"{name:12s} open only {baseline / pixels:5.1f} B/px   "
                  f"read_image {per_pixel:5.1f} B/px")
    print(f"worst: {worst:.1f} bytes per pixel")


if __name__ == "__main__":
    main()

"""Write what the GPU machine needs: resized photos, compact VGG weights, Keras wheels.

    python tools/bundle.py --content ../shared/data/content -o bundle/ [--weights auto]
                           [--size 288] [--no-wheels]

The GPU machine takes at most 64 MiB beside the working tree and has JAX but neither Keras
nor TensorFlow (see docs/gpu.md). The bundle folder gets the content photos resized to a
`--size` px shorter side (`content/`), the loss network's VGG-16 weights to block4 as a
float16 .npz (`vgg16_block4.npz`) and the keras, namex and optree wheels for that machine
(`wheels/`, the versions installed here). Bad input is a one-line `Error:` and exit code 2.
"""

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylecbn.backend import start_quietly  # noqa: E402
from stylecbn.errors import StylecbnError  # noqa: E402

# The wheels that Keras needs on the GPU machine (it has JAX, but neither Keras nor TensorFlow).
GPU_WHEELS = ("keras", "namex", "optree")
GPU_PYTHON = "3.12"
GPU_PLATFORM = "manylinux_2_28_x86_64"
LIMIT_BYTES = 64 * 2**20
EXIT_BAD_INPUT = 2


class BundleError(Exception):
    """A problem with the bundle itself (its folder, its size, the wheel download)."""


def write_bundle(content, output, weights="auto", size=288, wheels=True, echo=print):
    """Write the bundle folder; return its size in bytes.

    Raises:
        BundleError, StylecbnError: what went wrong, with what to do.
    """
    from stylecbn.training.photos import write_resized_photos
    from stylecbn.perceptual.vgg import write_compact_weights

    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BundleError(
            f"cannot create the bundle folder {output}: {error.strerror or error}."
        ) from None
    count, photo_bytes = write_resized_photos(content, output / "content", size=size)
    echo(f"{output / 'content'}: {count} photos, {photo_bytes / 2**20:.1f} MiB")
    weights_path = output / "vgg16_block4.npz"
    weights_bytes = write_compact_weights(weights, weights_path)
    echo(f"{weights_path}: {weights_bytes / 2**20:.1f} MiB")
    total = photo_bytes + weights_bytes
    if wheels:
        total += download_wheels(output / "wheels", echo)
    echo(f"bundle {output}: {total / 2**20:.1f} MiB in all (the GPU machine takes 64 MiB)")
    if total > LIMIT_BYTES:
        raise BundleError(
            f"the bundle is {total / 2**20:.1f} MiB, over the 64 MiB the GPU machine takes; "
            "use fewer photos or a smaller --size."
        )
    return total


def download_wheels(folder, echo=print):
    """pip-download the GPU machine's wheels (same versions as here); return their bytes."""
    requirements = []
    for name in GPU_WHEELS:
        try:
            requirements.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            requirements.append(name)
    command = [
        sys.executable, "-m", "pip", "download", "--only-binary=:all:",
        "--python-version", GPU_PYTHON, "--platform", GPU_PLATFORM, "--no-deps",
        "--dest", str(folder), *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BundleError(
            f"pip download of {', '.join(requirements)} failed ({last}); check the network "
            "or pass --no-wheels and carry the wheels yourself."
        )
    wheels = [path for path in folder.glob("*.whl")
              if path.name.split("-")[0].lower() in GPU_WHEELS]
    size = sum(path.stat().st_size for path in wheels)
    echo(f"{folder}: {', '.join(sorted(path.name for path in wheels))} "
         f"({size / 2**20:.1f} MiB)")
    return size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, required=True,
                        help="folder of content photos to carry (resized)")
    parser.add_argument("-o", "--output", type=Path, default=Path("bundle"),
                        help="the bundle folder (default: bundle)")
    parser.add_argument("--weights", default="auto",
                        help="VGG-16 weights for the compact .npz: auto, imagenet, hed or a "
                             "file (default: auto)")
    parser.add_argument("--size", type=int, default=288,
                        help="shorter side of the resized photos (default: 288)")
    parser.add_argument("--wheels", action=argparse.BooleanOptionalAction, default=True,
                        help="download the keras, namex and optree wheels for the GPU machine "
                             "(default: on)")
    args = parser.parse_args(argv)
    start_quietly()  # as the stylecbn command does: no native start-up chatter
    try:
        write_bundle(args.content, args.output, args.weights, args.size, args.wheels)
    except (BundleError, StylecbnError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())

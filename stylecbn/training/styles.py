"""Training data, part one: the styles folder (and the decoding shared with the photos).

NumPy and Pillow only (no TensorFlow), so the same code feeds the TensorFlow and the JAX
backends, and runs on the accelerator machine where TensorFlow is not installed.

- `load_styles_folder` reads a folder of style images plus an optional manifest
  (`styles.toml` or `styles.json`) into `StyleSpec`s; `load_style_image` loads one for its Gram
  matrices.
- `read_rgb` decodes one training image like `stylecbn apply` reads its inputs;
  `map_threads` decodes many on a few threads.
- The content photos (the in-memory crop pipeline and the resized copies for the accelerator
  machine) are in `stylecbn.training.photos`.
"""

import concurrent.futures
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from stylecbn.errors import (
    ConfigError, DataError, ImageError, StylecbnWarning, check_int, check_number, shorten,
)
from stylecbn.media.reading import IMAGE_SUFFIXES, looks_like_image, read_image

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

MANIFEST_NAMES = ("styles.toml", "styles.json")
DEFAULT_STYLE_SIZE = 512
MIN_STYLE_SIZE = 16

_MANIFEST_KEYS = ("file", "name", "credit", "weight", "size")


@dataclass
class StyleSpec:
    """One style of a styles folder.

    Args:
        name: the style's name (the file stem unless the manifest says otherwise).
        path: the style image.
        credit: who made the image, for the model file and previews.
        coefficient: the multiplier of this style's style loss (the manifest's `weight`).
        size: the longer side, in pixels, at which its Gram matrices are computed.
    """

    name: str
    path: Path
    credit: str = ""
    coefficient: float = 1.0
    size: int = DEFAULT_STYLE_SIZE

    def __post_init__(self):
        self.path = Path(self.path)


# ----------------------------------------------------------------------------- decoding


def read_rgb(path, min_side=None):
    """Decode an image file into an upright (H, W, 3) uint8 RGB array.

    Decoding itself is `stylecbn.media.reading.read_image` (EXIF orientation, alpha on white, 16-bit
    and other modes, the pixel limit, incomplete files refused), so style and content images
    are read like `stylecbn apply` inputs.

    Args:
        path: the image file.
        min_side: when given, JPEGs may be decoded at a reduced scale (Pillow's `draft`) as long
            as both sides stay at least this many pixels; several times faster for large photos.

    Returns:
        (H, W, 3) uint8 array.

    Raises:
        DataError: the file is missing, not an image, truncated or otherwise unreadable.
    """
    try:
        return read_image(path, reduce_to=min_side).frames[0]
    except ImageError as error:
        raise DataError(f"{error}; replace or remove the file") from error


def map_threads(function, items):
    """`function` over `items` on a few threads (Pillow releases the GIL while decoding)."""
    workers = max(1, min(8, os.cpu_count() or 1, len(items)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


# ----------------------------------------------------------------------------- styles folder


def load_styles_folder(folder):
    """Read a folder of style images and its optional manifest.

    The images directly in `folder` (not in subfolders), sorted by file name, are the styles;
    their order gives the style indices. Names are the file stems unless the manifest
    (`styles.toml` or `styles.json` in the folder) says otherwise; images that the manifest
    does not mention are still used, with the defaults. Other files (a script, notes) are
    ignored; one that is an image under another suffix is skipped with a warning.
    Every image is decoded once here, so a broken one fails now rather than mid-training.

    Args:
        folder: the styles folder.

    Returns:
        A list of `StyleSpec`, in style-index order.

    Raises:
        DataError: the folder is missing or holds no images; an image is unreadable; the
            manifest is invalid, names a missing file, or two styles share a name.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"styles folder {folder} does not exist; pass a folder of style images")
    if not folder.is_dir():
        raise DataError(f"styles folder {folder} is not a folder; pass a folder of style images")

    images = []
    for path in sorted(folder.iterdir(), key=lambda path: path.name):
        if path.name in MANIFEST_NAMES or path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        elif looks_like_image(path):  # other files (scripts, notes) are not meant as styles
            warnings.warn(
                f"skipping {path} in the styles folder: it is an image, but its suffix "
                f"{path.suffix or '(none)'} is not one of {', '.join(sorted(IMAGE_SUFFIXES))}; "
                "rename it to use it as a style",
                StylecbnWarning,
                stacklevel=2,
            )
    if not images:
        raise DataError(
            f"styles folder {folder} holds no images; add style images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))})"
        )

    entries = _read_manifest(folder, {path.name for path in images})
    specs = []
    for path in images:
        entry = entries.get(path.name, {})
        specs.append(StyleSpec(
            name=entry.get("name", path.stem),
            path=path,
            credit=entry.get("credit", ""),
            coefficient=float(entry.get("weight", 1.0)),
            size=entry.get("size", DEFAULT_STYLE_SIZE),
        ))

    first_file_of = {}
    for spec in specs:
        _check_style_name(spec, folder)
        if spec.name in first_file_of:
            raise DataError(
                f"styles {first_file_of[spec.name]} and {spec.path.name} in {folder} have the "
                f"same name {spec.name!r}; rename a file or give it a name in the manifest"
            )
        first_file_of[spec.name] = spec.path.name

    for spec in specs:
        read_rgb(spec.path, min_side=spec.size)
    return specs


def _check_style_name(spec, folder):
    """Refuse names that a style specification would read as something else: a whole number is always an
    index, ':' and ',' make a blend, and blank or padded names or control characters cannot
    be typed back."""
    name = spec.name
    problem = None
    if name.strip().lstrip("-").isdigit():
        problem = "is a whole number, which a style specification always reads as an index"
    elif ":" in name or "," in name:
        problem = "contains ':' or ',', which a style specification reads as a blend"
    elif not name.strip() or name != name.strip():
        problem = "is blank or starts or ends with spaces"
    elif not name.isprintable():  # escape sequences would reach the terminal that lists it
        problem = "contains a control character (an escape, a newline, a tab)"
    if problem:
        raise DataError(
            f"style {spec.path.name} in {folder}: its name {shorten(name)} {problem}; rename "
            "the file or give it another name in the manifest (styles.toml: name = \"...\")"
        )


def _read_manifest(folder, image_names):
    """The manifest's entries keyed by file name ({} without a manifest), checked."""
    manifests = [folder / name for name in MANIFEST_NAMES if (folder / name).is_file()]
    if not manifests:
        return {}
    if len(manifests) > 1:
        raise DataError(
            f"styles folder {folder} has both styles.toml and styles.json; keep only one"
        )
    manifest = manifests[0]
    try:
        if manifest.suffix == ".toml":
            document = tomllib.loads(manifest.read_text(encoding="utf-8"))
        else:
            document = json.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(
            f"manifest {manifest} is not valid {manifest.suffix[1:]}: {error}"
        ) from error

    if not isinstance(document, dict) or set(document) - {"style"}:
        raise DataError(
            f"manifest {manifest} must hold only a list of styles under the key 'style' "
            "([[style]] tables in toml, {\"style\": [...]} in json)"
        )
    styles = document.get("style", [])
    if not isinstance(styles, list):
        raise DataError(f"manifest {manifest}: 'style' must be a list of tables")

    entries = {}
    for number, entry in enumerate(styles, start=1):
        where = f"manifest {manifest}, style entry {number}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected a table with a 'file' key, got {entry!r}")
        unknown = sorted(set(entry) - set(_MANIFEST_KEYS))
        if unknown:
            raise DataError(
                f"{where}: unknown key(s) {', '.join(unknown)}; "
                f"allowed keys are {', '.join(_MANIFEST_KEYS)}"
            )
        file = entry.get("file")
        if not isinstance(file, str) or not file:
            raise DataError(f"{where}: 'file' (the image's file name) is required")
        where = f"manifest {manifest}, entry for {file!r}"
        if Path(file).name != file:
            raise DataError(f"{where}: 'file' must be a file name directly in {folder}")
        if file in entries:
            raise DataError(f"{where}: the file is listed twice; keep one entry")
        if file not in image_names:
            if (folder / file).is_file():
                raise DataError(f"{where}: not an image; list only style images")
            raise DataError(f"{where}: {folder / file} does not exist; fix the name or add it")
        _check_manifest_values(entry, where)
        entries[file] = entry
    return entries


def _check_manifest_values(entry, where):
    """Check the types and ranges of one manifest entry's optional values."""
    if "name" in entry and (not isinstance(entry["name"], str) or not entry["name"].strip()):
        raise DataError(f"{where}: 'name' must be a non-empty string, got {entry['name']!r}")
    if "credit" in entry and not isinstance(entry["credit"], str):
        raise DataError(f"{where}: 'credit' must be a string, got {entry['credit']!r}")
    try:
        if "weight" in entry:
            check_number("weight", entry["weight"], above=0)
        if "size" in entry:
            check_int("size", entry["size"], minimum=MIN_STYLE_SIZE, hint="in pixels")
    except ConfigError as exc:
        raise DataError(f"{where}: {exc}") from None


def load_style_image(spec):
    """Load a style image for its Gram matrices.

    Args:
        spec: the style.

    Returns:
        float32 array (H, W, 3) in [0, 1] whose longer side is `spec.size`.

    Raises:
        DataError: the image is missing or unreadable.
    """
    image = read_rgb(spec.path, min_side=spec.size)
    height, width = image.shape[:2]
    scale = spec.size / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != (width, height):
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    return image.astype(np.float32) / np.float32(255)

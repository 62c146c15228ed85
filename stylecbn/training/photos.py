"""Training data, part two: the content photos.

NumPy and Pillow only (no TensorFlow), like `stylecbn.training.styles`.

- `ContentPhotos` decodes every content photo once into an in-memory uint8 cache; `batch` then
  cuts random crops and flips from that cache, as a pure function of `(seed, step)`, so a resumed
  run sees exactly the batches an uninterrupted one would.
- `write_resized_photos` writes a small JPEG copy of a content folder, for carrying to the
  accelerator machine.
"""

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from stylecbn.training.styles import map_threads, read_rgb
from stylecbn.errors import DataError, StylecbnWarning, check_int
from stylecbn.fileio import atomic_path
from stylecbn.media.reading import IMAGE_SUFFIXES, image_size
from stylecbn.memory import format_bytes
from stylecbn.media.pixels import center_square

__all__ = ["ContentPhotos", "write_resized_photos", "MIN_CROP"]

MIN_CROP = 16

# Random streams are keyed np.random.default_rng([seed, step, tag]). The crops use the bare
# [seed, step]; a trailing 0 tag would give the same stream as that, so tags start at 1.
_LABEL_TAG = 1
_HOLDOUT_TAG = 2


def _resize_shorter_side(photo, side):
    """Resize a uint8 image array so that its shorter side is `side` pixels, aspect kept."""
    height, width = photo.shape[:2]
    scale = side / min(width, height)
    size = (max(side, round(width * scale)), max(side, round(height * scale)))
    if size == (width, height):
        return photo
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))


def _scan_photos(folder):
    """All image files under `folder` (recursive, case-insensitive suffixes), in sorted order."""
    paths = [
        path for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    return sorted(paths, key=lambda path: path.relative_to(folder).as_posix())


def _check_content_folder(folder):
    folder = Path(folder)
    if not folder.exists():
        raise DataError(
            f"content folder {folder} does not exist; pass a folder of photos "
            "(JPEG, PNG, WebP, GIF, BMP or TIFF, searched recursively)"
        )
    if not folder.is_dir():
        raise DataError(f"content folder {folder} is not a folder; pass a folder of photos")
    return folder






# At most 1 photo in HOLDOUT_SHARE is held out for previews: a small folder keeps most of its
# photos for training (6 photos with --holdout 4 would otherwise train on 2).
HOLDOUT_SHARE = 4


class ContentPhotos:
    """Content photos decoded once into memory, served as random crops.

    Every photo under `folder` is decoded at construction, resized so that its shorter side is
    `resize`, and kept as uint8 (training photos also as mirror images, for fast flips).
    `batch(step, ...)` then cuts random crops with random horizontal flips from the training
    photos without decoding anything; it depends only on `(seed, step)`, so a resumed run sees
    the same batches as an uninterrupted one.
    `holdout` photos, picked from `seed`, never appear in batches: they are for previews.

    Args:
        folder: the content folder, searched recursively for JPEG, PNG, WebP, GIF, BMP and TIFF.
        crop: side of the square training crops.
        resize: shorter side of the cached photos; default `round(crop * 1.125)`. Never less
            than `crop`. Photos whose shorter side is below `crop` are skipped with a warning
            (enlarging them would only blur the crops and cost memory).
        holdout: how many photos to keep for previews; at most a quarter of the photos
            (`HOLDOUT_SHARE`), so that most stay for training: fewer are held out where the
            folder is small (with a warning saying how many).
        seed: seed of the held-out choice and of every batch.
        max_photos: use at most this many photos, evenly spaced through the sorted list.
        max_bytes: the memory the cached photos may take (None: no limit); estimated from the
            photos' headers before anything is decoded.

    Attributes:
        paths: the training photos' files, sorted.
        holdout_paths: the held-out photos' files, in the order of `preview_photos`.
        resize: the shorter side of the cached photos.

    Raises:
        DataError: the folder is missing, holds no readable photos, none as large as `crop`,
            or more than `max_bytes` of them.
        ConfigError: an argument is out of range.
    """

    def __init__(self, folder, *, crop=256, resize=None, holdout=4, seed=0, max_photos=None,
                 max_bytes=None):
        crop = check_int("crop", crop, minimum=MIN_CROP)
        if resize is not None:
            resize = check_int("resize", resize, minimum=1)
        holdout = check_int("holdout", holdout, minimum=0)
        seed = check_int("seed", seed, minimum=0)
        if max_photos is not None:
            max_photos = check_int("max_photos", max_photos, minimum=1)
        folder = _check_content_folder(folder)

        self.folder = folder
        self.crop = crop
        self.resize = max(crop, round(crop * 1.125) if resize is None else resize)
        self.seed = seed

        paths = _scan_photos(folder)
        if not paths:
            raise DataError(
                f"content folder {folder} holds no photos; add JPEG, PNG, WebP, GIF, BMP or TIFF "
                "files (subfolders are searched too)"
            )
        if max_photos is not None and max_photos < len(paths):
            picks = np.linspace(0, len(paths) - 1, max_photos).round().astype(int)
            paths = [paths[i] for i in picks]
        paths = self._large_enough(folder, paths)
        if max_bytes is not None:
            self._check_memory(folder, paths, max_bytes)

        def decode(path):
            try:
                return _resize_shorter_side(read_rgb(path, min_side=self.resize), self.resize)
            except DataError as error:
                return error

        photos, kept = [], []
        for path, result in zip(paths, map_threads(decode, paths)):
            if isinstance(result, DataError):
                warnings.warn(f"skipping content photo: {result}", StylecbnWarning, stacklevel=2)
            else:
                photos.append(result)
                kept.append(path)
        if not photos:
            raise DataError(
                f"content folder {folder}: none of its {len(paths)} photos could be read"
            )

        held = min(holdout, len(photos) // HOLDOUT_SHARE)
        if held < holdout:
            previews = f"holding out {held} for previews" if held else "no previews"
            warnings.warn(
                f"{len(photos)} content photo(s) in {folder}: {previews} instead of {holdout}, "
                f"so that at least {HOLDOUT_SHARE - 1} in {HOLDOUT_SHARE} stay for training",
                StylecbnWarning,
                stacklevel=2,
            )
        rng = np.random.default_rng([seed, 0, _HOLDOUT_TAG])
        held_out = set(rng.choice(len(photos), size=held, replace=False).tolist())
        self._train = [photo for i, photo in enumerate(photos) if i not in held_out]
        # Mirror images kept beside the photos: cropping a flipped view directly runs NumPy's
        # inner loop over 3-byte pixels and makes batch() about twice as slow (measured by
        # benchmarks/data_throughput.py); the copies double the cache instead.
        self._train_mirrored = [np.ascontiguousarray(photo[:, ::-1]) for photo in self._train]
        self._holdout = [photo for i, photo in enumerate(photos) if i in held_out]
        self.paths = [path for i, path in enumerate(kept) if i not in held_out]
        self.holdout_paths = [path for i, path in enumerate(kept) if i in held_out]
        # Per-photo ranges of valid crop corners, for drawing corners without a Python loop.
        self._corner_ranges = np.array(
            [(photo.shape[0] - crop + 1, photo.shape[1] - crop + 1) for photo in self._train]
        )

    def __len__(self):
        """The number of training photos (held-out ones excluded)."""
        return len(self._train)

    def _large_enough(self, folder, paths):
        """The photos at least `crop` on their shorter side (from their headers); the others
        are skipped with a warning, and none left is an error saying what crop would do."""
        sizes = dict(zip(paths, map_threads(image_size, paths)))
        kept = []
        for path in paths:
            size = sizes[path]
            if size is not None and min(size) < self.crop:
                warnings.warn(
                    f"skipping content photo {path}: it is {size[0]}x{size[1]} px, smaller than "
                    f"the {self.crop} px crops",
                    StylecbnWarning,
                    stacklevel=3,
                )
            else:
                kept.append(path)
        if not kept:
            largest = max(min(size) for size in sizes.values() if size is not None)
            raise DataError(
                f"`crop` {self.crop} is larger than every photo in {folder} (the largest "
                f"shorter side is {largest} px); use a `crop` of {largest} or less, or larger "
                "photos"
            )
        self._sizes = sizes
        return kept

    def _check_memory(self, folder, paths, max_bytes):
        """Refuse before decoding when the cache would not fit in `max_bytes`."""
        pixels = 0
        for path in paths:
            width, height = self._sizes.get(path) or (self.resize, self.resize)
            pixels += self.resize * round(self.resize * max(width, height) / min(width, height))
        needed = pixels * 3 * 2  # uint8 RGB, and a mirrored copy of the training photos
        if needed > max_bytes:
            raise DataError(
                f"the {len(paths)} content photos of {folder}, resized to {self.resize} px on "
                f"their shorter side for {self.crop} px crops, need about "
                f"{format_bytes(needed)} of memory, more than the {format_bytes(max_bytes)} "
                "left for them; use a smaller `crop` or fewer photos"
            )

    @property
    def nbytes(self):
        """Memory of the photo cache (mirror images of the training photos included), in bytes."""
        return sum(photo.nbytes for photo in self._train + self._train_mirrored + self._holdout)

    def batch(self, step, batch_size):
        """A batch of random crops, horizontally flipped at random, from the training photos.

        A pure function of `(seed, step)`: `np.random.default_rng([seed, step])` picks the
        photos, the crop corners and the flips.

        Args:
            step: the training step (>= 0).
            batch_size: the number of crops.

        Returns:
            uint8 array (batch_size, crop, crop, 3): the pixels as decoded. The trainer scales
            them to [0, 1] on the accelerator, so the host copies a quarter of the bytes a
            float32 batch would take (`benchmarks/data_throughput.py`).
        """
        return self.crops(self.windows(step, batch_size))

    def windows(self, step, batch_size):
        """Where the crops of the batch of `step` lie: (photo indices, (top, left) corners in
        the photos, flips), each with one entry per crop. A pure function of `(seed, step)`.
        `crops` cuts them; other arrays aligned with the training photos (a teacher's outputs
        for them) are cut the same way by `crop_window`."""
        step = check_int("step", step, minimum=0)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        rng = np.random.default_rng([self.seed, step])
        photo_indices = rng.integers(0, len(self._train), size=batch_size)
        corners = (rng.random((batch_size, 2)) * self._corner_ranges[photo_indices]).astype(int)
        flips = rng.random(batch_size) < 0.5
        return photo_indices, corners, flips

    def crops(self, windows):
        """uint8 (B, crop, crop, 3): the training photos' pixels in `windows` (see `windows`)."""
        photo_indices, corners, flips = windows
        crop = self.crop
        out = np.empty((len(photo_indices), crop, crop, 3), dtype=np.uint8)
        for i, (index, (top, left), flip) in enumerate(zip(photo_indices, corners, flips)):
            if flip:
                # The same window, mirrored: columns [left, left + crop) of the photo are
                # columns [width - left - crop, width - left) of its mirror image.
                left = self._train[index].shape[1] - left - crop
                window = self._train_mirrored[index][top:top + crop, left:left + crop]
            else:
                window = self._train[index][top:top + crop, left:left + crop]
            out[i] = window
        return out

    def crop_window(self, array, corner, flip):
        """The window of one crop (a corner and flip of `windows`) cut from `array`, an image
        (H, W, C) the size of its training photo; mirrored when `flip`."""
        top, left = corner
        window = array[top:top + self.crop, left:left + self.crop]
        return window[:, ::-1] if flip else window

    @property
    def training_photos(self):
        """The training photos as decoded (uint8 (H, W, 3) arrays), in `paths` order."""
        return list(self._train)

    def labels(self, step, batch_size, num_styles):
        """Random style labels for the batch of `step`, independent of the crops' stream.

        Args:
            step: the training step (>= 0).
            batch_size: the number of labels.
            num_styles: labels are drawn uniformly from `range(num_styles)`.

        Returns:
            int32 array (batch_size,).
        """
        step = check_int("step", step, minimum=0)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        num_styles = check_int("num_styles", num_styles, minimum=1)
        rng = np.random.default_rng([self.seed, step, _LABEL_TAG])
        return rng.integers(0, num_styles, size=batch_size, dtype=np.int32)

    def preview_photos(self, size=256):
        """The held-out photos, center-cropped to squares, for preview grids.

        Args:
            size: side of the square previews.

        Returns:
            float32 array (K, size, size, 3) in [0, 1], K the number of held-out photos
            (possibly 0).
        """
        size = check_int("size", size, minimum=1)
        previews = np.empty((len(self._holdout), size, size, 3), dtype=np.float32)
        for i, photo in enumerate(self._holdout):
            np.divide(center_square(photo, size), np.float32(255), out=previews[i])
        return previews


# ----------------------------------------------------------------------------- carrying photos


def write_resized_photos(src_folder, dst_folder, *, size=288, quality=90):
    """Write a JPEG copy of a content folder with the photos' shorter side at most `size`.

    For carrying a small content set to the accelerator machine. Subfolders are kept; each
    photo becomes `<same relative path>.jpg` (or `<name>.<suffix>.jpg` where two photos would
    collide). Photos already smaller are not upscaled. Unreadable photos are skipped with a
    warning. Each file is written atomically.

    Args:
        src_folder: the content folder (searched recursively).
        dst_folder: where to write; created if missing; must differ from `src_folder`.
        size: the shorter side of the written photos.
        quality: JPEG quality (1-95).

    Returns:
        (count, total_bytes): photos written and their total size on disk.

    Raises:
        DataError: the source is missing or holds no readable photos, or `dst_folder` is
            `src_folder` or cannot be written.
        ConfigError: `size` or `quality` is out of range.
    """
    size = check_int("size", size, minimum=MIN_CROP)
    quality = check_int("quality", quality, minimum=1, maximum=95)
    src_folder = _check_content_folder(src_folder)
    dst_folder = Path(dst_folder)
    if dst_folder.resolve() == src_folder.resolve():
        raise DataError(
            f"the resized photos would overwrite the originals in {src_folder}; "
            "choose another destination folder"
        )
    paths = _scan_photos(src_folder)
    if not paths:
        raise DataError(f"folder {src_folder} holds no photos to resize")

    targets, taken = [], set()
    for path in paths:
        relative = path.relative_to(src_folder)
        target = relative.with_suffix(".jpg")
        if target in taken:
            target = relative.parent / f"{relative.name}.jpg"
        taken.add(target)
        targets.append(dst_folder / target)

    def convert(job):
        path, target = job
        try:
            photo = read_rgb(path, min_side=size)
        except DataError as error:
            return error
        if min(photo.shape[:2]) > size:
            photo = _resize_shorter_side(photo, size)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                Image.fromarray(photo).save(tmp, format="JPEG", quality=quality, optimize=True)
        except OSError as error:
            raise DataError(
                f"cannot write {target} ({error}); check the destination folder"
            ) from error
        return target.stat().st_size

    count = total_bytes = 0
    for path, result in zip(paths, map_threads(convert, list(zip(paths, targets)))):
        if isinstance(result, DataError):
            warnings.warn(f"skipping content photo: {result}", StylecbnWarning, stacklevel=2)
        else:
            count += 1
            total_bytes += result
    if count == 0:
        raise DataError(
            f"folder {src_folder}: none of its {len(paths)} photos could be read"
        )
    return count, total_bytes

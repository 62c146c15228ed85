"""Distillation's data: a teacher model's outputs for every training photo, computed once.

`TeacherOutputs` paints each training photo of a `ContentPhotos` (as decoded: shorter side
`resize`) in each style the student learns, with a painter: by default `keras_painter`, the
teacher network in float32; `stylecbn distill` passes one that paints as `stylecbn apply` does
(its default runtime: on a CPU with bfloat16 instructions OpenVINO in bfloat16, within
`stylecbn.applying.runtimes.TOLERANCE` of float32 and about 2.4x as fast as Keras here). It
keeps the results in the run folder (`teacher/`, one uint8 `.npy` per photo holding all its styles).
A run that starts again (resumed, or interrupted while painting) reads what is there and
paints only what is missing; the folder's fingerprint (the teacher file's bytes, the styles,
the photos' pixels) says whether what is there still holds. `crops` then cuts, for the crop
windows of a batch (`ContentPhotos.windows`), the same windows of the teacher's images, in
the style of each crop's label: the student sees the photo crop and the teacher's painting of
exactly that crop.

The arrays are memory-mapped, not read into memory: 17 styles of 217 photos at 288 px are
about 1.2 GB, which the operating system pages in as the crops need them.
"""

import hashlib
import json
import time

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import numpy as np
from keras import ops

from stylecbn.errors import DataError
from stylecbn.fileio import atomic_path, atomic_write_bytes

__all__ = ["TEACHER_FOLDER", "TeacherOutputs", "keras_painter", "teacher_fingerprint"]

TEACHER_FOLDER = "teacher"
_FORMAT = "stylecbn-teacher-outputs-v1"
_FINGERPRINT_FILE = "fingerprint.json"


def keras_painter(teacher):
    """(name, paint): `paint(photo, style)` is the uint8 image of the teacher network (Keras,
    float32) for a uint8 photo in one style."""

    def paint(photo, style):
        painted = ops.convert_to_numpy(teacher((photo[None], np.array([style], np.int32)),
                                               training=False))[0]
        return np.clip(np.rint(painted * 255), 0, 255).astype(np.uint8)

    return "keras float32", paint


def teacher_fingerprint(teacher_path, style_indices, photos, runtime):
    """A hex digest of everything the teacher's outputs depend on."""
    digest = hashlib.sha256()
    digest.update(json.dumps([_FORMAT, [int(i) for i in style_indices], runtime]).encode())
    with open(teacher_path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    for photo in photos:
        digest.update(json.dumps(list(photo.shape)).encode())
        digest.update(np.ascontiguousarray(photo).tobytes())
    return digest.hexdigest()


class TeacherOutputs:
    """The teacher's images of the training photos in the learnt styles (see the module).

    Args:
        run_dir: the run folder (it exists).
        teacher_path: the teacher's file (fingerprinted).
        style_indices: the teacher's styles the student learns, in the student's order.
        photos: the `ContentPhotos` of the run.
        log: a function taking one line of text.
        painter: (name, paint) as `keras_painter` returns; the name is fingerprinted.

    Raises:
        DataError: a file of the folder cannot be written (disk full, permissions).
        KeyboardInterrupt: Ctrl-C while painting; what was painted is kept.
    """

    def __init__(self, run_dir, teacher_path, style_indices, photos, log, painter):
        self.folder = run_dir / TEACHER_FOLDER
        self.style_indices = [int(i) for i in style_indices]
        self.photos = photos
        self.painter_name, self.paint = painter
        training = photos.training_photos
        fingerprint = teacher_fingerprint(teacher_path, self.style_indices, training,
                                          self.painter_name)
        self._prepare_folder(fingerprint, len(training))
        self.arrays = []
        missing = []
        for index, photo in enumerate(training):
            array = self._read(index, photo.shape)
            self.arrays.append(array)
            if array is None:
                missing.append(index)
        if missing:
            self._paint(training, missing, log)
        else:
            log(f"teacher outputs: {len(training)} photos x {len(self.style_indices)} styles, "
                f"read from {self.folder}")

    def _path(self, index):
        return self.folder / f"photo-{index:05d}.npy"

    def _prepare_folder(self, fingerprint, count):
        """Keep the folder's files if they were made from the same teacher, styles and
        photos; else remove them and record the new fingerprint."""
        record = self.folder / _FINGERPRINT_FILE
        try:
            self.folder.mkdir(exist_ok=True)
            saved = json.loads(record.read_text()) if record.is_file() else None
            if saved == {"fingerprint": fingerprint, "photos": count}:
                return
            for old in self.folder.glob("photo-*.npy"):
                old.unlink()
            atomic_write_bytes(record, json.dumps(
                {"fingerprint": fingerprint, "photos": count}).encode())
        except (OSError, ValueError) as error:
            raise DataError(f"cannot keep the teacher's outputs in {self.folder}: "
                            f"{getattr(error, 'strerror', None) or error}; check the run "
                            "folder") from None

    def _read(self, index, photo_shape):
        """The painted styles of photo `index` (memory-mapped), or None where missing or not
        of the expected shape (a file cut short is painted again)."""
        path = self._path(index)
        if not path.is_file():
            return None
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            return None
        expected = (len(self.style_indices), *photo_shape)
        return array if array.shape == expected and array.dtype == np.uint8 else None

    def _paint(self, training, missing, log):
        count = len(missing)
        log(f"teacher outputs: painting {count} photo(s) x {len(self.style_indices)} styles "
            f"with {self.painter_name} (kept in {self.folder}; an interrupted "
            "start keeps what it painted)")
        started = last_log = time.perf_counter()
        for done, index in enumerate(missing, 1):
            array = self._paint_one(training[index])
            path = self._path(index)
            try:
                with atomic_path(path) as tmp, open(tmp, "wb") as file:
                    np.save(file, array)
            except OSError as error:
                raise DataError(f"cannot write the teacher's outputs to {path}: "
                                f"{error.strerror or error}; check the free space of the run "
                                "folder") from None
            self.arrays[index] = np.load(path, mmap_mode="r")
            now = time.perf_counter()
            if now - last_log >= 10 or done == count:
                rate = done / (now - started)
                left = (count - done) / rate
                log(f"teacher outputs: {done}/{count} photos, {rate * len(self.style_indices):.1f}"
                    f" img/s, {left / 60:.1f} min left")
                last_log = now

    def _paint_one(self, photo):
        """uint8 (styles, H, W, 3): `photo` painted by the teacher in each learnt style."""
        out = np.empty((len(self.style_indices), *photo.shape), np.uint8)
        for slot, style in enumerate(self.style_indices):
            out[slot] = self.paint(photo, style)
        return out

    def crops(self, windows, labels):
        """uint8 (B, crop, crop, 3): the teacher's image of each crop window of a batch
        (`ContentPhotos.windows`), in the style of its label (an index into `style_indices`)."""
        photo_indices, corners, flips = windows
        crop = self.photos.crop
        out = np.empty((len(photo_indices), crop, crop, 3), np.uint8)
        for i, (index, corner, flip, label) in enumerate(
                zip(photo_indices, corners, flips, labels)):
            out[i] = self.photos.crop_window(self.arrays[index][label], corner, flip)
        return out

"""Atomic writes: outputs and checkpoints appear whole or not at all; a writability probe."""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    The temporary file lives in the same directory (so the rename is atomic) and keeps the
    final suffix (some writers pick the format from it). On any exception it is removed and
    `path` is left untouched.

    Args:
        path: the final destination.
        suffix: suffix of the temporary name; defaults to `path`'s own suffix.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp makes the file owner-only (0600); give the result the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path, data):
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def check_writable(path):
    """Raise OSError unless a file can be created at `path` (nothing is left behind).

    Probes with the same temporary-file-then-rename machinery as `atomic_path`, stopping
    before the rename, so it fails exactly where the real write would.
    """
    try:
        with atomic_path(path) as probe:
            probe.write_bytes(b"")
            raise _ProbeDone
    except _ProbeDone:
        pass


class _ProbeDone(Exception):
    """Ends the writability probe without renaming the empty file onto `path`."""

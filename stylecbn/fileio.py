"""Atomic writes: outputs and checkpoints appear whole or not at all; a writability probe;
whether two paths name the same file (`same_file`, so nothing is written over its input).

A file (or a folder, for exports) is written under a hidden temporary name beside its
destination and renamed onto it once complete. A run killed mid-write (kill -9, a power cut)
leaves that temporary behind, so every write also removes the leftovers in its folder, once
per folder and process: only our own temporaries, recognised by their name
(`.NAME.stylecbn-PID-XXXXXXXX.tmp[.SUFFIX]`), whose process no longer runs and which nothing
has touched for STALE_AFTER_SECONDS.
"""

import contextlib
import os
import re
import secrets
import shutil
import string
import threading
import time
from pathlib import Path

# A leftover must also be this old (by its modification time) before it is removed: a process
# id only says something about this machine, and a writer on another machine sharing the
# folder keeps touching its temporary while it writes.
STALE_AFTER_SECONDS = 60

_MARK = "stylecbn"
_TEMPORARY = re.compile(rf"^\..*\.{_MARK}-(?P<pid>\d+)-[0-9a-z]{{8}}\.tmp(\.[^.]*)?$")
_MAX_NAME_BYTES = 255  # the usual file-name limit (ext4, APFS, NTFS)
_cleaned_folders = set()
_cleaned_lock = threading.Lock()


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    The temporary file lives in the same folder (so the rename is atomic), is created empty
    with the usual permissions, and keeps the final suffix (some writers pick the format from
    it). On any exception it is removed and `path` is left untouched.

    Args:
        path: the final destination.
        suffix: suffix of the temporary name; defaults to `path`'s own suffix.

    Raises:
        OSError: the folder cannot be written, or `path`'s name is too long for it.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    remove_stale_temporaries(path.parent)
    tmp = _create(path, suffix, lambda name: os.close(
        os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside `path`; move it onto `path` when the block succeeds.

    An existing `path` is moved aside first and deleted once the new folder is in place (a
    folder cannot be renamed onto another atomically). On any exception the temporary folder
    is removed and `path` is left as it was.
    """
    path = Path(path)
    remove_stale_temporaries(path.parent)
    tmp = _create(path, "", lambda name: os.mkdir(name, 0o777))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(_temporary_name(path.name, ".old"))
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except OSError:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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


def same_file(a, b):
    """Whether paths `a` and `b` name the same file: the same resolved path, or (both
    existing) the same file under two names (a hard link). False when that cannot be told."""
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


class _ProbeDone(Exception):
    """Ends the writability probe without renaming the empty file onto `path`."""


def remove_stale_temporaries(folder):
    """Remove what killed stylecbn runs left in `folder` (see the module docstring), once per
    folder and process. Returns the names removed; errors are ignored (another process may be
    cleaning the same folder)."""
    folder = Path(folder)
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned_folders:
            return []
        _cleaned_folders.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or _process_running(int(match["pid"])):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_SECONDS:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(entry.name)
    return removed


def _create(path, suffix, make):
    """Make a new temporary beside `path` with `make(name)`; return its Path."""
    for _ in range(100):
        tmp = path.with_name(_temporary_name(path.name, suffix))
        try:
            make(tmp)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def _temporary_name(name, suffix):
    """`.NAME.stylecbn-PID-RANDOM.tmpSUFFIX`, with NAME shortened so the whole stays within
    the file-name limit (a final name near the limit must not fail on its temporary)."""
    token = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    tail = f".{_MARK}-{os.getpid()}-{token}.tmp{suffix}"
    room = _MAX_NAME_BYTES - 1 - len(tail.encode())
    encoded = name.encode()
    if len(encoded) > room:
        name = encoded[:room].decode(errors="ignore")
    return f".{name}{tail}"


def _process_running(pid):
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no harmless liveness probe (os.kill would end the process): keep it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, as another user
    return True

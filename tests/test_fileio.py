"""Tests for stylecbn.fileio: atomic files and folders, and the removal of killed runs' leftovers."""

import os
import subprocess
import sys
import time

import pytest

from stylecbn import fileio
from stylecbn.fileio import (
    STALE_AFTER_SECONDS,
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    remove_stale_temporaries,
)


@pytest.fixture(autouse=True)
def fresh_process_memory(monkeypatch):
    """Each test sees folders as not yet cleaned by this process."""
    monkeypatch.setattr(fileio, "_cleaned_folders", set())


def dead_pid():
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leftover(folder, name, pid, age=2 * STALE_AFTER_SECONDS, directory=False):
    """A temporary as a run killed `age` seconds ago would have left it."""
    path = folder / f".{name}.stylecbn-{pid}-abcd1234.tmp{os.path.splitext(name)[1]}"
    if directory:
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"half")
    else:
        path.write_bytes(b"half written")
    old = time.time() - age
    os.utime(path, (old, old))
    return path


def test_atomic_path_renames_into_place_with_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.png") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".out.png.stylecbn-")
            assert tmp.name.endswith(".tmp.png") and str(os.getpid()) in tmp.name
            tmp.write_bytes(b"data")
    finally:
        os.umask(umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o644


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "out.png").write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.png") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("encoder broke")
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert (tmp_path / "out.png").read_bytes() == b"previous"


def test_a_name_near_the_limit_gets_a_short_enough_temporary(tmp_path):
    name = "é" * 100 + ".png"  # 204 bytes: fine, but 30 more for the temporary would not be
    atomic_write_bytes(tmp_path / name, b"data")
    assert (tmp_path / name).read_bytes() == b"data"


def test_a_name_over_the_limit_fails_cleanly(tmp_path):
    with pytest.raises(OSError) as info:
        atomic_write_bytes(tmp_path / ("x" * 300 + ".png"), b"data")
    assert info.value.strerror == "File name too long"
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_killed_runs_are_removed_on_the_next_write(tmp_path):
    gone = [
        leftover(tmp_path, "a.png", dead_pid()),
        leftover(tmp_path, "model.keras", dead_pid()),
        leftover(tmp_path, "export", dead_pid(), directory=True),
    ]
    kept = [
        leftover(tmp_path, "b.png", dead_pid(), age=1),  # too recent: maybe another machine's
        leftover(tmp_path, "c.png", os.getppid()),  # its process still runs
        leftover(tmp_path, "d.png", os.getpid()),  # ours
    ]
    others = [tmp_path / ".e.png.x7Gh2kLm.tmp.png", tmp_path / "notes.stylecbn-1-abcd1234.tmp"]
    for path in others:  # someone else's temporaries, or not hidden: not ours to remove
        path.write_bytes(b"theirs")
    atomic_write_bytes(tmp_path / "new.png", b"data")
    assert not any(path.exists() for path in gone)
    assert all(path.exists() for path in kept + others)
    assert (tmp_path / "new.png").read_bytes() == b"data"


def test_each_folder_is_cleaned_once_per_process(tmp_path):
    first = leftover(tmp_path, "a.png", dead_pid())
    assert remove_stale_temporaries(tmp_path) == [first.name]
    second = leftover(tmp_path, "b.png", dead_pid())
    assert remove_stale_temporaries(tmp_path) == []
    assert second.exists()


def test_cleaning_a_missing_folder_is_quiet(tmp_path):
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_atomic_directory_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        assert tmp.name.startswith(".model.stylecbn-")
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("export failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]

"""Tests of styles/make_styles.py and of the committed styles/ folder it wrote."""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "styles" / "make_styles.py"
STYLES_DIR = REPO / "styles"
VENV_PYTHON = Path("/work/venv/bin/python")
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
SIZE = 64


def run_script(*args, cwd):
    """Run make_styles.py as a user would, without the package on the path (tests the fallback)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [PYTHON, str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def read_manifest(folder):
    with open(folder / "styles.toml", "rb") as f:
        return tomllib.load(f)["style"]


def signature(pixels):
    """Mean and spread of each channel and the mean gradient: a crude summary of a style."""
    flat = pixels.reshape(-1, 3)
    gy, gx = np.gradient(pixels.mean(axis=2))
    return np.concatenate([flat.mean(axis=0), flat.std(axis=0), [np.hypot(gx, gy).mean()]])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Write the styles twice, into two folders, at 64 px."""
    root = tmp_path_factory.mktemp("styles")
    folders = [root / "first", root / "second"]
    for folder in folders:
        result = run_script("--out", str(folder), "--size", str(SIZE), cwd=root)
        assert result.returncode == 0, result.stderr
    return folders


def test_runs_are_byte_identical(two_runs):
    first, second = two_runs
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert len(names) >= 7  # six images at least, and the manifest
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_images_are_rgb_of_requested_size_and_not_flat(two_runs):
    folder = two_runs[0]
    paths = sorted(folder.glob("*.png"))
    assert len(paths) >= 6
    pixels = []
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB", path.name
            assert image.size == (SIZE, SIZE), path.name
            pixels.append(np.asarray(image, dtype=np.float64))
    for path, image in zip(paths, pixels):
        # Every channel varies: a style with texture and colour, not a flat fill.
        assert image.reshape(-1, 3).std(axis=0).min() > 25, path.name
    for (path_a, a), (path_b, b) in itertools.combinations(zip(paths, pixels), 2):
        assert np.abs(a - b).mean() > 30, (path_a.name, path_b.name)
        # Colour statistics and texture differ too, not just the pixel layout.
        assert np.linalg.norm(signature(a) - signature(b)) > 15, (path_a.name, path_b.name)


def test_manifest_lists_exactly_the_written_images_in_order(two_runs):
    folder = two_runs[0]
    styles = read_manifest(folder)
    files = [style["file"] for style in styles]
    assert files == sorted(p.name for p in folder.glob("*.png"))
    assert files == sorted(files)
    names = [style["name"] for style in styles]
    assert len(set(names)) == len(names)
    for style in styles:
        assert style["file"] == f"{style['file'][:2]}_{style['name']}.png"
        assert "make_styles.py" in style["credit"] and "CC0" in style["credit"]
        assert style["weight"] == 1.0
        assert style["size"] == SIZE


def test_committed_manifest_matches_committed_images():
    styles = read_manifest(STYLES_DIR)
    files = [style["file"] for style in styles]
    assert files == sorted(p.name for p in STYLES_DIR.glob("*.png"))
    assert len(files) >= 6
    for style in styles:
        with Image.open(STYLES_DIR / style["file"]) as image:
            assert image.mode == "RGB"
            assert max(image.size) == style["size"], style["file"]


def test_too_small_size_is_refused(tmp_path):
    result = run_script("--out", str(tmp_path / "out"), "--size", "4", cwd=tmp_path)
    assert result.returncode == 2
    assert "--size must be at least" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_unwritable_output_gives_one_line_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_script("--out", str(blocker / "styles"), "--size", "16", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot write styles into")
    assert len(result.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"

"""README.md stays true: its Python examples run as written (or at least compile), and its
quick start runs on a fresh clone with nothing beside it."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylecbn.model.saving import default_model_path

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title):
    """The text of README's `## title` section."""
    parts = re.split(r"(^## .*$)", README.read_text(encoding="utf-8"), flags=re.M)
    return next(parts[i + 1] for i, part in enumerate(parts) if part == f"## {title}")


def python_blocks():
    """(section title, code) of every ```python block."""
    blocks, section = [], ""
    for part in re.split(r"(^## .*$)", README.read_text(encoding="utf-8"), flags=re.M):
        if part.startswith("## "):
            section = part[3:].strip()
            continue
        blocks += [(section, code) for code in re.findall(r"```python\n(.*?)```", part, re.S)]
    return blocks


def run(code, namespace):
    exec(compile(code, str(README), "exec"), namespace)


def test_every_python_example_compiles():
    blocks = python_blocks()
    assert len(blocks) >= 4
    for _, code in blocks:
        compile(code, str(README), "exec")


def test_network_and_model_file_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    sections = ("The network in a few lines of Python", "Model files")
    for section, code in python_blocks():
        if section in sections:
            run(code, namespace)
    assert (tmp_path / "mine.keras").is_file()


@pytest.mark.skipif(not default_model_path().is_file(), reason="no built-in model in this build")
def test_apply_example_runs_with_the_built_in_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype("uint8")).save("photo.jpg")
    frames = [Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")) for _ in range(2)]
    frames[0].save("anim.gif", save_all=True, append_images=frames[1:], duration=50)
    for name in ("a.jpg", "b.jpg"):  # the paintings of the refining example
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")).save(name)
    for section, code in python_blocks():
        if section == "Applying styles":
            run(code, {})
    assert Image.open("out.png").size == (64, 48)
    assert Image.open("painted.png").size == (64, 48)


@pytest.mark.skipif(not default_model_path().is_file(), reason="no built-in model in this build")
def test_video_example_runs_with_the_built_in_model(tmp_path, monkeypatch):
    from helpers import make_video

    monkeypatch.chdir(tmp_path)
    make_video("clip.mp4", frames=4)
    for section, code in python_blocks():
        if section == "Video":
            run(code, {})
    assert (tmp_path / "out.mp4").is_file()


# The quick start's lines that set up an environment, serve a page or run the suite: CI runs
# them its own way (.ci/run: a fresh venv with the dev extra, then pytest; a second fresh venv
# with `pip install -e .` alone), so the test only checks that they are still these.
SET_UP = {
    "python3 -m venv .venv && . .venv/bin/activate",
    "pip install -e .",
    'pip install -e ".[web]"',
    "stylecbn serve --open",
    'pip install -e ".[dev]"',
    "python -m pytest",
}


def quick_start_lines():
    block = re.search(r"```bash\n(.*?)```", section("Quick start"), re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_quick_start_needs_no_other_folder():
    text = section("Quick start")
    assert "../shared" not in text and "shared/" not in text
    assert SET_UP <= set(quick_start_lines())


@pytest.mark.slow
@pytest.mark.skipif(not default_model_path().is_file(), reason="no built-in model in this build")
def test_the_quick_start_runs(tmp_path, monkeypatch):
    """Every command of the quick start but the set-up ones, as written, in an empty folder:
    the sample photo, the styles, two applies and a sheet, with the built-in model."""
    from click.testing import CliRunner

    from stylecbn.cli.root import main

    monkeypatch.chdir(tmp_path)
    ran = []
    for line in quick_start_lines():
        if line in SET_UP:
            continue
        args = shlex.split(line)
        if args[0] == "stylecbn":
            result = CliRunner().invoke(main, args[1:], catch_exceptions=False)
            assert result.exit_code == 0, (line, result.output)
        else:
            assert args[:2] == ["python", "-m"], line
            subprocess.run([sys.executable, *args[1:]], check=True, timeout=120)
        ran.append(args[:2])
    assert ["stylecbn", "apply"] in ran and ["stylecbn", "sheet"] in ran
    for name in ("photo.png", "starry.png", "blend.png", "sheet.png"):
        assert (tmp_path / name).is_file(), name

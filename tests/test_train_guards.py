"""What `train` refuses before it starts: replacing a model (the one it reads above all), and
runs that cannot fit in the machine's memory. Tiny settings and the fake loss network of
test_train.py; the memory tests pretend the machine has little."""

import re

import pytest
from click.testing import CliRunner

from stylecbn.training import preflight
from stylecbn.cli.root import main
from stylecbn.errors import ConfigError, DataError
from stylecbn.memory import training_memory
from stylecbn.model.saving import save_model
from stylecbn.model.network import build_network
from stylecbn.training.run import train

from test_train import data, fake_loss_network, tiny_config  # noqa: F401  (data: a fixture)

pytestmark = pytest.mark.usefixtures("plenty_of_memory")  # see conftest.py


def quiet(line):
    pass


def test_an_existing_output_is_refused_unless_force(data, tmp_path):
    output = tmp_path / "model.keras"
    output.write_bytes(b"someone's model")
    config = tiny_config(data, tmp_path, steps=1)
    with pytest.raises(ConfigError) as error:
        train(config, loss_network=fake_loss_network(), log=quiet)
    assert str(error.value) == (
        f"{output} already exists; pass `force` to replace it, or choose another `output`."
    )
    assert output.read_bytes() == b"someone's model"
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    train(config, loss_network=fake_loss_network(), log=quiet, force=True)
    assert output.read_bytes()[:2] == b"PK"  # replaced by the trained model


def test_the_base_model_is_never_the_output(data, tmp_path):
    base = tmp_path / "base.keras"
    save_model(build_network(2, style_names=["red", "blue"], width_multiplier=0.25), base)
    before = base.read_bytes()
    config = tiny_config(data, tmp_path, styles=str(data["more"]), base_model=str(base),
                         output=str(base))
    for force in (False, True):
        with pytest.raises(ConfigError, match=r"is the `base_model` this run reads"):
            train(config, loss_network=fake_loss_network(), log=quiet, force=force)
    assert base.read_bytes() == before


def test_a_built_in_base_is_given_by_name(data, tmp_path, monkeypatch):
    """--base takes a built-in model's name (here a tiny model installed as `default`): the
    run adds its styles to that model, and refuses -o that names the built-in file."""
    from stylecbn.model import saving
    from stylecbn.model.saving import load_model

    monkeypatch.setattr(saving, "ASSETS_DIR", tmp_path / "assets")
    (tmp_path / "assets").mkdir()
    installed = tmp_path / "assets" / "default.keras"
    save_model(build_network(2, style_names=["red", "blue"], width_multiplier=0.25), installed)
    refused = tiny_config(data, tmp_path, styles=str(data["more"]), base_model="default",
                          output=str(installed))
    with pytest.raises(ConfigError, match=r"is the `base_model` this run reads"):
        train(refused, loss_network=fake_loss_network(), log=quiet, force=True)
    config = refused.replace(output=str(tmp_path / "more.keras"), steps=1)
    extended = load_model(train(config, loss_network=fake_loss_network(), log=quiet))
    assert extended.style_names[:2] == ["red", "blue"] and extended.num_styles == 3
    assert extended.metadata["base_model"]["file"] == "default"


def test_a_resumed_run_replaces_only_its_own_output(data, tmp_path):
    config = tiny_config(data, tmp_path, steps=2)
    train(config, loss_network=fake_loss_network(), log=quiet)
    # Training longer writes the run's own model again: no --force needed.
    train(config.replace(steps=3, resume=True), loss_network=fake_loss_network(), log=quiet)
    other = tmp_path / "other.keras"
    other.write_bytes(b"another model")
    with pytest.raises(ConfigError, match="other.keras already exists"):
        train(config.replace(steps=4, resume=True, output=str(other),
                             run_dir=str(tmp_path / "runs" / "model")),
              loss_network=fake_loss_network(), log=quiet)
    assert other.read_bytes() == b"another model"


def test_a_run_too_large_for_the_memory_is_refused_with_what_fits(data, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "available_memory", lambda: 3_000_000_000)
    config = tiny_config(data, tmp_path, batch_size=16, crop_size=256)  # width 0.25
    with pytest.raises(ConfigError) as error:
        train(config, loss_network=fake_loss_network(), log=quiet)
    # 1.5 GB + 16 x 256^2 x (2800 + 0.25 x 4600) bytes = 5.64 GB. What fits in 3 GB:
    # crop sqrt(1.5e9 / 3950 / 16) = 154 px, or batch 1.5e9 / 3950 / 256^2 = 5.
    assert str(error.value) == (
        "this run needs about 5.6 GB of memory (batch 16 x 256 px crops, width 0.25), more "
        "than the 3.0 GB available; lower `crop_size` to 154 or `batch_size` to 5 (memory "
        "grows with batch x crop^2)."
    )
    assert not (tmp_path / "runs").exists()
    assert training_memory(16, 154, 0.25) <= 3_000_000_000 < training_memory(16, 155, 0.25)
    assert training_memory(5, 256, 0.25) <= 3_000_000_000 < training_memory(6, 256, 0.25)


def test_the_photos_must_fit_in_what_the_run_leaves(data, tmp_path, monkeypatch):
    config = tiny_config(data, tmp_path)
    needed = training_memory(config.batch_size, config.crop_size, config.width_multiplier)
    monkeypatch.setattr(preflight, "available_memory", lambda: needed + 1000)
    with pytest.raises(DataError, match=r"content photos .* more than the 1.0 kB left for them"):
        train(config, loss_network=fake_loss_network(), log=quiet)


def test_cli_force_flag(data, tmp_path):
    output = tmp_path / "m.keras"
    output.write_bytes(b"keep me")
    base = ["train", "--styles", data["styles"], "--content", tmp_path / "empty", "-o", output]
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, [str(a) for a in base])
    assert result.exit_code == 2 and "already exists; pass `force`" in result.output
    result = CliRunner().invoke(main, [str(a) for a in base + ["--force"]])
    assert result.exit_code == 2 and "holds no photos" in result.output  # past the check
    assert output.read_bytes() == b"keep me"


def test_a_run_folder_in_use_is_refused_and_a_dead_runs_lock_taken_over(data, tmp_path):
    import fcntl
    import json
    import os
    import subprocess
    import sys

    config = tiny_config(data, tmp_path, steps=2)
    run_dir = tmp_path / "runs" / "model"
    run_dir.mkdir(parents=True)
    lock = run_dir / preflight.RUN_LOCK
    # Another run holds the folder: its lock file is locked and names its process.
    with open(lock, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: another run
        holder.write(json.dumps({"pid": os.getpid(), "host": "this-host"}))
        holder.flush()
        with pytest.raises(ConfigError) as error:
            train(config, loss_network=fake_loss_network(), log=quiet)
    assert str(error.value) == (
        f"run folder {run_dir} is in use by another training run (process {os.getpid()} on "
        "this-host); wait for it to end or stop it, or choose another run_dir."
    )
    assert sorted(p.name for p in run_dir.iterdir()) == [preflight.RUN_LOCK]  # nothing written
    # A run killed with SIGKILL leaves its lock file behind, naming a process that has gone.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    lock.write_text(json.dumps({"pid": int(gone), "host": "this-host"}))
    lines = []
    train(config, loss_network=fake_loss_network(), log=lines.append)
    assert any(f"process {gone} on this-host, which has ended" in line for line in lines), lines
    assert lock.read_text() == ""  # released: the next run starts without a note


def test_the_lock_is_held_while_a_run_trains(data, tmp_path):
    import fcntl
    import os

    config = tiny_config(data, tmp_path, steps=2)
    lock = tmp_path / "runs" / "model" / preflight.RUN_LOCK
    held = []

    def try_to_lock(line):
        if "checkpoint:" in line:  # in the middle of the run
            with open(lock) as other:
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append(False)
                except BlockingIOError:
                    held.append(True)
            held.append(str(os.getpid()) in lock.read_text())

    train(config, loss_network=fake_loss_network(), log=try_to_lock)
    assert held and all(held)


def nan_loss_network():
    """The fake VGG behind a layer that makes every value NaN: the loss is NaN within a few
    steps (ReLU may turn NaN features into zeros; the total variation term goes NaN)."""
    import keras

    inner = fake_loss_network()
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, inner(keras.layers.Rescaling(float("nan"))(inputs)),
                        name="nan_vgg")
    model.trainable = False
    return model


def test_a_loss_that_is_not_finite_stops_training_and_writes_no_model(data, tmp_path):
    from stylecbn.errors import TrainingError

    config = tiny_config(data, tmp_path, steps=4)
    with pytest.raises(TrainingError) as error:
        train(config, loss_network=nan_loss_network(), log=quiet)
    message = str(error.value)
    assert re.match(r"training stopped at step [12]: the loss is nan", message), message
    assert "\n" not in message
    assert "learning_rate" in message
    assert not (tmp_path / "model.keras").exists()
    assert not list((tmp_path / "runs" / "model").glob("checkpoint-*"))  # none of NaN weights

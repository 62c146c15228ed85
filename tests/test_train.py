"""The trainer: resume equivalence, Ctrl-C, adding styles, previews, distribution, JAX.

Runs use a tiny loss network whose convolutions are named like VGG-16's (the perceptual loss
only needs those layer names), a quarter-width network, 32 px crops and batch 2, so each run
takes seconds; the end-to-end run with real VGG weights is in test_cli_train.py.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import make_images
from keras import ops
from PIL import Image

from stylecbn.training.checkpoints import KEEP_CHECKPOINTS, checkpoint_config, latest_checkpoint
from stylecbn.training.config import (DEFAULT_STYLE_LAYER_WEIGHTS, NAMED_STYLE_LAYER_WEIGHTS,
                                      TrainingConfig, read_config_file)
from stylecbn.perceptual.losses import LossWeights
from stylecbn.errors import ConfigError, DataError, ModelFileError
from stylecbn.model.saving import load_model, save_model
from stylecbn.model.network import build_network
from stylecbn.media.sheets import PADDING, labelled_sheet
from stylecbn.training.preview import preview_grid, write_preview
from stylecbn.training.run import train

pytestmark = pytest.mark.usefixtures("plenty_of_memory")  # see conftest.py

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")


def fake_loss_network(seed=1):
    """A 4-convolution stand-in for VGG-16 with the same output names."""
    inputs = keras.Input((None, None, 3))
    x, outputs = inputs, {}
    for i, (name, channels) in enumerate(zip(LAYERS, (4, 6, 8, 8))):
        if i:
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Conv2D(
            channels, 3, padding="same", activation="relu", name=name,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i),
        )(x)
        outputs[name] = x
    model = keras.Model(inputs, outputs, name="fake_vgg")
    model.trainable = False
    return model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    styles = make_images(root / "styles", 2, (36, 36), seed=1, prefix="style")
    (styles / "styles.toml").write_text(
        '[[style]]\nfile = "style0.png"\nname = "red"\ncredit = "made by the test"\nsize = 32\n'
        '[[style]]\nfile = "style1.png"\nname = "blue"\nsize = 32\n'
    )
    more = make_images(root / "more", 1, (36, 36), seed=2, prefix="new")
    content = make_images(root / "content", 5, seed=3)
    return {"styles": styles, "more": more, "content": content}


def tiny_config(data, tmp_path, **changes):
    settings = dict(
        styles=str(data["styles"]), content=str(data["content"]),
        output=str(tmp_path / "model.keras"), steps=4, batch_size=2, crop_size=32,
        width_multiplier=0.25, checkpoint_every=2, preview_every=2, log_every=1, holdout=1,
        learning_rate=0.01, style_weight=100.0, preview_size=32,
    )
    settings.update(changes)
    return TrainingConfig(**settings)


def rewrite_checkpoint_meta(path, change, target=None):
    """Rewrite a checkpoint file (to `target`, default in place) with `change(meta)` applied."""
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(target or path, "wb") as handle:
        np.savez(handle, **arrays)


def weights_of(path):
    return [ops.convert_to_numpy(w) for w in load_model(path).weights]


class InterruptAt(keras.callbacks.Callback):
    """Raise KeyboardInterrupt (as Ctrl-C would) at the end of global step `step`."""

    def __init__(self, step, first_step=0):
        super().__init__()
        self.step, self.first_step = step, first_step

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step + batch + 1 == self.step:
            raise KeyboardInterrupt


class SignalAt(InterruptAt):
    """Send this process a signal (Ctrl-C's SIGINT, or SIGTERM as `kill` or a time limit
    would) at the end of global step `step`."""

    def __init__(self, step, signum):
        super().__init__(step)
        self.signum = signum

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step + batch + 1 == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory, plenty_of_memory):
    """One 4-step run, shared by the tests that compare against it or build on it."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    lines = []
    path = train(tiny_config(data, tmp), loss_network=fake_loss_network(), log=lines.append)
    return path, lines


def test_the_style_terms_follow_the_per_layer_weights(data, tmp_path):
    """One step from the same initial weights and batch (same seed): doubling every layer's
    multiplier doubles the style loss exactly (a power of two scales float32 exactly) and
    leaves the content loss as it was; the default (`balanced`) weighs each layer's term by
    its own multiplier. The model records the multipliers."""

    def first_step(name, layer_weights):
        (tmp_path / name).mkdir()
        config = tiny_config(data, tmp_path / name, steps=1, checkpoint_every=1,
                             preview_every=100, style_layer_weights=layer_weights)
        path = train(config, loss_network=fake_loss_network(), log=lambda line: None)
        return load_model(path).metadata

    equal = first_step("equal", "equal")
    double = first_step("double", "2, 2,2,2")
    assert double["final_losses"]["style_loss"] == 2 * equal["final_losses"]["style_loss"]
    assert double["final_losses"]["content_loss"] == equal["final_losses"]["content_loss"]
    assert equal["loss_weights"]["style_layer_weights"] is None
    assert double["loss_weights"]["style_layer_weights"] == [2.0, 2.0, 2.0, 2.0]
    assert LossWeights.recorded(double).layer_style_weights()["block2_conv2"] == 200.0
    assert TrainingConfig.from_dict(double["training"]).layer_multipliers() == (2.0,) * 4
    # The default (`balanced`): its style loss is the sum of each layer's alone (one run per
    # layer with multiplier 1, the others 0) times that layer's multiplier. Same forward pass
    # in every run; each term is rounded a few times (2**-24 each) and all are positive, so
    # the sums agree far inside 1e-5.
    default = first_step("default", DEFAULT_STYLE_LAYER_WEIGHTS)
    multipliers = NAMED_STYLE_LAYER_WEIGHTS["balanced"]
    assert DEFAULT_STYLE_LAYER_WEIGHTS == "balanced"
    assert default["loss_weights"]["style_layer_weights"] == list(multipliers)
    alone = [first_step(f"layer{i}", ",".join("1" if j == i else "0" for j in range(4)))
             ["final_losses"]["style_loss"] for i in range(4)]
    assert default["final_losses"]["style_loss"] == pytest.approx(
        sum(m * s for m, s in zip(multipliers, alone)), rel=1e-5)
    assert sum(alone) == pytest.approx(equal["final_losses"]["style_loss"], rel=1e-5)
    assert default["final_losses"]["content_loss"] == equal["final_losses"]["content_loss"]
    for bad in ("1,2,3", "1,2,x,4", "1,2,3,-4", "", "nan,1,1,1", "Balanced"):
        with pytest.raises(ConfigError, match="`style_layer_weights` must be 4 numbers"):
            tiny_config(data, tmp_path, style_layer_weights=bad)


def test_a_run_saved_before_layer_weights_resumes_only_as_equal(data, tmp_path):
    config = tiny_config(data, tmp_path, steps=2, checkpoint_every=1, preview_every=100)
    with pytest.raises(KeyboardInterrupt):
        train(config, loss_network=fake_loss_network(), callbacks=[SignalAt(1, signal.SIGINT)],
              log=lambda line: None)
    checkpoint = latest_checkpoint(tmp_path / "runs" / "model")
    rewrite_checkpoint_meta(checkpoint, lambda meta: meta["config"].pop("style_layer_weights"))
    if DEFAULT_STYLE_LAYER_WEIGHTS != "equal":
        with pytest.raises(ConfigError, match="style_layer_weights .checkpoint: 'equal'"):
            train(config.replace(resume=True), loss_network=fake_loss_network(),
                  log=lambda line: None)
    train(config.replace(resume=True, style_layer_weights="equal"),
          loss_network=fake_loss_network(), log=lambda line: None)
    with pytest.raises(ConfigError, match="style_layer_weights .checkpoint: 'equal', now: '1,2,3,4'"):
        train(config.replace(resume=True, steps=3, style_layer_weights="1,2,3,4"),
              loss_network=fake_loss_network(), log=lambda line: None)


def test_training_writes_model_checkpoints_previews_and_metadata(uninterrupted, data,
                                                                   tmp_path_factory):
    path, lines = uninterrupted
    model = load_model(path)
    # a model file records names, never the directories of the machine that made it
    assert str(tmp_path_factory.getbasetemp()) not in json.dumps(model.metadata)
    assert model.metadata["training"]["output"] == path.name
    assert model.style_names == ["red", "blue"]
    assert model.style_credits == ["made by the test", ""]
    training = model.metadata["training"]
    assert TrainingConfig.from_dict(training).steps == 4
    assert model.metadata["vgg_weights"] == "injected loss network 'fake_vgg'"
    assert model.metadata["steps_trained"] == 4
    assert model.metadata["loss_weights"]["style"] == 100.0
    assert model.metadata["style_coefficients"] == [1.0, 1.0]
    assert set(model.metadata["final_losses"]) >= {"total_loss", "content_loss", "style_loss"}
    run_dir = path.parent / "runs" / "model"
    checkpoints = sorted(p.name for p in run_dir.glob("checkpoint-*.npz"))
    assert checkpoints == ["checkpoint-00000002.npz", "checkpoint-00000004.npz"]
    assert (run_dir / "preview-00000002.png").is_file()
    grid = np.asarray(Image.open(run_dir / "preview-00000004.png"))
    # 1 held-out photo x (photo + 2 styles), 32 px tiles, labelled
    cells = labelled_sheet([np.zeros((32, 32, 3), np.uint8)] * 3, [""] * 3, columns=3)
    assert grid.shape == (cells.height, cells.width, 3)
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 4
    progress = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["1/4", "2/4", "3/4", "4/4"]
    # Each start-up phase says how long it took, in order, before the first progress line.
    phases = [re.match(r"start-up: ([a-zA-Z ]+)", line).group(1).strip()
              for line in lines if line.startswith("start-up: ")]
    assert phases == ["styles", "content photos", "networks", "Gram matrices", "trainer",
                      "first step"], lines
    assert all(re.search(r" in \d+\.\d s", line) for line in lines if line.startswith("start-up"))
    assert lines.index(progress[0]) > max(i for i, line in enumerate(lines)
                                          if line.startswith("start-up: "))
    assert "img/s" in progress[-1] and "left" in progress[-1] and "style " in progress[-1]
    # The saved model is float32 whatever the training precision, and runs.
    out = model((np.zeros((1, 20, 20, 3), "float32"), np.array([1])))
    assert out.shape == (1, 20, 20, 3)


def test_interrupted_and_resumed_run_ends_bit_identical(uninterrupted, data, tmp_path):
    expected = weights_of(uninterrupted[0])
    config = tiny_config(data, tmp_path, checkpoint_every=100, preview_every=100)
    with pytest.raises(KeyboardInterrupt):
        train(config, loss_network=fake_loss_network(), callbacks=[InterruptAt(3)],
              log=lambda line: None)
    run_dir = tmp_path / "runs" / "model"
    # Ctrl-C wrote a checkpoint at the step it stopped at; no model file yet.
    assert latest_checkpoint(run_dir).name == "checkpoint-00000003.npz"
    assert not (tmp_path / "model.keras").exists()
    # A fresh start in the same run folder would silently lose the run: refused.
    with pytest.raises(ConfigError, match="set `resume` to continue it"):
        train(config, loss_network=fake_loss_network())
    # Checkpoints written before style_coefficients and init_model were recorded still resume.
    rewrite_checkpoint_meta(latest_checkpoint(run_dir), lambda meta: (
        meta.pop("style_coefficients"), meta["config"].pop("init_model")))
    lines = []
    train(config.replace(resume=True), loss_network=fake_loss_network(), log=lines.append)
    assert any("resuming from" in line and "step 3" in line for line in lines)
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["4/4"]
    resumed = weights_of(tmp_path / "model.keras")
    # Same batches (a pure function of seed and step) and the exact Adam state: bit-exact.
    assert len(resumed) == len(expected)
    for a, b in zip(resumed, expected):
        np.testing.assert_array_equal(a, b)
    assert len(list(run_dir.glob("checkpoint-*.npz"))) == KEEP_CHECKPOINTS


def test_resume_rejects_changed_settings_and_missing_checkpoint(uninterrupted, data, tmp_path):
    path, _ = uninterrupted
    run_dir = path.parent / "runs" / "model"
    assert checkpoint_config(run_dir)["steps"] == 4
    changed = tiny_config(data, path.parent, batch_size=4, resume=True, output=str(tmp_path / "x.keras"),
                          run_dir=str(run_dir))
    with pytest.raises(ConfigError, match=r"batch_size \(checkpoint: 2, now: 4\)"):
        train(changed, loss_network=fake_loss_network())
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(tiny_config(data, tmp_path, resume=True), loss_network=fake_loss_network())
    # The styles manifest's per-style weights (loss coefficients) are part of the result too.
    changed_dir = tmp_path / "coefficients"
    changed_dir.mkdir()
    rewrite_checkpoint_meta(latest_checkpoint(run_dir),
                            lambda meta: meta.update(style_coefficients=[1.0, 3.0]),
                            target=changed_dir / "checkpoint-00000002.npz")
    with pytest.raises(ConfigError, match=r"per-style weights changed .*\[1\.0, 3\.0\]"):
        train(tiny_config(data, tmp_path, resume=True, run_dir=str(changed_dir)),
              loss_network=fake_loss_network())
    # A damaged checkpoint is named, with what to do.
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "checkpoint-00000002.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="cannot be read"):
        train(tiny_config(data, tmp_path, resume=True, run_dir=str(bad_dir)),
              loss_network=fake_loss_network())


def test_resume_takes_the_same_folder_by_any_name(uninterrupted, data, tmp_path, monkeypatch):
    path, _ = uninterrupted
    run_dir = path.parent / "runs" / "model"
    styles = Path(data["styles"])
    monkeypatch.chdir(styles.parent)
    for index, name in enumerate((f"{styles.name}/", f"./{styles.name}", str(styles.resolve()))):
        moved = tmp_path / f"run{index}"
        moved.mkdir()
        rewrite_checkpoint(latest_checkpoint(run_dir), moved / "checkpoint-00000004.npz",
                           lambda meta, arrays: meta["config"].update(styles=name))
        # The same settings but for how the styles folder is written: nothing to train.
        config = tiny_config(data, tmp_path, resume=True, run_dir=str(moved),
                             output=str(moved / "model.keras"))
        lines = []
        train(config, loss_network=fake_loss_network(), log=lines.append)
        assert any("nothing to train" in line for line in lines)


def rewrite_checkpoint(path, target, change):
    """Copy a checkpoint to `target` with `change(meta, arrays)` applied (hand-edited)."""
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta = change(meta, arrays) or meta
    with open(target, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def nan_first_weight(meta, arrays):
    arrays["network/0000"] = np.full_like(arrays["network/0000"], np.nan)


def drop_an_array(meta, arrays):
    del arrays["network/0003"]


@pytest.mark.parametrize("change, words", [
    (nan_first_weight, ["network/0000", "not finite"]),
    (drop_an_array, ["network/0003", "missing"]),
    (lambda meta, arrays: ["not", "a", "dict"], ["not a stylecbn-checkpoint-v1 checkpoint"]),
    (lambda meta, arrays: meta.update(step="six"), ["step", "'six'"]),
    (lambda meta, arrays: meta.update(config=[1]), ["config"]),
    (lambda meta, arrays: meta.update(style_names="red"), ["style_names"]),
    (lambda meta, arrays: meta.update(network=[["a"]]), ["network"]),
], ids=["nan", "missing array", "meta a list", "step six", "config a list", "names a string",
        "variables"])
def test_a_damaged_or_hand_edited_checkpoint_is_one_line(uninterrupted, data, tmp_path, change,
                                                        words):
    path, _ = uninterrupted
    bad_dir = tmp_path / "edited"
    bad_dir.mkdir()
    target = bad_dir / "checkpoint-00000004.npz"
    rewrite_checkpoint(latest_checkpoint(path.parent / "runs" / "model"), target, change)
    config = tiny_config(data, tmp_path, resume=True, steps=5, run_dir=str(bad_dir))
    with pytest.raises(ConfigError) as error:
        train(config, loss_network=fake_loss_network(), log=lambda line: None)
    message = str(error.value)
    assert "\n" not in message and str(target) in message, message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "model.keras").exists()


@pytest.mark.parametrize("normalization", ["instance", "batch"])
def test_adding_styles_leaves_old_styles_bit_identical(data, tmp_path, normalization):
    # A model file written before the rename: its style coefficients are under "style_weights".
    base = build_network(2, style_names=["red", "blue"], normalization=normalization,
                         width_multiplier=0.25, metadata={"style_weights": [1.0, 2.0]})
    rng = np.random.default_rng(0)
    for layer in base.normalization_layers:
        layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.normal(0, 0.3, layer.beta.shape).astype("float32"))
        if normalization == "batch":
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape).astype("float32"))
    base_path = tmp_path / "base.keras"
    save_model(base, base_path)
    base = load_model(base_path)

    config = tiny_config(data, tmp_path, styles=str(data["more"]), base_model=str(base_path),
                         steps=3, output=str(tmp_path / "more.keras"))
    train(config, loss_network=fake_loss_network(), log=lambda line: None)
    extended = load_model(tmp_path / "more.keras")
    assert extended.style_names == ["red", "blue", "new0"]
    assert extended.normalization == normalization
    assert extended.metadata["style_coefficients"] == [1.0, 2.0, 1.0]
    assert "style_weights" not in extended.metadata
    assert extended.metadata["base_model"]["styles"] == ["red", "blue"]
    assert extended.metadata["base_model"]["file"] == "base.keras"
    assert str(tmp_path) not in json.dumps(extended.metadata)

    photos = np.random.default_rng(1).random((2, 24, 24, 3)).astype("float32")
    for label in (0, 1):
        labels = np.full((2,), label)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(extended((photos, labels))),
            ops.convert_to_numpy(base((photos, labels))),
        )
    new_rows_changed = False
    for old, new in zip(base.normalization_layers, extended.normalization_layers):
        for name in ("gamma", "beta"):
            old_table = ops.convert_to_numpy(getattr(old, name))
            new_table = ops.convert_to_numpy(getattr(new, name))
            np.testing.assert_array_equal(new_table[:2], old_table)
            # The new row started at the mean of the old rows, and training moved it.
            new_rows_changed |= not np.allclose(new_table[2], old_table.mean(axis=0))
        if normalization == "batch":
            for name in ("moving_mean", "moving_variance"):
                np.testing.assert_array_equal(ops.convert_to_numpy(getattr(new, name)),
                                              ops.convert_to_numpy(getattr(old, name)))
    assert new_rows_changed
    for old, new in zip(base.weights, extended.weights):
        if "kernel" in old.path:
            np.testing.assert_array_equal(ops.convert_to_numpy(new), ops.convert_to_numpy(old))


def test_adding_a_style_whose_name_exists_is_an_error(data, tmp_path):
    base_path = tmp_path / "base.keras"
    save_model(build_network(1, style_names=["new0"], width_multiplier=0.25), base_path)
    config = tiny_config(data, tmp_path, styles=str(data["more"]), base_model=str(base_path))
    with pytest.raises(DataError, match="new0.*already in"):
        train(config, loss_network=fake_loss_network())


def test_bad_inputs_fail_before_training_and_keep_the_old_model(data, tmp_path,
                                                               bad_styles_folders):
    output = tmp_path / "model.keras"
    output.write_bytes(b"the previous model")
    bad = bad_styles_folders
    cases = [
        (dict(styles=str(bad["empty"])), DataError, "holds no images"),
        (dict(styles=str(bad["no_images"])), DataError, "holds no images"),
        (dict(styles=str(bad["corrupt"])), DataError, "broken.png"),
        (dict(content=str(tmp_path / "missing")), DataError, "does not exist"),
        (dict(content=""), ConfigError, "set `content` to a folder of photos"),
        (dict(output=str(tmp_path / "nowhere" / "m.keras")), ConfigError, "does not exist"),
        (dict(output=str(bad["no_images"] / "notes.txt" / "m.keras")), ConfigError,
         "cannot write"),
    ]
    for changes, error, message in cases:
        with pytest.raises(error, match=message):
            train(tiny_config(data, tmp_path, **changes), loss_network=fake_loss_network(),
                  force=True)
    assert output.read_bytes() == b"the previous model"
    assert not list(tmp_path.glob("**/checkpoint-*.npz"))


def test_preview_grid_tiles_photos_and_styles(tmp_path):
    """Rows are photos, columns the photo and then each style, each tile labelled below as
    `stylecbn sheet` does (the label strip is where the labels are drawn: not blank)."""
    network = build_network(3, style_names=["ink", "sun", "sea"], width_multiplier=0.25)
    photos = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    grid = preview_grid(network, photos)
    blank = np.asarray(labelled_sheet([np.zeros((16, 16, 3), np.uint8)] * 8, [""] * 8, columns=4))
    assert grid.shape == blank.shape and grid.dtype == np.uint8
    cell, label = 16 + PADDING, 16 + 14 + 6 + PADDING  # tile + gap; tile + label + gap

    def tile(row, column):
        top, left = PADDING + row * label, PADDING + column * cell
        return grid[top:top + 16, left:left + 16]

    np.testing.assert_array_equal(tile(0, 0), np.round(photos[0] * 255).astype(np.uint8))
    second_style = ops.convert_to_numpy(network((photos, np.array([1, 1]))))
    np.testing.assert_array_equal(
        tile(1, 2), np.clip(np.round(second_style[1] * 255), 0, 255).astype(np.uint8))
    strip = slice(PADDING + 16, PADDING + 16 + 14 + 6)
    assert (grid[strip] != blank[strip]).any()  # the labels are drawn
    write_preview(tmp_path / "p.png", network, photos, style_indices=[2])
    with Image.open(tmp_path / "p.png") as written:
        assert written.size == labelled_sheet([blank[:16, :16]] * 4, [""] * 4, columns=2).size
    with pytest.raises(ValueError, match="non-empty"):
        preview_grid(network, np.zeros((0, 16, 16, 3)))


def test_config_file_round_trip_and_errors(tmp_path):
    config = TrainingConfig(steps=12, style_weight=0.5, content="photos")
    config.save(tmp_path / "run.json")
    assert TrainingConfig.from_dict(read_config_file(tmp_path / "run.json")) == config
    (tmp_path / "run.toml").write_text('steps = 7\nprecision = "mixed_bfloat16"\n')
    loaded = TrainingConfig.from_dict(read_config_file(tmp_path / "run.toml"))
    assert (loaded.steps, loaded.precision) == (7, "mixed_bfloat16")
    assert TrainingConfig(output="a/b.keras").resolved_run_dir() == Path("a/runs/b")
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainingConfig.from_dict({"stepz": 3})
    with pytest.raises(ConfigError, match="log_every"):
        TrainingConfig(log_every=0)
    with pytest.raises(ConfigError, match="`output` must be a .keras"):
        TrainingConfig(output="model.h5")
    with pytest.raises(ConfigError, match="`distribute` must be true or false"):
        TrainingConfig(distribute="yes")
    # Not an object, or nested past the parser's recursion limit: one line, no traceback.
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a table/object"):
        read_config_file(tmp_path / "list.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "deep.toml").write_text("steps = " + "[" * 100_000 + "]" * 100_000)
    for name in ("deep.json", "deep.toml"):
        with pytest.raises(ConfigError, match=f"{name} is nested too deeply"):
            read_config_file(tmp_path / name)


# ----------------------------------------------------------------------------- subprocesses

_SUBPROCESS_HELPERS = textwrap.dedent(
    """
    import sys, threading, numpy as np, keras
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from keras import ops
    from helpers import make_images
    from test_train import fake_loss_network, tiny_config, InterruptAt
    from stylecbn.model.saving import load_model
    from stylecbn.training import preflight
    from stylecbn.training.run import train
    preflight.available_memory = lambda: 64_000_000_000  # as the plenty_of_memory fixture
    root = Path({root!r})
    data = {{"styles": make_images(root / "styles", 2, (36, 36), seed=1, prefix="style"),
             "content": make_images(root / "content", 5, seed=3)}}
    quiet = lambda line: None
    def weights(path):
        return [ops.convert_to_numpy(w) for w in load_model(path).weights]
    """
)


def _run_python(code, tmp_path, env_changes, timeout=400):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env_changes)
    env.pop("PYTEST_ADDOPTS", None)
    script = _SUBPROCESS_HELPERS.format(tests=str(ROOT / "tests"), root=str(tmp_path)) + code
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


_DISTRIBUTED_RUN = textwrap.dedent(
    """
    single = tiny_config(data, root / "single", steps=2, checkpoint_every=100,
                         preview_every=100, tensorboard=False, holdout=0)
    (root / "single").mkdir(); (root / "multi").mkdir()
    train(single, loss_network=fake_loss_network(), log=quiet)
    lines = []
    train(single.replace(output=str(root / "multi" / "model.keras"), distribute=True),
          loss_network=fake_loss_network(), log=lines.append)
    assert any("2 device(s)" in line for line in lines), lines
    # Instance normalization makes each sample independent, so splitting the batch over two
    # devices changes only the order of floating-point sums: the gradients differ by float32
    # rounding. Adam's step lr * m / (sqrt(v) + eps) ignores that, except for a weight whose
    # gradient lies within rounding of +-eps (1e-7; here the median |gradient| is 1e-5 and
    # ~900 of the N = 109,180 are below 1e-7): rounding can then move it by up to 2 * lr in
    # a step (seen once: a weight off by 2.8e-4). So no per-weight tolerance holds for sure;
    # the runs are compared as a whole. In its first two steps Adam moves a weight by at most
    # 1.0014 * lr per step (Cauchy-Schwarz on its bias-corrected moments), so k such weights
    # part the runs by at most 2 * 1.0014 * lr * steps * sqrt(k) in L2: below the bound
    # 0.1 * lr * steps * sqrt(N) unless k > N / 401 (272 weights). A real divergence, where
    # most gradients change, differs by about lr * steps * sqrt(N): batch 1 instead of 2
    # (a replica's half lost) measured 1.08 times that, with 93% of weights off by > 1e-3.
    single_weights, multi_weights = (
        np.concatenate([w.ravel() for w in weights(root / name / "model.keras")])
        for name in ("single", "multi"))
    bound = 0.1 * single.learning_rate * single.steps * np.sqrt(single_weights.size)
    distance = np.linalg.norm(multi_weights - single_weights)
    assert distance < bound, (distance, bound)
    print("ok")
    """
)


@pytest.mark.skipif(not _has("jax"), reason="JAX is not installed")
def test_jax_training_exact_resume_no_tensorflow_and_two_devices(tmp_path):
    """One subprocess (JAX with two host devices) for the JAX checks: startup is slow here."""
    out = _run_python(textwrap.dedent(
        """
        assert keras.backend.backend() == "jax"

        def tensorflow_modules():
            return sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")

        class Threads(keras.callbacks.Callback):
            # Keras runs the batch-end callbacks off the main thread when all are async safe:
            # the monitor then reads the loss terms (waiting for the step) there.
            async_safe = True
            seen = set()

            def on_train_batch_end(self, batch, logs=None):
                self.seen.add(threading.current_thread() is threading.main_thread())

        class NoTensorFlow(keras.callbacks.Callback):
            # Checked when training ends: Keras' own model saving imports TensorFlow
            # wherever it is installed (not on the GPU machine), the trainer must not.
            def on_train_end(self, logs=None):
                assert not tensorflow_modules(), tensorflow_modules()[:5]

        # holdout=0: no previews (eager JAX calls are slow on this CPU; TF tests cover them).
        a = tiny_config(data, root / "a", steps=3, checkpoint_every=100, holdout=0)
        (root / "a").mkdir(); (root / "b").mkdir()
        train(a, loss_network=fake_loss_network(), log=quiet, callbacks=[NoTensorFlow(), Threads()])
        assert Threads.seen == {False}, Threads.seen
        b = a.replace(output=str(root / "b" / "model.keras"))
        # Run b keeps its compiled programs in its run folder (all of them here: by default
        # those that took over a second, and these are faster), and its resumed start loads
        # them: cache hits, and still the same weights as the uninterrupted run a.
        import jax.monitoring
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        hits = []
        jax.monitoring.register_event_listener(
            lambda event, **kw: hits.append(1) if event.endswith("/cache_hits") else None)
        try:
            train(b, loss_network=fake_loss_network(), callbacks=[InterruptAt(2)], log=quiet)
            raise SystemExit("no interrupt")
        except KeyboardInterrupt:
            pass
        assert any((root / "b" / "runs" / "model" / "xla-cache").iterdir())
        assert jax.config.jax_compilation_cache_dir is None  # the process's setting is back
        hits.clear()
        train(b.replace(resume=True), loss_network=fake_loss_network(), log=quiet)
        assert hits, "the resumed start compiled everything again"
        for x, y in zip(weights(root / "a" / "model.keras"), weights(root / "b" / "model.keras")):
            np.testing.assert_array_equal(x, y)
        """) + _DISTRIBUTED_RUN, tmp_path,
        {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert out.strip().endswith("ok")


def test_distribute_on_two_tensorflow_cpu_devices(tmp_path):
    setup = textwrap.dedent(
        """
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        """
    )
    out = _run_python(setup + _DISTRIBUTED_RUN, tmp_path, {"KERAS_BACKEND": "tensorflow"})
    assert out.strip().endswith("ok")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_and_sigterm_stop_before_the_next_step_with_a_checkpoint(data, tmp_path, signum):
    """The handlers only set a flag; the monitor stops at the next step boundary. (A real
    process killed from outside, on both backends: test_cli_train.py.)"""
    config = tiny_config(data, tmp_path, checkpoint_every=100, preview_every=100)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    lines = []
    with pytest.raises(KeyboardInterrupt):
        train(config, loss_network=fake_loss_network(), callbacks=[SignalAt(2, signum)],
              log=lines.append)
    assert latest_checkpoint(tmp_path / "runs" / "model").name == "checkpoint-00000002.npz"
    assert f"interrupted by {signal.Signals(signum).name} at step 2" in lines[-1]
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are restored


def test_monitor_events_come_in_step_order(data, tmp_path):
    """Progress lines, checkpoints and previews in step order, every step logged. (On JAX
    the monitor reads the loss terms off the main thread: checked in the JAX subprocess.)"""
    lines = []
    train(tiny_config(data, tmp_path, tensorboard=False), loss_network=fake_loss_network(),
          log=lines.append)
    events = [line.split()[1] if line.startswith("step ") else line.split("-")[-1]
              for line in lines if line.startswith(("step ", "checkpoint:", "preview:"))]
    assert events == ["1/4", "2/4", "00000002.npz", "00000002.png", "3/4", "4/4",
                      "00000004.npz", "00000004.png"], lines


# ----------------------------------------------------------------------------- --init-from


def test_init_from_starts_from_the_models_weights_with_a_fresh_optimizer(uninterrupted, data,
                                                                         tmp_path):
    start, _ = uninterrupted
    config = tiny_config(data, tmp_path, init_model=str(start), steps=2, preview_every=100)
    lines = []
    path = train(config, loss_network=fake_loss_network(), log=lines.append)
    assert any(f"from the weights of {start}" in line for line in lines)
    # A fresh optimizer and step count: checkpoints count from 0, Adam from its first step.
    assert latest_checkpoint(tmp_path / "runs" / "model").name == "checkpoint-00000002.npz"
    model = load_model(path)
    # Adam's first step moves a weight by at most lr, its second by at most 1.0014 lr
    # (Cauchy-Schwarz on the bias-corrected moments), so two steps from the init model stay
    # within 2.0014 lr of it (+ float32 rounding of values ~1: 1e-7); a network started from
    # fresh random weights differs from it by ~0.1 and more.
    bound = 2.0014 * config.learning_rate + 1e-6
    for trained, initial in zip(model.weights, load_model(start).weights):
        assert np.abs(ops.convert_to_numpy(trained) - ops.convert_to_numpy(initial)).max() <= bound
    assert max(np.abs(ops.convert_to_numpy(a) - ops.convert_to_numpy(b)).max()
               for a, b in zip(model.weights, build_network(2, width_multiplier=0.25).weights)) > 0.1
    # Its lineage, as --base records it; a chain keeps the earlier links.
    assert model.metadata["steps_trained"] == 2
    lineage = model.metadata["init_model"]
    assert lineage["file"] == start.name and lineage["steps_trained"] == 4  # a name, no folders
    assert lineage["training"] == load_model(start).metadata["training"]
    again = train(config.replace(init_model=str(path), output=str(tmp_path / "again.keras"),
                                 steps=1), loss_network=fake_loss_network(), log=lambda line: None)
    chain = load_model(again).metadata["init_model"]
    assert chain["file"] == path.name and chain["init_model"]["file"] == start.name


def test_init_from_a_different_model_is_a_one_line_error(uninterrupted, data, tmp_path):
    start = str(uninterrupted[0])
    cases = {
        "styles": (dict(styles=str(data["more"])),
                   r"has 2 styles \(red, blue\) but the styles folder .* has 1 \(new0\); it "
                   r"must have the same names in the same order"),
        "normalization": (dict(normalization="batch"),
                          r"trained with `normalization` instance \(this run: batch\); give"),
        "width": (dict(width_multiplier=0.5), r"`width_multiplier` 0.25 \(this run: 0.5\)"),
        "base": (dict(base_model=start), "exclude each other"),
    }
    for changes, message in cases.values():
        with pytest.raises(ConfigError, match=message) as error:
            train(tiny_config(data, tmp_path, init_model=start, **changes),
                  loss_network=fake_loss_network())
        assert "\n" not in str(error.value)
    with pytest.raises(ModelFileError):
        train(tiny_config(data, tmp_path, init_model=str(tmp_path / "missing.keras")),
              loss_network=fake_loss_network())
    assert not (tmp_path / "runs").exists()  # all of these fail before the run starts

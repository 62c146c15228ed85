"""Distillation: the teacher loss against NumPy, the teacher's outputs and their cache, and
`distill` end to end on tiny images (model file, lineage, resume, signals, errors).

Runs use a quarter-width "fast" teacher with 3 styles, a 4-convolution stand-in for VGG-16
(`test_train.fake_loss_network`), 32 px crops and batch 2: seconds per run.
"""

import importlib.util
import json
import os
import signal
import textwrap

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_images, seeded_network
from keras import ops

from stylecbn.applying.stylize import Stylizer
from stylecbn.cli.root import main
from stylecbn.errors import ConfigError, DataError
from stylecbn.model.saving import attach_targets, load_model, save_model
from stylecbn.model.targets import StyleTargets
from stylecbn.perceptual.losses import gram_matrix
from stylecbn.perceptual.teacher_loss import TeacherLoss, TeacherLossWeights
from stylecbn.training.config import DistillConfig
from stylecbn.training.distill import distill, pick_styles
from stylecbn.training.photos import ContentPhotos
from stylecbn.training.teacher import TEACHER_FOLDER, TeacherOutputs, keras_painter
from stylecbn.cli.train import apply_painter
from test_train import InterruptAt, SignalAt, _run_python, fake_loss_network

pytestmark = pytest.mark.usefixtures("plenty_of_memory")  # see conftest.py

NAMES = ["wave", "night", "scream"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    teacher = seeded_network(3, style_names=NAMES, style_credits=["a", "b", "c"],
                             preset="fast", width_multiplier=0.5, seed=3)
    rng = np.random.default_rng(0)
    for norm in teacher.normalization_layers:  # styles that differ visibly
        norm.gamma.assign(rng.uniform(0.5, 1.5, norm.gamma.shape).astype("float32"))
        norm.beta.assign(rng.normal(0, 0.5, norm.beta.shape).astype("float32"))
    channels = 4
    grams = rng.random((3, channels, channels)).astype("float32")
    targets = StyleTargets(
        {"block1_conv2": (grams + grams.transpose(0, 2, 1)) / 2},  # Gram matrices: symmetric
        {"weights": "hed", "fingerprint": "0" * 64}, tuple(NAMES), (256, 256, 256))
    attach_targets(teacher, targets)
    path = root / "teacher.keras"
    save_model(teacher, path)
    content = make_images(root / "content", 5, seed=3)
    return {"teacher": path, "content": content, "targets": targets}


def tiny(data, tmp_path, **changes):
    settings = dict(
        teacher=str(data["teacher"]), content=str(data["content"]),
        output=str(tmp_path / "student.keras"), steps=4, batch_size=2, crop_size=32,
        width_multiplier=0.25, checkpoint_every=2, preview_every=2, log_every=1, holdout=1,
        learning_rate=0.01, preview_size=32, gram_layers="block1_conv2,block2_conv2",
        feature_weight=0.5, tensorboard=False,
    )
    settings.update(changes)
    return DistillConfig(**settings)


def run(config, **kwargs):
    lines = []
    path = distill(config, loss_network=fake_loss_network(), log=lines.append, **kwargs)
    return path, lines


def weights_of(path):
    return [ops.convert_to_numpy(w) for w in load_model(path).weights]


# ----------------------------------------------------------------------------- the loss


def test_teacher_loss_matches_numpy():
    """Each term against its definition computed in float64 from the same features."""
    network = fake_loss_network()
    rng = np.random.default_rng(1)
    teacher = rng.random((2, 16, 20, 3)).astype("float32")
    student = rng.random((2, 16, 20, 3)).astype("float32")
    weights = TeacherLossWeights(pixel=0.7, gram=0.3, feature=2.0,
                                 gram_layers=("block1_conv2", "block2_conv2"),
                                 feature_layer="block2_conv2", gram_normalization="relative")
    total, terms = TeacherLoss(network, weights)(teacher, student)

    def pooled(x):
        return x.astype(np.float64).reshape(2, 4, 4, 5, 4, 3).mean(axis=(2, 4))

    pixel = np.abs(pooled(student) - pooled(teacher)).mean()
    taught = {k: ops.convert_to_numpy(v).astype(np.float64) for k, v in network(teacher).items()}
    learnt = {k: ops.convert_to_numpy(v).astype(np.float64) for k, v in network(student).items()}

    def gram(f):
        return np.einsum("bhwc,bhwd->bcd", f, f) / (f.shape[1] * f.shape[2])

    def relative(a, b):
        return np.mean((a - b) ** 2) / np.mean(b ** 2)

    grams = sum(relative(gram(learnt[k]), gram(taught[k])) for k in weights.gram_layers)
    feature = relative(learnt["block2_conv2"], taught["block2_conv2"])
    # float32 sums of at most a few thousand products of values near 1: relative rounding
    # near 1e-6 per term; 1e-4 leaves a hundredfold margin
    for name, expected in (("pixel_loss", pixel), ("gram_loss", grams),
                           ("feature_loss", feature)):
        assert float(terms[name]) == pytest.approx(expected, rel=1e-4)
    assert float(total) == pytest.approx(0.7 * pixel + 0.3 * grams + 2.0 * feature, rel=1e-4)
    absolute = TeacherLossWeights(pixel=0.0, gram=1.0, feature=0.0,
                                  gram_layers=("block1_conv2", "block2_conv2"),
                                  gram_normalization="absolute")
    _, terms = TeacherLoss(network, absolute)(teacher, student)
    expected = sum(np.mean((gram(learnt[k]) - gram(taught[k])) ** 2) for k in absolute.gram_layers)
    assert float(terms["gram_loss"]) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ConfigError, match="gram_normalization must be one of relative"):
        TeacherLossWeights(gram_normalization="squared")
    # gram_matrix is the project's; the reference above is independent of it
    assert np.allclose(ops.convert_to_numpy(gram_matrix(taught["block1_conv2"])),
                       gram(taught["block1_conv2"]), rtol=1e-4, atol=1e-6)


def test_teacher_loss_is_zero_for_the_teachers_own_images_and_skips_zero_terms():
    network = fake_loss_network()
    images = np.random.default_rng(2).random((1, 8, 8, 3)).astype("float32")
    total, terms = TeacherLoss(network, TeacherLossWeights())(images, images)
    assert float(total) == 0.0
    total, terms = TeacherLoss(None, TeacherLossWeights(pixel=1.0, gram=0.0, feature=0.0))(
        images, images * 0.5)
    assert float(terms["gram_loss"]) == 0.0 and float(terms["pixel_loss"]) > 0
    with pytest.raises(ConfigError, match="need a loss network"):
        TeacherLoss(None, TeacherLossWeights())
    with pytest.raises(ConfigError, match="no layer block9_conv9"):
        TeacherLoss(network, TeacherLossWeights(gram_layers=("block9_conv9",)))


def test_teacher_loss_gradient_flows_to_the_student_only():
    network = fake_loss_network()
    rng = np.random.default_rng(3)
    teacher = keras.Variable(rng.random((1, 8, 8, 3)).astype("float32"))
    student = keras.Variable(rng.random((1, 8, 8, 3)).astype("float32"))
    import tensorflow as tf

    with tf.GradientTape() as tape:
        total, _ = TeacherLoss(network, TeacherLossWeights(pixel=0.0, gram=1.0))(
            teacher.value, student.value)
    to_teacher, to_student = tape.gradient(total, [teacher.value, student.value])
    assert to_teacher is None or not np.any(to_teacher.numpy())
    assert np.any(to_student.numpy())


# ----------------------------------------------------------------------------- styles, settings


def test_pick_styles_by_name_and_index():
    assert pick_styles("", NAMES) == [0, 1, 2]
    assert pick_styles("all", NAMES) == [0, 1, 2]
    assert pick_styles("scream, 0", NAMES) == [2, 0]
    with pytest.raises(ConfigError, match="no style 'sky'"):
        pick_styles("sky", NAMES)
    with pytest.raises(ConfigError, match="styles 0 to 2; 3 is not"):
        pick_styles("3", NAMES)
    with pytest.raises(ConfigError, match="wave is named twice"):
        pick_styles("0,wave", NAMES)


@pytest.mark.parametrize("changes, message", [
    (dict(pixel_weight=0.0, gram_weight=0.0, feature_weight=0.0), "all 0"),
    (dict(gram_layers=" , "), "`gram_layers` is empty"),
    (dict(teacher=""), "no teacher"),
    (dict(output="student.h5"), "must be a .keras file"),
    (dict(crop_size=8), "crop_size"),
])
def test_bad_settings_are_one_line_errors(data, tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny(data, tmp_path, **changes)


# ----------------------------------------------------------------------------- teacher outputs


def test_teacher_outputs_are_the_teachers_paintings_cut_like_the_photos(data, tmp_path):
    teacher = load_model(data["teacher"])
    photos = ContentPhotos(data["content"], crop=32, resize=36, holdout=1, seed=0)
    lines = []
    outputs = TeacherOutputs(tmp_path, data["teacher"], [2, 0], photos, lines.append,
                             apply_painter(teacher))
    assert "painting 4 photo(s) x 2 styles with stylecbn apply (runtime keras)" in lines[0]
    for photo, array in zip(photos.training_photos, outputs.arrays):
        for slot, style in enumerate([2, 0]):
            # what `stylecbn apply` paints (tests run the Keras runtime, conftest.py)
            assert np.array_equal(array[slot], np.asarray(
                Stylizer(teacher).stylize(photo, style, max_size=0)))
    windows = photos.windows(7, 6)
    labels = np.array([0, 1, 1, 0, 1, 0])
    crops = outputs.crops(windows, labels)
    images = photos.crops(windows)
    for i, (index, (top, left), flip) in enumerate(zip(*windows)):
        expected = outputs.arrays[index][labels[i]][top:top + 32, left:left + 32]
        photo = photos.training_photos[index][top:top + 32, left:left + 32]
        assert np.array_equal(crops[i], expected[:, ::-1] if flip else expected)
        assert np.array_equal(images[i], photo[:, ::-1] if flip else photo)


def test_teacher_outputs_are_kept_repainted_when_damaged_and_redone_for_another_teacher(
        data, tmp_path):
    teacher = load_model(data["teacher"])
    photos = ContentPhotos(data["content"], crop=32, resize=36, holdout=1, seed=0)
    first = TeacherOutputs(tmp_path, data["teacher"], [0], photos, lambda line: None,
                           keras_painter(teacher))
    kept = [np.array(a) for a in first.arrays]
    for photo, array in zip(photos.training_photos, kept):  # the network's float32 image
        painted = ops.convert_to_numpy(teacher((photo[None], np.array([0]))))[0]
        assert np.array_equal(array[0], np.clip(np.rint(painted * 255), 0, 255))
    lines = []
    TeacherOutputs(tmp_path, data["teacher"], [0], photos, lines.append, keras_painter(teacher))
    assert lines == [f"teacher outputs: 4 photos x 1 styles, read from {tmp_path / TEACHER_FOLDER}"]
    damaged = tmp_path / TEACHER_FOLDER / "photo-00002.npy"
    damaged.write_bytes(damaged.read_bytes()[:100])
    lines = []
    again = TeacherOutputs(tmp_path, data["teacher"], [0], photos, lines.append,
                           keras_painter(teacher))
    assert "painting 1 photo(s)" in lines[0]
    assert all(np.array_equal(a, b) for a, b in zip(kept, again.arrays))
    other = tmp_path / "other.keras"
    changed = load_model(data["teacher"])
    changed.normalization_layers[0].beta.assign(
        ops.convert_to_numpy(changed.normalization_layers[0].beta) + 0.5)
    save_model(changed, other)
    lines = []
    TeacherOutputs(tmp_path, other, [0], photos, lines.append, keras_painter(changed))
    assert "painting 4 photo(s)" in lines[0]
    lines = []  # another painter: painted again
    TeacherOutputs(tmp_path, other, [0], photos, lines.append, apply_painter(changed))
    assert "painting 4 photo(s)" in lines[0]


def test_interrupted_painting_keeps_what_it_painted(data, tmp_path, monkeypatch):
    teacher = load_model(data["teacher"])
    photos = ContentPhotos(data["content"], crop=32, resize=36, holdout=1, seed=0)
    painted = []
    original = TeacherOutputs._paint_one

    def interrupt_second(self, photo):
        if len(painted) == 1:
            raise KeyboardInterrupt
        painted.append(1)
        return original(self, photo)

    monkeypatch.setattr(TeacherOutputs, "_paint_one", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        TeacherOutputs(tmp_path, data["teacher"], [1], photos, lambda line: None,
                       keras_painter(teacher))
    monkeypatch.setattr(TeacherOutputs, "_paint_one", original)
    assert sorted(p.name for p in (tmp_path / TEACHER_FOLDER).glob("*.npy")) == ["photo-00000.npy"]
    assert not list((tmp_path / TEACHER_FOLDER).glob("*.tmp.*"))
    lines = []
    TeacherOutputs(tmp_path, data["teacher"], [1], photos, lines.append, keras_painter(teacher))
    assert "painting 3 photo(s)" in lines[0]


# ----------------------------------------------------------------------------- distill


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole")
    path, lines = run(tiny(data, folder, styles="scream,wave"))
    return path, lines


def test_distill_writes_a_student_with_the_teachers_styles_and_lineage(uninterrupted, data):
    path, lines = uninterrupted
    student = load_model(path)
    assert student.style_names == ["scream", "wave"]
    assert student.style_credits == ["c", "a"]
    assert student.preset == "lowres" and student.width_multiplier == 0.25  # the default student
    meta = student.metadata
    assert meta["distilled_from"]["file"] == "teacher.keras"
    assert meta["distilled_from"]["styles"] == [2, 0]
    assert meta["distillation"]["teacher"] == "teacher.keras"
    assert meta["distillation"]["content"] == "content"  # paths cut to their last name
    assert meta["steps_trained"] == 4
    assert set(meta["final_losses"]) == {"total_loss", "pixel_loss", "gram_loss", "feature_loss"}
    # the style targets of the learnt styles, in the student's order
    grams = student.style_targets.grams["block1_conv2"]
    teachers = load_model(data["teacher"]).style_targets.grams["block1_conv2"]
    assert np.array_equal(grams, teachers[[2, 0]])
    assert student.style_targets.style_names == ("scream", "wave")
    progress = [line for line in lines if line.startswith("step ")]
    assert len(progress) == 4 and "pixel" in progress[-1] and "gram" in progress[-1]
    assert "img/s" in progress[-1] and "left" in progress[-1]
    run_dir = path.parent / "runs" / "student"
    assert (run_dir / TEACHER_FOLDER / "photo-00000.npy").is_file()
    assert sorted(p.name for p in run_dir.glob("preview-*.png")) == [
        "preview-00000002.png", "preview-00000004.png"]
    assert json.loads((run_dir / "config.json").read_text())["styles"] == "scream,wave"


def test_interrupted_and_resumed_distillation_ends_bit_identical(uninterrupted, data, tmp_path):
    config = tiny(data, tmp_path, styles="scream,wave")
    with pytest.raises(KeyboardInterrupt):
        run(config, callbacks=[InterruptAt(3)])
    assert not (tmp_path / "student.keras").exists()
    path, lines = run(config.replace(resume=True))
    assert any("read from" in line for line in lines)  # the teacher is not run again
    assert any("resuming from" in line and "step 3" in line for line in lines)
    for a, b in zip(weights_of(path), weights_of(uninterrupted[0])):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_and_sigterm_stop_with_a_checkpoint(data, tmp_path, signum):
    config = tiny(data, tmp_path, steps=6, checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt):
        run(config, callbacks=[SignalAt(2, signum)])
    assert [p.name for p in (tmp_path / "runs" / "student").glob("checkpoint-*.npz")] == [
        "checkpoint-00000002.npz"]


def test_resume_refuses_changed_result_settings(data, tmp_path):
    config = tiny(data, tmp_path, steps=2)
    run(config)
    with pytest.raises(ConfigError, match="gram_weight"):
        run(config.replace(resume=True, steps=4, gram_weight=0.5), force=True)
    with pytest.raises(ConfigError, match="holds checkpoints of an earlier run"):
        run(config.replace(output=str(tmp_path / "other.keras"),
                           run_dir=str(tmp_path / "runs" / "student")))


def test_distill_refuses_what_it_cannot_do(data, tmp_path):
    with pytest.raises(ConfigError, match="already exists"):
        (tmp_path / "student.keras").write_bytes(b"old")
        run(tiny(data, tmp_path))
    assert (tmp_path / "student.keras").read_bytes() == b"old"
    with pytest.raises(ConfigError, match="the `teacher` this run reads"):
        run(tiny(data, tmp_path, output=str(data["teacher"])), force=True)
    with pytest.raises(DataError, match="does not exist"):
        run(tiny(data, tmp_path, content=str(tmp_path / "nowhere"), output=str(tmp_path / "x.keras")))
    with pytest.raises(ConfigError, match="no style 'sky'"):
        run(tiny(data, tmp_path, styles="sky", output=str(tmp_path / "y.keras")))


# ----------------------------------------------------------------------------- the command


def test_cli_distill_end_to_end_and_its_errors(data, tmp_path):
    runner = CliRunner()
    output = tmp_path / "fast.keras"
    args = ["distill", "--teacher", str(data["teacher"]), "--content", str(data["content"]),
            "-o", str(output), "--steps", "2", "--batch-size", "2", "--crop-size", "32",
            "--width", "0.25", "--holdout", "1", "--gram-weight", "0", "--feature-weight", "0",
            "--preview-size", "16",
            "--styles", "night", "--no-tensorboard"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert load_model(output).style_names == ["night"]
    assert "pixel only" in result.output or "pixel term only" in result.output
    again = runner.invoke(main, args)
    assert again.exit_code != 0
    assert "holds checkpoints of an earlier run" in again.output
    assert len(again.output.strip().splitlines()) == 1
    resumed = runner.invoke(main, ["distill", "-o", str(output), "--resume", "--steps", "3",
                                   "--force"])
    assert resumed.exit_code == 0, resumed.output
    assert load_model(output).metadata["steps_trained"] == 3
    # a resume that trains nothing (to write the model) keeps the checkpoint's last losses
    again = runner.invoke(main, ["distill", "-o", str(output), "--resume", "--steps", "3",
                                 "--force"])
    assert again.exit_code == 0, again.output
    assert "nothing to train" in again.output
    assert set(load_model(output).metadata["final_losses"]) >= {"total_loss", "pixel_loss"}
    bad = runner.invoke(main, [*args[:-3], "--styles", "sky", "-o", str(tmp_path / "z.keras")])
    assert bad.exit_code != 0 and "no style 'sky'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    missing = runner.invoke(main, ["distill", "-o", str(tmp_path / "none.keras"), "--resume"])
    assert missing.exit_code != 0 and "no checkpoint" in missing.output


def test_distill_runs_under_mixed_bfloat16(data, tmp_path):
    path, _ = run(tiny(data, tmp_path, precision="mixed_bfloat16", steps=2))
    assert all(np.all(np.isfinite(w)) for w in weights_of(path))
    assert os.path.getsize(path) > 0


@pytest.mark.parametrize("preset", ["lowres", "lowres-separable", "fast"])
def test_distill_each_student_design_in_bfloat16(data, tmp_path, preset):
    path, lines = run(tiny(data, tmp_path, preset=preset, precision="mixed_bfloat16", steps=2,
                           width_multiplier=0.5))
    student = load_model(path)
    assert student.preset == preset and student.width_multiplier == 0.5
    assert all(np.all(np.isfinite(w)) for w in weights_of(path))
    assert any(f"{preset} network" in line for line in lines)
    painted = np.asarray(Stylizer(student).stylize(np.zeros((20, 28, 3), np.uint8), "night"))
    assert painted.shape == (20, 28, 3)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_distill_on_jax_resumes_exactly_without_tensorflow(tmp_path):
    """The GPU machine runs Keras on JAX without TensorFlow: distillation trains there too."""
    # saved here: Keras' model saving imports TensorFlow wherever it is installed
    save_model(seeded_network(2, preset="fast", width_multiplier=0.5, seed=3),
               tmp_path / "teacher.keras")
    out = _run_python(textwrap.dedent(
        """
        assert keras.backend.backend() == "jax"
        from stylecbn.training.config import DistillConfig
        from stylecbn.training.distill import distill

        class NoTensorFlow(keras.callbacks.Callback):
            def on_train_end(self, logs=None):
                loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
                assert not loaded, loaded[:5]

        def config(name, **changes):
            (root / name).mkdir()
            return DistillConfig(
                teacher=str(root / "teacher.keras"), content=str(data["content"]),
                output=str(root / name / "student.keras"), steps=3, batch_size=2,
                crop_size=32, width_multiplier=0.25, checkpoint_every=100, holdout=0,
                tensorboard=False, gram_layers="block1_conv2,block2_conv2", **changes)
        a = config("a")
        distill(a, loss_network=fake_loss_network(), log=quiet, callbacks=[NoTensorFlow()])
        b = config("b")
        try:
            distill(b, loss_network=fake_loss_network(), log=quiet, callbacks=[InterruptAt(2)])
            raise SystemExit("no interrupt")
        except KeyboardInterrupt:
            pass
        distill(b.replace(resume=True), loss_network=fake_loss_network(), log=quiet)
        for x, y in zip(weights(root / "a" / "student.keras"),
                        weights(root / "b" / "student.keras")):
            np.testing.assert_array_equal(x, y)
        print("ok")
        """), tmp_path, {"KERAS_BACKEND": "jax"})
    assert out.strip().endswith("ok")

"""The style targets a model file carries (stylecbn.model.targets): the format, the file,
training writing them, `add-targets`, and old files without them."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from keras import ops
from test_train import data, fake_loss_network, tiny_config  # noqa: F401  (data: a fixture)

from stylecbn.cli import main as cli_main
from stylecbn.errors import ConfigError, ModelFileError
from stylecbn.model.network import build_network
from stylecbn.model.saving import attach_targets, load_model, save_model, write_targets
from stylecbn.model.targets import MEMBER, StyleTargets, read_targets
from stylecbn.training.run import train
from stylecbn.training.style_targets import GRAMS_FILE, add_targets

IDENTITY = {"weights": "file", "fingerprint": "0" * 64}


def random_targets(names, channels=(3, 5), seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    grams = {}
    for index, count in enumerate(channels):
        features = rng.random((len(names), 7, count)).astype(np.float32)
        grams[f"block{index + 1}_conv2"] = scale * np.einsum("snc,snd->scd", features, features)
    return StyleTargets(grams, dict(IDENTITY), tuple(names), tuple(range(16, 16 + len(names))))


def assert_float16_close(actual, expected, scale):
    # One float16 rounding of value/scale (scale a power of two): relative error at most
    # 2**-11 for normal numbers, absolute at most 2**-25 * scale below float16's normal range.
    np.testing.assert_allclose(actual, expected, rtol=2.0**-11, atol=2.0**-25 * scale)


@pytest.fixture
def small_model():
    return build_network(2, style_names=["red", "blue"], width_multiplier=0.25)


def test_targets_survive_the_file_in_float16(small_model, tmp_path):
    # 1e5 * values up to ~7: beyond float16's 65504, so the per-layer scale is needed.
    targets = random_targets(["red", "blue"], scale=1e5)
    attach_targets(small_model, targets)
    path = tmp_path / "m.keras"
    save_model(small_model, path)
    loaded = load_model(path).style_targets
    assert loaded.style_names == ("red", "blue") and loaded.sizes == (16, 17)
    assert loaded.loss_network == IDENTITY and loaded.layers == targets.layers
    for layer in targets.layers:
        np.testing.assert_array_equal(loaded.grams[layer], loaded.grams[layer].transpose(0, 2, 1))
        assert_float16_close(loaded.grams[layer], targets.grams[layer], 2.0**3)
    with zipfile.ZipFile(path) as archive:  # one triangle of float16 per layer, no path
        info = archive.read(MEMBER)
    assert b"/tmp" not in info


def test_file_without_targets_loads_and_bare_keras_loads_one_with_them(small_model, tmp_path):
    plain = tmp_path / "plain.keras"
    save_model(small_model, plain)
    assert load_model(plain).style_targets is None
    attach_targets(small_model, random_targets(["red", "blue"]))
    path = tmp_path / "with.keras"
    save_model(small_model, path)
    code = ("import sys, keras, stylecbn.model.network; "
            "m = keras.saving.load_model(sys.argv[1], compile=False); print(m.num_styles)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "2"


def test_targets_of_other_styles_and_damaged_members_are_refused(small_model, tmp_path):
    with pytest.raises(ModelFileError, match="not the model's"):
        attach_targets(small_model, random_targets(["red", "green"]))
    path = tmp_path / "m.keras"
    save_model(small_model, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(MEMBER, b"not an npz")
    with pytest.raises(ModelFileError, match="style targets .* damaged.*add-targets"):
        load_model(path)


def test_write_targets_keeps_every_other_member(small_model, tmp_path):
    source = tmp_path / "m.keras"
    save_model(small_model, source, weights_dtype="float16")
    out = tmp_path / "out.keras"
    write_targets(source, random_targets(["red", "blue"]), out)
    with zipfile.ZipFile(source) as before, zipfile.ZipFile(out) as after:
        for name in before.namelist():
            assert after.read(name) == before.read(name)
        assert set(after.namelist()) == set(before.namelist()) | {MEMBER}
    write_targets(out, random_targets(["red", "blue"], seed=1), out)  # in place
    assert_float16_close(read_targets(out).grams["block1_conv2"],
                         random_targets(["red", "blue"], seed=1).grams["block1_conv2"], 8.0)
    with pytest.raises(ModelFileError, match="must end in .keras"):
        write_targets(source, random_targets(["red", "blue"]), tmp_path / "out.zip")


def test_blended_targets_are_the_weighted_mean():
    targets = random_targets(["a", "b", "c"])
    blended = targets.blended([0.25, 0.0, 0.75])
    for layer, grams in targets.grams.items():
        np.testing.assert_allclose(blended[layer], 0.25 * grams[0] + 0.75 * grams[2], rtol=1e-6)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("trained")
    path = train(tiny_config(data, tmp, steps=1, checkpoint_every=1, preview_every=1),
                 loss_network=fake_loss_network(), log=lambda line: None)
    return path


def test_training_writes_the_run_folders_grams_as_targets(trained):
    targets = load_model(trained).style_targets
    with np.load(trained.parent / "runs" / "model" / GRAMS_FILE) as saved:
        for index, layer in enumerate(targets.layers):
            expected = saved[f"layer/{index}"]
            scale = 2.0 ** max(0, np.ceil(np.log2(np.abs(expected).max() / 16384)))
            assert_float16_close(targets.grams[layer], expected, scale)
    assert targets.style_names == ("red", "blue") and targets.sizes == (32, 32)
    assert targets.loss_network["weights"] == "file"


def test_adding_styles_extends_the_base_models_targets(trained, data, tmp_path):  # noqa: F811
    lines = []
    path = train(tiny_config(data, tmp_path, styles=str(data["more"]), base_model=str(trained),
                             steps=1, checkpoint_every=1, preview_every=1),
                 loss_network=fake_loss_network(), log=lines.append)
    targets = load_model(path).style_targets
    base = load_model(trained).style_targets
    assert targets.style_names == ("red", "blue", "new0")
    for layer in base.layers:
        np.testing.assert_array_equal(targets.grams[layer][:2], base.grams[layer])


def test_add_targets_reproduces_the_training_targets(trained, data, tmp_path):  # noqa: F811
    plain = tmp_path / "plain.keras"
    model = load_model(trained)
    model.style_targets = None
    save_model(model, plain)
    out = tmp_path / "with.keras"
    targets = add_targets(plain, data["styles"], out, vgg_weights="injected",
                          loss_network=fake_loss_network(), log=lambda line: None)
    expected = load_model(trained).style_targets
    # Same images, sizes, layers and network: the same float32 Grams, rounded the same way.
    for layer in expected.layers:
        np.testing.assert_array_equal(load_model(out).style_targets.grams[layer],
                                      expected.grams[layer])
    assert targets.style_names == expected.style_names
    with pytest.raises(ConfigError, match="not the model's"):
        add_targets(plain, data["more"], out, vgg_weights="injected",
                    loss_network=fake_loss_network(), log=lambda line: None)


def test_add_targets_command_errors(trained, data, tmp_path):  # noqa: F811
    runner = CliRunner()
    out = tmp_path / "o.keras"
    result = runner.invoke(cli_main, ["add-targets", str(trained), "--styles", str(data["more"]),
                                      "-o", str(out)])
    assert result.exit_code == 2 and "not the model's" in result.output
    # the model records an injected (file) loss network, which is no file here
    result = runner.invoke(cli_main, ["add-targets", str(trained), "--styles",
                                      str(data["styles"]), "-o", str(out)])
    assert result.exit_code == 2 and "VGG-16 weights file" in result.output
    assert "Traceback" not in result.output and not out.exists()
    result = runner.invoke(cli_main, ["add-targets", str(tmp_path / "none.keras"), "--styles",
                                      str(data["styles"])])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_start_new_rows_blends_the_old_rows():
    from stylecbn.training.trainer import start_new_rows

    net = build_network(3, width_multiplier=0.25)
    rng = np.random.default_rng(4)
    for norm in net.normalization_layers:
        norm.gamma.assign(rng.random(norm.gamma.shape).astype(np.float32))
    before = [ops.convert_to_numpy(norm.gamma).copy() for norm in net.normalization_layers]
    start_new_rows(net, 2, [[0.25, 0.75]])
    for norm, old in zip(net.normalization_layers, before):
        gamma = ops.convert_to_numpy(norm.gamma)
        np.testing.assert_array_equal(gamma[:2], old[:2])
        # one float32 product-sum of two terms: within a few float32 ulps of the exact value
        np.testing.assert_allclose(gamma[2], 0.25 * old[0] + 0.75 * old[1], rtol=1e-6)


def test_a_new_style_starts_from_the_nearest_trained_one(trained, data, tmp_path):  # noqa: F811
    import shutil

    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(data["styles"] / "style1.png", folder / "again.png")
    (folder / "styles.toml").write_text('[[style]]\nfile = "again.png"\nsize = 32\n')
    lines = []
    train(tiny_config(data, tmp_path, styles=str(folder), base_model=str(trained), steps=1,
                      checkpoint_every=1, preview_every=1),
          loss_network=fake_loss_network(), log=lines.append)
    # the same image at the same size: its Gram matrices are blue's, up to float16 storage
    assert any(line.startswith("new style again starts from blue 100%") for line in lines), lines

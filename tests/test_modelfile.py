"""The .keras model file: bit-exact round trip, metadata, and every kind of bad file."""

import json
import zipfile

import numpy as np
import pytest
import keras
from keras import ops

from stylecbn import load_model, save_model
from stylecbn.training.config import TrainingConfig
from stylecbn.errors import ModelFileError
from stylecbn.model.network import build_network


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    net = build_network(
        3,
        style_names=["mosaic", "waves", "glass"],
        style_credits=["c0", "c1", "c2"],
        normalization="batch",
        width_multiplier=0.5,
        metadata={"training": TrainingConfig(steps=7).to_dict(), "vgg_weights": "hed"},
    )
    rng = np.random.default_rng(0)
    for w in net.weights:
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.1 + ops.convert_to_numpy(w))
    path = tmp_path_factory.mktemp("model") / "m.keras"
    save_model(net, path)
    return net, path


def test_round_trip_is_bit_exact(saved):
    net, path = saved
    loaded = load_model(path)
    assert [w.path for w in loaded.weights] == [w.path for w in net.weights]
    for a, b in zip(loaded.weights, net.weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
    x = np.random.default_rng(1).random((2, 20, 28, 3)).astype("float32")
    for style in (np.array([0, 2]), np.array([[0.2, 0.3, 0.5]] * 2, "float32")):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(loaded((x, style))), ops.convert_to_numpy(net((x, style)))
        )


def test_metadata_survives(saved):
    _, path = saved
    loaded = load_model(path)
    assert loaded.style_names == ["mosaic", "waves", "glass"]
    assert loaded.style_credits == ["c0", "c1", "c2"]
    assert loaded.normalization == "batch"
    assert loaded.width_multiplier == 0.5
    assert TrainingConfig.from_dict(loaded.metadata["training"]).steps == 7
    assert loaded.metadata["vgg_weights"] == "hed"
    assert "stylecbn_version" in loaded.metadata


def test_old_style_weights_key_loads_as_style_coefficients(tmp_path):
    # Files written before the rename keep the manifest's per-style loss multipliers under
    # "style_weights" (a name now kept for blend vectors).
    path = tmp_path / "old.keras"
    save_model(build_network(2, width_multiplier=0.25, metadata={"style_weights": [1.0, 2.5]}),
               path)
    with zipfile.ZipFile(path) as archive:
        assert '"style_weights"' in archive.read("config.json").decode()
    metadata = load_model(path).metadata
    assert metadata["style_coefficients"] == [1.0, 2.5]
    assert "style_weights" not in metadata


def test_save_leaves_no_temporary_files(saved):
    _, path = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.keras"]


def test_failed_save_keeps_previous_file(saved, tmp_path, monkeypatch):
    net, path = saved
    target = tmp_path / "keep.keras"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()

    def broken(model, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.saving, "save_model", broken)
    with pytest.raises(ModelFileError, match="No space left"):
        save_model(net, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.keras"]


def test_save_errors(saved, tmp_path):
    net, _ = saved
    with pytest.raises(ModelFileError, match="must end in .keras"):
        save_model(net, tmp_path / "m.h5")
    with pytest.raises(ModelFileError, match="does not exist"):
        save_model(net, tmp_path / "missing" / "m.keras")


def _error(path):
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_empty_truncated_foreign(saved, tmp_path):
    _, path = saved
    assert "does not exist" in _error(tmp_path / "nope.keras")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    assert "empty" in _error(empty)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "truncated" in _error(truncated)
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    assert "not a stylecbn model file" in _error(text)
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"x")
    assert "must be a .keras file" in _error(h5)
    assert "is a folder" in _error(tmp_path)


def test_damaged_and_foreign_archives(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    # Flip bytes inside the weights entry: the zip checksum catches it.
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[start : start + 4096] = bytes(b ^ 0xFF for b in data[start : start + 4096])
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(bytes(data))
    assert "damaged" in _error(damaged)

    other = tmp_path / "other.zip.keras"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    assert "not a Keras model file" in _error(other)

    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    foreign = tmp_path / "dense.keras"
    sequential.save(foreign)
    assert "not a stylecbn style network" in _error(foreign)

    # A stylecbn-looking config that Keras cannot rebuild.
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            content = src.read(item)
            if item.filename == "config.json":
                config = json.loads(content)
                config["config"]["normalization"] = "group"
                content = json.dumps(config).encode()
            dst.writestr(item, content)
    assert "could not be loaded" in _error(broken)


def rewritten(path, target, change_config=None, raw_config=None, change_weights=None):
    """A copy of the model file at `path` with its config.json changed (`change_config(config)`
    in place, or `raw_config` bytes) and/or its weights (`change_weights(network)`)."""
    if change_weights is not None:
        net = load_model(path)
        change_weights(net)
        save_model(net, target)
        path = target
    with zipfile.ZipFile(path) as src:
        entries = {item.filename: src.read(item) for item in src.infolist()}
    config = json.loads(entries["config.json"])
    if change_config is not None:
        change_config(config)
    entries["config.json"] = raw_config if raw_config is not None else json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as dst:
        for name, content in entries.items():
            dst.writestr(name, content)
    return target


def network_config(change):
    return lambda config: change(config["config"])


def nan_weight(net):
    net.weights[0].assign(np.full(net.weights[0].shape, np.nan, np.float32))


@pytest.mark.parametrize("edit, words, builds", [
    (dict(raw_config=b"[1, 2]"), ["config.json", "not a model configuration"], False),
    (dict(raw_config=b"[" * 4_000 + b"]" * 4_000), ["config.json", "nested"], False),
    (dict(raw_config=b"{" + b" " * 20_000 + b"}"), ["config.json", "20,002 bytes"], False),
    (dict(change_config=network_config(lambda c: c.update(
        num_styles=1_000_000, style_names=None, style_credits=None))),
     ["1000000 styles", "3"], False),
    (dict(change_config=network_config(lambda c: c.update(width_multiplier=1000))),
     ["channels"], False),
    (dict(change_config=network_config(lambda c: c["architecture"].update(residual_blocks=500))),
     ["500 residual blocks"], False),
    (dict(change_config=network_config(lambda c: c["architecture"].update(residual_blocks=2))),
     ["weight arrays", "do not match"], True),
    (dict(change_config=network_config(lambda c: c.update(dtype={
        "module": "keras.layers", "class_name": "Dense", "config": {"units": 2},
        "registered_name": None}))), ["dtype"], True),
    (dict(change_weights=nan_weight), ["not finite"], True),
], ids=["list", "nested", "padded", "many styles", "wide", "deep", "fewer blocks", "dtype",
        "nan"])
def test_hostile_model_files_are_refused_in_one_line(saved, tmp_path, monkeypatch, edit, words,
                                                     builds):
    from stylecbn.model import saving

    monkeypatch.setattr(saving, "MAX_CONFIG_BYTES", 10_000)  # a 20 kB config stands for 1 GB
    target = rewritten(saved[1], tmp_path / "hostile.keras", **edit)
    if not builds:  # refused from the file's sizes, before Keras builds (and allocates) it
        def no_building(*args, **kwargs):
            raise AssertionError("the network was built")

        monkeypatch.setattr(saving.keras.saving, "load_model", no_building)
    message = _error(target)
    for word in words:
        assert word in message, message


def test_half_precision_file(saved, tmp_path):
    net, full_path = saved
    half_path = tmp_path / "half.keras"
    save_model(net, half_path, weights_dtype="float16")
    assert half_path.stat().st_size < 0.6 * full_path.stat().st_size
    loaded = load_model(half_path)
    assert loaded.style_names == net.style_names
    for a, b in zip(loaded.weights, net.weights):
        assert a.dtype == "float32"
        expected = ops.convert_to_numpy(b).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(ops.convert_to_numpy(a), expected)
    with pytest.raises(ModelFileError, match="weights_dtype"):
        save_model(net, tmp_path / "x.keras", weights_dtype="int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.keras"]


def _weight_paths(path):
    """The dataset paths inside a .keras file's weights: part of the file format."""
    import h5py

    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(raw, "r") as weights:
            found = []
            weights.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
    return sorted(found)


def test_weight_paths_match_the_shipped_model(tmp_path):
    """A network saved today stores its weights where the shipped built-in model has them,
    and the shipped file loads and runs (the format is unchanged)."""
    from stylecbn.model.saving import default_model_path

    shipped = default_model_path()
    if not shipped.is_file():
        pytest.skip("no built-in model in this checkout")
    model = load_model(shipped)
    fresh = build_network(model.num_styles, normalization=model.normalization, width_multiplier=0.25)
    save_model(fresh, tmp_path / "fresh.keras")
    assert _weight_paths(tmp_path / "fresh.keras") == _weight_paths(shipped)
    x = np.random.default_rng(0).random((1, 20, 20, 3)).astype("float32")
    y = ops.convert_to_numpy(model((x, np.array([0]))))
    assert y.shape == (1, 20, 20, 3) and np.isfinite(y).all()


def test_the_shipped_model_records_no_directories():
    """The built-in model's metadata (shown by `stylecbn info`) holds names and relative
    paths only: no absolute directory of the machine that trained it."""
    import re

    from stylecbn.model.saving import default_model_path

    shipped = default_model_path()
    if not shipped.is_file():
        pytest.skip("no built-in model in this checkout")
    metadata = json.dumps(load_model(shipped).metadata)
    assert metadata.count("vgg16_block4.npz") == 2  # the setting and the description
    assert not re.search(r'(^|[\s":(])(/|[A-Za-z]:\\\\)[^\s"/]+[/\\]', metadata), metadata


# What a plain Keras user does: import the module the file records (Keras 3 before 3.9 did this
# itself; later versions import only Keras' own modules and need it imported first), then
# load with Keras alone, with no custom_objects and no stylecbn loader.
_BARE_LOAD = """
import importlib, json, sys, zipfile
import numpy as np
import keras
with zipfile.ZipFile(sys.argv[1]) as archive:
    importlib.import_module(json.loads(archive.read("config.json"))["module"])
net = keras.saving.load_model(sys.argv[1])
x = np.linspace(0, 1, 1 * 16 * 16 * 3, dtype="float32").reshape(1, 16, 16, 3)
y = keras.ops.convert_to_numpy(net((x, np.array([1]))))
np.save(sys.argv[2], y)
print(type(net).__module__, type(net).__name__)
"""


def _files_saved_before_the_wings():
    """Model files whose config names the module `stylecbn.network` (saved before the package
    was split into wings): the shipped built-in model and, where present, the shared GPU one."""
    from stylecbn.model.saving import default_model_path

    from conftest import SHARED_DATA

    shared = SHARED_DATA.parent / "models" / "gpu-6k-sw1e-3.keras"
    return [p for p in (default_model_path(), shared) if p.is_file()]


@pytest.mark.parametrize("index", [0, 1], ids=["built-in", "shared-6k"])
def test_files_saved_before_the_wings_load_both_ways(index, tmp_path):
    """Such a file loads with `stylecbn.load_model`, and with a bare `keras.saving.load_model`
    in a fresh interpreter after importing only the module the file records; both give the
    same network, to the bit."""
    import subprocess
    import sys

    files = _files_saved_before_the_wings()
    if index >= len(files):
        pytest.skip("that model file is not in this checkout")
    path = files[index]
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("config.json"))["module"] == "stylecbn.network"
    out = tmp_path / "bare.npy"
    result = subprocess.run([sys.executable, "-c", _BARE_LOAD, str(path), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["stylecbn.model.network", "StyleTransferNetwork"]
    model = load_model(path)
    x = np.linspace(0, 1, 1 * 16 * 16 * 3, dtype="float32").reshape(1, 16, 16, 3)
    ours = ops.convert_to_numpy(model((x, np.array([1]))))
    # Same weights, same graph, same backend and the same input on the same machine: the
    # two forward passes run identical kernels, so they agree exactly.
    np.testing.assert_array_equal(np.load(out), ours)

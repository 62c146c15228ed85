"""Network presets ("full", "fast", "lowres"...) and built-in models picked by name.

The fast preset changes layer sizes only: its conditioning must behave exactly like the full
network's (blends mix gamma/beta rows, weights are normalized, per-pixel weights, any image
size), and it must survive a model file. Built-in models are `stylecbn/assets/<name>.keras`;
the tests point `modelfile.ASSETS_DIR` at a temporary folder to install or remove them.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from keras import ops

from stylecbn.model import saving as modelfile
from stylecbn.cli.root import main
from stylecbn.errors import ConfigError, ModelFileError
from stylecbn.model.network import NetworkArchitecture, PRESETS, StyleTransferNetwork, build_network
from stylecbn.applying.stylize import Stylizer

from helpers import randomize_style_tables, seeded_network

NAMES = ["ink", "sun", "sea"]
# The fast preset's convolution weights (no biases): 5x5 in, two stride-2 3x3, three residual
# blocks of two 3x3 at 32 channels, two upsampling 3x3, 5x5 out.
FAST_CONV_WEIGHTS = (
    5 * 5 * 3 * 8 + 3 * 3 * 8 * 16 + 3 * 3 * 16 * 32
    + 6 * 3 * 3 * 32 * 32
    + 3 * 3 * 32 * 8 + 3 * 3 * 8 * 4 + 5 * 5 * 4 * 3
)
FAST_NORM_CHANNELS = 8 + 16 + 32 + 6 * 32 + 8 + 4 + 3


def np_(x):
    return ops.convert_to_numpy(x)


def images(b=1, h=32, w=32, seed=0):
    return np.random.default_rng(seed).random((b, h, w, 3)).astype("float32")


@pytest.fixture(scope="module")
def fast3():
    return randomize_style_tables(seeded_network(3, style_names=NAMES, preset="fast"))


@pytest.fixture(scope="module")
def fast_file(tmp_path_factory, fast3):
    path = tmp_path_factory.mktemp("fast") / "fast.keras"
    modelfile.save_model(fast3, path)
    return path


@pytest.fixture
def assets(tmp_path, monkeypatch):
    """An empty built-in model folder: copy files in to install models."""
    folder = tmp_path / "assets"
    folder.mkdir()
    monkeypatch.setattr(modelfile, "ASSETS_DIR", folder)
    return folder


# --- the preset -----------------------------------------------------------------------------


def test_fast_weight_counts():
    assert FAST_CONV_WEIGHTS == 64_548
    for k in (1, 3, 17):
        net = build_network(k, preset="fast")
        assert net.count_params() == FAST_CONV_WEIGHTS + 2 * FAST_NORM_CHANNELS * k
        assert len(net.normalization_layers) == 3 + 2 * 3 + 2 + 1
        assert net.preset == "fast" and net.architecture == PRESETS["fast"]
    assert build_network(17, preset="fast").count_params() == 73_490  # README
    assert build_network(2).preset == "full"


@pytest.mark.parametrize("h, w", [(32, 32), (37, 50), (17, 18)])
def test_fast_output_has_input_size_and_range(fast3, h, w):
    y = np_(fast3((images(2, h, w), np.array([0, 2]))))
    assert y.shape == (2, h, w, 3) and y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 1.0
    x8 = (images(1, h, w) * 255).astype("uint8")
    np.testing.assert_allclose(
        np_(fast3((x8, np.array([1])))),
        np_(fast3((x8.astype("float32") / 255.0, np.array([1])))),
        atol=1e-5,
    )


@pytest.fixture(scope="module", params=["fast", "lowres", "lowres-separable"])
def thin3(request, fast3):
    """The presets other than "full", 3 styles each (the fast one is `fast3`)."""
    if request.param == "fast":
        return fast3
    return randomize_style_tables(seeded_network(3, style_names=NAMES, preset=request.param))


def test_blend_equals_network_with_averaged_rows(thin3):
    x = images(2, 28, 36)
    blend = np_(thin3((x, np.array([[0.5, 0.5, 0.0]] * 2, "float32"))))
    single = build_network(1, preset=thin3.architecture)
    for source, target in zip(thin3.weights, single.weights):
        value = np_(source)
        if source.path.endswith(("gamma", "beta")):
            value = value[:2].mean(axis=0, keepdims=True)
        target.assign(value)
    expected = np_(single((x, np.zeros(2, "int32"))))
    # float32 rounding of a short chain of convolutions: far below one uint8 level (0.004).
    np.testing.assert_allclose(blend, expected, rtol=1e-5, atol=1e-5)


def test_weights_are_normalized_and_work_per_pixel(thin3):
    x = images(1, 32, 32)
    a = np_(thin3((x, np.array([[3.0, 1.0, 0.0]], "float32"))))
    b = np_(thin3((x, np.array([[0.75, 0.25, 0.0]], "float32"))))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    field = np.zeros((1, 32, 32, 3), "float32")
    field[..., 2] = 2.0  # normalized per pixel: style 2 everywhere
    np.testing.assert_allclose(
        np_(thin3((x, field))), np_(thin3((x, np.array([2])))), rtol=1e-5, atol=1e-5
    )


def test_strips_equal_whole_image_for_fast(fast3):
    image = (images(1, 45, 58, seed=2)[0] * 255).astype(np.uint8)
    striped = Stylizer(fast3, max_untiled_pixels=1000).stylize(image, "ink:1,sea:2", max_size=0)
    whole = Stylizer(fast3).stylize(image, "ink:1,sea:2", max_size=0)
    # Same maths in another order: float32 differences far below 0.5 level, so at most one
    # rounding step apart.
    assert np.abs(np.asarray(striped).astype(int) - np.asarray(whole)).max() <= 1


def test_config_round_trip_and_files_from_before_presets(fast3):
    config = fast3.get_config()
    assert config["architecture"] == {
        "down_channels": (8, 16, 32), "residual_blocks": 3, "up_channels": (8, 4), "edge_kernel": 5,
    }
    clone = StyleTransferNetwork.from_config(json.loads(json.dumps(config)))
    assert clone.preset == "fast" and clone.architecture == fast3.architecture
    clone.set_weights(fast3.get_weights())
    x = images(1)
    np.testing.assert_array_equal(np_(clone((x, np.array([1])))), np_(fast3((x, np.array([1])))))
    old = build_network(2).get_config()
    del old["architecture"]  # model files written before presets existed
    assert StyleTransferNetwork.from_config(old).preset == "full"


def test_custom_architectures_and_errors():
    custom = StyleTransferNetwork(2, architecture=NetworkArchitecture(residual_blocks=1))
    assert custom.preset is None and len(custom.residual_blocks) == 1
    assert build_network(2, preset=custom.architecture).architecture == custom.architecture
    with pytest.raises(ConfigError, match="Unknown network preset 'tiny'; use one of: full, fast"):
        build_network(2, preset="tiny")
    for kwargs, message in [
        ({"edge_kernel": 4}, "`edge_kernel` must be odd"),
        ({"residual_blocks": 0}, "`residual_blocks` must be an integer >= 1"),
        ({"down_channels": (8, 16)}, "`down_channels` must hold 3 channel counts"),
        ({"up_channels": (8, 0)}, "`up_channels` must be an integer >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            NetworkArchitecture(**kwargs)


def test_fast_model_file_round_trip(fast3, fast_file, tmp_path):
    loaded = modelfile.load_model(fast_file)
    assert loaded.preset == "fast" and loaded.style_names == NAMES
    for a, b in zip(loaded.weights, fast3.weights):
        np.testing.assert_array_equal(np_(a), np_(b))
    half = tmp_path / "half.keras"
    modelfile.save_model(fast3, half, weights_dtype="float16")
    assert modelfile.load_model(half).preset == "fast"


# --- built-in models by name --------------------------------------------------------------


def test_resolve_model_path(assets, fast_file, tmp_path):
    (assets / "default.keras").write_bytes(fast_file.read_bytes())
    assert modelfile.resolve_model_path(None) == assets / "default.keras"
    assert modelfile.resolve_model_path("default") == assets / "default.keras"
    with pytest.raises(ModelFileError) as error:
        modelfile.resolve_model_path("fast")
    message = str(error.value)
    assert "'fast' is not installed in this build" in message
    assert "stylecbn distill --teacher default" in message and "\n" not in message
    with pytest.raises(ModelFileError, match="Unknown model 'fsat': give a built-in model name "
                                             r"\(default, fast\) or the path"):
        modelfile.resolve_model_path("fsat")
    assert modelfile.resolve_model_path(str(tmp_path / "mine.keras")) == tmp_path / "mine.keras"
    (tmp_path / "fast").mkdir()  # a folder named like a model: the name still wins
    with pytest.raises(ModelFileError, match="not installed"):
        modelfile.resolve_model_path("fast")


def test_stylizer_by_name(assets, fast3, fast_file):
    with pytest.raises(ModelFileError, match="'fast' is not installed"):
        Stylizer("fast")
    (assets / "fast.keras").write_bytes(fast_file.read_bytes())
    by_name = Stylizer("fast")
    assert by_name.model.preset == "fast" and by_name.style_names == NAMES
    image = (images(1, 24, 30)[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(
        np.asarray(by_name.stylize(image, 1)), np.asarray(Stylizer(fast3).stylize(image, 1))
    )


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_model_fast_not_installed(assets, tmp_path):
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray((images(1, 24, 30)[0] * 255).astype(np.uint8)).save(photo)
    for args in (("apply", photo, "--model", "fast"), ("styles", "--model", "fast"),
                 ("info", "--model", "fast")):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "Traceback" not in result.output
        assert "'fast' is not installed in this build" in errors[0]
        assert "stylecbn distill --teacher default" in errors[0]
    assert not list(tmp_path.glob("photo_*"))


def test_cli_model_fast_installed(assets, fast3, fast_file, tmp_path):
    (assets / "fast.keras").write_bytes(fast_file.read_bytes())
    from PIL import Image

    image = (images(1, 24, 30)[0] * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    result = run("apply", tmp_path / "photo.png", "--model", "fast", "-s", "sun",
                 "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.png") as out:
        np.testing.assert_array_equal(
            np.asarray(out), np.asarray(Stylizer(fast3).stylize(image, "sun"))
        )
    result = run("styles", "--model", "fast")
    assert result.exit_code == 0 and [line.split()[1] for line in result.stdout.splitlines()] == NAMES
    result = run("info", "--model", "fast")
    assert result.exit_code == 0, result.output
    assert "3 styles, instance normalization, preset fast" in result.stdout
    assert "fast     installed" in result.stdout and "default  not installed" in result.stdout
    record = json.loads(run("info", "--json").stdout)
    assert record["model"] is None  # no built-in default here
    assert [(m["name"], m["installed"]) for m in record["built_in_models"]] == [
        ("default", False), ("fast", True)]


# --- the shipped fast model ---------------------------------------------------------------


def test_the_shipped_fast_model():
    """The built-in fast model (stylecbn/assets/fast.keras, when this build has it) is a
    student of the built-in default one: the same styles, names and credits, a half-resolution
    student, its lineage recorded with relative names only, and `Stylizer("fast")` paints
    each style differently at any size (odd sizes padded to the network's multiple and cropped
    back)."""
    import re

    fast_path = modelfile.built_in_model_path("fast")
    full_path = modelfile.default_model_path()
    if not (fast_path.is_file() and full_path.is_file()):
        pytest.skip("no built-in fast and default models in this checkout")
    fast, full = modelfile.load_model(fast_path), modelfile.load_model(full_path)
    assert fast.style_names == full.style_names and fast.style_credits == full.style_credits
    assert fast.preset == "lowres"
    lineage = fast.metadata["distillation"]
    assert lineage["teacher"] == "default" and lineage["preset"] == "lowres"
    assert fast.metadata["steps_trained"] == lineage["steps"] > 0
    assert not re.search(r'(^|[\s":(])(/|[A-Za-z]:\\\\)[^\s"/]+[/\\]', json.dumps(fast.metadata))
    stylizer = Stylizer("fast")
    image = (images(1, 37, 50, seed=3)[0] * 255).astype(np.uint8)
    outputs = [np.asarray(stylizer.stylize(image, s), np.int16) for s in range(fast.num_styles)]
    assert all(out.shape == (37, 50, 3) for out in outputs)
    # Different styles differ by far more than rounding: the closest pair of this model
    # differs by 11.7 levels on average on this image, where float32 rounding on another
    # machine moves a pixel by at most 1 level; a network that ignored the style label would
    # give 0. 4 levels leaves that margin.
    for a in range(len(outputs)):
        for b in range(a + 1, len(outputs)):
            assert np.abs(outputs[a] - outputs[b]).mean() > 4, (a, b)

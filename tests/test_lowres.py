"""The "lowres" presets: networks that compute at half resolution (space to depth in, depth
to space out) and their depthwise-separable residual blocks.

They change the network's shape only: conditioning (blends of gamma/beta rows, normalized
weights, per-pixel weights: tests/test_presets.py runs those on every thin preset), any image
size, strip inference, model files and every export must behave as they do for the other
presets.
"""

import json
import re

import numpy as np
import pytest
from keras import ops

from stylecbn.applying.blend import resolve_style
from stylecbn.applying.conditioning import StyleField
from stylecbn.applying.strips import run_in_strips
from stylecbn.applying.stylize import Stylizer
from stylecbn.errors import ConfigError
from stylecbn.model import saving as modelfile
from stylecbn.model.layers import depth_to_space, space_to_depth
from stylecbn.model.network import NetworkArchitecture, PRESETS, StyleTransferNetwork, build_network

from helpers import randomize_style_tables, seeded_network

NAMES = ["ink", "sun", "sea"]


def np_(x):
    return ops.convert_to_numpy(x)


def images(b=1, h=32, w=32, seed=0):
    return np.random.default_rng(seed).random((b, h, w, 3)).astype("float32")


@pytest.fixture(scope="module", params=["lowres", "lowres-separable"])
def lowres3(request):
    return randomize_style_tables(seeded_network(3, style_names=NAMES, preset=request.param))


# --- space to depth -------------------------------------------------------------------------


def reference_space_to_depth(x, f):
    """The definition, pixel by pixel: out[b, i, j, (dy*f + dx)*C + c] = x[b, i*f+dy, j*f+dx, c]."""
    b, h, w, c = x.shape
    out = np.empty((b, h // f, w // f, f * f * c), x.dtype)
    for i in range(h // f):
        for j in range(w // f):
            for dy in range(f):
                for dx in range(f):
                    k = (dy * f + dx) * c
                    out[:, i, j, k:k + c] = x[:, i * f + dy, j * f + dx]
    return out


@pytest.mark.parametrize("f", [2, 4])
def test_space_to_depth_is_its_definition_and_depth_to_space_inverts_it(f):
    x = images(2, 8, 12)
    expected = reference_space_to_depth(x, f)
    got = np_(space_to_depth(x, f))
    assert np.array_equal(got, expected)  # a rearrangement: exact
    assert np.array_equal(np_(depth_to_space(got, f)), x)
    assert space_to_depth(x, 1) is x and depth_to_space(x, 1) is x


# --- the presets ----------------------------------------------------------------------------


def conv_weights(separable):
    """Convolution weights of the lowres presets (no biases), counted from their layers."""
    residual = 3 * 3 * 64 + 64 * 64 if separable else 3 * 3 * 64 * 64
    return (3 * 3 * 12 * 16 + 3 * 3 * 16 * 32 + 3 * 3 * 32 * 64
            + 6 * residual
            + 3 * 3 * 64 * 32 + 3 * 3 * 32 * 16 + 3 * 3 * 16 * 12)


NORM_CHANNELS = 16 + 32 + 64 + 6 * 64 + 32 + 16 + 12


@pytest.mark.parametrize("preset, separable", [("lowres", False), ("lowres-separable", True)])
def test_lowres_weight_counts(preset, separable):
    for k in (1, 17):
        net = build_network(k, preset=preset)
        assert net.count_params() == conv_weights(separable) + 2 * NORM_CHANNELS * k
        assert net.preset == preset and net.architecture.multiple == 8
        assert net.conv_out.filters == 12
    assert build_network(17, preset="lowres").count_params() == 289_624
    assert build_network(17, preset="lowres-separable").count_params() == 96_472


@pytest.mark.parametrize("h, w", [(32, 32), (37, 50), (17, 18), (16, 16)])
def test_lowres_output_has_input_size_and_range(lowres3, h, w):
    y = np_(lowres3((images(2, h, w), np.array([0, 2]))))
    assert y.shape == (2, h, w, 3) and y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 1.0
    # the two images of the batch, each in its own style, are not the same picture
    assert np.abs(y[0] - y[1]).mean() > 1e-3


def test_lowres_output_is_the_pixel_shuffle_of_the_last_convolution(lowres3):
    """Every 2x2 block of the output comes from one low-resolution pixel's 12 channels."""
    x = images(1, 24, 32, seed=4)  # a multiple of 8: nothing padded or cropped
    y = np_(lowres3((x, np.array([1]))))
    low = ops.convert_to_tensor(reference_space_to_depth(x, 2))
    style = lowres3._prepare_style(ops.convert_to_tensor(np.array([1])))
    for stage in lowres3.stages:
        low = stage(low, style)
    low = np_(low)
    assert low.shape == (1, 12, 16, 12)
    # The same float32 operations on the same values; should a kernel sum in another order,
    # float32 rounding through a short chain of convolutions stays far below 1e-5 (as the
    # blend test argues), and a wrong pixel order would differ by tenths.
    np.testing.assert_allclose(reference_space_to_depth(y, 2), low, rtol=0, atol=1e-5)


def test_lowres_strips_equal_network_call(lowres3):
    image = images(1, 45, 58, seed=1)[0]  # not a multiple of 8: the pad-and-crop is covered
    rng = np.random.default_rng(0)
    fields = [
        StyleField(resolve_style("ink:1,sun:2", lowres3)),
        StyleField(resolve_style(0, lowres3), resolve_style(2, lowres3),
                   rng.random((45, 58)).astype(np.float32)),
    ]
    for field in fields:
        expected = np_(lowres3((image[None], field.network_input())))[0]
        # 150 output pixels per strip: every stage runs in many strips with halos, and the
        # depth to space writes the output in many strips.
        got = run_in_strips(lowres3, image, field, strip_pixels=150)
        assert got.shape == expected.shape == (45, 58, 3)
        # float32 throughout, statistics summed in float64 by the strips: differences at
        # the 1e-6 level; 1e-4 is far below the 1/255 step of the uint8 output.
        assert np.abs(got - expected).max() < 1e-4


def test_lowres_stylizer_in_strips_equals_whole_image(lowres3):
    image = (images(1, 45, 58, seed=2)[0] * 255).astype(np.uint8)
    striped = Stylizer(lowres3, max_untiled_pixels=1000).stylize(image, "ink:1,sea:2", max_size=0)
    whole = Stylizer(lowres3).stylize(image, "ink:1,sea:2", max_size=0)
    # Same maths in another order: float32 differences far below 0.5 level, so at most one
    # rounding step apart.
    assert np.abs(np.asarray(striped).astype(int) - np.asarray(whole)).max() <= 1


def test_lowres_model_file_round_trip(lowres3, tmp_path):
    path = tmp_path / "lowres.keras"
    modelfile.save_model(lowres3, path)
    loaded = modelfile.load_model(path)
    assert loaded.architecture == lowres3.architecture and loaded.preset == lowres3.preset
    x = images(1, 20, 28)
    np.testing.assert_array_equal(np_(loaded((x, np.array([1])))), np_(lowres3((x, np.array([1])))))


def test_config_keeps_older_architectures_as_they_were(lowres3):
    config = lowres3.get_config()
    separable = lowres3.preset == "lowres-separable"
    expected = {"down_channels": (16, 32, 64), "residual_blocks": 3, "up_channels": (32, 16),
                "edge_kernel": 3, "shuffle": 2}
    if separable:
        expected["separable"] = True
    assert config["architecture"] == expected
    clone = StyleTransferNetwork.from_config(json.loads(json.dumps(config)))
    assert clone.architecture == lowres3.architecture
    # the other presets' files hold no new keys: older versions of stylecbn still read them
    for name in ("full", "fast"):
        assert set(PRESETS[name].as_config()) == {
            "down_channels", "residual_blocks", "up_channels", "edge_kernel"}


@pytest.mark.parametrize("changes, message", [
    ({"shuffle": 4}, "`shuffle` must be an integer from 1 to 2. Received: shuffle=4"),
    ({"shuffle": 0}, "`shuffle` must be an integer from 1 to 2. Received: shuffle=0"),
    ({"shuffle": 1.5}, "`shuffle` must be an integer from 1 to 2. Received: shuffle=1.5"),
    ({"separable": "yes"}, "`separable` must be true or false"),
])
def test_bad_architectures_are_refused(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        NetworkArchitecture(**changes)


def test_separable_blocks_hold_depthwise_and_pointwise_kernels():
    net = build_network(2, preset="lowres-separable")
    block = net.residual_blocks[0]
    assert type(block.conv_1).__name__ == "SeparableConv2D"
    shapes = sorted(tuple(w.shape) for w in block.conv_1.weights)
    assert shapes == [(1, 1, 64, 64), (3, 3, 64, 1)]
    assert block.get_config()["separable"] is True
    assert "separable" not in build_network(2, preset="fast").residual_blocks[0].get_config()

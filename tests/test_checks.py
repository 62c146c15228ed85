"""The one checker of numeric arguments (`stylecbn.errors.check_int`, `check_number`): its rule
(Python and NumPy integers pass for an integer, bool never, floats never; a number is any finite
real, bool never), its bounds, its one voice, and that every library check goes through it."""

from types import SimpleNamespace

import numpy as np
import pytest

from stylecbn.errors import (
    ConfigError, DataError, ImageError, StyleSpecError, StylecbnError, check_int, check_number,
    is_integer, is_number,
)

INTEGERS = [0, 7, -3, 10**30, np.int64(7), np.int8(-3), np.uint16(7), np.array(7)]
NOT_INTEGERS = [True, False, np.bool_(True), 7.0, np.float64(7), float("nan"), float("inf"),
                "7", None, [7], np.array([7]), 7 + 0j]


@pytest.mark.parametrize("value", INTEGERS)
def test_integers_pass_as_python_ints(value):
    result = check_int("count", value)
    assert type(result) is int and result == int(value)
    assert is_integer(value)


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_everything_else_is_no_integer(value):
    assert not is_integer(value)
    with pytest.raises(ConfigError) as error:
        check_int("count", value)
    assert str(error.value).startswith("`count` must be an integer. Received: count=")


NUMBERS = [0, 2.5, -1e300, 10**30, np.float32(0.5), np.float64(2.5), np.int64(3), np.uint8(3)]
NOT_NUMBERS = [True, np.bool_(False), "2.5", None, 1 + 0j, np.complex64(1), [1.0]]
NOT_FINITE = [float("nan"), float("inf"), -float("inf"), np.float32("nan"), 10**400]


@pytest.mark.parametrize("value", NUMBERS)
def test_numbers_pass_as_python_floats(value):
    result = check_number("weight", value)
    assert type(result) is float and result == float(value)
    assert is_number(value)


@pytest.mark.parametrize("value", NOT_NUMBERS + NOT_FINITE)
def test_bools_and_non_finite_values_are_no_numbers(value):
    with pytest.raises(ConfigError, match=r"^`weight` must be a finite number\. Received: "):
        check_number("weight", value)


def test_is_number_leaves_finiteness_to_the_check():
    # Blend weights are numbers before they are checked finite (as a whole blend).
    assert is_number(float("inf")) and not is_number(True)


def test_integer_bounds_are_inclusive_and_named():
    assert check_int("q", 1, minimum=1, maximum=100) == 1
    assert check_int("q", 100, minimum=1, maximum=100) == 100
    for value in (0, 101):
        with pytest.raises(ConfigError) as error:
            check_int("q", value, minimum=1, maximum=100)
        assert str(error.value) == f"`q` must be an integer from 1 to 100. Received: q={value}"
    with pytest.raises(ConfigError, match=r"^`n` must be an integer <= 5\. Received: n=6$"):
        check_int("n", 6, maximum=5)
    with pytest.raises(ConfigError, match=r"^`n` must be an integer >= 0\. Received: n=-1$"):
        check_int("n", np.int64(-1), minimum=0)


def test_number_bounds():
    assert check_number("w", 0, minimum=0) == 0.0
    assert check_number("s", 1, minimum=0, maximum=1) == 1.0
    assert check_number("lr", 1e-300, above=0) == 1e-300
    with pytest.raises(ConfigError, match=r"^`lr` must be a finite number > 0\. Received: lr=0$"):
        check_number("lr", 0, above=0)
    with pytest.raises(ConfigError, match=r"^`w` must be a finite number >= 0\. Received: w=-0.5$"):
        check_number("w", -0.5, minimum=0)
    with pytest.raises(ConfigError, match=r"^`s` must be a finite number from 0 to 1\. "):
        check_number("s", 1.5, minimum=0, maximum=1)


def test_hint_error_class_and_long_values():
    with pytest.raises(ImageError) as error:
        check_int("max_size", -1, minimum=0, hint="0 keeps the size", error=ImageError)
    assert str(error.value) == (
        "`max_size` must be an integer >= 0 (0 keeps the size). Received: max_size=-1"
    )
    with pytest.raises(ConfigError) as error:
        check_int("steps", "9" * 1000)
    assert len(str(error.value)) < 200  # a huge value is cut, not echoed whole


# --- every converted call site raises the library's error in the one voice ----------------


def _call_sites(tmp_path):
    from stylecbn.applying import overviews
    from stylecbn.applying.blend import style_index
    from stylecbn.applying.finish import check_strength
    from stylecbn.applying.stylize import check_max_size
    from stylecbn.media.pixels import resize_to_max
    from stylecbn.media.reading import read_image
    from stylecbn.media.writing import write_image
    from stylecbn.model.layers import ConditionalInstanceNormalization
    from stylecbn.model.network import StyleTransferNetwork
    from stylecbn.model.presets import NetworkArchitecture
    from stylecbn.perceptual.losses import LossWeights
    from stylecbn.serve.uploads import UploadLimits
    from stylecbn.training.config import TrainingConfig
    from stylecbn.training.photos import ContentPhotos, write_resized_photos
    from stylecbn.training.styles import _check_manifest_values

    image = np.zeros((16, 16, 3), np.uint8)
    model = SimpleNamespace(style_names=["a", "b"], num_styles=2)
    sites = [
        ("max_size", ConfigError, lambda v: check_max_size(v)),
        ("strength", ConfigError, lambda v: check_strength(v)),
        ("frames", ConfigError, lambda v: overviews.interpolate(None, image, 0, 1, frames=v, options=None)),
        ("steps", ConfigError, lambda v: overviews.blend_grid(None, image, [0] * 4, steps=v, options=None)),
        ("max_size", ConfigError, lambda v: resize_to_max(image, v)),
        ("max_pixels", ConfigError, lambda v: read_image(image, max_pixels=v)),
        ("reduce_to", ConfigError, lambda v: read_image(image, reduce_to=v)),
        ("quality", ImageError, lambda v: write_image(tmp_path / "a.png", image, quality=v)),
        ("num_classes", ConfigError, lambda v: ConditionalInstanceNormalization(v)),
        ("epsilon", ConfigError, lambda v: ConditionalInstanceNormalization(2, epsilon=v)),
        ("num_styles", ConfigError, lambda v: StyleTransferNetwork(v)),
        ("width_multiplier", ConfigError, lambda v: StyleTransferNetwork(2, width_multiplier=v)),
        ("residual_blocks", ConfigError, lambda v: NetworkArchitecture(residual_blocks=v)),
        ("edge_kernel", ConfigError, lambda v: NetworkArchitecture(edge_kernel=v)),
        ("down_channels", ConfigError, lambda v: NetworkArchitecture(down_channels=(8, v, 8))),
        ("content", ConfigError, lambda v: LossWeights(content=v)),
        ("max_bytes", ConfigError, lambda v: UploadLimits(max_bytes=v)),
        ("max_pixels", ConfigError, lambda v: UploadLimits(max_pixels=v)),
        ("crop", ConfigError, lambda v: ContentPhotos(tmp_path, crop=v)),
        ("holdout", ConfigError, lambda v: ContentPhotos(tmp_path, holdout=v)),
        ("seed", ConfigError, lambda v: ContentPhotos(tmp_path, seed=v)),
        ("quality", ConfigError, lambda v: write_resized_photos(tmp_path, tmp_path / "o",
                                                                quality=v)),
        ("weight", DataError, lambda v: _check_manifest_values({"weight": v}, "styles.toml")),
        ("size", DataError, lambda v: _check_manifest_values({"size": v}, "styles.toml")),
    ]
    sites += [(name, ConfigError, lambda v, name=name: TrainingConfig(**{name: v}))
              for name in ("steps", "batch_size", "crop_size", "holdout", "seed",
                           "learning_rate", "style_weight", "total_variation_weight")]
    # A style index is an integer by the same rule (its message lists the styles instead).
    sites.append((None, StyleSpecError, lambda v: style_index(v, model)))
    return sites


def test_every_numeric_check_refuses_a_bool_in_the_one_voice(tmp_path):
    for name, error, call in _call_sites(tmp_path):
        with pytest.raises(error) as raised:
            call(True)
        assert isinstance(raised.value, StylecbnError)
        if name is not None:
            assert f"`{name}` must be " in str(raised.value)
            assert f"Received: {name}=True" in str(raised.value)


def test_numpy_integers_pass_where_integers_are_asked(tmp_path):
    from stylecbn.media.pixels import resize_to_max
    from stylecbn.model.presets import NetworkArchitecture
    from stylecbn.training.config import TrainingConfig

    config = TrainingConfig(steps=np.int64(5), seed=np.int32(1))
    assert type(config.steps) is int and type(config.seed) is int  # saved as JSON later
    assert NetworkArchitecture(residual_blocks=np.int64(2)).residual_blocks == 2
    assert resize_to_max(np.zeros((32, 32, 3), np.uint8), np.uint16(16)).shape == (16, 16, 3)
    with pytest.raises(ConfigError, match="`steps` must be an integer >= 1"):
        TrainingConfig(steps=5.0)

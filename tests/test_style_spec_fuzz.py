"""The style-spec parser against anything a user can type or pass, and the three rules the
probe of issue 12 found broken: weights near the float64 limit, names that look like indices,
and very long values echoed back."""

import warnings
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from stylecbn.training.styles import load_styles_folder
from stylecbn.errors import DataError, StyleSpecError
from stylecbn.applying.blend import resolve_style

MODEL = SimpleNamespace(style_names=["starry", "wave", "mosaic", "dots"], num_styles=4)
# Normalizing in float64 and rounding once to float32 puts each weight within half a float32
# step of the exact quotient: at most 2**-24 ~ 6e-8 for values <= 1.
FLOAT32_HALF_STEP = 2.0**-24


def parse_or_none(spec, model=MODEL):
    """The weights, or None when the parser refused the spec with a StyleSpecError; any other
    exception, or a NumPy warning, fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            weights = resolve_style(spec, model).vector
        except StyleSpecError as error:
            message = str(error)
            assert "\n" not in message and len(message) < 600, message
            return None
    assert weights.shape == (model.num_styles,) and weights.dtype == np.float32
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
    assert abs(float(weights.sum()) - 1) <= model.num_styles * FLOAT32_HALF_STEP
    return weights


@settings(max_examples=500)
@given(st.text(max_size=40))
def test_any_text_is_refused_or_a_normalized_blend(spec):
    parse_or_none(spec)


@settings(max_examples=300)
@given(st.one_of(
    st.integers(), st.floats(), st.none(), st.booleans(),
    st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=3)), max_size=6),
    st.dictionaries(st.one_of(st.integers(-2, 6), st.sampled_from(MODEL.style_names)),
                    st.one_of(st.floats(), st.integers(), st.text(max_size=3)), max_size=4),
))
def test_any_python_value_is_refused_or_a_normalized_blend(spec):
    parse_or_none(spec)


# Weights over the whole float64 range, subnormals and 1e308 included.
WEIGHTS = st.floats(min_value=0, max_value=1.7e308, allow_nan=False, allow_infinity=False)


@settings(max_examples=500)
@given(st.dictionaries(st.integers(0, 3), WEIGHTS, min_size=1).filter(
    lambda blend: any(w > 0 for w in blend.values())))
def test_valid_blends_give_their_exact_proportions(blend):
    expected = [Fraction(blend.get(i, 0.0)) for i in range(4)]
    total = sum(expected)
    expected = np.array([float(w / total) for w in expected])
    for spec in (blend, ",".join(f"{i}:{w!r}" for i, w in blend.items())):
        weights = parse_or_none(spec)
        assert weights is not None, spec
        # Dividing by the largest weight first costs at most a few float64 ulps (1e-16),
        # far below the float32 rounding of the result.
        np.testing.assert_allclose(weights, expected, rtol=0, atol=FLOAT32_HALF_STEP + 1e-15)


def test_weights_near_the_float64_limit_blend_instead_of_overflowing():
    # Before: the sum overflowed to inf, every weight became 0 and the picture flat grey.
    np.testing.assert_array_equal(parse_or_none("0:1e308,1:1e308"), [0.5, 0.5, 0, 0])
    np.testing.assert_array_equal(parse_or_none({"starry": 1.5e308, 2: 1.5e308}),
                                  [0.5, 0, 0.5, 0])
    assert parse_or_none("0:1e309") is None  # inf as typed: refused as not finite
    assert parse_or_none({0: 10**400}) is None  # too large for a float: not finite either


def test_a_whole_number_is_always_an_index():
    # Styles named like numbers in an old model: "1" at index 0, "0" at index 2.
    model = SimpleNamespace(style_names=["1", "starry", "0", "a:b"], num_styles=4)
    np.testing.assert_array_equal(parse_or_none("1", model), [0, 1, 0, 0])
    np.testing.assert_array_equal(parse_or_none(" 0 ", model), [1, 0, 0, 0])
    np.testing.assert_array_equal(parse_or_none("1:1,0:3", model), [0.75, 0.25, 0, 0])
    np.testing.assert_array_equal(parse_or_none("a:b", model), [0, 0, 0, 1])  # its exact name


def test_long_values_are_cut_in_messages():
    spec = "x" * 100_000
    with pytest.raises(StyleSpecError) as error:
        resolve_style(spec, MODEL)
    message = str(error.value)
    assert len(message) < 400 and "… (100,000 characters)" in message
    with pytest.raises(StyleSpecError) as error:
        resolve_style("0:" + "9" * 50_000 + "x", MODEL)
    assert len(str(error.value)) < 400


@pytest.mark.parametrize("name, problem", [
    ("1", "is a whole number"), ("-2", "is a whole number"), ("1:2", "contains ':' or ','"),
    ("a,b", "contains ':' or ','"), (" padded", "is blank or starts or ends with spaces"),
])
def test_training_refuses_names_that_style_would_misread(tmp_path, name, problem):
    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.png")
    (tmp_path / "styles.toml").write_text(f'[[style]]\nfile = "a.png"\nname = "{name}"\n')
    with pytest.raises(DataError, match=problem):
        load_styles_folder(tmp_path)
    (tmp_path / "styles.toml").unlink()
    Image.new("RGB", (32, 32), "red").save(tmp_path / "7.png")  # a stem that is a number
    with pytest.raises(DataError, match=r"7\.png .* its name '7' is a whole number"):
        load_styles_folder(tmp_path)


@pytest.mark.parametrize("spec", ["9" * 5000, "-" + "9" * 5000, "9" * 5000 + ":1,0:1",
                                  {"9" * 5000: 1}, 10**5000, [10**5000, 0, 0, 0],
                                  {0: 10**5000}],
                         ids=["index", "negative", "blend", "dict key", "int", "vector", "weight"])
def test_numbers_past_pythons_digit_limit_are_refused_in_one_short_line(spec):
    # int() and repr() refuse over 4,300 digits with a ValueError of their own; each of these
    # is an index out of range or a weight that is not finite.
    assert parse_or_none(spec) is None


def test_the_list_of_valid_styles_is_capped():
    # A 10,000-style model: every error listed every style (170 kB lines).
    names = [f"painting_{index:05d}_with_a_long_descriptive_name" for index in range(10_000)]
    model = SimpleNamespace(style_names=names, num_styles=len(names))
    for spec in ("no_such_style", "10000", "no_such_style:1,0:1", {}):
        with pytest.raises(StyleSpecError) as error:
            resolve_style(spec, model)
        message = str(error.value)
        assert len(message) < 1500, len(message)
        assert "0=painting_00000" in message and "9,990 more" in message
        assert "stylecbn styles" in message

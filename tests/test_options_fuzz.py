"""Property-based tests of option values: anything a user or a config file can put in a
setting gives a valid configuration or a `ConfigError` (one line, the value cut short), never
another exception or a setting that breaks the run later; on the command line, a numeric
option's value gives a result or one `Error:` line, never a traceback."""

import dataclasses
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stylecbn.model import saving as modelfile
from stylecbn.cli.root import main
from stylecbn.training.config import TrainingConfig
from stylecbn.errors import ConfigError
from stylecbn.media.reading import read_image
from stylecbn.model.network import build_network

# Whatever toml, json or a command line can give: numbers of every kind, text, flags, nothing.
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.text(min_size=200, max_size=300), st.lists(st.integers(), max_size=2),
)
FIELDS = [field.name for field in dataclasses.fields(TrainingConfig)]


def check_valid(config):
    """What a TrainingConfig that validated must hold, so that training can rely on it."""
    for name in ("steps", "batch_size", "checkpoint_every", "preview_every", "log_every",
                 "preview_size"):
        value = getattr(config, name)
        assert type(value) is int and value >= 1
    assert config.crop_size >= 16
    for name in ("learning_rate", "width_multiplier", "content_weight"):
        value = getattr(config, name)
        assert not isinstance(value, bool) and math.isfinite(value) and value > 0
    assert config.style_weight is None or (
        not isinstance(config.style_weight, bool) and math.isfinite(config.style_weight)
        and config.style_weight > 0)
    assert math.isfinite(config.total_variation_weight) and config.total_variation_weight >= 0
    assert type(config.holdout) is int and config.holdout >= 0
    assert type(config.seed) is int and config.seed >= 0
    assert config.output.endswith(".keras")


@settings(max_examples=400)
@given(name=st.sampled_from(FIELDS), value=ANY_VALUE)
def test_any_value_in_any_setting(name, value):
    try:
        config = TrainingConfig.from_dict({name: value})
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message and len(message) < 400, message
        return
    check_valid(config)


@settings(max_examples=200)
@given(values=st.dictionaries(st.sampled_from(FIELDS), ANY_VALUE, max_size=4))
def test_any_values_in_several_settings(values):
    try:
        config = TrainingConfig.from_dict(values)
    except ConfigError:
        return
    check_valid(config)


# --- numeric options on the command line -------------------------------------------------------

OPTION_TEXT = st.one_of(
    st.text(max_size=8), st.integers().map(str), st.floats().map(repr),
    st.sampled_from(["0", "-1", "1e309", "nan", "inf", "0x10", "1_000", " 3 ", ""]),
    st.text(min_size=200, max_size=400),
)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("options")
    modelfile.save_model(build_network(2, style_names=["a", "b"], width_multiplier=0.25),
                         folder / "m.keras")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / "p.png")
    return folder


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--max-size", "--strength", "--quality", "--max-pixels", "--refine"]),
       value=OPTION_TEXT)
def test_any_numeric_option_value_on_the_command_line(tiny_setup, option, value):
    output = tiny_setup / "out.png"
    output.unlink(missing_ok=True)
    result = CliRunner().invoke(main, [
        "apply", str(tiny_setup / "p.png"), "-m", str(tiny_setup / "m.keras"), "-o", str(output),
        option, value,
    ])
    assert result.exit_code in (0, 2), (option, value, result.output)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == (result.exit_code == 2)
    assert all(len(line) < 400 for line in errors), errors
    if result.exit_code == 0:  # a whole image, never enlarged
        width, height = read_image(output).size
        assert width <= 24 and height <= 20

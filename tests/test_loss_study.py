"""The default loss is the one the loss study measured (benchmarks/loss_study.py and its
committed results, docs/loss_study/results.json), and the study's bookkeeping is right."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from stylecbn.perceptual.losses import DEFAULT_STYLE_WEIGHT
from stylecbn.perceptual.vgg import CONTENT_LAYER, DEFAULT_LAYERS
from stylecbn.training.config import (DEFAULT_STYLE_LAYER_WEIGHTS, NAMED_STYLE_LAYER_WEIGHTS,
                                      TrainingConfig)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "loss_study" / "results.json"
CHANNELS = {"block1_conv2": 64, "block2_conv2": 128, "block3_conv3": 256, "block4_conv3": 512}


@pytest.fixture(scope="module")
def study():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("loss_study",
                                                      ROOT / "benchmarks" / "loss_study.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


@pytest.fixture(scope="module")
def magnitudes():
    return json.loads(RESULTS.read_text())["magnitudes"]


def test_the_default_is_the_studys_balanced_loss_at_the_default_style_weight(study, magnitudes):
    """`balanced`'s multipliers are the study's (style weight times multiplier, per layer),
    rounded to three significant digits: each within 0.5e-2 of it, relative."""
    assert DEFAULT_STYLE_LAYER_WEIGHTS == "balanced"
    weights, size = study.parse_candidate("balanced", CHANNELS, magnitudes)
    assert size == 512 and weights.content_layer == CONTENT_LAYER
    assert weights.total_variation == 0
    studied = [weights.style * m for m in weights.style_layer_weights]
    default = [DEFAULT_STYLE_WEIGHT * m for m in NAMED_STYLE_LAYER_WEIGHTS["balanced"]]
    assert default == pytest.approx(studied, rel=5e-3)
    assert TrainingConfig().layer_multipliers() == NAMED_STYLE_LAYER_WEIGHTS["balanced"]


def test_every_scheme_starts_where_equal_does(study, magnitudes):
    """A scheme changes which layers pull, not how hard the photo is pulled at the start:
    sum over layers of style * multiplier * M_l is the same for every scheme (float64
    arithmetic on four terms: 1e-12 relative)."""
    start = {}
    for scheme in study.SCHEMES:
        weights, _ = study.parse_candidate(scheme, CHANNELS, magnitudes)
        assert weights.style_layer_weights[0] == 1.0
        start[scheme] = sum(weights.style * m * magnitudes[layer]
                            for m, layer in zip(weights.style_layer_weights, DEFAULT_LAYERS))
    for scheme in study.SCHEMES:
        assert start[scheme] == pytest.approx(start["equal"], rel=1e-12)
    balanced, _ = study.parse_candidate("balanced", CHANNELS, magnitudes)
    # balanced: every layer's term at the photo is the same
    terms = [m * magnitudes[layer] for m, layer in zip(balanced.style_layer_weights,
                                                       DEFAULT_LAYERS)]
    assert terms == pytest.approx([terms[0]] * 4, rel=1e-12)


def test_modifiers_and_their_errors(study, magnitudes):
    base, _ = study.parse_candidate("balanced", CHANNELS, magnitudes)
    weights, size = study.parse_candidate("balanced+x2+p1024+c4_3+tv200", CHANNELS, magnitudes)
    assert weights.style == 2 * base.style and size == 1024
    assert weights.content_layer == "block4_conv3" and weights.total_variation == 200
    assert weights.style_layer_weights == base.style_layer_weights
    for bad, message in (("loud", "unknown loss scheme"), ("equal+y2", "unknown modifier"),
                         ("equal+c9_9", "content layer")):
        with pytest.raises(SystemExit, match=message):
            study.parse_candidate(bad, CHANNELS, magnitudes)


def test_tables_compare_runs_at_the_same_number_of_steps(study):
    full = {"loss/total_loss": 1.0, "steps": 200, "left/block1_conv2": 0.1, "seconds": 90.0,
            "half": {"left/block1_conv2": 0.2}}
    old = {k: v for k, v in full.items() if k != "steps"}  # made before steps were recorded
    short = {"loss/total_loss": 1.0, "steps": 100, "left/block1_conv2": 0.3, "seconds": 45.0}
    reference = {"left/block1_conv2": 0.4, "seconds": 0.5}
    assert study.measured_at(full, 200) is full
    assert study.measured_at(old, 200) is old
    assert study.measured_at(full, 100)["left/block1_conv2"] == 0.2
    assert math.isnan(study.measured_at(full, 100)["seconds"])
    assert study.measured_at(short, 100) is short
    assert study.measured_at(short, 200) is None
    assert study.measured_at(full, 50) is None
    assert study.measured_at(reference, 100) is reference


def test_the_diagonal_takes_each_painting_once_with_the_photos_in_turn(study):
    assert study.study_pairs(["a", "b", "c"], ["p", "q", "r", "s"], "diagonal") == [
        ("a", "p"), ("b", "q"), ("c", "r"), ("a", "s")]
    assert len(study.study_pairs(["a", "b", "c"], ["p", "q", "r", "s"], "all")) == 12

"""One declaration per training setting (`stylecbn.training.config.setting`): the check, the
`stylecbn train` option and the serialization all come from it, and they stay what they were."""

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from stylecbn.cli.root import main
from stylecbn.cli.train import train
from stylecbn.errors import ConfigError
from stylecbn.model.presets import NORMALIZATION_KINDS
from stylecbn.training.config import DEFAULT_STYLE_LAYER_WEIGHTS, RESULT_SETTINGS, TrainingConfig

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "stylecbn" / "assets" / "default.keras"

# `stylecbn train`'s options as they were before the settings were declared once (with the
# built-in names that --base and --init-from take and the holdout's cap since): the flags, and
# the help text with its [default]. Users' scripts and habits rely on these.
OPTIONS_BEFORE = [
    (["--config"], "A toml or json file of settings; options given here override it."),
    (["--styles"], "Folder of style images (+ optional styles.toml). [styles]"),
    (["--content"], "Folder of content photos, searched recursively."),
    (["-o", "--output"], "The model file to write. [model.keras]"),
    (["--run-dir"], "Checkpoints, previews, logs. [runs/<output stem>]"),
    (["--base"], "A trained model (a built-in name or a .keras file): add the --styles to it, "
                 "training only their rows."),
    (["--init-from"], "A trained model with the same styles and network: start from its "
                      "weights (fresh optimizer, steps from 0)."),
    (["--steps"], "Training steps. [40000]"),
    (["--batch-size"], "[16]"),
    (["--learning-rate", "--lr"], "[1e-3]"),
    (["--crop-size"], "Training crop side in px. [256]"),
    (["--precision"], None),
    (["--seed"], "[0]"),
    (["--normalization"], None),
    (["--preset"], "The network: full (the default model's), fast (thin, for CPUs), lowres or "
                   "lowres-separable (half resolution inside). [full]"),
    (["--width"], "Width multiplier of the network. [1.0]"),
    (["--content-weight"], "[1.0]"),
    (["--style-weight"], "[calibrated default]"),
    (["--tv-weight"], "Total-variation weight. [0]"),
    (["--style-layer-weights"], "Multipliers of the style weight at relu1_2, relu2_2, relu3_3, "
                                "relu4_3, separated by commas, or `balanced` (every layer "
                                "pulls alike: bold) or `equal` (1 each: faint). "
                                f"[{DEFAULT_STYLE_LAYER_WEIGHTS}]"),
    (["--vgg-weights"], "auto, imagenet, hed, or a .h5/.npz file. [auto]"),
    (["--checkpoint-every"], "[500]"),
    (["--preview-every"], "[500]"),
    (["--log-every"], "[10]"),
    (["--holdout"], "Photos kept out of training for previews, at most a quarter of them. [4]"),
    (["--preview-size"], "Preview tile side in px. [128]"),
    (["--distribute"], "Data-parallel on all local devices."),
    (["--tensorboard"], "TensorBoard scalars (TensorFlow backend). [on]"),
    (["--resume"], "Continue from the last checkpoint in the run folder."),
    (["--force"], "Replace an existing output file."),
]


def test_train_options_are_the_ones_users_know():
    options = [(p.opts, p.help) for p in train.params if p.opts != ["-h", "--help"]
               and p.name != "help"]
    assert options == OPTIONS_BEFORE
    types = {p.name: p.type for p in train.params}
    assert list(types["precision"].choices) == ["float32", "mixed_bfloat16"]
    assert tuple(types["normalization"].choices) == NORMALIZATION_KINDS
    assert types["steps"].name == "integer" and types["learning_rate"].name == "float"
    assert types["styles"].name == "path" and types["preset"].name == "text"
    flags = {p.name: p.secondary_opts for p in train.params}
    assert flags["distribute"] == ["--no-distribute"]
    assert flags["tensorboard"] == ["--no-tensorboard"]
    help_text = CliRunner().invoke(main, ["train", "--help"]).output
    assert "--preset NAME" in help_text and "--precision [float32|mixed_bfloat16]" in help_text


def test_every_setting_is_an_option_named_like_its_field():
    """A new setting gets its option (and its check) from its declaration alone."""
    names = {p.name for p in train.params}
    for field in dataclasses.fields(TrainingConfig):
        assert field.name in names, field.name
        assert "setting" in field.metadata, f"{field.name} is not declared with setting()"


def test_options_reach_the_config_by_field_name(monkeypatch, tmp_path):
    import stylecbn.training.run

    seen = {}
    monkeypatch.setattr(stylecbn.training.run, "train",
                        lambda config, **options: seen.update(config=config))
    result = CliRunner().invoke(main, [
        "train", "--lr", "0.5", "--width", "0.25", "--tv-weight", "2", "--base", "b.keras",
        "--no-tensorboard", "--normalization", "batch", "-o", str(tmp_path / "m.keras"),
    ])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.learning_rate, config.width_multiplier, config.total_variation_weight) == \
        (0.5, 0.25, 2.0)
    assert (config.base_model, config.tensorboard, config.normalization) == \
        ("b.keras", False, "batch")


def test_result_settings_are_the_same():
    assert RESULT_SETTINGS == (
        "styles", "content", "base_model", "init_model", "batch_size", "learning_rate",
        "crop_size", "precision", "seed", "normalization", "preset", "width_multiplier",
        "content_weight", "style_weight", "total_variation_weight", "style_layer_weights",
        "vgg_weights", "holdout",
    )


def test_normalization_kinds_are_one_tuple():
    from stylecbn.model.layers import NORMALIZATIONS

    assert set(NORMALIZATIONS) == set(NORMALIZATION_KINDS)
    for kind in NORMALIZATION_KINDS:
        assert TrainingConfig(normalization=kind).normalization == kind
    with pytest.raises(ConfigError, match=r"`normalization` must be one of: instance, batch\. "
                                          r"Received: normalization='group'"):
        TrainingConfig(normalization="group")


def test_the_built_in_models_training_config_loads_as_before():
    """Model files record the TrainingConfig they were made with (read here without Keras)."""
    with zipfile.ZipFile(DEFAULT_MODEL) as archive:
        saved = json.loads(archive.read("config.json"))["config"]["metadata"]["training"]
    config = TrainingConfig.from_dict(saved)
    assert (config.steps, config.precision, config.style_weight, config.preview_every) == \
        (6000, "mixed_bfloat16", 0.001, 100000)
    assert "init_model" not in saved and config.init_model == ""  # older than the setting
    assert {k: v for k, v in config.to_dict().items() if k in saved} == saved


def test_serialization_round_trip(tmp_path):
    config = TrainingConfig(steps=12, style_weight=0.5, preset="fast", distribute=True)
    config.save(tmp_path / "run.json")
    assert TrainingConfig.from_dict(json.loads((tmp_path / "run.json").read_text())) == config
    assert list(config.to_dict()) == [f.name for f in dataclasses.fields(TrainingConfig)]


@pytest.mark.parametrize("name, value, message", [
    ("styles", 3, "`styles` must be a string. Received: styles=3"),
    ("tensorboard", "yes", "`tensorboard` must be true or false. Received: tensorboard='yes'"),
    ("preset", "tiny", "`preset` must be one of: full, fast, lowres, lowres-separable. "
                       "Received: preset='tiny'"),
    ("precision", "float16", "`precision` must be one of: float32, mixed_bfloat16."),
    ("crop_size", 8, "`crop_size` must be an integer >= 16. Received: crop_size=8"),
    ("width_multiplier", 0, "`width_multiplier` must be a finite number > 0."),
    ("style_weight", -1, "`style_weight` must be a finite number > 0."),
])
def test_each_kind_of_setting_is_checked_from_its_declaration(name, value, message):
    with pytest.raises(ConfigError) as error:
        TrainingConfig(**{name: value})
    assert str(error.value).startswith(message)

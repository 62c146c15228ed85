"""Typed configuration: how a model is trained. Saved inside every model file it produces."""

import dataclasses
import json
import math
import sys
from pathlib import Path

from stylecbn.errors import ConfigError, check_int, check_number, shorten
from stylecbn.fileio import atomic_write_bytes
from stylecbn.model.presets import NORMALIZATION_KINDS, PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["DistillConfig", "TrainingConfig", "read_config_file", "RESULT_SETTINGS",
           "result_settings", "setting", "setting_kind"]

PRECISIONS = ("float32", "mixed_bfloat16")
# The style loss's layers (`stylecbn.perceptual.vgg.DEFAULT_LAYERS`: relu1_2, relu2_2, relu3_3,
# relu4_3) and the multipliers of the style weight at each that `stylecbn train` uses unless
# told otherwise, chosen by the loss study (docs/loss_calibration.md, docs/loss_study/).
STYLE_LAYER_COUNT = 4
# Named multipliers. `equal`: 1 at every layer, the loss of every model before the study
# (relu1_2, mostly colour, is ~99% of it: faint styles). `balanced`: layer l times M_1/M_l,
# M_l the median style loss of photo vs painting at layer l (hed VGG-16, 3 photos x 4
# paintings, 256 px photos, 512 px paintings): every layer pulls the same at the photo, scaled
# so that with the default style weight (1e-3) the photo's style loss is `equal`'s.
NAMED_STYLE_LAYER_WEIGHTS = {
    "equal": None,
    "balanced": (0.257, 8.97, 607.0, 1.31e5),
}
DEFAULT_STYLE_LAYER_WEIGHTS = "balanced"
# What a run saved before a setting existed did (a checkpoint's config without the key).
LEGACY_SETTINGS = {"style_layer_weights": "equal"}


def setting(default, help="", *, minimum=None, above=None, choices=None, flags=None,
            path=False, metavar=None, shown=None, result=False, option=True):
    """A `TrainingConfig` field with everything about it declared once.

    The check (from the field's type and the bounds or choices here), the `stylecbn train`
    option (`stylecbn.cli.train` builds it from this) and whether a resumed run must keep it
    all come from this one declaration.

    Args:
        default: the value when none is given.
        help: the option's help text, without the default.
        minimum, above: bounds of an int (`minimum`) or float (`minimum`, or `above`
            exclusive).
        choices: the values a text setting may take.
        flags: the option's names; default `--name-with-dashes`.
        path: the option takes a path (shown as PATH).
        metavar: the option's placeholder instead of the list of `choices`.
        shown: the default as `--help` shows it in brackets, where not the default itself.
            No default is shown for "", False, None or a setting with choices (the choices
            are listed instead).
        result: the setting changes what a run computes, so a resumed run must keep it.
        option: offered as a `stylecbn train` option (False: the command declares its own).
    """
    return dataclasses.field(default=default, metadata={"setting": dict(
        help=help, minimum=minimum, above=above, choices=choices, flags=flags, path=path,
        metavar=metavar, shown=shown, result=result, option=option,
    )})


def setting_kind(field):
    """The Python type of a setting's values: int, float, str or bool (`float | None`: float)."""
    kinds = [t for t in getattr(field.type, "__args__", (field.type,)) if t is not type(None)]
    return kinds[0]


class _Settings:
    """What every settings class (`TrainingConfig`, `DistillConfig`) does with its fields."""

    # Settings naming a model file the run reads (the output must not be one of them).
    MODELS_READ = ()

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Check every setting against its declaration (ints and floats become Python ints
        and floats); raise ConfigError naming the first invalid value."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, _checked(field, getattr(self, field.name)))
        if not self.output.endswith(".keras"):
            raise ConfigError(
                f"`output` must be a .keras file. Received: output={shorten(self.output)}"
            )

    def models_read(self):
        """[(setting name, its value)] of the model files this run reads (those given)."""
        return [(name, getattr(self, name)) for name in self.MODELS_READ if getattr(self, name)]

    def resolved_run_dir(self):
        """The run folder: `run_dir`, or `runs/<output stem>` beside the output file."""
        if self.run_dir:
            return Path(self.run_dir)
        output = Path(self.output)
        return output.parent / "runs" / output.stem

    def save(self, path):
        """Write the settings to a json file, atomically."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data, source="configuration"):
        """Build from a dict; unknown keys are an error that names them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}."
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class TrainingConfig(_Settings):
    """Every setting of a training run. A config file (toml or json) holds the same keys.

    Each setting is declared once, with `setting(...)`: its default, its check, its
    `stylecbn train` option and help, and whether a resumed run must keep it.

    Args:
        styles: folder of style images (and an optional manifest).
        content: folder of content photos (searched recursively).
        output: the `.keras` model file to write at the end.
        run_dir: folder of checkpoints, previews and TensorBoard logs; "" means
            `runs/<output stem>` beside the output file.
        base_model: a trained model to add the styles to ("" trains a new network); only the
            new styles' gamma/beta rows are trained.
        init_model: a trained model whose weights the network starts from ("" starts from
            random weights); same styles (names, order) and architecture, a fresh optimizer
            and step count.
        steps: total training steps (a resumed run continues up to this number).
        batch_size, learning_rate, crop_size: Adam on random crops of this side.
        precision: one of `PRECISIONS` ("float32" or "mixed_bfloat16").
        seed: seeds the initial weights, the held-out photos and every batch.
        normalization, preset, width_multiplier: the network (ignored with base_model);
            normalization is one of `stylecbn.model.presets.NORMALIZATION_KINDS`, preset a
            name in `stylecbn.model.presets.PRESETS` ("full" or "fast").
        content_weight, style_weight, total_variation_weight: loss weights (style_weight None:
            the calibrated default of `stylecbn.perceptual.losses`).
        style_layer_weights: the multipliers of the style weight at each style layer, as
            text: numbers separated by commas, or a name in `NAMED_STYLE_LAYER_WEIGHTS`
            (`balanced`, the default; `equal`, 1 each, the older models' loss).
        vgg_weights: "auto", "imagenet", "hed" or a weights file (.h5 or compact .npz).
        checkpoint_every, preview_every, log_every: intervals in steps.
        holdout: content photos kept out of training for previews.
        preview_size: side of each preview tile, in pixels.
        distribute: data-parallel on all local devices.
        tensorboard: write TensorBoard scalars (TensorFlow backend only).
        resume: continue from the last checkpoint in run_dir.
    """

    styles: str = setting("styles", "Folder of style images (+ optional styles.toml).",
                          path=True, result=True)
    content: str = setting("", "Folder of content photos, searched recursively.", path=True,
                           result=True)
    output: str = setting("model.keras", "The model file to write.", flags=("-o", "--output"),
                          path=True)
    run_dir: str = setting("", "Checkpoints, previews, logs.", path=True,
                           shown="runs/<output stem>")
    base_model: str = setting("", "A trained model (a built-in name or a .keras file): add "
                              "the --styles to it, training only their rows.",
                              flags=("--base",), path=True, metavar="NAME|FILE", result=True)
    init_model: str = setting("", "A trained model with the same styles and network: start "
                              "from its weights (fresh optimizer, steps from 0).",
                              flags=("--init-from",), path=True, metavar="NAME|FILE",
                              result=True)
    steps: int = setting(40000, "Training steps.", minimum=1)
    batch_size: int = setting(16, minimum=1, result=True)
    learning_rate: float = setting(1e-3, above=0, flags=("--learning-rate", "--lr"),
                                   shown="1e-3", result=True)
    crop_size: int = setting(256, "Training crop side in px.", minimum=16, result=True)
    precision: str = setting("float32", choices=PRECISIONS, result=True)
    seed: int = setting(0, minimum=0, result=True)
    normalization: str = setting("instance", choices=NORMALIZATION_KINDS, result=True)
    preset: str = setting("full", "The network: full (the default model's), fast (thin, for "
                          "CPUs), lowres or lowres-separable (half resolution inside).",
                          choices=tuple(PRESETS), metavar="NAME", result=True)
    width_multiplier: float = setting(1.0, "Width multiplier of the network.", above=0,
                                      flags=("--width",), result=True)
    content_weight: float = setting(1.0, above=0, result=True)
    style_weight: float | None = setting(None, above=0, shown="calibrated default",
                                         result=True)
    total_variation_weight: float = setting(0.0, "Total-variation weight.", minimum=0,
                                            flags=("--tv-weight",), shown="0", result=True)
    style_layer_weights: str = setting(DEFAULT_STYLE_LAYER_WEIGHTS, "Multipliers of the style "
                                       "weight at relu1_2, relu2_2, relu3_3, relu4_3, "
                                       "separated by commas, or `balanced` (every layer "
                                       "pulls alike: bold) or `equal` (1 each: faint).",
                                       metavar="LIST", result=True)
    vgg_weights: str = setting("auto", "auto, imagenet, hed, or a .h5/.npz file.",
                               result=True)
    checkpoint_every: int = setting(500, minimum=1)
    preview_every: int = setting(500, minimum=1)
    log_every: int = setting(10, minimum=1)
    holdout: int = setting(4, "Photos kept out of training for previews, at most a quarter "
                           "of them.", minimum=0, result=True)
    preview_size: int = setting(128, "Preview tile side in px.", minimum=1)
    distribute: bool = setting(False, "Data-parallel on all local devices.")
    tensorboard: bool = setting(True, "TensorBoard scalars (TensorFlow backend).")
    # `stylecbn train --resume` is a plain flag, declared by the command itself.
    resume: bool = setting(False, option=False)

    MODELS_READ = ("base_model", "init_model")

    def layer_multipliers(self):
        """The style layers' multipliers `style_layer_weights` gives: a tuple of floats, one
        per style layer (relu1_2, relu2_2, relu3_3, relu4_3), or None for `equal`."""
        text = self.style_layer_weights.strip()
        if text in NAMED_STYLE_LAYER_WEIGHTS:
            return NAMED_STYLE_LAYER_WEIGHTS[text]
        try:
            values = tuple(float(part) for part in text.split(","))
        except ValueError:
            values = ()
        if len(values) != STYLE_LAYER_COUNT or not all(
                math.isfinite(v) and v >= 0 for v in values):
            raise ConfigError(
                f"`style_layer_weights` must be {STYLE_LAYER_COUNT} numbers >= 0 separated by "
                "commas (relu1_2, relu2_2, relu3_3, relu4_3), or one of "
                f"{', '.join(NAMED_STYLE_LAYER_WEIGHTS)}. Received: "
                f"style_layer_weights={shorten(self.style_layer_weights)}")
        return values

    def validate(self):
        super().validate()
        self.layer_multipliers()
        if self.base_model and self.init_model:
            raise ConfigError(
                "`base_model` (add styles to a model) and `init_model` (continue training a "
                "model's own styles) exclude each other; give one."
            )


@dataclasses.dataclass
class DistillConfig(_Settings):
    """Every setting of a distillation run (`stylecbn.training.distill`): a student network
    learns a trained model's styles from that model's own outputs.

    Declared like `TrainingConfig`'s (with `setting`); the settings they share mean the same.

    Args:
        teacher: the trained model to copy (a built-in name or a .keras file).
        content: folder of content photos (searched recursively).
        output, run_dir: as in `TrainingConfig`.
        styles: the teacher's styles to learn, as names or indices separated by commas; ""
            learns all of them.
        steps, batch_size, learning_rate, crop_size, precision, seed: as in `TrainingConfig`.
        photo_size: shorter side of the photos the teacher paints (0: `crop_size` * 1.8, 288
            px for 160 px crops); the random crops are cut from them and from the teacher's
            outputs alike.
        preset, width_multiplier, normalization: the student network.
        pixel_weight: L1 distance of the student's and the teacher's images after a 4x4
            average (their colours and shapes, not the exact texture).
        gram_weight: distance of the Gram matrices (texture statistics) of the student's and
            the teacher's images at `gram_layers`; `gram_normalization` "relative" divides
            each layer's by the teacher's Gram magnitude, "absolute" keeps it as the style
            loss does.
        feature_weight: squared distance of their VGG features at `feature_layer`, relative
            to the teacher's.
        vgg_weights: the loss network's weights, as in `TrainingConfig`.
        checkpoint_every, preview_every, log_every, holdout, preview_size, tensorboard,
        resume: as in `TrainingConfig`.
    """

    teacher: str = setting("default", "The trained model to copy: a built-in name or a .keras "
                           "file.", path=True, metavar="NAME|FILE", result=True)
    content: str = setting("", "Folder of content photos, searched recursively.", path=True,
                           result=True)
    output: str = setting("fast.keras", "The model file to write.", flags=("-o", "--output"),
                          path=True)
    run_dir: str = setting("", "Checkpoints, teacher outputs, previews, logs.", path=True,
                           shown="runs/<output stem>")
    styles: str = setting("", "The teacher's styles to learn: names or indices, separated by "
                          "commas.", metavar="LIST", shown="all", result=True)
    steps: int = setting(20000, "Training steps.", minimum=1)
    batch_size: int = setting(16, minimum=1, result=True)
    learning_rate: float = setting(2e-3, above=0, flags=("--learning-rate", "--lr"),
                                   shown="2e-3", result=True)
    crop_size: int = setting(160, "Training crop side in px.", minimum=16, result=True)
    photo_size: int = setting(0, "Shorter side of the photos the teacher paints.", minimum=0,
                              shown="crop x 1.8", result=True)
    precision: str = setting("float32", choices=PRECISIONS, result=True)
    seed: int = setting(0, minimum=0, result=True)
    preset: str = setting("lowres", "The student network: lowres (half resolution inside: "
                          "the built-in fast model's), lowres-separable (the same with "
                          "depthwise-separable blocks), fast (thin, full resolution), or full.",
                          choices=tuple(PRESETS), metavar="NAME", result=True)
    width_multiplier: float = setting(1.0, "Width multiplier of the student network.",
                                      above=0, flags=("--width",), result=True)
    normalization: str = setting("instance", choices=NORMALIZATION_KINDS, result=True)
    pixel_weight: float = setting(10.0, "Weight of the low-pass pixel distance.", minimum=0,
                                  result=True)
    gram_weight: float = setting(1e-3, "Weight of the Gram-matrix (texture) distance.",
                                 minimum=0, shown="1e-3", result=True)
    feature_weight: float = setting(100.0, "Weight of the VGG feature distance.", minimum=0,
                                    result=True)
    gram_layers: str = setting("block1_conv2,block2_conv2", "VGG-16 layers of the texture "
                               "distance, separated by commas.", metavar="LIST", result=True)
    gram_normalization: str = setting("absolute", "relative: each layer's distance divided by "
                                      "the teacher's Gram magnitude; absolute: as the style "
                                      "loss.", choices=("relative", "absolute"), result=True)
    feature_layer: str = setting("block2_conv2", "VGG-16 layer of the feature distance.",
                                 metavar="LAYER", result=True)
    vgg_weights: str = setting("auto", "auto, imagenet, hed, or a .h5/.npz file.",
                               result=True)
    checkpoint_every: int = setting(500, minimum=1)
    preview_every: int = setting(500, minimum=1)
    log_every: int = setting(10, minimum=1)
    holdout: int = setting(4, "Photos kept out of training for previews, at most a quarter "
                           "of them.", minimum=0, result=True)
    preview_size: int = setting(128, "Preview tile side in px.", minimum=1)
    tensorboard: bool = setting(True, "TensorBoard scalars (TensorFlow backend).")
    resume: bool = setting(False, option=False)

    MODELS_READ = ("teacher",)

    def validate(self):
        super().validate()
        if not self.teacher:
            raise ConfigError("no teacher: set `teacher` to a built-in model name or a .keras "
                              "file.")
        if self.pixel_weight + self.gram_weight + self.feature_weight == 0:
            raise ConfigError("`pixel_weight`, `gram_weight` and `feature_weight` are all 0: "
                              "give at least one a weight, or the student learns nothing.")
        if self.gram_weight and not self.layer_list("gram_layers"):
            raise ConfigError("`gram_layers` is empty while `gram_weight` is not 0; name the "
                              "VGG-16 layers (e.g. block1_conv2,block2_conv2).")

    def layer_list(self, name):
        """A comma-separated setting as a list of names (blanks dropped)."""
        return [part.strip() for part in getattr(self, name).split(",") if part.strip()]

    @property
    def resolved_photo_size(self):
        """The shorter side of the cached photos: `photo_size`, or `crop_size` * 1.8."""
        return max(self.crop_size, self.photo_size or round(self.crop_size * 1.8))


def _checked(field, value):
    """`value` checked against the declaration of `field` (see `setting`)."""
    name, declared = field.name, field.metadata["setting"]
    kind = setting_kind(field)
    if value is None and field.default is None:
        return None
    if kind is int:
        return check_int(name, value, minimum=declared["minimum"])
    if kind is float:
        return check_number(name, value, minimum=declared["minimum"], above=declared["above"])
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{name}` must be true or false. Received: {name}={shorten(value)}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"`{name}` must be a string. Received: {name}={shorten(value)}")
    if declared["choices"] is not None and value not in declared["choices"]:
        raise ConfigError(
            f"`{name}` must be one of: {', '.join(declared['choices'])}. "
            f"Received: {name}={shorten(value)}"
        )
    return value


# Settings that change what a run computes: a resumed run must keep them. The others (how
# long, where to write, how often to log) may change between the parts of a run.
def result_settings(config_class):
    """The names of the settings of `config_class` that a resumed run must keep."""
    return tuple(field.name for field in dataclasses.fields(config_class)
                 if field.metadata["setting"]["result"])


RESULT_SETTINGS = result_settings(TrainingConfig)


def read_config_file(path):
    """Read a toml or json file into a dict of settings (validated by TrainingConfig)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        if path.suffix.lower() == ".toml":
            with path.open("rb") as f:
                data = tomllib.load(f)
        elif path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise ConfigError(f"Config file {path} must end in .toml or .json.")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid {path.suffix[1:]}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"Config file {path} is nested too deeply to be settings.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a table/object of settings.")
    return data

"""Typed configuration: how a model is trained. Saved inside every model file it produces."""

import dataclasses
import json
import math
import sys
from pathlib import Path

from stylecbn.errors import ConfigError, shorten
from stylecbn.fileio import atomic_write_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["TrainingConfig", "read_config_file", "RESULT_SETTINGS"]

PRECISIONS = ("float32", "mixed_bfloat16")

# Settings that change what a run computes: a resumed run must keep them. The others (how
# long, where to write, how often to log) may change between the parts of a run.
RESULT_SETTINGS = (
    "styles", "content", "base_model", "init_model", "batch_size", "learning_rate", "crop_size", "precision",
    "seed", "normalization", "preset", "width_multiplier", "content_weight", "style_weight",
    "total_variation_weight", "vgg_weights", "holdout",
)


@dataclasses.dataclass
class TrainingConfig:
    """Every setting of a training run. A config file (toml or json) holds the same keys.

    Args:
        styles: folder of style images (and an optional manifest).
        content: folder of content photos (searched recursively).
        output: the `.keras` model file to write at the end.
        run_dir: folder of checkpoints, previews and TensorBoard logs; "" means
            `runs/<output stem>` beside the output file.
        base_model: a trained model to add the styles to ("" trains a new network); only the
            new styles' gamma/beta rows are trained.
        steps: total training steps (a resumed run continues up to this number).
        batch_size, learning_rate, crop_size: Adam on random crops of this side.
        precision: "float32" or "mixed_bfloat16".
        seed: seeds the initial weights, the held-out photos and every batch.
        init_model: a trained model whose weights the network starts from ("" starts from
            random weights); same styles (names, order) and architecture, a fresh optimizer
            and step count.
        normalization, preset, width_multiplier: the network (ignored with base_model);
            preset is a name in `stylecbn.model.network.PRESETS` ("full" or "fast").
        content_weight, style_weight, total_variation_weight: loss weights (style_weight None:
            the calibrated default).
        vgg_weights: "auto", "imagenet", "hed" or a weights file (.h5 or compact .npz).
        checkpoint_every, preview_every, log_every: intervals in steps.
        holdout: content photos kept out of training for previews.
        preview_size: side of each preview tile, in pixels.
        distribute: data-parallel on all local devices.
        tensorboard: write TensorBoard scalars (TensorFlow backend only).
        resume: continue from the last checkpoint in run_dir.
    """

    styles: str = "styles"
    content: str = ""
    output: str = "model.keras"
    run_dir: str = ""
    base_model: str = ""
    init_model: str = ""
    steps: int = 40000
    batch_size: int = 16
    learning_rate: float = 1e-3
    crop_size: int = 256
    precision: str = "float32"
    seed: int = 0
    normalization: str = "instance"
    preset: str = "full"
    width_multiplier: float = 1.0
    content_weight: float = 1.0
    style_weight: float | None = None  # None: the calibrated default of stylecbn.perceptual.losses
    total_variation_weight: float = 0.0
    vgg_weights: str = "auto"
    checkpoint_every: int = 500
    preview_every: int = 500
    holdout: int = 4
    distribute: bool = False
    log_every: int = 10
    preview_size: int = 128
    tensorboard: bool = True
    resume: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ConfigError naming the first invalid value."""
        positive_ints = (
            "steps", "batch_size", "crop_size", "checkpoint_every", "preview_every", "log_every",
            "preview_size",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {shorten(value)}.")
        if self.crop_size < 16:
            raise ConfigError(f"crop_size must be at least 16 px; got {self.crop_size}.")
        for name in ("learning_rate", "width_multiplier", "content_weight"):
            _check_number(name, getattr(self, name), "positive", lambda v: v > 0)
        if self.style_weight is not None:
            _check_number("style_weight", self.style_weight, "positive", lambda v: v > 0)
        _check_number("total_variation_weight", self.total_variation_weight, ">= 0",
                      lambda v: v >= 0)
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {PRECISIONS}; got {shorten(self.precision)}."
            )
        if self.normalization not in ("instance", "batch"):
            raise ConfigError(
                f"normalization must be 'instance' or 'batch'; got {shorten(self.normalization)}."
            )
        from stylecbn.model.network import PRESETS  # here, not at the top: it imports Keras

        if self.preset not in PRESETS:
            raise ConfigError(
                f"preset must be one of: {', '.join(PRESETS)}; got {shorten(self.preset)}."
            )
        if isinstance(self.holdout, bool) or not isinstance(self.holdout, int) or self.holdout < 0:
            raise ConfigError(f"holdout must be an integer >= 0; got {shorten(self.holdout)}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0; got {shorten(self.seed)}.")
        for name in ("styles", "content", "output", "run_dir", "base_model", "init_model",
                     "vgg_weights"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string; got {shorten(getattr(self, name))}.")
        for name in ("distribute", "tensorboard", "resume"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"{name} must be true or false; got {shorten(getattr(self, name))}."
                )
        if not self.output.endswith(".keras"):
            raise ConfigError(f"output must be a .keras file; got {shorten(self.output)}.")
        if self.base_model and self.init_model:
            raise ConfigError(
                "base_model (--base: add styles to a model) and init_model (--init-from: "
                "continue training a model's own styles) exclude each other; give one."
            )

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


def _check_number(name, value, rule, holds):
    """A finite int or float (not a bool) for which `holds(value)`, else ConfigError."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value)) or not holds(value)):
        raise ConfigError(f"{name} must be a finite number {rule}; got {shorten(value)}.")


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

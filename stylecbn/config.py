"""Typed configuration: how a model is trained. Saved inside every model file it produces."""

import dataclasses
import json
import sys
from pathlib import Path

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["TrainingConfig", "read_config_file"]

PRECISIONS = ("float32", "mixed_bfloat16")


@dataclasses.dataclass
class TrainingConfig:
    """Every setting of a training run. A config file (toml or json) holds the same keys."""

    styles: str = "styles"
    content: str = ""
    output: str = "model.keras"
    run_dir: str = ""
    base_model: str = ""
    steps: int = 40000
    batch_size: int = 16
    learning_rate: float = 1e-3
    crop_size: int = 256
    precision: str = "float32"
    seed: int = 0
    normalization: str = "instance"
    width_multiplier: float = 1.0
    content_weight: float = 1.0
    style_weight: float | None = None  # None: the calibrated default of stylecbn.losses
    total_variation_weight: float = 0.0
    vgg_weights: str = "auto"
    checkpoint_every: int = 500
    preview_every: int = 500
    holdout: int = 4
    distribute: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ConfigError naming the first invalid value."""
        positive_ints = ("steps", "batch_size", "crop_size", "checkpoint_every", "preview_every")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
        if self.crop_size < 16:
            raise ConfigError(f"crop_size must be at least 16 px; got {self.crop_size}.")
        for name in ("learning_rate", "width_multiplier", "content_weight"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive; got {getattr(self, name)!r}.")
        if self.style_weight is not None and not self.style_weight > 0:
            raise ConfigError(f"style_weight must be positive; got {self.style_weight!r}.")
        if self.total_variation_weight < 0:
            raise ConfigError(
                f"total_variation_weight must be >= 0; got {self.total_variation_weight!r}."
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}; got {self.precision!r}.")
        if self.normalization not in ("instance", "batch"):
            raise ConfigError(
                f"normalization must be 'instance' or 'batch'; got {self.normalization!r}."
            )
        if self.holdout < 0:
            raise ConfigError(f"holdout must be >= 0; got {self.holdout!r}.")

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
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a table/object of settings.")
    return data

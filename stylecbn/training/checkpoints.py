"""The checkpoint format of a training run: save, read, restore, find the latest, check a resume.

A checkpoint is one `.npz` file, `checkpoint-<step>.npz` in the run folder, written atomically
(the last `KEEP_CHECKPOINTS` are kept). It holds:

- `meta`: a JSON string with `format` ("stylecbn-checkpoint-v1"), `step`, `config` (the
  `TrainingConfig` as a dict), `style_names`, `style_coefficients` (the styles manifest's
  per-style loss multipliers; absent in checkpoints written before it was recorded), and the
  `[path, shape]` of every `network` and `optimizer` variable, in order;
- `network/NNNN` and `optimizer/NNNN`: the variables' values, in the same order.

A resume must match what the checkpoint computed: the result settings of the configuration
(`config.RESULT_SETTINGS`), the styles and their coefficients.
"""

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

from keras import ops

from stylecbn.training.config import LEGACY_SETTINGS, result_settings
from stylecbn.errors import ConfigError, shorten
from stylecbn.fileio import atomic_path, same_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "KEEP_CHECKPOINTS",
    "Checkpoint",
    "latest_checkpoint",
    "read_checkpoint",
    "checkpoint_config",
    "find_resume_checkpoint",
    "save_checkpoint",
    "restore_checkpoint",
    "check_resumed_styles",
    "variable_arrays",
]

CHECKPOINT_FORMAT = "stylecbn-checkpoint-v1"
CHECKPOINT_GLOB = "checkpoint-*.npz"
KEEP_CHECKPOINTS = 2


class Checkpoint:
    """A checkpoint file as read: its path, its `meta` dict and its arrays by key."""

    def __init__(self, path, meta, arrays):
        self.path = Path(path)
        self.meta = meta
        self.arrays = arrays

    @property
    def step(self):
        return self.meta["step"]


def latest_checkpoint(run_dir):
    """The newest checkpoint file in `run_dir`, or None."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    checkpoints = sorted(run_dir.glob(CHECKPOINT_GLOB))
    return checkpoints[-1] if checkpoints else None


def read_checkpoint(path):
    """Read a checkpoint file into a `Checkpoint`.

    Raises:
        ConfigError: the file is not a readable stylecbn checkpoint.
    """
    hint = "delete it to resume from the checkpoint before it, or start a new run"
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "meta" not in archive.files:
                raise ConfigError(f"{path} is not a stylecbn checkpoint; {hint}.")
            meta = json.loads(str(archive["meta"]))
            arrays = {key: archive[key] for key in archive.files if key != "meta"}
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError, RecursionError, zipfile.BadZipFile) as error:
        raise ConfigError(f"checkpoint {path} cannot be read ({error}); {hint}.") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; {hint}.")
    problem = _meta_problem(meta) or _arrays_problem(meta, arrays)
    if problem:
        raise ConfigError(f"checkpoint {path} is damaged or was edited: {problem}; {hint}.")
    return Checkpoint(path, meta, arrays)


def _meta_problem(meta):
    """What is wrong with a checkpoint's `meta` (as `save_checkpoint` writes it), or None."""
    def listed(value, kind):
        return isinstance(value, list) and all(isinstance(item, kind) for item in value)

    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"its step is {shorten(step)}, not a whole number"
    if not isinstance(meta.get("config"), dict):
        return "its config is not a JSON object"
    if not listed(meta.get("style_names"), str):
        return "its style_names are not a list of names"
    coefficients = meta.get("style_coefficients", [])
    if not listed(coefficients, (int, float)) or isinstance(coefficients, bool):
        return "its style_coefficients are not a list of numbers"
    for group in ("network", "optimizer"):
        entries = meta.get(group)
        if not isinstance(entries, list) or not all(
            isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
            and listed(entry[1], int) for entry in entries
        ):
            return f"its {group} variables are not a list of [path, shape]"
    return None


def _arrays_problem(meta, arrays):
    """A missing or non-finite array of the variables `meta` lists, or None."""
    for group in ("network", "optimizer"):
        for index in range(len(meta[group])):
            key = f"{group}/{index:04d}"
            if key not in arrays:
                return f"{key} is missing"
            value = arrays[key]
            if value.dtype.kind not in "biuf" or not np.all(np.isfinite(value)):
                return f"{key} ({meta[group][index][0]}) is not finite numbers (NaN or inf)"
    return None


def checkpoint_config(run_dir):
    """The settings (a dict) of the run whose latest checkpoint is in `run_dir`.

    Raises:
        ConfigError: no checkpoint there, or it cannot be read.
    """
    path = latest_checkpoint(run_dir)
    if path is None:
        raise ConfigError(
            f"cannot resume: no checkpoint ({CHECKPOINT_GLOB}) in {run_dir}; start the run "
            "without `resume`, or set `run_dir` to the folder of the run to continue."
        )
    return read_checkpoint(path).meta["config"]


def find_resume_checkpoint(config, run_dir):
    """The checkpoint a run with `config` continues from (None for a fresh run), checked.

    Raises:
        ConfigError: `resume` without a checkpoint, a fresh run over an earlier run's
            checkpoints, an unreadable checkpoint, or result settings that differ from it.
    """
    path = latest_checkpoint(run_dir)
    if config.resume and path is None:
        checkpoint_config(run_dir)  # raises the "no checkpoint" error
    if not config.resume and path is not None:
        raise ConfigError(
            f"run folder {run_dir} holds checkpoints of an earlier run ({path.name}); set "
            "`resume` to continue it, or choose another `run_dir`."
        )
    if path is None:
        return None
    checkpoint = read_checkpoint(path)
    _check_resume_settings(checkpoint.meta["config"], config, path)
    return checkpoint


def _check_resume_settings(saved, config, path):
    """Raise ConfigError when a setting that changes the result differs from the checkpoint's."""
    # A setting added since the checkpoint was written (init_model) has its default there:
    # that is what the run did, unless the default has changed since (LEGACY_SETTINGS).
    defaults = {field.name: LEGACY_SETTINGS.get(field.name, field.default)
                for field in dataclasses.fields(config)}
    differences = [
        f"{name} (checkpoint: {saved.get(name, defaults[name])!r}, now: {getattr(config, name)!r})"
        for name in result_settings(type(config))
        if not _same_setting(name, saved.get(name, defaults[name]), getattr(config, name))
    ]
    if differences:
        raise ConfigError(
            f"cannot resume: these settings differ from the run in {path.parent}: "
            f"{'; '.join(differences)}. Resume with the same settings, or start a new run "
            "(another `run_dir`)."
        )


# Folders and files: the same one by any name ("styles/", "./styles", its absolute path).
_PATH_SETTINGS = ("styles", "content", "base_model", "init_model", "teacher")


def _same_setting(name, saved, now):
    if saved == now:
        return True
    return (name in _PATH_SETTINGS and isinstance(saved, str) and bool(saved) and bool(now)
            and same_file(saved, now))


def check_resumed_styles(checkpoint, style_names, style_coefficients):
    """Raise ConfigError when the styles or their loss coefficients changed since `checkpoint`."""
    meta = checkpoint.meta
    if meta["style_names"] != list(style_names):
        raise ConfigError(
            f"cannot resume: the styles changed since {checkpoint.path} was written (it has "
            f"{len(meta['style_names'])}: {shorten(meta['style_names'])}); resume with the "
            "same styles folder."
        )
    saved = meta.get("style_coefficients")  # absent in older checkpoints: nothing to compare
    if saved is not None and saved != list(style_coefficients):
        raise ConfigError(
            f"cannot resume: the styles manifest's per-style weights changed since "
            f"{checkpoint.path} was written (checkpoint: {saved}, now: "
            f"{list(style_coefficients)}); resume with the same manifest."
        )


def variable_arrays(variables):
    """The values of Keras variables as NumPy arrays (copies)."""
    return [np.array(ops.convert_to_numpy(variable)) for variable in variables]


def save_checkpoint(run_dir, step, trainer, config, style_names, style_coefficients,
                    losses=None):
    """Write checkpoint-<step>.npz atomically and keep only the newest KEEP_CHECKPOINTS.

    Args:
        trainer: a compiled model with `network` (whose weights are saved) and `optimizer`.
        losses: the loss terms of the last step logged before it ({name: value}), which a
            model written from this checkpoint alone records as its last losses.
    """
    network_variables = trainer.network.weights
    optimizer_variables = trainer.optimizer.variables
    meta = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "config": config.to_dict(),
        "style_names": list(style_names),
        "style_coefficients": list(style_coefficients),
        "losses": dict(losses or {}),
        "network": [[v.path, list(v.shape)] for v in network_variables],
        "optimizer": [[v.path, list(v.shape)] for v in optimizer_variables],
    }
    payload = {"meta": np.array(json.dumps(meta))}
    for i, array in enumerate(variable_arrays(network_variables)):
        payload[f"network/{i:04d}"] = array
    for i, array in enumerate(variable_arrays(optimizer_variables)):
        payload[f"optimizer/{i:04d}"] = array
    path = Path(run_dir) / f"checkpoint-{int(step):08d}.npz"
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **payload)
    except OSError as error:
        raise ConfigError(f"cannot write checkpoint {path}: {error.strerror or error}.") from None
    for old in sorted(Path(run_dir).glob(CHECKPOINT_GLOB))[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return path


def restore_checkpoint(trainer, checkpoint):
    """Assign a checkpoint's network weights and optimizer state (the optimizer is built)."""
    for group, variables in (("network", trainer.network.weights),
                             ("optimizer", trainer.optimizer.variables)):
        saved = checkpoint.meta[group]
        if len(saved) != len(variables):
            raise ConfigError(
                f"checkpoint {checkpoint.path} holds {len(saved)} {group} variables but this "
                f"run has {len(variables)}; it was written by another network or version."
            )
        for i, (variable, (name, shape)) in enumerate(zip(variables, saved)):
            value = checkpoint.arrays[f"{group}/{i:04d}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise ConfigError(
                    f"checkpoint {checkpoint.path}: {name} has shape {tuple(value.shape)} but "
                    f"this run's {variable.path} has {tuple(variable.shape)}."
                )
            variable.assign(value)

"""Checks before a training run starts, so that it fails in seconds rather than at the end.

`stylecbn.training.run.train` calls them in this order: the settings (`check_config`), the model file
it will write (`check_output`, then `check_replaceable` once the checkpoint to resume from is
known), an `init_model` (`check_init_model`), the memory the run needs (`memory_left`,
which also says what is left for the photo cache), and the run folder (`make_run_dir`, and
`RunFolderLock`, which keeps a second run out of it). Each raises `ConfigError` with a one-line
message that says what to change.
"""

import json
import os
import socket
from pathlib import Path

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import keras

from stylecbn.training.config import TrainingConfig
from stylecbn.errors import ConfigError
from stylecbn.fileio import check_writable, same_file
from stylecbn.model.saving import resolve_model_path
from stylecbn.memory import (
    TRAINING_FIXED_BYTES,
    available_memory,
    format_bytes,
    training_memory,
)
from stylecbn.training.photos import MIN_CROP

__all__ = ["check_config", "check_output", "check_replaceable", "check_init_model",
           "memory_left", "make_run_dir", "RunFolderLock", "RUN_LOCK"]


def check_config(config, kind=None):
    """Check the settings of a run: a `kind` (default `TrainingConfig`), validated, with
    content photos."""
    kind = kind or TrainingConfig
    if not isinstance(config, kind):
        raise ConfigError(f"this run needs a {kind.__name__}; got {type(config).__name__}.")
    config.validate()
    if not config.content:
        raise ConfigError(
            "no content photos: set `content` to a folder of photos."
        )


def check_replaceable(output, config, checkpoint, force):
    """Refuse to write over an existing file, unless `force` or it is this run's own output
    (a resumed run writes its model again); never over the base or init model the run reads."""
    for name, source in config.models_read():
        if same_file(output, resolve_model_path(source)):
            raise ConfigError(
                f"`output` {output} is the `{name}` this run reads; write the result to another "
                "file."
            )
    if not output.exists() or force:
        return
    if checkpoint is not None and same_file(output, checkpoint.meta["config"].get("output", "")):
        return
    raise ConfigError(
        f"{output} already exists; pass `force` to replace it, or choose another `output`."
    )


def memory_left(config, width):
    """Refuse a run whose estimated peak (`stylecbn.memory.training_memory`) exceeds the
    available memory; return what is left for the photo cache (None: unknown).

    On an accelerator the activations live in the device's memory, which the framework
    reports itself when short; the host then needs only the fixed part.
    """
    available = available_memory()
    if available is None:
        return None
    on_accelerator = any(not device.lower().startswith("cpu")
                         for device in keras.distribution.list_devices())
    fixed = TRAINING_FIXED_BYTES
    needed = fixed if on_accelerator else training_memory(
        config.batch_size, config.crop_size, width)
    if needed <= available:
        return available - needed
    per_pixel = training_memory(1, 1, width) - fixed
    room = max(0, available - fixed) / per_pixel
    crop = int((room / config.batch_size) ** 0.5)
    batch = int(room / config.crop_size**2)
    if crop >= MIN_CROP:
        advice = f"lower `crop_size` to {crop}"
        advice += f" or `batch_size` to {batch}" if batch >= 1 else ""
    else:
        advice = ("even the smallest crops do not fit at this batch size: lower `batch_size` "
                  "and `crop_size`, or use a machine with more memory")
    raise ConfigError(
        f"this run needs about {format_bytes(needed)} of memory (batch {config.batch_size} x "
        f"{config.crop_size} px crops, width {width:g}), more than the "
        f"{format_bytes(available)} available; {advice} (memory grows with batch x crop^2)."
    )


def check_output(path):
    """Fail before training when the model file could not be written at the end."""
    if path.is_dir():
        raise ConfigError(f"output {path} is a folder; give a .keras file name.")
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(
            f"cannot write the model to {path}: folder {parent} does not exist; create it first."
        )
    try:
        check_writable(path)
    except OSError as error:
        raise ConfigError(
            f"cannot write the model to {path}: {error.strerror or error} (folder {parent})."
        ) from None


RUN_LOCK = "run.lock"


class RunFolderLock:
    """One training run at a time in a run folder.

    Two runs in one folder would write over each other's checkpoints, and the first could no
    longer resume. The folder's `run.lock` is locked (`flock`) while a run holds it, and names
    the holder's process and host for the message a second run gets. The operating system
    releases the lock when its process ends, however it ends: a run killed with SIGKILL leaves
    the file naming a process that has ended, and the next run takes the lock over (and says
    so). On systems without `fcntl` (Windows) no lock is taken.
    """

    def __init__(self, run_dir, log):
        self.run_dir = Path(run_dir)
        self.log = log
        self._handle = None

    @property
    def held(self):
        return self._handle is not None

    def acquire(self):
        """Lock the run folder (it must exist).

        Raises:
            ConfigError: another run holds it, or the lock file cannot be written.
        """
        try:
            import fcntl
        except ImportError:
            return
        try:
            handle = open(self.run_dir / RUN_LOCK, "a+", encoding="utf-8")
        except OSError as error:
            raise ConfigError(
                f"cannot write in the run folder {self.run_dir}: {error.strerror or error}."
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _lock_holder(handle) or "its process is starting"
            handle.close()
            raise ConfigError(
                f"run folder {self.run_dir} is in use by another training run ({holder}); "
                "wait for it to end or stop it, or choose another run_dir."
            ) from None
        previous = _lock_holder(handle)
        if previous:  # a run that ended without releasing the lock (killed, or a power cut)
            self.log(f"run folder {self.run_dir}: taking over the lock of {previous}, which "
                     "has ended")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        handle.flush()
        self._handle = handle

    def release(self):
        """Unlock, leaving the lock file empty (a run that ends cleanly leaves no holder)."""
        if self._handle is None:
            return
        import fcntl

        self._handle.truncate(0)
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


def _lock_holder(handle):
    """"process PID on HOST" from a lock file's record, or "" when there is none."""
    handle.seek(0)
    try:
        record = json.loads(handle.read() or "null")
        return f"process {int(record['pid'])} on {record['host']}" if record else ""
    except (ValueError, TypeError, KeyError):
        return "a process that left an unreadable lock file"


def make_run_dir(run_dir):
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the run folder {run_dir}: {error.strerror or error}.") from None
    try:
        check_writable(run_dir / "probe")
    except OSError as error:
        raise ConfigError(f"cannot write in the run folder {run_dir}: {error.strerror or error}.") from None


def check_init_model(init, config, specs):
    """Raise ConfigError unless `init` has the styles of `specs` and the configured network."""
    where = f"`init_model` {config.init_model}"
    names = [spec.name for spec in specs]
    if init.style_names != names:
        raise ConfigError(
            f"{where} has {init.num_styles} styles ({_listed(init.style_names)}) but the "
            f"styles folder {config.styles} has {len(names)} ({_listed(names)}); it must have "
            "the same names in the same order: pass the styles folder the model was trained "
            "on (names come from file names or the manifest), or add new styles with `base_model`."
        )
    differences = [
        f"`{name}` {theirs} (this run: {ours})"
        for name, theirs, ours in (
            ("normalization", init.normalization, config.normalization),
            ("preset", init.preset or "(a custom architecture)", config.preset),
            ("width_multiplier", init.width_multiplier, float(config.width_multiplier)),
        ) if theirs != ours
    ]
    if differences:
        raise ConfigError(
            f"{where} was trained with {', '.join(differences)}; give the same network "
            "settings to start from its weights."
        )


def _listed(names, shown=4):
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f", ... {more} more" if more > 0 else "")

"""Training: one network, many styles, Keras `fit` on any backend.

`train(config)` turns a styles folder and a content folder into a `.keras` model file:

- The trainer is a `keras.Model` that wraps the style network and overrides `compute_loss`
  with the VGG perceptual loss, so Keras' own `fit` loop runs it on TensorFlow and on JAX.
- Data is deterministic: the batch of global step k is `ContentPhotos.batch(k, B)` with the
  labels `ContentPhotos.labels(k, B, K)`; a resumed run sees exactly the batches an
  uninterrupted one would, and (the weights and Adam's state being restored bit for bit)
  ends with the same weights.
- Checkpoints (network weights, optimizer state, step, configuration) are single `.npz`
  files in the run folder, written atomically; the last two are kept. Ctrl-C writes one.
- With `base_model`, the styles are appended to a trained network and only their
  gamma/beta rows train: convolutions frozen, the gradient of the old rows masked to zero
  (Adam then leaves them exactly unchanged), normalization on moving statistics (batch
  norm's shared statistics stay as they were), labels drawn from the new styles only.
- `distribute`: data-parallel on all local devices (MirroredStrategy on TensorFlow,
  `keras.distribution.DataParallel` on JAX).

TensorFlow is imported only for `distribute` on the TensorFlow backend (tf.distribute has no
backend-neutral equivalent there), so this module runs on JAX without TensorFlow.
"""

import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import json
import random
import signal
import sys
import threading
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
from keras import ops

from .config import RESULT_SETTINGS, TrainingConfig
from .data import ContentPhotos, load_style_image, load_styles_folder
from .errors import ConfigError, DataError, ModelFileError
from .fileio import atomic_path
from .losses import DEFAULT_STYLE_WEIGHT, LossWeights, PerceptualLoss, compute_style_grams
from .modelfile import load_model, save_model
from .network import build_network
from .preview import write_preview
from .vgg import build_loss_network

__all__ = [
    "train",
    "StyleTrainer",
    "latest_checkpoint",
    "checkpoint_config",
    "KEEP_CHECKPOINTS",
]

CHECKPOINT_FORMAT = "stylecbn-checkpoint-v1"
CHECKPOINT_GLOB = "checkpoint-*.npz"
KEEP_CHECKPOINTS = 2
# Loss terms shown in the progress line and written to TensorBoard.
REPORTED_TERMS = ("total_loss", "content_loss", "style_loss", "total_variation_loss")
_SHORT_NAMES = {"total_loss": "loss", "content_loss": "content", "style_loss": "style",
                "total_variation_loss": "tv"}


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the trainer


class _LatestValue(keras.metrics.Metric):
    """A metric that reports the value of the latest step (not a running mean)."""

    def __init__(self, name):
        super().__init__(name=name)
        # "mean": with data-parallel replicas, each sees half the batch; the mean of their
        # (batch-mean) losses is the loss of the whole batch.
        self.value = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", aggregation="mean", name="value"
        )

    def update_state(self, value):
        self.value.assign(ops.cast(value, "float32"))

    def result(self):
        # A tensor, not the variable: JAX's jitted step must return arrays.
        return ops.convert_to_tensor(self.value)

    def reset_state(self):
        self.value.assign(0.0)


class StyleTrainer(keras.Model):
    """Wraps a style network with the perceptual loss, for `fit`.

    Args:
        network: the `StyleTransferNetwork` to train.
        perceptual_loss: a `PerceptualLoss` whose styles are the trained styles.
        label_offset: the network index of the loss's style 0 (the number of base styles
            when adding styles to a trained network, else 0).
        freeze_statistics: run the normalizations in inference mode (batch norm then uses
            and keeps its moving statistics).
        loss_scale: factor applied to the loss that is differentiated (1/replicas under
            tf.distribute, whose optimizer sums the replicas' gradients).

    Call arguments:
        inputs: {"images": (B, H, W, 3) in [0, 1], "style": (B,) int labels}.

    Returns:
        The stylized images.
    """

    def __init__(self, network, perceptual_loss, *, label_offset=0, freeze_statistics=False,
                 loss_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.loss_network = perceptual_loss.loss_network
        self.perceptual_loss = perceptual_loss
        self.label_offset = int(label_offset)
        self.freeze_statistics = bool(freeze_statistics)
        self.loss_scale = float(loss_scale)
        self.term_trackers = [_LatestValue(name) for name in REPORTED_TERMS]

    def call(self, inputs, training=None):
        training = bool(training) and not self.freeze_statistics
        return self.network((inputs["images"], inputs["style"]), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels = ops.cast(x["style"], "int32") - self.label_offset
        total, terms = self.perceptual_loss(x["images"], y_pred, labels)
        for tracker in self.term_trackers:
            tracker.update_state(terms[tracker.name])
        return total * self.loss_scale if self.loss_scale != 1.0 else total


class _RowMaskedAdam(keras.optimizers.Adam):
    """Adam that multiplies the gradient of chosen variables by a fixed mask.

    Rows whose gradient is exactly zero keep Adam's moments at zero, so their update is
    0 / (0 + epsilon) = 0: they stay bit-identical.
    """

    def __init__(self, masks, name="row_masked_adam", **kwargs):
        super().__init__(name=name, **kwargs)
        self._gradient_masks = masks  # variable path -> array broadcastable to the variable

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        masked = []
        for grad, variable in zip(grads, variables):
            mask = self._gradient_masks.get(variable.path)
            masked.append(grad if mask is None or grad is None else grad * ops.cast(mask, grad.dtype))
        return super().apply(masked, trainable_variables)


class _TrainingBatches(keras.utils.PyDataset):
    """Batch i of this dataset is the batch of global step `first_step + i`.

    A thread makes the next batches while the accelerator runs the current step. Keras' own
    PyDataset workers are not used: in Keras 3.15 they do not always deliver batches in index
    order, and the order is what makes a resumed run exact.
    """

    PREFETCH = 2

    def __init__(self, photos, first_step, last_step, batch_size, num_labels, label_offset):
        super().__init__(workers=0)
        self.photos = photos
        self.first_step = first_step
        self.last_step = last_step
        self.batch_size = batch_size
        self.num_labels = num_labels
        self.label_offset = label_offset
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="batches")
        self._pending = {}

    def __len__(self):
        return self.last_step - self.first_step

    def _make(self, index):
        step = self.first_step + index
        images = self.photos.batch(step, self.batch_size)
        labels = self.photos.labels(step, self.batch_size, self.num_labels) + self.label_offset
        return ({"images": images, "style": labels.astype(np.int32)},)

    def __getitem__(self, index):
        future = self._pending.pop(index, None)
        batch = future.result() if future is not None else self._make(index)
        for ahead in range(index + 1, min(index + 1 + self.PREFETCH, len(self))):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._make, ahead)
        return batch

    def close(self):
        """Stop the prefetching thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()


# ----------------------------------------------------------------------------- checkpoints


def latest_checkpoint(run_dir):
    """The newest checkpoint file in `run_dir`, or None."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    checkpoints = sorted(run_dir.glob(CHECKPOINT_GLOB))
    return checkpoints[-1] if checkpoints else None


def _read_checkpoint(path):
    """Return (meta dict, {key: array}) of a checkpoint file."""
    hint = "delete it to resume from the checkpoint before it, or start a new run"
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "meta" not in archive.files:
                raise ConfigError(f"{path} is not a stylecbn checkpoint; {hint}.")
            meta = json.loads(str(archive["meta"]))
            arrays = {key: archive[key] for key in archive.files if key != "meta"}
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ConfigError(f"checkpoint {path} cannot be read ({error}); {hint}.") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; {hint}.")
    return meta, arrays


def checkpoint_config(run_dir):
    """The settings (a dict) of the run whose latest checkpoint is in `run_dir`.

    Raises:
        ConfigError: no checkpoint there, or it cannot be read.
    """
    path = latest_checkpoint(run_dir)
    if path is None:
        raise ConfigError(
            f"--resume: no checkpoint ({CHECKPOINT_GLOB}) in {run_dir}; start the run without "
            "--resume, or pass the --run-dir of the run to continue."
        )
    return _read_checkpoint(path)[0]["config"]


def _variable_arrays(variables):
    return [np.array(ops.convert_to_numpy(variable)) for variable in variables]


def _save_checkpoint(run_dir, step, trainer, config, style_names):
    """Write checkpoint-<step>.npz atomically and keep only the newest KEEP_CHECKPOINTS."""
    network_variables = trainer.network.weights
    optimizer_variables = trainer.optimizer.variables
    meta = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "config": config.to_dict(),
        "style_names": list(style_names),
        "network": [[v.path, list(v.shape)] for v in network_variables],
        "optimizer": [[v.path, list(v.shape)] for v in optimizer_variables],
    }
    payload = {"meta": np.array(json.dumps(meta))}
    for i, array in enumerate(_variable_arrays(network_variables)):
        payload[f"network/{i:04d}"] = array
    for i, array in enumerate(_variable_arrays(optimizer_variables)):
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


def _restore(trainer, meta, arrays, path):
    """Assign a checkpoint's network weights and optimizer state (the optimizer is built)."""
    for group, variables in (("network", trainer.network.weights),
                             ("optimizer", trainer.optimizer.variables)):
        saved = meta[group]
        if len(saved) != len(variables):
            raise ConfigError(
                f"checkpoint {path} holds {len(saved)} {group} variables but this run has "
                f"{len(variables)}; it was written by another network or version."
            )
        for i, (variable, (name, shape)) in enumerate(zip(variables, saved)):
            value = arrays[f"{group}/{i:04d}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise ConfigError(
                    f"checkpoint {path}: {name} has shape {tuple(value.shape)} but this run's "
                    f"{variable.path} has {tuple(variable.shape)}."
                )
            variable.assign(value)


def _check_resume_settings(saved, config, path):
    """Raise ConfigError when a setting that changes the result differs from the checkpoint's."""
    differences = [
        f"{name} (checkpoint: {saved.get(name)!r}, now: {getattr(config, name)!r})"
        for name in RESULT_SETTINGS if saved.get(name) != getattr(config, name)
    ]
    if differences:
        raise ConfigError(
            f"--resume: these settings differ from the run in {path.parent}: "
            f"{'; '.join(differences)}. Resume with the same settings, or start a new run "
            "(another --run-dir)."
        )


# ----------------------------------------------------------------------------- callbacks


class _TrainingMonitor(keras.callbacks.Callback):
    """Progress lines, checkpoints and previews at fixed step intervals."""

    def __init__(self, run, first_step):
        super().__init__()
        self.run = run
        self.first_step = first_step
        self.last_terms = {}
        self._mark = None

    def on_train_batch_end(self, batch, logs=None):
        run = self.run
        step = self.first_step + batch + 1
        self.last_terms = {name: float(logs[name]) for name in REPORTED_TERMS if name in logs}
        config = run.config
        if step % config.log_every == 0 or step == config.steps:
            self._log_progress(step)
        if self._mark is None:
            # Speed is measured from the end of the first step, which includes compiling.
            self._mark = (step, time.perf_counter())
        if step % config.checkpoint_every == 0 and step < config.steps:
            # Reading `self.model` makes the JAX backend write its state back to the variables.
            run.checkpoint(self.model, step)
        if step % config.preview_every == 0 and step < config.steps:
            _ = self.model
            run.preview(step)

    def _log_progress(self, step):
        config = self.run.config
        terms = " ".join(
            f"{_SHORT_NAMES[name]} {value:.4g}" for name, value in self.last_terms.items()
        )
        speed = "compiling"
        if self._mark is not None:
            mark_step, mark_time = self._mark
            now = time.perf_counter()
            seconds_per_step = (now - mark_time) / max(1, step - mark_step)
            self._mark = (step, now)
            left = _duration((config.steps - step) * seconds_per_step)
            speed = f"{config.batch_size / max(seconds_per_step, 1e-9):.1f} img/s  {left} left"
        self.run.log(f"step {step}/{config.steps}  {terms}  {speed}")


def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


# ----------------------------------------------------------------------------- scopes


@contextlib.contextmanager
def _dtype_policy(name):
    """Set Keras' global dtype policy for the block and restore the caller's afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def _data_parallel(enabled, batch_size):
    """Yield (variable scope, loss scale, devices) for training on all local devices."""
    if not enabled:
        yield contextlib.nullcontext(), 1.0, 1
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        # tf.distribute is the only data-parallel path for Keras on TensorFlow.
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        count = len(devices)
        _check_divisible(batch_size, count)
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
        # The optimizer sums the replicas' gradients: each replica's loss is scaled by 1/count.
        yield strategy.scope(), 1.0 / count, count
    elif backend == "jax":
        devices = keras.distribution.list_devices()
        _check_divisible(batch_size, len(devices))
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield contextlib.nullcontext(), 1.0, len(devices)
        finally:
            keras.distribution.set_distribution(previous)
    else:
        raise ConfigError(
            f"distribute needs the tensorflow or jax Keras backend; this is {backend}."
        )


def _check_divisible(batch_size, devices):
    if batch_size % devices:
        raise ConfigError(
            f"distribute: batch_size {batch_size} must be a multiple of the {devices} devices."
        )


# ----------------------------------------------------------------------------- the run


def _copy_in_scope(model):
    """A frozen copy of `model` whose variables belong to the current distribution."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy


def _seed_initial_weights(seed):
    """Seed the initializers (Keras draws their seeds from Python's `random`)."""
    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
    else:
        # keras.utils.set_random_seed would import TensorFlow wherever it is installed.
        random.seed(seed)
        np.random.seed(seed)


def _check_output(path):
    """Fail before training when the model file could not be written at the end."""
    if path.is_dir():
        raise ConfigError(f"output {path} is a folder; give a .keras file name.")
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(
            f"cannot write the model to {path}: folder {parent} does not exist; create it first."
        )
    try:
        with atomic_path(path) as probe:
            probe.write_bytes(b"")
            raise _ProbeDone
    except _ProbeDone:
        pass
    except OSError as error:
        raise ConfigError(
            f"cannot write the model to {path}: {error.strerror or error} (folder {parent})."
        ) from None


class _ProbeDone(Exception):
    """Ends the writability probe without renaming the empty file onto the output."""


def _make_run_dir(run_dir):
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the run folder {run_dir}: {error.strerror or error}.") from None
    try:
        with atomic_path(run_dir / "probe") as probe:
            probe.write_bytes(b"")
            raise _ProbeDone
    except _ProbeDone:
        pass
    except OSError as error:
        raise ConfigError(f"cannot write in the run folder {run_dir}: {error.strerror or error}.") from None


def _extend_network(base, specs, base_path):
    """A copy of `base` with the styles of `specs` appended (rows = mean of the old rows)."""
    taken = set(base.style_names)
    clashes = [spec.name for spec in specs if spec.name in taken]
    if clashes:
        raise DataError(
            f"style name(s) {', '.join(clashes)} are already in {base_path}; rename the new "
            "style images (or name them in the manifest)."
        )
    added = len(specs)
    network = build_network(
        base.num_styles + added,
        style_names=base.style_names + [spec.name for spec in specs],
        style_credits=base.style_credits + [spec.credit for spec in specs],
        normalization=base.normalization,
        width_multiplier=base.width_multiplier,
        metadata=dict(base.metadata),
        name=base.name,
    )
    for target, source in zip(network.weights, base.weights):
        value = ops.convert_to_numpy(source)
        if tuple(target.shape) != tuple(value.shape):
            # A gamma or beta table: new styles start from the average existing style.
            value = np.concatenate([value, np.repeat(value.mean(axis=0, keepdims=True), added, 0)])
        target.assign(value)
    return network


def _freeze_all_but_new_rows(network, first_new):
    """Freeze the convolutions; return gradient masks that zero the old styles' rows."""
    for layer in network._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2D):
            layer.trainable = False
    mask = (np.arange(network.num_styles) >= first_new).astype(np.float32)[:, None]
    masks = {}
    for norm in network.normalization_layers:
        masks[norm.gamma.path] = mask
        masks[norm.beta.path] = mask
    return masks


def _tensorboard(run_dir, log_every, log):
    """A TensorBoard callback, or none (with a note) when the tensorboard package is absent."""
    if importlib.util.find_spec("tensorboard") is None:
        log("TensorBoard scalars are off: `pip install tensorboard` to get them.")
        return []
    return [keras.callbacks.TensorBoard(
        log_dir=str(run_dir / "tensorboard"), update_freq=log_every, write_graph=False
    )]


class _Run:
    """State shared by the callbacks of one training run."""

    def __init__(self, config, run_dir, photos, style_names, log):
        self.config = config
        self.run_dir = run_dir
        self.photos = photos
        self.style_names = style_names
        self.log = log
        self.trainer = None
        self.preview_photos = photos.preview_photos(config.preview_size) if photos.holdout_paths else None

    def checkpoint(self, trainer, step):
        path = _save_checkpoint(self.run_dir, step, trainer, self.config, self.style_names)
        self.log(f"checkpoint: {path}")
        return path

    def preview(self, step):
        if self.preview_photos is None:
            return
        path = self.run_dir / f"preview-{step:08d}.png"
        write_preview(path, self.trainer.network, self.preview_photos)
        self.log(f"preview: {path}")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C while training, so `kill`, job schedulers and time limits
    also end with a checkpoint. Background jobs of non-interactive shells ignore SIGINT, so
    SIGTERM is often the only polite signal a run gets."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(config, *, loss_network=None, callbacks=None, log=None):
    """Train a multi-style network (or add styles to one) and write the model file.

    Args:
        config: a `TrainingConfig`.
        loss_network: a model returning {VGG layer name: features} for RGB images in [0, 1],
            used instead of VGG-16 (tests use a small one); None builds VGG-16 with
            `config.vgg_weights`.
        callbacks: extra Keras callbacks, run after the trainer's own.
        log: a function taking one line of text (default: print to stderr).

    Returns:
        Path of the written `.keras` model.

    Raises:
        ConfigError, DataError, ModelFileError: unusable settings, inputs or files; nothing
            is written over an existing model file.
        KeyboardInterrupt: after writing a checkpoint, when the run was interrupted (Ctrl-C,
            or SIGTERM while training).
    """
    log = log or _stderr
    if not isinstance(config, TrainingConfig):
        raise ConfigError(f"train() needs a TrainingConfig; got {type(config).__name__}.")
    config.validate()
    if not config.content:
        raise ConfigError(
            "no content photos: pass --content DIR (a folder of photos) or set `content` in "
            "the config file."
        )
    output = Path(config.output)
    _check_output(output)
    run_dir = config.resolved_run_dir()
    checkpoint = latest_checkpoint(run_dir)
    if config.resume and checkpoint is None:
        checkpoint_config(run_dir)  # raises the "no checkpoint" error
    if not config.resume and checkpoint is not None:
        raise ConfigError(
            f"run folder {run_dir} holds checkpoints of an earlier run ({checkpoint.name}); pass "
            "--resume to continue it, or choose another --run-dir."
        )
    meta = arrays = None
    if checkpoint is not None:
        meta, arrays = _read_checkpoint(checkpoint)
        _check_resume_settings(meta["config"], config, checkpoint)

    specs = load_styles_folder(config.styles)
    base = load_model(config.base_model) if config.base_model else None
    photos = ContentPhotos(config.content, crop=config.crop_size, holdout=config.holdout,
                           seed=config.seed)
    _make_run_dir(run_dir)

    weights = LossWeights(
        content=config.content_weight,
        style=DEFAULT_STYLE_WEIGHT if config.style_weight is None else config.style_weight,
        total_variation=config.total_variation_weight,
    )
    label_offset = base.num_styles if base is not None else 0
    first_step = meta["step"] if meta else 0

    with _dtype_policy(config.precision), \
            _data_parallel(config.distribute, config.batch_size) as (scope, loss_scale, devices):
        _seed_initial_weights(config.seed)
        with scope:
            if base is not None:
                network = _extend_network(base, specs, config.base_model)
                masks = _freeze_all_but_new_rows(network, label_offset)
            else:
                network = build_network(
                    len(specs),
                    style_names=[spec.name for spec in specs],
                    style_credits=[spec.credit for spec in specs],
                    normalization=config.normalization,
                    width_multiplier=config.width_multiplier,
                )
                masks = None
            if meta and meta["style_names"] != network.style_names:
                raise ConfigError(
                    f"--resume: the styles changed since {checkpoint} was written (it has "
                    f"{', '.join(meta['style_names'])}); resume with the same styles folder."
                )
            if loss_network is None:
                loss_network, description = build_loss_network(config.vgg_weights, weights.layers)
            else:
                description = f"injected loss network {loss_network.name!r}"
                if config.distribute:
                    # Its variables were made outside the distribution, on one device.
                    loss_network = _copy_in_scope(loss_network)
            log(f"loss network: {description}")
            grams = compute_style_grams(
                loss_network, [load_style_image(spec) for spec in specs], weights.style_layers
            )
            perceptual = PerceptualLoss(loss_network, weights, grams, [s.weight for s in specs])
            trainer = StyleTrainer(
                network, perceptual, label_offset=label_offset,
                freeze_statistics=base is not None, loss_scale=loss_scale, name="style_trainer",
            )
            optimizer_options = {"learning_rate": config.learning_rate}
            optimizer = (_RowMaskedAdam(masks, **optimizer_options) if masks
                         else keras.optimizers.Adam(**optimizer_options))
            trainer.compile(optimizer=optimizer)
            optimizer.build(trainer.trainable_variables)
            if meta:
                _restore(trainer, meta, arrays, checkpoint)
                log(f"resuming from {checkpoint} (step {first_step})")

        run = _Run(config, run_dir, photos, network.style_names, log)
        run.trainer = trainer
        config.save(run_dir / "config.json")
        what = (f"adding {len(specs)} style(s) to {config.base_model} ({base.num_styles} kept)"
                if base is not None else f"training {len(specs)} style(s)")
        log(f"{what} on {len(photos)} photos, {devices} device(s), backend "
            f"{keras.backend.backend()}, {config.precision}; run folder {run_dir}")

        monitor = _TrainingMonitor(run, first_step)
        all_callbacks = [monitor]
        if config.tensorboard and keras.backend.backend() == "tensorflow":
            all_callbacks += _tensorboard(run_dir, config.log_every, log)
        all_callbacks += list(callbacks or [])
        if first_step < config.steps:
            batches = _TrainingBatches(
                photos, first_step, config.steps, config.batch_size,
                len(specs), label_offset,
            )
            try:
                with _sigterm_as_interrupt():
                    trainer.fit(batches, epochs=1, verbose=0, shuffle=False,
                                callbacks=all_callbacks)
            except KeyboardInterrupt:
                # Adam's step counter is the number of updates the weights hold.
                step = int(ops.convert_to_numpy(trainer.optimizer.iterations))
                path = run.checkpoint(trainer, step)
                log(f"interrupted at step {step}; continue with --resume (checkpoint {path.name}).")
                raise
            finally:
                batches.close()
            run.checkpoint(trainer, config.steps)
        else:
            log(f"the checkpoint is at step {first_step} >= steps {config.steps}: nothing to train")
        steps_done = int(ops.convert_to_numpy(trainer.optimizer.iterations))
        run.preview(steps_done)
        values = _variable_arrays(network.weights)

    metadata = dict(base.metadata) if base is not None else {}
    if base is not None:
        metadata["base_model"] = {"file": str(config.base_model),
                                  "styles": base.style_names,
                                  "training": base.metadata.get("training")}
    metadata.update({
        "training": config.to_dict(),
        "vgg_weights": description,
        "loss_weights": dataclasses.asdict(weights),
        "style_weights": ([*base.metadata.get("style_weights", [1.0] * base.num_styles)]
                          if base is not None else []) + [spec.weight for spec in specs],
        "steps_trained": steps_done,
        "final_losses": monitor.last_terms,
    })
    metadata["loss_weights"]["style_layers"] = list(weights.style_layers)
    with _dtype_policy("float32"):
        final = build_network(
            network.num_styles, style_names=network.style_names,
            style_credits=network.style_credits, normalization=network.normalization,
            width_multiplier=network.width_multiplier, metadata=metadata, name=network.name,
        )
    for variable, value in zip(final.weights, values):
        variable.assign(value)
    try:
        save_model(final, output)
    except ModelFileError as error:
        raise ModelFileError(
            f"{error} The trained weights are in the last checkpoint in {run_dir}: fix the "
            "output and run again with --resume to write the model."
        ) from None
    log(f"wrote {output} ({final.num_styles} styles, {steps_done} steps)")
    return output

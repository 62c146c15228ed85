"""Training: one network, many styles, Keras `fit` on any backend.

`train(config)` turns a styles folder and a content folder into a `.keras` model file, as a
sequence of named steps: check the settings and the output, find the checkpoint to resume
from, load the inputs, build the network and the trainer, fit, write the model.

- The Keras pieces (the trainer model, the row-masked Adam, the batches, the monitor, the
  precision/distribution scopes) are in `stylecbn.training.trainer`; the checkpoint format is in
  `stylecbn.training.checkpoints`; the checks made before anything starts are in `stylecbn.training.preflight`.
- Data is deterministic: the batch of global step k is `ContentPhotos.batch(k, B)` with the
  labels `ContentPhotos.labels(k, B, K)`; a resumed run sees exactly the batches an
  uninterrupted one would, and (the weights and Adam's state being restored bit for bit)
  ends with the same weights.
- Checkpoints are written every `checkpoint_every` steps, at the end, and on Ctrl-C or SIGTERM
  (which stop the run between two steps, on every backend).
- Each start-up phase logs how long it took (`start-up: ...`), up to the first step.
- With `init_model`, the network starts from a trained model's weights (same styles and
  network), with a fresh optimizer and step count; the model file records that model.
- With `base_model`, the styles are appended to a trained network and only their
  gamma/beta rows train, each starting from the blend of the base's styles whose Gram
  matrices are nearest to its own (`benchmarks/base_start.py` measured it against the
  mean of the old rows): convolutions frozen, the gradient of the old rows masked to zero
  (Adam then leaves them exactly unchanged), normalization on moving statistics (batch
  norm's shared statistics stay as they were), labels drawn from the new styles only.
- The model file carries the style targets (the Gram matrices trained towards,
  `stylecbn.model.targets`), those of a base model first.
- `distribute`: data-parallel on all local devices (MirroredStrategy on TensorFlow,
  `keras.distribution.DataParallel` on JAX).

No TensorFlow import here (see `stylecbn.training.trainer`), so training runs on JAX without it.
"""

import dataclasses
import importlib.util
import random
import sys
import time
from pathlib import Path

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import keras
import numpy as np
from keras import ops

from stylecbn.training.checkpoints import (
    check_resumed_styles,
    find_resume_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    variable_arrays,
)
from stylecbn.training.styles import load_style_image, load_styles_folder
from stylecbn.errors import ModelFileError
from stylecbn.perceptual.losses import DEFAULT_STYLE_WEIGHT, LossWeights, PerceptualLoss
from stylecbn.model.saving import attach_targets, load_model, resolve_model_path, save_model
from stylecbn.model.network import build_network
from stylecbn.training.photos import ContentPhotos
from stylecbn.training.preflight import (
    RunFolderLock,
    check_config,
    check_init_model,
    check_output,
    check_replaceable,
    make_run_dir,
    memory_left,
)
from stylecbn.training.preview import write_preview
from stylecbn.training.style_targets import GRAMS_FILE, model_targets, run_style_grams
from stylecbn.training.trainer import (
    DenseAdam,
    RowMaskedAdam,
    StyleTrainer,
    TrainingBatches,
    TrainingMonitor,
    compile_cache,
    data_parallel,
    dtype_policy,
    extend_network,
    freeze_all_but_new_rows,
    start_new_rows,
    stop_on_signals,
)
from stylecbn.perceptual.vgg import build_loss_network

__all__ = ["Run", "StartupLog", "fit_run", "last_losses", "seed_initial_weights",
           "tensorboard_callbacks", "train", "write_model"]


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def train(config, *, loss_network=None, callbacks=None, log=None, force=False):
    """Train a multi-style network (or add styles to one) and write the model file.

    Args:
        config: a `TrainingConfig`.
        loss_network: a model returning {VGG layer name: features} for RGB images in [0, 1],
            used instead of VGG-16 (tests use a small one); None builds VGG-16 with
            `config.vgg_weights`.
        callbacks: extra Keras callbacks, run after the trainer's own.
        log: a function taking one line of text (default: print to stderr).
        force: replace an existing output file (without it, only a resumed run replaces the
            file it wrote itself). The `base_model` the run reads is never replaced.

    Returns:
        Path of the written `.keras` model.

    Raises:
        ConfigError, DataError, ModelFileError: unusable settings, inputs or files, an
            existing output, or a run that would not fit in the available memory; nothing is
            written over an existing model file unless `force`.
        KeyboardInterrupt: after writing a checkpoint, when the run was interrupted (Ctrl-C,
            or SIGTERM while training).
    """
    log = log or _stderr
    check_config(config)
    with RunFolderLock(config.resolved_run_dir(), log) as lock:
        return _train(config, lock, loss_network, callbacks, log, force)


def _train(config, lock, loss_network, callbacks, log, force):
    """`train`, holding the run folder's `lock` from when the folder exists."""
    startup = StartupLog(log)
    output = Path(config.output)
    check_output(output)
    run_dir = lock.run_dir
    if run_dir.is_dir():  # before reading its checkpoints: no other run may be writing them
        lock.acquire()
    checkpoint = find_resume_checkpoint(config, run_dir)
    check_replaceable(output, config, checkpoint, force)

    specs = load_styles_folder(config.styles)
    # --base and --init-from take a built-in model's name, as --model does, or a file
    base = load_model(resolve_model_path(config.base_model)) if config.base_model else None
    init = load_model(resolve_model_path(config.init_model)) if config.init_model else None
    if init is not None:
        check_init_model(init, config, specs)
    startup.phase(f"styles: {len(specs)} read")
    width = base.width_multiplier if base is not None else config.width_multiplier
    photos = ContentPhotos(config.content, crop=config.crop_size, holdout=config.holdout,
                           seed=config.seed, max_bytes=memory_left(config, width))
    startup.phase(f"content photos: {len(photos) + len(photos.holdout_paths)} decoded")
    make_run_dir(run_dir)
    if not lock.held:
        lock.acquire()
        # Another run may have made the folder (and checkpointed) since it was looked at.
        find_resume_checkpoint(config, run_dir)
    weights = _loss_weights(config)
    coefficients = _style_coefficients(base, specs)
    label_offset = base.num_styles if base is not None else 0

    with dtype_policy(config.precision), compile_cache(run_dir), \
            data_parallel(config.distribute, config.batch_size) as (scope, loss_scale, devices):
        seed_initial_weights(config.seed)
        with scope:
            network, masks = _style_network(config, specs, base, init)
            if checkpoint is not None:
                check_resumed_styles(checkpoint, network.style_names, coefficients)
            loss_network, description = _loss_network(config, loss_network, weights.layers)
            log(f"loss network: {description}")
            startup.phase("networks: built")
            grams, reused = run_style_grams(
                run_dir, specs, lambda: [load_style_image(spec) for spec in specs],
                loss_network, weights.style_layers)
            startup.phase(f"Gram matrices: {len(specs)} style(s)"
                          + (f", read from {GRAMS_FILE}" if reused else ""))
            new_targets = model_targets(specs, grams, loss_network, description)
            if base is not None and checkpoint is None:
                _start_from_nearest(network, base, new_targets, weights.layer_style_weights(), log)
            targets = _style_targets(base, new_targets, log)
            perceptual = PerceptualLoss(loss_network, weights, grams,
                                        [spec.coefficient for spec in specs])
            trainer = _compiled_trainer(network, perceptual, masks, config.learning_rate,
                                        label_offset=label_offset, loss_scale=loss_scale)
            if checkpoint is not None:
                restore_checkpoint(trainer, checkpoint)
                log(f"resuming from {checkpoint.path} (step {checkpoint.step})")
            startup.phase("trainer: compiled, optimizer built"
                          + (", checkpoint restored" if checkpoint is not None else ""))

        run = Run(config, run_dir, photos, trainer, coefficients, log)
        config.save(run_dir / "config.json")
        what = (f"adding {len(specs)} style(s) to {config.base_model} ({base.num_styles} kept)"
                if base is not None else f"training {len(specs)} style(s)")
        if init is not None:
            what += f" from the weights of {config.init_model}"
        log(f"{what} on {len(photos)} photos ({len(photos.holdout_paths)} more held out for "
            f"previews), {devices} device(s), backend "
            f"{keras.backend.backend()}, {config.precision}; run folder {run_dir}")
        first_step = checkpoint.step if checkpoint is not None else 0
        monitor = run.monitor = TrainingMonitor(run, first_step, started=startup.started)
        fit_run(run, monitor, first_step,
                lambda: TrainingBatches(photos, first_step, config.steps, config.batch_size,
                                        len(specs), label_offset),
                [*tensorboard_callbacks(config, run_dir, log), *(callbacks or [])])
        steps_done = int(ops.convert_to_numpy(trainer.optimizer.iterations))
        run.preview(steps_done)
        values = variable_arrays(network.weights)

    metadata = _model_metadata(config, base, init, weights, coefficients, description,
                               steps_done, last_losses(monitor, checkpoint))
    write_model(network, values, metadata, targets, output, run_dir)
    log(f"wrote {output} ({network.num_styles} styles, {steps_done} steps)")
    return output


class StartupLog:
    """Logs how long each start-up phase took: `phase(what)` at the end of each."""

    def __init__(self, log):
        self.log = log
        self.started = self._last = time.perf_counter()

    def phase(self, what):
        now = time.perf_counter()
        self.log(f"start-up: {what} in {now - self._last:.1f} s")
        self._last = now


def _loss_weights(config):
    return LossWeights(
        content=config.content_weight,
        style=DEFAULT_STYLE_WEIGHT if config.style_weight is None else config.style_weight,
        total_variation=config.total_variation_weight,
        style_layer_weights=config.layer_multipliers(),
    )


def _style_coefficients(base, specs):
    """The style-loss multiplier of every style of the network: the base's, then the new."""
    kept = base.metadata.get("style_coefficients", [1.0] * base.num_styles) if base else []
    return [*kept, *(spec.coefficient for spec in specs)]


def seed_initial_weights(seed):
    """Seed the initializers (Keras draws their seeds from Python's `random`)."""
    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
    else:
        # keras.utils.set_random_seed would import TensorFlow wherever it is installed.
        random.seed(seed)
        np.random.seed(seed)


# ----------------------------------------------------------------------------- the models


def _style_network(config, specs, base, init):
    """The network to train and its gradient masks (None: every weight trains).

    With `init` (checked by `preflight.check_init_model`), the network starts from its weights.
    """
    if base is None:
        network = build_network(
            len(specs),
            style_names=[spec.name for spec in specs],
            style_credits=[spec.credit for spec in specs],
            normalization=config.normalization,
            width_multiplier=config.width_multiplier,
            preset=config.preset,
        )
        if init is not None:
            for target, source in zip(network.weights, init.weights):
                target.assign(ops.convert_to_numpy(source))
        return network, None
    network = extend_network(base, specs, config.base_model)
    return network, freeze_all_but_new_rows(network, base.num_styles)


def _loss_network(config, injected, layers):
    """(loss network, description): VGG-16 with `config.vgg_weights`, or the injected one."""
    if injected is None:
        return build_loss_network(config.vgg_weights, layers)
    if config.distribute:
        # Its variables were made outside the distribution, on one device.
        injected = _copy_in_scope(injected)
    return injected, f"injected loss network {injected.name!r}"


def _copy_in_scope(model):
    """A frozen copy of `model` whose variables belong to the current distribution."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy


def _compiled_trainer(network, perceptual, masks, learning_rate, *, label_offset, loss_scale):
    """A compiled `StyleTrainer` whose optimizer is built (so a checkpoint can fill it).

    `masks` (adding styles to a trained network) also freezes the normalization statistics.
    """
    trainer = StyleTrainer(
        network, perceptual, label_offset=label_offset,
        freeze_statistics=masks is not None, loss_scale=loss_scale, name="style_trainer",
    )
    optimizer = (RowMaskedAdam(masks, learning_rate=learning_rate) if masks
                 else DenseAdam(learning_rate=learning_rate))
    trainer.compile(optimizer=optimizer)
    optimizer.build(trainer.trainable_variables)
    return trainer


# ----------------------------------------------------------------------------- the run


class Run:
    """What the callbacks of one training run share: settings, log, checkpoints, previews."""

    def __init__(self, config, run_dir, photos, trainer, style_coefficients, log):
        self.config = config
        self.run_dir = run_dir
        self.photos = photos
        self.trainer = trainer
        self.style_coefficients = style_coefficients
        self.log = log
        self.monitor = None  # the run's TrainingMonitor, once made: its last loss terms
        self.preview_photos = photos.preview_photos(config.preview_size) if photos.holdout_paths else None

    def checkpoint(self, trainer, step):
        path = save_checkpoint(self.run_dir, step, trainer, self.config,
                               trainer.network.style_names, self.style_coefficients,
                               losses=self.monitor.last_terms if self.monitor else None)
        self.log(f"checkpoint: {path}")
        return path

    def preview(self, step):
        if self.preview_photos is None:
            return
        path = self.run_dir / f"preview-{step:08d}.png"
        write_preview(path, self.trainer.network, self.preview_photos)
        self.log(f"preview: {path}")


def last_losses(monitor, checkpoint):
    """The loss terms of the run's last logged step: this part's, or, where it trained no
    step (a resume at its last step, to write the model), the checkpoint's."""
    if monitor.last_terms or checkpoint is None:
        return monitor.last_terms
    return checkpoint.meta.get("losses", {})


def tensorboard_callbacks(config, run_dir, log):
    """A TensorBoard callback, or none (with a note when the tensorboard package is absent)."""
    if not config.tensorboard or keras.backend.backend() != "tensorflow":
        return []
    if importlib.util.find_spec("tensorboard") is None:
        log("TensorBoard scalars are off: `pip install tensorboard` to get them.")
        return []
    return [keras.callbacks.TensorBoard(
        log_dir=str(run_dir / "tensorboard"), update_freq=config.log_every, write_graph=False
    )]


def fit_run(run, monitor, first_step, make_batches, callbacks):
    """Train from `first_step` to `config.steps` and checkpoint; on an interrupt (Ctrl-C,
    SIGTERM, or KeyboardInterrupt from a callback), checkpoint the step reached and re-raise.

    `make_batches()` returns the `TrainingBatches` (or a subclass) of steps `first_step` to
    `config.steps`."""
    config, trainer = run.config, run.trainer
    if first_step >= config.steps:
        run.log(f"the checkpoint is at step {first_step} >= steps {config.steps}: nothing to train")
        return
    batches = make_batches()
    try:
        with stop_on_signals(monitor):
            trainer.fit(batches, epochs=1, verbose=0, shuffle=False,
                        callbacks=[monitor, *callbacks])
    except KeyboardInterrupt:
        # Adam's step counter is the number of updates the weights hold.
        step = int(ops.convert_to_numpy(trainer.optimizer.iterations))
        path = run.checkpoint(trainer, step)
        cause = f" by {monitor.stop_reason}" if monitor.stop_reason else ""
        run.log(f"interrupted{cause} at step {step}; continue with `resume` "
                f"(checkpoint {path.name}).")
        raise
    finally:
        batches.close()
    run.checkpoint(trainer, config.steps)


# ----------------------------------------------------------------------------- the model file


_PATH_SETTINGS = ("styles", "content", "output", "run_dir", "base_model", "init_model",
                  "vgg_weights")


def _model_metadata(config, base, init, weights, style_coefficients, description, steps_done,
                    final_losses):
    """What the model file records about how it was made (and from which model)."""
    metadata = dict(base.metadata) if base is not None else {}
    if base is not None:
        metadata["base_model"] = {"file": Path(config.base_model).name,
                                  "styles": base.style_names,
                                  "training": base.metadata.get("training")}
    if init is not None:
        # The init model's own lineage comes along, so a chain of runs stays traceable.
        metadata["init_model"] = {
            "file": Path(config.init_model).name,
            "steps_trained": init.metadata.get("steps_trained"),
            "training": init.metadata.get("training"),
            **{key: init.metadata[key] for key in ("init_model", "base_model")
               if key in init.metadata},
        }
    metadata.update({
        # the settings with each path cut to its last name: a model file travels, and should
        # not carry the directories of the machine that made it
        "training": {**config.to_dict(), **{name: Path(getattr(config, name)).name
                                            for name in _PATH_SETTINGS}},
        "vgg_weights": description,
        "loss_weights": weights.recordable(),
        "style_coefficients": list(style_coefficients),
        "steps_trained": steps_done,
        "final_losses": final_losses,
    })
    return metadata


def _start_from_nearest(network, base, new, style_weight, log):
    """Start each new style's rows from the blend of the base's styles whose Gram matrices
    are nearest to its own (by the style loss; `StyleTargets.nearest`), where the base
    carries comparable targets; else they stay the mean of the old rows."""
    old = base.style_targets
    if old is None or old.loss_network != new.loss_network or old.layers != new.layers:
        log("new styles start from the mean of the base's styles (the base carries no style "
            "targets of this loss network)")
        return
    blends = []
    for index, name in enumerate(new.style_names):
        weights, distance, _ = old.nearest(
            {layer: value[index] for layer, value in new.grams.items()}, style_weight)
        blends.append(weights)
        parts = ", ".join(f"{old.style_names[i]} {w:.0%}" for i, w in enumerate(weights) if w > 0)
        log(f"new style {name} starts from {parts} (style loss {distance:.4g} between their "
            "Gram matrices)")
    start_new_rows(network, base.num_styles, blends)


def _style_targets(base, targets, log):
    """The style targets of the model a run writes: its styles' (a base model's first)."""
    if base is None:
        return targets
    if base.style_targets is None:
        log("the base model carries no style targets, so the new model carries none either: "
            "add them with `stylecbn add-targets` (refining its outputs needs them)")
        return None
    try:
        return base.style_targets.extended(targets)
    except ModelFileError as error:
        log(f"the new model carries no style targets: {error}")
        return None


def write_model(network, values, metadata, targets, output, run_dir):
    """Save the trained weights as a float32 model file (whatever the training precision),
    with the style targets (None: none)."""
    with dtype_policy("float32"):
        final = build_network(
            network.num_styles, style_names=network.style_names,
            style_credits=network.style_credits, normalization=network.normalization,
            width_multiplier=network.width_multiplier, preset=network.architecture,
            metadata=metadata, name=network.name,
        )
    for variable, value in zip(final.weights, values):
        variable.assign(value)
    if targets is not None:
        attach_targets(final, targets)
    try:
        save_model(final, output)
    except ModelFileError as error:
        raise ModelFileError(
            f"{error} The trained weights are in the last checkpoint in {run_dir}: fix the "
            "output and run again with `resume` to write the model."
        ) from None

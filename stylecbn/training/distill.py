"""Distillation: a student network learns a trained model's styles from its outputs.

`distill(config)` (a `DistillConfig`) turns a teacher model and a folder of photos into a
student `.keras` model with the teacher's styles, names, credits and style targets. It is
`stylecbn.training.run.train` with another loss and other batches, and reuses its pieces: the
run folder and its lock, the checks made before anything starts, the checkpoints and a resume
that sees exactly the batches an uninterrupted run would, the progress line, the previews,
Ctrl-C and SIGTERM, and the model file written at the end.

- The teacher paints every training photo in every learnt style once (`TeacherOutputs`,
  kept in `<run folder>/teacher/`, fingerprinted).
- Each step takes random crops of the photos (`ContentPhotos.windows`), the same windows of
  the teacher's images in each crop's style, and moves the student's images towards the
  teacher's by `TeacherLoss` (low-pass pixels, Gram matrices and features of shallow VGG-16
  layers).
- The model file records its lineage: the teacher's file name and its own training, and the
  distillation's settings, steps and last losses.
"""

import sys
from pathlib import Path

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import keras
import numpy as np
from keras import ops

from stylecbn.errors import ConfigError
from stylecbn.model.network import build_network
from stylecbn.model.saving import load_model, resolve_model_path
from stylecbn.perceptual.teacher_loss import DISTILL_TERMS, TeacherLoss, TeacherLossWeights
from stylecbn.perceptual.vgg import build_loss_network
from stylecbn.training.checkpoints import (
    check_resumed_styles,
    find_resume_checkpoint,
    restore_checkpoint,
    variable_arrays,
)
from stylecbn.training.config import DistillConfig
from stylecbn.training.photos import ContentPhotos
from stylecbn.training.preflight import (
    RunFolderLock,
    check_config,
    check_output,
    check_replaceable,
    make_run_dir,
    memory_left,
)
from stylecbn.training.run import (
    Run,
    StartupLog,
    fit_run,
    last_losses,
    seed_initial_weights,
    tensorboard_callbacks,
    write_model,
)
from stylecbn.training.teacher import TeacherOutputs, keras_painter
from stylecbn.training.trainer import (
    DenseAdam,
    StyleTrainer,
    TrainingBatches,
    TrainingMonitor,
    unit_range,
    compile_cache,
    dtype_policy,
    stop_on_signals,
)

__all__ = ["DistillTrainer", "distill", "pick_styles"]


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


def distill(config, *, painter=None, loss_network=None, callbacks=None, log=None,
            force=False):
    """Distill a trained model into a student network and write the student's model file.

    Args:
        config: a `DistillConfig`.
        painter: a function of the teacher network returning (name, paint), as
            `stylecbn.training.teacher.keras_painter` (the default) does: what paints the
            teacher's outputs. `stylecbn distill` paints as `stylecbn apply` does.
        loss_network: a model returning {VGG layer name: features} for RGB images in [0, 1],
            used instead of VGG-16 (tests use a small one); None builds VGG-16 with
            `config.vgg_weights` (when a term needs one).
        callbacks, log, force: as in `stylecbn.training.run.train`.

    Returns:
        Path of the written `.keras` model.

    Raises:
        ConfigError, DataError, ModelFileError: unusable settings, inputs or files, an
            existing output; nothing is written over an existing file unless `force`.
        KeyboardInterrupt: after writing a checkpoint (or keeping the teacher outputs
            painted so far), when the run was interrupted (Ctrl-C, or SIGTERM).
    """
    log = log or _stderr
    check_config(config, DistillConfig)
    with RunFolderLock(config.resolved_run_dir(), log) as lock:
        return _distill(config, lock, painter or keras_painter, loss_network, callbacks, log,
                        force)


def pick_styles(selection, style_names):
    """The indices of the styles a comma-separated `selection` of names or indices names
    ("" or "all": every style), in the order given.

    Raises:
        ConfigError: an unknown name, an index out of range, or a style named twice.
    """
    parts = [part.strip() for part in selection.split(",") if part.strip()]
    if not parts or parts == ["all"]:
        return list(range(len(style_names)))
    picked = []
    for part in parts:
        if part in style_names:
            index = style_names.index(part)
        elif part.lstrip("-").isdigit():
            index = int(part)
            if not 0 <= index < len(style_names):
                raise ConfigError(f"`styles`: the teacher has styles 0 to {len(style_names) - 1}"
                                  f"; {part} is not one of them")
        else:
            raise ConfigError(f"`styles`: the teacher has no style {part!r}; its styles are "
                              f"{', '.join(style_names)}")
        if index in picked:
            raise ConfigError(f"`styles`: style {style_names[index]} is named twice")
        picked.append(index)
    return picked


def _distill(config, lock, painter, loss_network, callbacks, log, force):
    startup = StartupLog(log)
    output = Path(config.output)
    check_output(output)
    run_dir = lock.run_dir
    if run_dir.is_dir():
        lock.acquire()
    checkpoint = find_resume_checkpoint(config, run_dir)
    check_replaceable(output, config, checkpoint, force)

    teacher_path = resolve_model_path(config.teacher)
    teacher = load_model(teacher_path)
    styles = pick_styles(config.styles, teacher.style_names)
    startup.phase(f"teacher: {teacher_path.name}, {len(styles)} of its "
                  f"{teacher.num_styles} styles")
    photos = ContentPhotos(config.content, crop=config.crop_size,
                           resize=config.resolved_photo_size, holdout=config.holdout,
                           seed=config.seed,
                           max_bytes=memory_left(config, config.width_multiplier))
    startup.phase(f"content photos: {len(photos) + len(photos.holdout_paths)} decoded")
    make_run_dir(run_dir)
    if not lock.held:
        lock.acquire()
        find_resume_checkpoint(config, run_dir)
    outputs = TeacherOutputs(run_dir, teacher_path, styles, photos, log, painter(teacher))
    startup.phase("teacher outputs: ready")
    coefficients = [1.0] * len(styles)
    weights = TeacherLossWeights(
        pixel=config.pixel_weight, gram=config.gram_weight, feature=config.feature_weight,
        gram_layers=tuple(config.layer_list("gram_layers")), feature_layer=config.feature_layer,
        gram_normalization=config.gram_normalization)

    with dtype_policy(config.precision), compile_cache(run_dir):
        seed_initial_weights(config.seed)
        network = build_network(
            len(styles),
            style_names=[teacher.style_names[i] for i in styles],
            style_credits=[teacher.style_credits[i] for i in styles],
            normalization=config.normalization,
            width_multiplier=config.width_multiplier,
            preset=config.preset,
        )
        if checkpoint is not None:
            check_resumed_styles(checkpoint, network.style_names, coefficients)
        loss_network, description = _loss_network(config, loss_network, weights.layers)
        log(f"loss network: {description}")
        loss = TeacherLoss(loss_network, weights)
        trainer = DistillTrainer(network, loss, name="distill_trainer")
        optimizer = DenseAdam(learning_rate=config.learning_rate)
        trainer.compile(optimizer=optimizer)
        optimizer.build(trainer.trainable_variables)
        if checkpoint is not None:
            restore_checkpoint(trainer, checkpoint)
            log(f"resuming from {checkpoint.path} (step {checkpoint.step})")
        startup.phase("student: built" + (", checkpoint restored" if checkpoint else ""))

        run = Run(config, run_dir, photos, trainer, coefficients, log)
        config.save(run_dir / "config.json")
        log(f"distilling {len(styles)} style(s) of {teacher_path.name} into a "
            f"{config.preset} network (width {config.width_multiplier:g}, "
            f"{network.count_params():,} weights) on {len(photos)} photos, backend "
            f"{keras.backend.backend()}, {config.precision}; run folder {run_dir}")
        first_step = checkpoint.step if checkpoint is not None else 0
        monitor = run.monitor = TrainingMonitor(run, first_step, started=startup.started)
        fit_run(run, monitor, first_step,
                lambda: DistillBatches(photos, outputs, first_step, config.steps,
                                       config.batch_size, len(styles)),
                [*tensorboard_callbacks(config, run_dir, log), *(callbacks or [])])
        steps_done = int(ops.convert_to_numpy(trainer.optimizer.iterations))
        run.preview(steps_done)
        values = variable_arrays(network.weights)

    metadata = _metadata(config, teacher, teacher_path, styles, description, steps_done,
                         last_losses(monitor, checkpoint))
    targets = _targets(teacher, styles, log)
    write_model(network, values, metadata, targets, output, run_dir)
    log(f"wrote {output} ({network.num_styles} styles, {steps_done} steps)")
    return output


class DistillTrainer(StyleTrainer):
    """A `StyleTrainer` whose loss is a `TeacherLoss` between the student's images and the
    teacher's (`inputs["teacher"]`, uint8)."""

    reported_terms = DISTILL_TERMS

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total, terms = self.perceptual_loss(unit_range(x["teacher"]), y_pred)
        for tracker in self.term_trackers:
            tracker.update_state(terms[tracker.name])
        return total


class DistillBatches(TrainingBatches):
    """`TrainingBatches` that also hold the teacher's images of each crop."""

    def __init__(self, photos, teacher_outputs, first_step, last_step, batch_size,
                 num_labels):
        super().__init__(photos, first_step, last_step, batch_size, num_labels, 0)
        self.teacher_outputs = teacher_outputs

    def _make(self, index):
        step = self.first_step + index
        windows = self.photos.windows(step, self.batch_size)
        labels = self.photos.labels(step, self.batch_size, self.num_labels)
        return ({"images": self.photos.crops(windows), "style": labels.astype(np.int32),
                 "teacher": self.teacher_outputs.crops(windows, labels)},)


def _loss_network(config, injected, layers):
    """(loss network or None, description)."""
    if injected is not None:
        return injected, f"injected loss network {injected.name!r}"
    if not layers:
        return None, "none (pixel term only)"
    return build_loss_network(config.vgg_weights, layers)


_PATH_SETTINGS = ("teacher", "content", "output", "run_dir", "vgg_weights")


def _metadata(config, teacher, teacher_path, styles, description, steps_done, final_losses):
    """What the student's file records: how it was distilled, and from which model."""
    return {
        "distilled_from": {
            "file": teacher_path.name,
            "styles": [int(i) for i in styles],
            "steps_trained": teacher.metadata.get("steps_trained"),
            "training": teacher.metadata.get("training"),
            "loss_weights": teacher.metadata.get("loss_weights"),
            "vgg_weights": teacher.metadata.get("vgg_weights"),
        },
        # the settings with each path cut to its last name (a model file travels)
        "distillation": {**config.to_dict(), **{name: Path(getattr(config, name)).name
                                                for name in _PATH_SETTINGS}},
        "distill_loss_network": description,
        # the loss the teacher was trained with: what refining and the benchmarks measure
        **{key: teacher.metadata[key] for key in ("loss_weights", "vgg_weights")
           if key in teacher.metadata},
        "style_coefficients": [1.0] * len(styles),
        "steps_trained": steps_done,
        "final_losses": final_losses,
    }


def _targets(teacher, styles, log):
    """The teacher's style targets of the learnt styles (refining needs them), or None."""
    targets = teacher.style_targets
    if targets is None:
        log("the teacher carries no style targets, so the student carries none either: add "
            "them with `stylecbn add-targets`")
        return None
    return targets.subset(styles)

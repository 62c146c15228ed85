"""The Keras pieces of training: the trainer model, its optimizer, its batches, its monitor.

- `StyleTrainer` is a `keras.Model` that wraps the style network and overrides
  `compute_loss` with the perceptual loss, so Keras' own `fit` loop runs it on TensorFlow
  and on JAX.
- Adding styles to a trained network: `extend_network` appends their gamma/beta rows,
  `freeze_all_but_new_rows` freezes the rest and returns the gradient masks that
  `RowMaskedAdam` (Adam with fixed gradient masks) applies, so only the new rows train.
  Both optimizers (`DenseAdam` otherwise) are Adam on dense gradients, also on TensorFlow.
- `TrainingBatches` feeds `fit` the batch of each global step (a pure function of the seed
  and the step, see `photos.ContentPhotos`; uint8 pixels), prefetched on a thread.
- `TrainingMonitor` prints progress, asks the run for checkpoints and previews, and stops
  training when asked (Ctrl-C, SIGTERM), without making the host wait for every step.
- `dtype_policy`, `data_parallel` and `stop_on_signals` are the scopes a run trains in.

TensorFlow is imported only by `data_parallel` on the TensorFlow backend (tf.distribute has
no backend-neutral equivalent there), so this module runs on JAX without TensorFlow.
"""

import concurrent.futures
import contextlib
import math
import signal
import threading
import time

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import keras
import numpy as np
from keras import ops

from stylecbn.errors import ConfigError, DataError, TrainingError
from stylecbn.model.network import build_network

__all__ = [
    "COMPILE_CACHE_FOLDER",
    "compile_cache",
    "REPORTED_TERMS",
    "StyleTrainer",
    "DenseAdam",
    "RowMaskedAdam",
    "extend_network",
    "freeze_all_but_new_rows",
    "start_new_rows",
    "TrainingBatches",
    "TrainingMonitor",
    "dtype_policy",
    "unit_range",
    "data_parallel",
    "stop_on_signals",
]

# Loss terms shown in the progress line and written to TensorBoard (a trainer's
# `reported_terms`; distillation reports its own, `stylecbn.training.distill`).
REPORTED_TERMS = ("total_loss", "content_loss", "style_loss", "total_variation_loss")
_SHORT_NAMES = {"total_loss": "loss", "content_loss": "content", "style_loss": "style",
                "total_variation_loss": "tv", "pixel_loss": "pixel", "gram_loss": "gram",
                "feature_loss": "feature"}


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
        inputs: {"images": (B, H, W, 3) uint8 pixels, "style": (B,) int labels}. The pixels
            are scaled to [0, 1] here, on the accelerator: the host makes and copies a
            quarter of the bytes of a float32 batch.

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
        self.term_trackers = [_LatestValue(name) for name in self.reported_terms]

    reported_terms = REPORTED_TERMS

    def call(self, inputs, training=None):
        training = bool(training) and not self.freeze_statistics
        return self.network((unit_range(inputs["images"]), inputs["style"]), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels = ops.cast(x["style"], "int32") - self.label_offset
        total, terms = self.perceptual_loss(unit_range(x["images"]), y_pred, labels)
        for tracker in self.term_trackers:
            tracker.update_state(terms[tracker.name])
        return total * self.loss_scale if self.loss_scale != 1.0 else total


def unit_range(pixels):
    """uint8 pixels as float32 in [0, 1] (the division NumPy's float32 `x / 255` does)."""
    return ops.cast(pixels, "float32") / 255.0


class DenseAdam(keras.optimizers.Adam):
    """Adam on dense gradients: the same updates on TensorFlow as on JAX.

    On TensorFlow the gradient of a gamma/beta table (rows gathered by style label) arrives
    as IndexedSlices, one slice per sample, and Keras' Adam squares the slices one by one:
    when samples of a batch share a style, that row's second moment gets g_a^2 + g_b^2
    instead of (g_a + g_b)^2, and its step grows up to sqrt(samples) times Adam's (measured:
    1.2 lr in a second step, where Adam's is at most 1.0014 lr). Summing the slices first
    restores Adam.
    """

    def apply(self, grads, trainable_variables=None):
        return super().apply([_dense(grad) for grad in grads], trainable_variables)


def _dense(gradient):
    if type(gradient).__name__ != "IndexedSlices":
        return gradient
    import tensorflow as tf  # only TensorFlow makes IndexedSlices

    return tf.convert_to_tensor(gradient)


class RowMaskedAdam(DenseAdam):
    """Adam (dense, see `DenseAdam`) that multiplies the gradient of chosen variables by a
    fixed mask.

    Rows whose gradient is exactly zero keep Adam's moments at zero, so their update is
    0 / (0 + epsilon) = 0: they stay bit-identical.
    """

    def __init__(self, masks, name="row_masked_adam", **kwargs):
        super().__init__(name=name, **kwargs)
        self._gradient_masks = masks  # variable path -> array broadcastable to the variable

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        masked = []
        for grad, variable in zip((_dense(grad) for grad in grads), variables):
            mask = self._gradient_masks.get(variable.path)
            masked.append(grad if mask is None or grad is None else grad * ops.cast(mask, grad.dtype))
        return super().apply(masked, trainable_variables)


def extend_network(base, specs, base_path):
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
        preset=base.architecture,
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


def start_new_rows(network, first_new, blends):
    """Start the styles from `first_new` on as blends of the styles before it: row
    `first_new + k` of every gamma and beta table becomes `blends[k] @ rows[:first_new]` (the
    network blends styles by mixing these rows, so the new style paints that blend)."""
    blends = np.asarray(blends, np.float32)
    for norm in network.normalization_layers:
        for table in (norm.gamma, norm.beta):
            value = ops.convert_to_numpy(table)
            value[first_new:first_new + len(blends)] = blends @ value[:first_new]
            table.assign(value)


def freeze_all_but_new_rows(network, first_new):
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


class TrainingBatches(keras.utils.PyDataset):
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


class TrainingMonitor(keras.callbacks.Callback):
    """Progress lines, checkpoints, previews and stop requests, without a host sync per step.

    Keras runs the `on_train_batch_end` of `async_safe` callbacks on a worker thread, and that
    is where it turns the step's logs (the loss terms) into numbers, waiting for the step to
    finish; the main thread meanwhile feeds the accelerator the next step. Everything that
    needs the model's state or stops the loop happens on the main thread, in
    `on_train_batch_begin`, between two steps: progress lines, checkpoints, previews, and the
    stop that `request_stop` asks for (from a signal handler). The main thread runs at most
    `MAX_STEPS_AHEAD` steps ahead of the last finished one. (With another callback that is
    not async safe, such as TensorBoard or a test's, Keras calls everything on the main
    thread after each step: the same events, one step at a time.)

    Args:
        run: the run being trained: its `config` (a `TrainingConfig`), `log(line)`,
            `checkpoint(trainer, step)` and `preview(step)`.
        first_step: the global step of `fit`'s batch 0 (the checkpoint's step on a resume).
        started: `time.perf_counter()` when the run started, for the start-up line that the
            first step's end prints; None leaves the total out.
    """

    async_safe = True
    MAX_STEPS_AHEAD = 2

    def __init__(self, run, first_step, started=None):
        super().__init__()
        self.run = run
        self.first_step = first_step
        self.started = started
        self.last_terms = {}
        self.stop_reason = None
        self._finished = {}  # global step -> (loss terms, when it finished), until handled
        self._handled = first_step
        self._condition = threading.Condition()
        self._fit_started = None
        self._mark = None

    def request_stop(self, reason):
        """Stop training before the next step (only sets a flag: safe in a signal handler)."""
        self.stop_reason = reason

    def on_train_begin(self, logs=None):
        self._fit_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Keras has turned the logs into numbers: the step has finished.
        finished_at = time.perf_counter()
        terms = {}
        try:
            terms = {name: float(logs[name]) for name in _SHORT_NAMES if name in (logs or {})}
        finally:
            # Always recorded: the main thread waits for this step in `on_train_batch_begin`.
            with self._condition:
                self._finished[self.first_step + batch + 1] = (terms, finished_at)
                self._condition.notify_all()

    def on_train_batch_begin(self, batch, logs=None):
        steps_done = self.first_step + batch
        self._handle_finished(steps_done - self.MAX_STEPS_AHEAD)
        if self.stop_reason is not None:
            raise KeyboardInterrupt(self.stop_reason)
        if steps_done == self.first_step:
            return
        config = self.run.config
        if steps_done % config.checkpoint_every == 0:
            self._handle_finished(steps_done)
            # Reading `self.model` makes the JAX backend write its state back to the variables.
            self.run.checkpoint(self.model, steps_done)
        if steps_done % config.preview_every == 0:
            self._handle_finished(steps_done)
            _ = self.model
            self.run.preview(steps_done)

    def on_train_end(self, logs=None):
        # Keras has waited for the worker thread: every step is recorded.
        self._handle_finished(max(self._finished, default=self._handled))

    def _handle_finished(self, wait_for):
        """Log (and time) the finished steps in order: all that are recorded, waiting for
        them up to global step `wait_for`."""
        while True:
            step = self._handled + 1
            with self._condition:
                while step not in self._finished and step <= wait_for:
                    self._condition.wait(timeout=1.0)
                if step not in self._finished:
                    return
                terms, now = self._finished.pop(step)
            self._handled = step
            _check_finite(step, terms)
            self.last_terms = terms
            if step == self.first_step + 1 and self._fit_started is not None:
                since = ("" if self.started is None
                         else f"; {now - self.started:.1f} s since the start")
                self.run.log(f"start-up: first step (compiling the training step) in "
                             f"{now - self._fit_started:.1f} s{since}")
            config = self.run.config
            if step % config.log_every == 0 or step == config.steps:
                self._log_progress(step, now)
            if self._mark is None:
                # Speed is measured from the end of the first step, which includes compiling.
                self._mark = (step, now)

    def _log_progress(self, step, now):
        config = self.run.config
        terms = " ".join(
            f"{_SHORT_NAMES[name]} {value:.4g}" for name, value in self.last_terms.items()
        )
        speed = "compiling"
        if self._mark is not None:
            mark_step, mark_time = self._mark
            seconds_per_step = (now - mark_time) / max(1, step - mark_step)
            self._mark = (step, now)
            left = _duration((config.steps - step) * seconds_per_step)
            speed = f"{config.batch_size / max(seconds_per_step, 1e-9):.1f} img/s  {left} left"
        self.run.log(f"step {step}/{config.steps}  {terms}  {speed}")


def _check_finite(step, terms):
    """Stop at the first step whose loss is not a finite number: every later step, each
    checkpoint and the model would hold NaN weights (which paint black images)."""
    if all(math.isfinite(value) for value in terms.values()):
        return
    listed = ", ".join(f"{_SHORT_NAMES[name]} {value}" for name, value in terms.items())
    raise TrainingError(
        f"training stopped at step {step}: the loss is {terms.get('total_loss', 'nan')} "
        f"({listed}), so no model was written; the run diverged (lower learning_rate) or "
        "an input holds values that are not finite"
    )


def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


@contextlib.contextmanager
def dtype_policy(name):
    """Set Keras' global dtype policy for the block and restore the caller's afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def data_parallel(enabled, batch_size):
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


COMPILE_CACHE_FOLDER = "xla-cache"


@contextlib.contextmanager
def compile_cache(run_dir):
    """On JAX, keep what XLA compiles in `<run folder>/xla-cache` while training.

    This is JAX's persistent compilation cache: a resumed start of the run loads its training
    step (and anything else that took more than a second to compile) instead of compiling it
    again. Nothing changes where the process chose a cache itself (JAX_COMPILATION_CACHE_DIR
    or `jax.config`), and on other backends. The cache holds executable code: it lives in the
    run folder, which only its owner writes.
    """
    if keras.backend.backend() != "jax":
        yield
        return
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir:
        yield
        return
    compilation_cache.set_cache_dir(str(run_dir / COMPILE_CACHE_FOLDER))
    compilation_cache.reset_cache()  # so the folder is used even after earlier compilations
    try:
        yield
    finally:
        compilation_cache.reset_cache()
        jax.config.update("jax_compilation_cache_dir", None)


def _check_divisible(batch_size, devices):
    if batch_size % devices:
        raise ConfigError(
            f"distribute: batch_size {batch_size} must be a multiple of the {devices} devices."
        )


@contextlib.contextmanager
def stop_on_signals(monitor):
    """While training, Ctrl-C (SIGINT) and SIGTERM ask `monitor` to stop before the next step.

    The handler only sets a flag, which the monitor checks between steps, so the run then
    writes a checkpoint and stops. Python's default handler raises KeyboardInterrupt wherever
    the main thread is, and Keras swallows it in one such place (a bare `except` in
    `pythonify_logs`, where JAX's main thread waits most of each step). SIGTERM counts too:
    `kill`, job schedulers and time limits send it, and background jobs of non-interactive
    shells ignore SIGINT (an ignored SIGINT stays ignored here).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum, frame):
        monitor.request_stop(signal.Signals(signum).name)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, request_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

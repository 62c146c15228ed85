"""Temporal stability of stylized video: warping error next to style and content loss.

Clips with exactly known motion are cut from still photos: frame t shows the photo through an
affine map A_t (frame pixel -> photo pixel; bicubic sampling, rounded to 8 bits like a decoded
video), for a camera pan (1.7 px right and 0.6 px down per frame), a zoom (1.2% per frame), a
rotation (0.6 degrees per frame) and a hand-held shake (random shifts of 1.5 px and turns of
0.45 degrees, standard deviations, fixed seed). The motion from frame t back to frame t-1 is
then exactly A_{t-1}^-1 A_t, so the warping error measures the stylization, not a flow
estimate.

For every clip, style and variant this prints
- the warping error (Lai et al., "Learning Blind Video Temporal Consistency", 2018): the mean
  over frame pairs of the mean squared RGB difference (values 0..1) between output frame t and
  output frame t-1 warped onto it (bilinear, as in the paper), over pixels visible in both;
  shown x 1000;
- the style loss and content loss of the output frames: the training objective's terms (the
  model's VGG weights and loss weights) against the style's painting, averaged over frames.

Variants (all through `Stylizer.stylize_frames`, the path of `stylecbn apply`):
- per-frame: every frame stylized on its own (`stylecbn apply --no-stabilize`);
- statistics EMA: every instance normalization uses an exponential moving average over frames
  of its per-channel mean and variance (keep 0.9): the other inference-time idea, measured here
  and not shipped (the model runs eagerly with the layer's call swapped for this script only);
- `stylecbn.applying.flicker.FlickerReducer` and its parts: "grid only" (the network's grid follows
  the camera, nothing carried), "carry 0.5 without grid", "grid + carry 0.5, no detail" (no
  detail restoration), and "grid + carry c" for several carries. The default, "grid + carry
  0.5", is what `stylecbn apply` does to video and animated GIFs. "similarity only" and
  "similarity + carry 0.5" follow zoom and rotation too (`follow="similarity"`: the photo is
  drawn in a key frame's coordinates before the network, its output drawn back).
The input clip's own warping error is the floor that resampling leaves.

Compound clips (`--kinds`, `COMPOUND`): zoom, rotation and pan at once (0.8% zoom, 0.4 degrees
and 1.3 px a frame); an object (a disc cut from the next photo) moving over a still
background; the light falling to 65% during a slow pan; a bar (an occluder) crossing a
panning view. For the layered ones each pixel's exact source follows its layer, and pixels
that are uncovered or covered between two frames, or on a layer's edge, are left out of the
warping error. The verdict checks every clip, not only the mean, and names the worst.

    python benchmarks/temporal.py                         # built-in model, 2 styles, 2 photos
    python benchmarks/temporal.py --video clip.mp4        # a real clip: motion from OpenCV flow
    python benchmarks/temporal.py --kinds zoom+rotate+pan,object,lighting,occlusion \
        --photos kodak_kodim09.png,urban100_img_097.png,set14_coastguard.png   # compound clips

With --video the motion is estimated with OpenCV's Farneback flow (the stabilizer itself uses
DIS flow, so the measurement does not grade its own motion estimate) and pixels failing a
forward-backward check (occlusions, flow errors) are left out. --gif writes a side-by-side
animation (per-frame | stabilized) of the first pan clip; --save-clip writes that clip as a
video to try `stylecbn apply` on. Runs on the TensorFlow or JAX backend (KERAS_BACKEND).
"""

import argparse
import contextlib
import time
from pathlib import Path

import cv2
import numpy as np
from keras import ops

from _common import needs_folders
from stylecbn.training.styles import load_style_image, load_styles_folder
from stylecbn.media.reading import LoadedImage, read_image
from stylecbn.model.layers import ConditionalInstanceNormalization
from stylecbn.perceptual.losses import LossWeights, PerceptualLoss, compute_style_grams
from stylecbn.applying.stylize import Stylizer
from stylecbn.applying.flicker import DEFAULT_CARRY, FlickerReducer
from stylecbn.perceptual.vgg import build_loss_network

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
KINDS = ("pan", "zoom", "rotate", "shake")
# Compound clips (what hand-held footage is): camera motions together, an object moving over a
# still background, a lighting change, an occluder crossing a panning view.
COMPOUND = ("zoom+rotate+pan", "object", "lighting", "occlusion")
STATISTICS_KEEP = 0.9


# --- clips with exact motion -----------------------------------------------------------------


def affine(kind, t, photo_size, frame_size):
    """2x3 map from frame pixels to photo pixels at frame t."""
    (photo_w, photo_h), (width, height) = photo_size, frame_size
    angle, scale, shift = 0.0, 1.0, np.zeros(2)
    if kind == "shake":
        x, y, degrees = np.random.default_rng(0).normal(0, 1.5, (t + 1, 3))[t]
        angle, shift = np.deg2rad(0.3 * degrees), np.array([x, y])
    elif kind == "pan":
        shift = np.array([1.7, 0.6]) * t - np.array([13.0, 5.0])
    elif kind == "zoom":
        scale = 1.012 ** (-t)
    elif kind == "rotate":
        angle = np.deg2rad(0.6 * t)
    elif kind == "zoom+rotate+pan":
        scale, angle = 1.008 ** (-t), np.deg2rad(0.4 * t)
        shift = np.array([1.2, 0.5]) * t - np.array([9.0, 4.0])
    elif kind in ("object", "lighting"):  # a still camera (lighting: a slow pan)
        shift = np.array([0.8, 0.0]) * t if kind == "lighting" else np.zeros(2)
    elif kind == "occlusion":
        shift = np.array([1.5, 0.0]) * t - np.array([10.0, 0.0])
    else:
        raise ValueError(kind)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    offset = np.array([photo_w / 2, photo_h / 2]) + shift - linear @ np.array([width / 2, height / 2])
    return np.hstack([linear, offset[:, None]])


def make_clip(photo, kind, frames, frame_size):
    """uint8 frames of `photo` seen through a moving camera, and the exact maps."""
    photo_size = photo.shape[1], photo.shape[0]
    maps = [affine(kind, t, photo_size, frame_size) for t in range(frames)]
    clip = [
        cv2.warpAffine(photo, m, frame_size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_REFLECT)
        for m in maps
    ]
    return clip, maps


def layered_clip(photo, other, kind, frames, frame_size):
    """uint8 frames of a compound clip, and where each pixel of frame t was in frame t-1.

    The background is `photo` seen through `affine(kind, ...)`; "object" adds a disc cut from
    `other` moving over it (3 px a frame to the right, 1 down); "occlusion" a vertical bar cut
    from `other` crossing the view (4 px a frame to the left) while the camera pans; "lighting"
    scales the light (the frames' values) from 1.0 down to 0.65 over the clip while the camera
    pans slowly. A pixel covered by a layer at t-1 and not at t (or the reverse) has no source
    (occluded or uncovered), nor has a pixel of the layer's soft edge."""
    width, height = frame_size
    background, maps = make_clip(photo, kind, frames, frame_size)
    if kind in ("zoom+rotate+pan", "lighting"):
        sources = [None] + [exact_sources(maps, t, frame_size) for t in range(1, frames)]
        if kind == "lighting":
            gains = np.linspace(1.0, 0.65, frames)
            background = [np.rint(f.astype(np.float32) * g).astype(np.uint8)
                          for f, g in zip(background, gains)]
        return background, sources
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    patch = cv2.resize(other, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    if kind == "object":
        radius = 0.3 * height
        # the disc's centre at t; the patch moves with it (the texture on the object travels)
        centres = [(0.3 * width + 3.0 * t, 0.45 * height + 1.0 * t) for t in range(frames)]

        def alpha_at(t):
            cx, cy = centres[t]
            distance = np.hypot(columns - cx, rows - cy)
            return np.clip(radius + 0.5 - distance, 0.0, 1.0)

        def layer_shift(t):
            return np.subtract(centres[t], centres[0])
    else:
        bar = 0.18 * width
        lefts = [0.75 * width - 4.0 * t for t in range(frames)]

        def alpha_at(t):
            inside = np.minimum(columns + 0.5 - lefts[t], lefts[t] + bar + 0.5 - columns)
            return np.clip(inside, 0.0, 1.0)

        def layer_shift(t):
            return np.array([lefts[t] - lefts[0], 0.0])

    clip, alphas = [], []
    for t in range(frames):
        dx, dy = layer_shift(t)
        moved = cv2.warpAffine(patch, np.float32([[1, 0, dx], [0, 1, dy]]), frame_size,
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        alpha = alpha_at(t)[..., None]
        frame = alpha * moved + (1.0 - alpha) * background[t].astype(np.float32)
        clip.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
        alphas.append(alpha[..., 0])
    sources = [None]
    for t in range(1, frames):
        map_x, map_y, valid = exact_sources(maps, t, frame_size)
        step = layer_shift(t) - layer_shift(t - 1)
        on_layer = alphas[t] >= 0.5
        map_x = np.where(on_layer, columns - step[0], map_x).astype(np.float32)
        map_y = np.where(on_layer, rows - step[1], map_y).astype(np.float32)
        inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
        before = cv2.remap(alphas[t - 1], map_x, map_y, cv2.INTER_LINEAR)
        same_layer = np.where(on_layer, before >= 0.99, before <= 0.01)
        crisp = (alphas[t] <= 0.01) | (alphas[t] >= 0.99)
        sources.append((map_x, map_y, inside & same_layer & crisp & (valid | on_layer)))
    return clip, sources


def exact_sources(maps, t, frame_size):
    """Where each pixel of frame t was in frame t-1 (x, y maps), from the known motion."""
    full = [np.vstack([m, [0, 0, 1]]) for m in (maps[t - 1], maps[t])]
    relative = (np.linalg.inv(full[0]) @ full[1])[:2]
    width, height = frame_size
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    map_x = relative[0, 0] * columns + relative[0, 1] * rows + relative[0, 2]
    map_y = relative[1, 0] * columns + relative[1, 1] * rows + relative[1, 2]
    valid = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return map_x.astype(np.float32), map_y.astype(np.float32), valid


def estimated_sources(clip, t):
    """Where each pixel of frame t was in frame t-1, by Farneback flow, with an occlusion mask."""
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in (clip[t], clip[t - 1])]
    params = dict(pyr_scale=0.5, levels=4, winsize=15, iterations=3, poly_n=5, poly_sigma=1.1,
                  flags=0)
    backward = cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, **params)
    forward = cv2.calcOpticalFlowFarneback(gray[1], gray[0], None, **params)
    height, width = gray[0].shape
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x, map_y = columns + backward[..., 0], rows + backward[..., 1]
    # Forward-backward check (Sundaram et al. 2010): the round trip must come back.
    there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR)
    error = np.sum(np.square(backward + there), axis=-1)
    bound = 0.01 * (np.sum(np.square(backward), -1) + np.sum(np.square(there), -1)) + 0.5
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return map_x, map_y, inside & (error <= bound)


def warping_error(outputs, sources):
    """Mean over frame pairs of the mean squared difference over pixels visible in both."""
    errors = []
    for t in range(1, len(outputs)):
        map_x, map_y, valid = sources[t]
        warped = cv2.remap(outputs[t - 1], map_x, map_y, cv2.INTER_LINEAR)
        squared = np.mean(np.square(outputs[t] - warped), axis=-1)
        errors.append(float(squared[valid].mean()))
    return float(np.mean(errors))


# --- variants --------------------------------------------------------------------------------


@contextlib.contextmanager
def smoothed_instance_statistics(keep):
    """Instance normalization with mean and variance averaged over calls (keep = old share).

    For this measurement only: swaps the layer's `call` (same maths as the layer, plus the
    moving average), so the model must run eagerly (state lives in Python between frames).
    """
    original = ConditionalInstanceNormalization.call
    state = {}

    def call(self, inputs, style, training=None):
        x = ops.cast(inputs, "float32")
        mean, variance = ops.moments(x, axes=(1, 2), keepdims=True)
        if id(self) in state:
            old_mean, old_variance = state[id(self)]
            mean = keep * old_mean + (1.0 - keep) * mean
            variance = keep * old_variance + (1.0 - keep) * variance
        state[id(self)] = (mean, variance)
        return self._normalize(inputs, style, mean, variance)

    ConditionalInstanceNormalization.call = call
    try:
        yield
    finally:
        ConditionalInstanceNormalization.call = original


def stylized(stylizer, clip, style, stabilize):
    loaded = LoadedImage(frames=list(clip), source="clip", durations=[40] * len(clip))
    result = stylizer.stylize_frames(loaded, style, max_size=0, stabilize=stabilize)
    return [frame.astype(np.float32) / 255.0 for frame in result.frames]


def statistics_ema(stylizer, clip, style):
    weights = stylizer.blend(style).vector[None]
    with smoothed_instance_statistics(STATISTICS_KEEP):
        return [
            np.clip(np.asarray(stylizer.model((frame[None] / np.float32(255), weights)))[0], 0, 1)
            for frame in clip
        ]


def variants(carries, only=None):
    """(name, how to make the frames: a function of (stylizer, clip, style)) of every variant
    (those named in `only`, when given)."""

    def reduced(**settings):
        return lambda s, c, style: stylized(s, c, style, FlickerReducer(**settings))

    chosen = [
        ("per-frame", lambda s, c, style: stylized(s, c, style, False)),
        ("statistics EMA", statistics_ema),
        ("grid only", reduced(carry=0.0)),
        (f"carry {DEFAULT_CARRY:g} without grid", reduced(follow_grid=False)),
        (f"grid + carry {DEFAULT_CARRY:g}, no detail", reduced(restore_detail=False)),
    ]
    chosen += [(f"grid + carry {c:g}", reduced(carry=c)) for c in carries]
    chosen += [("similarity only", reduced(carry=0.0, follow="similarity")),
               (f"similarity + carry {DEFAULT_CARRY:g}", reduced(follow="similarity")),
               (f"similarity + carry {DEFAULT_CARRY:g} key 1.05",
                reduced(follow="similarity", key_frame_scale=1.05)),
               ("similarity + carry 0.3", reduced(follow="similarity", carry=0.3)),
               (f"grid + carry {DEFAULT_CARRY:g} + round trip", reduced(round_trip=True)),
               ("rotation only", reduced(carry=0.0, follow="rotation")),
               (f"rotation + carry {DEFAULT_CARRY:g}", reduced(follow="rotation"))]
    return chosen if not only else [v for v in chosen if v[0] in only]


# --- losses ------------------------------------------------------------------------------------


class FrameLosses:
    """Mean content and style loss of frames, with the model's own training loss."""

    def __init__(self, model, styles_folder, indices, vgg_weights):
        metadata = model.metadata
        weights = metadata.get("loss_weights") or {}
        self.weights = LossWeights(
            content=weights.get("content", 1.0), style=weights.get("style") or LossWeights().style
        )
        name = vgg_weights or metadata.get("training", {}).get("vgg_weights", "auto")
        if name not in ("auto", "imagenet", "hed") and not Path(name).is_file():
            print(f"the model's loss-network weights {name} are not here; using 'auto'")
            name = "auto"
        self.network, self.description = build_loss_network(name, self.weights.layers)
        specs = load_styles_folder(styles_folder)
        if len(specs) != model.num_styles:
            raise SystemExit(
                f"{styles_folder} has {len(specs)} styles; the model has {model.num_styles}"
            )
        images = [load_style_image(specs[i]) for i in indices]
        grams = compute_style_grams(self.network, images, self.weights.style_layers)
        self.loss = PerceptualLoss(self.network, self.weights, grams, np.ones(len(indices), "float32"))

    def __call__(self, clip, outputs, local_index):
        content = np.stack(clip).astype(np.float32) / 255.0
        labels = np.full(len(clip), local_index, "int32")
        _, terms = self.loss(content, np.stack(outputs), labels)
        return float(ops.convert_to_numpy(terms["content_loss"])), float(
            ops.convert_to_numpy(terms["style_loss"])
        )


# --- report ----------------------------------------------------------------------------------


def measure(stylizer, losses, clip, sources, style, local_index, carries, rows, label,
            only=None):
    """Add a row per variant for one clip and style; returns {variant: frames}."""
    started = time.perf_counter()
    floor = warping_error([f.astype(np.float32) / 255.0 for f in clip], sources)
    outputs = {}
    for name, make in variants(carries, only):
        frames = make(stylizer, clip, style)
        content, style_loss = losses(clip, frames, local_index)
        rows.append(dict(clip=label, variant=name, warp=warping_error(frames, sources),
                         style=style_loss, content=content, floor=floor))
        outputs[name] = frames
    print(f"  {label}: {time.perf_counter() - started:.0f} s", flush=True)
    return outputs


def print_tables(rows):
    print("\n| clip | variant | warping error x1e3 | vs per-frame | style loss | vs per-frame "
          "| content loss |")
    print("|---|---|---|---|---|---|---|")
    base = {r["clip"]: r for r in rows if r["variant"] == "per-frame"}
    for r in rows:
        b = base[r["clip"]]
        print(f"| {r['clip']} | {r['variant']} | {1e3 * r['warp']:.3f} | "
              f"{r['warp'] / b['warp'] - 1:+.0%} | {r['style']:.4g} | "
              f"{r['style'] / b['style'] - 1:+.1%} | {r['content']:.4g} |")
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    clips = list(base)
    print(f"\nSummary over {len(clips)} clips (mean of each clip's change against per-frame; "
          "input clips' own warping error x1e3: "
          f"{1e3 * np.mean([base[c]['floor'] for c in clips]):.3f}):\n")
    print("| variant | warping error | worst clip | style loss | worst clip | content loss |")
    print("|---|---|---|---|---|---|")
    for variant in variants:
        chosen = [r for r in rows if r["variant"] == variant]
        warp = [r["warp"] / base[r["clip"]]["warp"] - 1 for r in chosen]
        style = [r["style"] / base[r["clip"]]["style"] - 1 for r in chosen]
        content = [r["content"] / base[r["clip"]]["content"] - 1 for r in chosen]
        print(f"| {variant} | {np.mean(warp):+.0%} | {max(warp):+.0%} | {np.mean(style):+.1%} | "
              f"{max(style):+.1%} | {np.mean(content):+.1%} |")
    default = [r for r in rows if r["variant"] == f"grid + carry {DEFAULT_CARRY:g}"]
    motions = [k for k in KINDS + COMPOUND if any(f" {k} / " in r["clip"] for r in default)]
    if motions:
        print(f"\nThe default (grid + carry {DEFAULT_CARRY:g}) by motion, mean over its clips:\n")
        print("| motion | clips | warping error | style loss | content loss |")
        print("|---|---|---|---|---|")
        for kind in motions:
            chosen = [r for r in default if f" {kind} / " in r["clip"]]
            change = {key: np.mean([r[key] / base[r["clip"]][key] - 1 for r in chosen])
                      for key in ("warp", "style", "content")}
            print(f"| {kind} | {len(chosen)} | {change['warp']:+.0%} | {change['style']:+.1%} | "
                  f"{change['content']:+.1%} |")
    if default:
        warp = np.mean([r["warp"] / base[r["clip"]]["warp"] - 1 for r in default])
        style = np.mean([r["style"] / base[r["clip"]]["style"] - 1 for r in default])
        verdict = "met" if warp <= -0.5 and style <= 0.10 else "NOT met"
        print(f"\nDefault (grid + carry {DEFAULT_CARRY:g}): warping error {warp:+.0%} (goal -50% or "
              f"better), style loss {style:+.1%} (goal +10% or less): {verdict} on the mean")
        changes = [(r["warp"] / base[r["clip"]]["warp"] - 1,
                    r["style"] / base[r["clip"]]["style"] - 1, r["clip"]) for r in default]
        failing = [c for c in changes if c[0] > -0.5 or c[1] > 0.10]
        worst = max(changes)
        print(f"Every clip: {len(changes) - len(failing)} of {len(changes)} meet both goals; the "
              f"worst warping error is {worst[0]:+.0%} (style {worst[1]:+.1%}) on {worst[2]}")
        for warp, style, clip in sorted(failing, reverse=True):
            print(f"  not met: {clip}: warping error {warp:+.0%}, style loss {style:+.1%}")


def to_uint8(frame):
    return np.rint(np.clip(frame, 0, 1) * 255).astype(np.uint8)


def side_by_side_gif(path, left, right, labels, duration):
    """An animated GIF of two frame lists side by side, on one shared palette."""
    from PIL import Image, ImageDraw

    frames = []
    for a, b in zip(left, right):
        row = np.concatenate([a, np.full((a.shape[0], 4, 3), 255, np.uint8), b], axis=1)
        image = Image.fromarray(row)
        draw = ImageDraw.Draw(image)
        for x, text in ((4, labels[0]), (a.shape[1] + 8, labels[1])):
            draw.rectangle((x - 2, 2, x + 6 * len(text) + 2, 14), fill=(0, 0, 0))
            draw.text((x, 3), text, fill=(255, 255, 255))
        frames.append(image)
    # One palette for every frame, no dithering: per-frame palettes would add flicker of their own.
    palette = frames[len(frames) // 2].quantize(256, method=Image.Quantize.MEDIANCUT)
    quantized = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    quantized[0].save(path, save_all=True, append_images=quantized[1:], duration=duration, loop=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a .keras model (default: the built-in)")
    parser.add_argument("--styles-folder", default=str(SHARED / "paintings"),
                        help="the paintings the model was trained on, same order (for the loss)")
    parser.add_argument("--styles", default="great_wave,starry_night",
                        help="comma-separated style names or indices")
    parser.add_argument("--content", default=str(SHARED / "content"))
    parser.add_argument("--photos", default="kodak_kodim09.png,urban100_img_097.png",
                        help="comma-separated photo files in --content (a layered clip's "
                        "object or occluder is cut from the next photo of the list)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"motions: {', '.join(KINDS + COMPOUND)}")
    parser.add_argument("--variants", default="",
                        help="only these variants, comma-separated (default: all), e.g. "
                        f"'per-frame,grid + carry {DEFAULT_CARRY:g}'")
    parser.add_argument("--size", default="160x120", help="frame size WxH")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--carries", default="0.3,0.4,0.5,0.6")
    parser.add_argument("--video", default=None, help="measure this clip instead (first --frames)")
    parser.add_argument("--vgg-weights", default="", help="default: the model's training config")
    parser.add_argument("--gif", default=None, help="write per-frame | stabilized of a pan clip")
    parser.add_argument("--save-clip", default=None, help="write that pan clip as a video")
    parser.add_argument("--cost", default="",
                        help="only time the reducer per frame at these sizes (e.g. "
                        "640x480,1280x720) against the network in the same run")
    args = parser.parse_args()
    if args.cost:
        reducer_cost(args, [tuple(int(v) for v in size.lower().split("x"))
                            for size in args.cost.split(",")])
        return
    needs_folders(args.styles_folder, *([] if args.video else [args.content]))

    frame_size = tuple(int(v) for v in args.size.lower().split("x"))
    carries = [float(c) for c in args.carries.split(",") if c]
    stylizer = Stylizer(args.model)
    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    indices = [stylizer.blend(s).index for s in styles]
    losses = FrameLosses(stylizer.model, args.styles_folder, indices, args.vgg_weights)
    print(f"loss network: {losses.description}")
    print(f"loss weights: content {losses.weights.content:g}, style {losses.weights.style:g}")
    print(f"styles: {', '.join(f'{i} {stylizer.style_names[i]}' for i in indices)}; "
          f"{args.frames} frames of {frame_size[0]}x{frame_size[1]}")

    rows = []
    if args.video:
        clip = video_frames(args.video, args.frames, frame_size)
        sources = [None] + [estimated_sources(clip, t) for t in range(1, len(clip))]
        for local, index in enumerate(indices):
            measure(stylizer, losses, clip, sources, index, local, carries, rows,
                    f"{Path(args.video).name} / {stylizer.style_names[index]}")
        print_tables(rows)
        return

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS + COMPOUND]
    if unknown:
        raise SystemExit(f"unknown motion(s) {', '.join(unknown)}: use {', '.join(KINDS + COMPOUND)}")
    only = [v.strip() for v in args.variants.split(",") if v.strip()] or None
    photo_paths = [Path(args.content) / name for name in args.photos.split(",") if name]
    photos = [read_image(path).frames[0] for path in photo_paths]
    for number, path in enumerate(photo_paths):
        photo = photos[number]
        for kind in kinds:
            if kind in COMPOUND:
                other = photos[(number + 1) % len(photos)]
                clip, sources = layered_clip(photo, other, kind, args.frames, frame_size)
            else:
                clip, maps = make_clip(photo, kind, args.frames, frame_size)
                sources = [None] + [exact_sources(maps, t, frame_size)
                                    for t in range(1, len(clip))]
            if kind == "pan" and args.save_clip and path == photo_paths[0]:
                save_clip(args.save_clip, clip)
            for local, index in enumerate(indices):
                outputs = measure(
                    stylizer, losses, clip, sources, index, local, carries, rows,
                    f"{path.stem} {kind} / {stylizer.style_names[index]}", only,
                )
                if args.gif and kind == "pan" and local == 0 and path == photo_paths[0] \
                        and "per-frame" in outputs:
                    side_by_side_gif(args.gif, [to_uint8(f) for f in outputs["per-frame"]],
                                     [to_uint8(f) for f in outputs[f"grid + carry {DEFAULT_CARRY:g}"]],
                                     ("per-frame", "stabilized"), 80)
                    print(f"  wrote {args.gif}")
    print_tables(rows)


def reducer_cost(args, sizes, frames=24):
    """Milliseconds per frame of the default FlickerReducer's own work (optical flow, trust,
    the warp of the previous output, detail restoration: the "network" here returns a fixed
    picture) and of stylizing one frame (`Stylizer.stylize`, the built-in model) at the same
    size, over a panning clip."""
    import os

    from _common import OtherWork

    load_before, other = os.getloadavg()[0], OtherWork().start()
    stylizer = Stylizer(args.model)
    photo = read_image(Path(args.content) / args.photos.split(",")[0]).frames[0]
    style = stylizer.blend(args.styles.split(",")[0].strip())
    print(f"{'size':>10}{'reducer ms/frame':>18}{'stylize ms/frame':>18}{'reducer / stylize':>19}")
    for width, height in sizes:
        clip, _ = make_clip(photo, "pan", frames, (width, height))
        clip = [frame.astype(np.float32) / 255.0 for frame in clip]
        fixed = np.asarray(stylizer.model((clip[0][None], style.vector[None])))[0]
        reducer = FlickerReducer()
        reducer(clip[0], lambda top, left, matrix=None: fixed)  # warm-up (OpenCV's first call)
        reducer.reset()
        started = time.perf_counter()
        for frame in clip:
            reducer(frame, lambda top, left, matrix=None: fixed)
        own = (time.perf_counter() - started) / frames
        pictures = [to_uint8(frame) for frame in clip[:8]]
        stylizer.stylize(pictures[0], style=style, max_size=0)  # warm-up at this size
        started = time.perf_counter()
        for picture in pictures:
            stylizer.stylize(picture, style=style, max_size=0)
        network = (time.perf_counter() - started) / len(pictures)
        print(f"{width}x{height:<5}{1000 * own:>16.0f}{1000 * network:>18.0f}"
              f"{own / network:>19.2f}")
    print(f"1-minute load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"{other.line()}")


def video_frames(path, count, frame_size):
    """The first `count` frames of a video, resized to `frame_size`, uint8 RGB."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            picture = frame.to_ndarray(format="rgb24")
            frames.append(cv2.resize(picture, frame_size, interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                break
    return frames


def save_clip(path, clip):
    """Write the clip as an H.264 video at 25 frames/s (to try `stylecbn apply` on)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = clip[0].shape[1], clip[0].shape[0], "yuv420p"
        for index, picture in enumerate(clip):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    print(f"  wrote {path}")


if __name__ == "__main__":
    main()

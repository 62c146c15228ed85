"""The quality table: the network, its refined outputs and Gatys et al.'s optimization, on one loss.

For held-out photos (centre squares) and styles of a model with style targets, measures the
content, style and total loss (the training objective: its VGG weights, layers and loss
weights, `stylecbn.perceptual.optimize.ImageLoss`) and the seconds of
  - the feed-forward output (the network),
  - the output refined N steps (`stylize(..., refine=N)`: the same optimizer from the
    network's output), for each N of --refine-steps,
  - Gatys: the same optimizer from the photo, for each N of --gatys-steps,
and the "equivalent Gatys steps" of the feed-forward and refined outputs: the Gatys steps
whose total loss equals theirs (log-interpolated between the measured points). A painting
not among the model's styles (`--style-image`) gets a row of its own: its target is its own
Gram matrices, its start the nearest trained blend.

    python benchmarks/quality.py --style-image styles/02_mosaic.png --results quality.json
    python benchmarks/quality.py --size 512 --photos kodak_kodim09 --styles 4 \
        --refine-steps 100 --gatys-steps "" --results quality512.json   # refining's time alone

The defaults are the README's table: 3 held-out photos x styles 4, 14, 6 and 9 at 256 px,
refined 25, 50, 100 and 200 steps, Gatys 10 to 1,000 steps (the short runs place the
network's own output on Gatys' curve).

One optimization per row and method runs to the largest N and records the best loss seen at
each smaller N (L-BFGS-B stopped after N evaluations takes exactly those steps). Results go
to --results as each run ends, and a rerun with the same file skips what is there (resumable;
more steps or rows can be added later); each optimization records the other processes' share
of the CPU while it ran (`other_cores`), and the busiest is printed, so a resumed table
shows whether all its seconds are quiet ones. `--pictures DIR` writes, for the first photo and
style, the feed-forward output, the output refined 100 steps and Gatys after 300 steps (from
the same runs as the table).

The photos default to the built-in model's held-out photos (README "The built-in model").
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import OtherWork, needs_folders
from stylecbn.applying.stylize import Stylizer
from stylecbn.fileio import atomic_write_bytes
from stylecbn.media.pixels import center_square
from stylecbn.media.reading import read_image
from stylecbn.perceptual.optimize import ImageLoss, optimize_image

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared" / "data" / "content"
HELD_OUT = ("kodak_kodim09", "set14_coastguard", "bsd68_241004")
TERMS = ("total_loss", "content_loss", "style_loss")


def curve(loss, start, steps, checkpoints, started, snapshots=None):
    """{N: [total, content, style, seconds]} at each checkpoint of one optimization; the loss
    at N is the lowest seen in the first N steps (what `optimize_image` returns)."""
    best, points = [None], {}

    def progress(step, total, terms):
        if best[0] is None or terms["total_loss"] < best[0]["total_loss"]:
            best[0] = dict(terms)
        if step in checkpoints:
            points[step] = [best[0][t] for t in TERMS] + [time.perf_counter() - started]

    optimize_image(loss, start, steps, progress=progress, snapshots=snapshots)
    return points


def equivalent_steps(total, gatys):
    """Gatys steps whose total loss equals `total`, log-interpolated; gatys {N: total}."""
    points = sorted(gatys.items())
    if total >= points[0][1]:
        return f"< {points[0][0]}"
    for (s0, t0), (s1, t1) in zip(points, points[1:]):
        if t1 <= total <= t0:
            fraction = (math.log(t0) - math.log(total)) / (math.log(t0) - math.log(t1))
            return f"{math.exp(math.log(s0) + fraction * math.log(s1 / s0)):.0f}"
    return f"> {points[-1][0]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model with style targets [built-in]")
    parser.add_argument("--content", default=str(CONTENT))
    parser.add_argument("--photos", default=",".join(HELD_OUT), help="comma list of file stems")
    parser.add_argument("--styles", default="4,14,6,9", help="comma list of style indices")
    parser.add_argument("--style-image", action="append", default=[],
                        help="a painting not among the styles (repeat for more rows)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--refine-steps", default="25,50,100,200")
    parser.add_argument("--gatys-steps", default="10,25,50,100,300,1000",
                        help='comma list; "" leaves Gatys out (a refining timing alone)')
    parser.add_argument("--results", default="quality.json", help="resumable results file")
    parser.add_argument("--pictures", default="", help="folder for the pictures of one photo")
    args = parser.parse_args()
    needs_folders(args.content)
    refine_steps = sorted(int(s) for s in args.refine_steps.split(",") if s)
    gatys_steps = sorted(int(s) for s in args.gatys_steps.split(",") if s)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}

    def save():
        atomic_write_bytes(results_path, json.dumps(results, indent=1).encode())

    load_before, other = os.getloadavg()[0], OtherWork().start()
    stylizer = Stylizer(args.model)
    refiner = stylizer.refiner
    print(f"loss network: {refiner.description}; size {args.size} px", flush=True)
    files = {p.stem: p for p in Path(args.content).rglob("*")
             if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    styles = [(str(i), stylizer.blend(int(i))) for i in args.styles.split(",")]
    styles += [(Path(p).stem + " (image)", stylizer.image_style(p)) for p in args.style_image]
    for name, style in styles[len(styles) - len(args.style_image):]:
        print(f"{name}: starts from {style.start.label} (style loss {style.distance:.4g})")
    pictures = Path(args.pictures) if args.pictures else None
    for photo_name in args.photos.split(","):
        photo = center_square(read_image(files[photo_name]).frames[0], args.size)
        photo = photo.astype(np.float32) / 255
        for style_name, style in styles:
            key = f"{photo_name}|{style_name}"
            row = results.setdefault(key, {})
            loss = ImageLoss(refiner.loss_network, refiner.weights, photo,
                             [(None, refiner.goal(style))])
            vector = style.vector[None]
            stylizer.model((photo[None], vector))  # compiled once, not timed
            started = time.perf_counter()
            output = np.asarray(stylizer.model((photo[None], vector)))[0]
            seconds = time.perf_counter() - started
            terms = loss(output[None])[1]
            row["network"] = [float(terms[t]) for t in TERMS] + [seconds]
            runs = (("refined", output, refine_steps, seconds, 100),
                    ("gatys", photo, gatys_steps, 0.0, 300))
            for method, start, steps, offset, shown in runs:
                if not steps:  # an empty list leaves the method out (--gatys-steps "")
                    continue
                done = row.setdefault(method, {})
                wanted = pictures is not None and shown <= max(steps)
                if all(str(n) in done for n in steps) and not wanted:
                    continue
                print(f"{key}: {method} {max(steps)} steps ...", flush=True)
                snapshots = {shown: None} if wanted else None
                work = OtherWork().start()
                points = curve(loss, start, max(steps), set(steps),
                               time.perf_counter() - offset, snapshots)
                done.update({str(n): value for n, value in points.items()})
                row.setdefault("other_cores", {})[method] = work.stop()
                save()
                if wanted:
                    write_picture(pictures, f"{photo_name}_{style_name}_{method}{shown}",
                                  snapshots[shown])
            if pictures is not None:
                write_picture(pictures, f"{photo_name}_{style_name}_network", output)
                pictures = None
            save()
    print_table(results, refine_steps, gatys_steps)
    shares = [(cores, key, method) for key, row in results.items()
              for method, cores in row.get("other_cores", {}).items() if cores is not None]
    if shares:
        cores, key, method = max(shares)
        print(f"\nthe busiest optimization ({key}, {method}): other processes used {cores:.2f} "
              f"cores on average" + ("" if cores <= OtherWork.QUIET_CORES else
                                     "  LOADED: do not quote its seconds"))
    print(f"\n1-minute load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"{other.line()} (rows made in earlier runs keep their own seconds)")


def write_picture(folder, name, image):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    Image.fromarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)).save(path)
    print(f"wrote {path}", flush=True)


def print_table(results, refine_steps, gatys_steps):
    columns = [("network", None)] + [("refined", n) for n in refine_steps] + [
        ("gatys", n) for n in gatys_steps]

    def cell(row, method, steps):
        value = row.get(method) if steps is None else row.get(method, {}).get(str(steps))
        return value

    heads = ["feed-forward" if s is None else f"{m} {s}" for m, s in columns]
    print("\nTotal loss (content + style) and seconds; 'equiv.': equivalent Gatys steps\n")
    print("| photo | style | " + " | ".join(heads) + " | equiv. (network) | equiv. (refined 100) |")
    print("|" + "---|" * (len(heads) + 4))
    medians = {h: [] for h in heads}
    for key, row in results.items():
        photo, style = key.split("|")
        cells = []
        for head, (method, steps) in zip(heads, columns):
            value = cell(row, method, steps)
            if value is None:
                cells.append("")
                continue
            medians[head].append(value)
            cells.append(f"{value[0]:.1f} ({value[1]:.0f} + {value[2]:.0f}), {value[3]:.0f} s")
        gatys = {n: row["gatys"][str(n)][0] for n in gatys_steps
                 if str(n) in row.get("gatys", {})}
        equivalents = ["", ""]
        if gatys:
            equivalents[0] = equivalent_steps(row["network"][0], gatys)
            if "100" in row.get("refined", {}):
                equivalents[1] = equivalent_steps(row["refined"]["100"][0], gatys)
        print(f"| {photo} | {style} | " + " | ".join(cells) + f" | {' | '.join(equivalents)} |")
    cells = []
    for head in heads:
        values = np.array(medians[head]) if medians[head] else None
        cells.append("" if values is None else
                     f"{np.median(values[:, 0]):.1f} ({np.median(values[:, 1]):.0f} + "
                     f"{np.median(values[:, 2]):.0f}), {np.median(values[:, 3]):.0f} s")
    print("| median | | " + " | ".join(cells) + " | | |")


if __name__ == "__main__":
    main()

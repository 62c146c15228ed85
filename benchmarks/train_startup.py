"""Time to first training step of `stylecbn train`, on TensorFlow and on JAX, same run.

For each backend, two fresh Python processes run the real trainer (`stylecbn.training.run.train`) on
the 17 paintings (`python tools/paintings_folder.py` makes bundle/paintings) and the shared
content photos: a new run of `--steps` steps, then a `--resume` of it one step further (a
resumed start also restores the optimizer). Each log line of the trainer is timestamped as it
arrives, from the start of the process (imports included), so the table shows where a start
spends its time: every line, the seconds since the line before it, and the time to the first
training step. The first step includes compiling the train step; the second shows what a step
costs once compiled. On JAX the title of each run also gives how many XLA compilations it made
and their seconds (a measure the other work on a shared CPU does not change as much).

    python tools/paintings_folder.py
    python -m stylecbn vgg-weights -o bundle/vgg16_block4.npz
    python benchmarks/train_startup.py [--repeats 2] [--batch-size 2] [--backends tensorflow jax]

The VGG weights default to bundle/vgg16_block4.npz (the compact file of docs/gpu.md) when it
exists, else "hed". Runs go to a temporary folder.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STYLES = ROOT / "bundle" / "paintings"
DEFAULT_CONTENT = ROOT.parent / "shared" / "data" / "content"
DEFAULT_VGG = ROOT / "bundle" / "vgg16_block4.npz"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", type=Path, default=DEFAULT_STYLES)
    parser.add_argument("--content", type=Path, default=DEFAULT_CONTENT)
    parser.add_argument("--vgg-weights", default=str(DEFAULT_VGG) if DEFAULT_VGG.is_file() else "hed")
    parser.add_argument("--batch-size", type=int, default=2,
                        help="small: a CPU step at 256 px costs seconds per image")
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2, help="steps of the new run")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"],
                        choices=["tensorflow", "jax"])
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of the backends, alternated; the fastest of each counts "
                             "(this CPU is shared with other work, which only slows a run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a JSON config: run it, print times
    return parser.parse_args()


def child(config_json):
    """Run the trainer once in this process; print {"import": s, "lines": [[s, line]...]}."""
    import keras  # noqa: F401  (the backend comes from KERAS_BACKEND)

    sys.path.insert(0, str(ROOT))
    from stylecbn.training.config import TrainingConfig
    from stylecbn.training.run import train

    compiles = [0, 0.0]  # XLA compilations on JAX (count, seconds): where eager starts lose time
    if keras.backend.backend() == "jax":
        import jax.monitoring

        def count(event, seconds, **kwargs):
            if event.endswith("backend_compile_duration"):
                compiles[0] += 1
                compiles[1] += seconds

        jax.monitoring.register_event_duration_secs_listener(count)
    imported = time.perf_counter() - START
    lines = []
    config = TrainingConfig(**json.loads(config_json))
    train(config, log=lambda line: lines.append((time.perf_counter() - START, line)))
    print(json.dumps({"import": imported, "lines": lines, "compiles": compiles}))


def run_child(backend, config):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(config)],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )
    if result.returncode != 0:
        sys.exit(f"{backend} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def first_step_seconds(times):
    """Seconds from the process start to the end of the first step: from the trainer's own
    start-up line where it has one (progress lines may be printed a little later), else
    when the first progress line arrived."""
    for seconds, line in times["lines"]:
        match = re.match(r"start-up: first step .*; ([\d.]+) s since the start", line)
        if match:  # the trainer's clock starts when train() is called, after the imports
            return times["import"] + float(match.group(1))
    for seconds, line in times["lines"]:
        if line.startswith("step "):
            return seconds
    return float("nan")


def show(title, times):
    count, seconds = times["compiles"]
    print(f"  {title}" + (f" ({count} XLA compilations, {seconds:.1f} s)" if count else ""))
    print(f"    {times['import']:7.1f} s  {times['import']:6.1f} s  import keras and stylecbn")
    previous = times["import"]
    for seconds, line in times["lines"]:
        shown = line if len(line) <= 110 else line[:107] + "..."
        print(f"    {seconds:7.1f} s  {seconds - previous:6.1f} s  {shown}")
        previous = seconds


def main():
    args = parse_args()
    if args.child:
        child(args.child)
        return
    if not args.styles.is_dir():
        sys.exit(f"no styles folder {args.styles}: run `python tools/paintings_folder.py` first.")
    print(f"styles {args.styles}, content {args.content}, VGG weights {args.vgg_weights}; "
          f"batch {args.batch_size}, crop {args.crop_size}, {args.precision}; "
          f"columns: seconds since the process started, seconds since the line before")
    summary = {backend: [] for backend in args.backends}
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(args.repeats):
            for backend in args.backends:
                config = dict(
                    styles=str(args.styles), content=str(args.content),
                    vgg_weights=args.vgg_weights,
                    output=str(Path(folder) / f"{backend}{round_number}.keras"),
                    steps=args.steps, batch_size=args.batch_size, crop_size=args.crop_size,
                    precision=args.precision, log_every=1, checkpoint_every=10**6,
                    preview_every=10**6, holdout=0, tensorboard=False,
                )
                print(f"{backend}, round {round_number + 1}:")
                fresh = run_child(backend, config)
                show(f"new run, {args.steps} step(s)", fresh)
                resumed = run_child(backend, dict(config, steps=args.steps + 1, resume=True))
                show("--resume, one more step", resumed)
                summary[backend].append((first_step_seconds(fresh), first_step_seconds(resumed)))
    print("time from process start to the end of the first training step"
          + (f" (fastest of {args.repeats} rounds)" if args.repeats > 1 else "") + ":")
    for backend, rounds in summary.items():
        fresh, resumed = (min(values) for values in zip(*rounds))
        print(f"  {backend:10s}  new run {fresh:6.1f} s   resumed run {resumed:6.1f} s")


if __name__ == "__main__":
    main()

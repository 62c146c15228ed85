"""Peak memory of `stylecbn apply` on videos of several lengths: streamed means flat.

Writes synthetic H.264 clips with an AAC track (a moving colour pattern with noise) of one size
and several lengths, runs `python -m stylecbn apply CLIP -o OUT --max-size M` on each in a
fresh process and reads that process's peak resident memory (`os.wait4`). The first frame
alone, as a PNG through the same command, is the baseline in the same run: the memory of
loading the model and stylizing one picture of that size.

    python benchmarks/video_memory.py --size 1920x1080 --frames 24,48 --max-size 0
    python benchmarks/video_memory.py --size 1920x1080 --frames 100,400 --max-size 512

Clips should be longer than the encoder's look-ahead (10 frames for H.264, plus its B-frames),
whose frames fill up first.

Extra arguments after `--` go to `stylecbn apply` (e.g. `-- --no-stabilize --model m.keras`).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_clip(path, frames, width, height, rate=25):
    """A clip of `frames` moving-pattern frames with a 440 Hz AAC tone; returns frame 0."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    noise = rng.normal(0, 8, (height, width, 3)).astype(np.float32)
    first = None
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(rate), options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=48000)
        for index in range(frames):
            phase = index / 25.0
            picture = np.stack(
                [np.sin(9 * x + phase), np.sin(7 * y - phase), np.sin(5 * (x + y) + 2 * phase)],
                axis=-1,
            )
            picture = np.clip(127.5 + 100 * picture + np.roll(noise, index, axis=1), 0, 255)
            picture = picture.astype(np.uint8)
            first = picture if first is None else first
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        samples = int(48000 * frames / rate)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024].copy(), "fltp", "mono")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return first


def measure(args):
    """Run one command; (peak resident memory in MB, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed")
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def main():
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1920x1080", help="frame size WxH")
    parser.add_argument("--frames", default="24,48", help="clip lengths to compare")
    parser.add_argument("--max-size", default="0", help="passed to stylecbn apply (0: full size)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    lengths = [int(n) for n in args.frames.split(",")]
    command = [sys.executable, "-m", "stylecbn", "apply", "--max-size", args.max_size, *extra]

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for frames in lengths:
            clip = folder / f"clip{frames}.mp4"
            first = write_clip(clip, frames, width, height)
            if not rows:
                still = folder / "frame.png"
                Image.fromarray(first).save(still)
                peak, seconds = measure([*command, str(still), "-o", str(folder / "out.png")])
                rows.append(("one frame as a PNG", 1, peak, seconds))
                print(f"  still: {peak:.0f} MB, {seconds:.0f} s", flush=True)
            peak, seconds = measure([*command, str(clip), "-o", str(folder / "out.mp4")])
            rows.append((f"{frames}-frame clip with audio", frames, peak, seconds))
            print(f"  {frames} frames: {peak:.0f} MB, {seconds:.0f} s", flush=True)
            clip.unlink()

    print(f"\n{width}x{height} input, --max-size {args.max_size} {' '.join(extra)}".rstrip())
    print("\n| input | frames | peak RSS (MB) | seconds (with start-up) |")
    print("|---|---|---|---|")
    for name, frames, peak, seconds in rows:
        print(f"| {name} | {frames} | {peak:.0f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()

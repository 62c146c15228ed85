"""Preview latency of `stylecbn serve` for 1, 4 and 8 concurrent clients, against `Stylizer`.

The request is the page's live preview: the photo at preview size (384 px on its longer side,
as PNG), a blend of two styles, `max_size=384`, answered with a PNG. The baseline is the
plain `Stylizer.stylize` call on the same photo and blend in this process (no HTTP, no
encoding), measured in the same run. The server is the real command (`python -m stylecbn
serve --port 0`) in its own process; each client is a thread with its own HTTP connection
sending its requests one after another. Latency is from sending a request to having its
whole answer; the server runs the model one call at a time, so with N clients a request
waits for up to N - 1 others.

Every configuration first gets untimed warm-up calls (tracing the model for the size).
The machine's load average is printed before and after: on a shared machine it says how
much the figures can be trusted.

The camera (`--camera-sizes`): frames of a moving picture (JPEG, as the page sends them)
over the page's WebSocket, each sent when the previous one has come back, as the page does;
frames per second and the time from sending a frame to having it back, against
`Stylizer.live().paint` on the same frames in this process (no server, no encoding).

    python benchmarks/serve_latency.py
    python benchmarks/serve_latency.py --model mystyles.keras --requests 48 --clients 1 2 4
    python benchmarks/serve_latency.py --clients --camera-sizes 320x240 640x480
"""

import argparse
import io
import os
import re
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def percentiles(times):
    ms = np.asarray(times) * 1000.0
    return float(np.median(ms)), float(np.percentile(ms, 95))


def start_server(model):
    command = [sys.executable, "-m", "stylecbn", "serve", "--port", "0"]
    if model:
        command += ["--model", model]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    while True:
        line = process.stderr.readline()
        if not line:
            raise SystemExit(f"stylecbn serve did not start (exit code {process.wait()})")
        found = re.search(r"open (http://\S+/)", line)
        if found:
            return process, found.group(1).rstrip("/")


def server_latencies(url, photo_png, style, clients, total):
    """Latencies of `total` preview requests spread over `clients` concurrent clients."""
    import httpx

    per_client = max(1, total // clients)
    times, errors = [], []
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    def client():
        with httpx.Client(base_url=url, timeout=600) as http:
            start_line.wait()
            for _ in range(per_client):
                started = time.perf_counter()
                response = http.post(
                    "/api/stylize",
                    data={"style": style, "max_size": "384"},
                    files={"image": ("preview.png", photo_png, "image/png")},
                )
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        times.append(elapsed)
                    else:
                        errors.append(response.text)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"the server answered with errors: {errors[:3]}")
    return times, len(times) / wall


def camera_frames(width, height, count):
    """`count` JPEG frames (bytes) of a picture panning 3 px a frame, and their arrays."""
    from PIL import Image

    from stylecbn.media.sample import sample_photo

    wide = sample_photo(width + 3 * count, height)
    frames = []
    for index in range(count):
        array = np.ascontiguousarray(wide[:, 3 * index:3 * index + width])
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "JPEG", quality=90)
        frames.append((buffer.getvalue(), array))
    return frames


def camera_rate(url, frames, style):
    """(frames per second, round-trip seconds per frame) of the camera's WebSocket."""
    from websockets.sync.client import connect

    import json

    times = []
    with connect(url.replace("http://", "ws://") + "/api/camera", max_size=None) as socket:
        socket.send(json.dumps({"style": style, "steady": True}))
        started = time.perf_counter()
        for data, _ in frames:
            sent = time.perf_counter()
            socket.send(data)
            info = json.loads(socket.recv())
            if "error" in info:
                raise SystemExit(f"the camera stream failed: {info['error']}")
            socket.recv()
            times.append(time.perf_counter() - sent)
        elapsed = time.perf_counter() - started
    return len(frames) / elapsed, times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="a built-in model's name (fast) or a model file; default: the "
                        "built-in default model")
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 4, 8])
    parser.add_argument("--camera-sizes", nargs="*", default=["320x240", "640x480"],
                        help="Camera frame sizes WIDTHxHEIGHT (none: no camera rows).")
    parser.add_argument("--camera-frames", type=int, default=30)
    parser.add_argument("--requests", type=int, default=24,
                        help="Requests per configuration (split over its clients).")
    parser.add_argument("--style", default="14:100,4:40", help="The blend, as the page sends it.")
    args = parser.parse_args()

    from PIL import Image

    from stylecbn.serve import PREVIEW_SIZE
    from stylecbn.media.sample import sample_photo
    from stylecbn.applying.stylize import Stylizer

    photo = sample_photo(PREVIEW_SIZE, PREVIEW_SIZE * 2 // 3)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "PNG")
    photo_png = buffer.getvalue()
    load_before = os.getloadavg()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import OtherWork

    other = OtherWork().start()

    stylizer = Stylizer(args.model)
    style = stylizer.blend(args.style)
    for _ in range(2):
        stylizer.stylize(photo, style=style, max_size=PREVIEW_SIZE)
    baseline = []

    def run_baseline(count):
        for _ in range(count):
            started = time.perf_counter()
            stylizer.stylize(photo, style=style, max_size=PREVIEW_SIZE)
            baseline.append(time.perf_counter() - started)

    # Half the baseline calls before the server runs and half after it, so a load that
    # drifts during the run weighs on both sides alike.
    run_baseline(args.requests // 2)
    process, url = start_server(args.model)
    rows, camera_rows = [], []
    try:
        server_latencies(url, photo_png, args.style, 1, 2)  # warm-up
        for clients in args.clients:
            times, rate = server_latencies(url, photo_png, args.style, clients, args.requests)
            rows.append((f"stylecbn serve, {clients} client{'s' * (clients > 1)}", times, rate))
        for size in args.camera_sizes:
            width, height = (int(v) for v in size.split("x"))
            frames = camera_frames(width, height, args.camera_frames)
            camera_rate(url, frames[:3], args.style)  # warm-up: traces the model for the size
            rate, times = camera_rate(url, frames, args.style)
            live = stylizer.live()
            for _, array in frames[:3]:
                live.paint(array, style=style, max_size=0)
            live.reset()
            local = []
            for _, array in frames:
                started = time.perf_counter()
                live.paint(array, style=style, max_size=0)
                local.append(time.perf_counter() - started)
            camera_rows.append((size, rate, times, local))
    finally:
        process.terminate()
        process.wait(timeout=60)
    run_baseline(args.requests - args.requests // 2)
    load_after = os.getloadavg()

    height, width = photo.shape[:2]
    print(f"Preview latency at {width}x{height} px, blend {args.style!r}, "
          f"model {args.model or 'built-in'}; {os.cpu_count()} CPUs")
    print(f"load average (1/5/15 min) before: {'/'.join(f'{v:.1f}' for v in load_before)}, "
          f"after: {'/'.join(f'{v:.1f}' for v in load_after)}; {other.line()} (the "
          "server, a child process waited for, counts as this run's own work)")
    print(f"{'':34}{'requests':>9}{'median ms':>11}{'p95 ms':>9}{'req/s':>7}")
    median, p95 = percentiles(baseline)
    print(f"{'Stylizer.stylize (no server)':34}{len(baseline):>9}{median:>11.0f}{p95:>9.0f}"
          f"{len(baseline) / sum(baseline):>7.2f}")
    for label, times, rate in rows:
        median, p95 = percentiles(times)
        print(f"{label:34}{len(times):>9}{median:>11.0f}{p95:>9.0f}{rate:>7.2f}")
    if camera_rows:
        print(f"\nCamera (steady on, {args.camera_frames} frames, one in flight)")
        print(f"{'size':>9}{'served fps':>12}{'round trip ms':>15}{'p95 ms':>9}"
              f"{'in-process fps':>16}{'served / in-process':>21}")
        for size, rate, times, local in camera_rows:
            median, p95 = percentiles(times)
            local_rate = len(local) / sum(local)
            print(f"{size:>9}{rate:>12.1f}{median:>15.0f}{p95:>9.0f}{local_rate:>16.1f}"
                  f"{rate / local_rate:>21.2f}")


if __name__ == "__main__":
    main()

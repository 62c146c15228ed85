"""Shared test helpers (tests/ is on sys.path under pytest's default import mode)."""

import numpy as np


def seeded_network(*args, seed=0, **kwargs):
    """`build_network(*args, **kwargs)` with the same convolution weights on every run.

    Its initializers draw from Python's `random`, which `keras.utils.set_random_seed` seeds
    (with NumPy's and the backend's): tests that check outputs against bounds then see one
    network, not a new draw each run for which a bound may fail by chance.
    """
    import keras

    from stylecbn.model.network import build_network

    keras.utils.set_random_seed(seed)
    return build_network(*args, **kwargs)


def randomize_style_tables(net, seed=0):
    """Give every style random gamma/beta rows, so styles visibly differ in a fresh network.

    Batch-normalization layers also get random moving statistics (drawn after the layer's
    gamma and beta), so inference does not reduce to the identity statistics.
    """
    rng = np.random.default_rng(seed)
    for layer in net.normalization_layers:
        layer.gamma.assign(rng.uniform(0.3, 2.0, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.normal(0, 0.7, layer.beta.shape).astype("float32"))
        if hasattr(layer, "moving_mean"):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(
                rng.uniform(0.5, 2, layer.moving_variance.shape).astype("float32")
            )
    return net


def make_images(folder, count, size=(40, 48), seed=0, prefix="img", noise=20):
    """Write `count` PNGs `<prefix><i>.png` of shape `size`: smooth colour fields plus noise,
    something for a style loss to match. Returns `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        base = Image.fromarray((rng.random((4, 4, 3)) * 255).astype(np.uint8))
        smooth = np.asarray(base.resize(size[::-1], Image.BILINEAR), np.float32)
        noisy = np.clip(smooth + rng.normal(0, noise, (*size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{prefix}{i}.png")
    return folder


def make_video(path, frames=8, width=32, height=32, rate=24, audio="aac", rotation=0,
               codec="libx264", seed=0):
    """Write a tiny test clip with PyAV: moving coloured bars, and a 440 Hz tone if `audio`.

    Returns the (H, W, 3) uint8 RGB pictures that were encoded.
    """
    from fractions import Fraction

    import av

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    pictures = []
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=Fraction(rate))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream(audio, rate=48000) if audio else None
        for index in range(frames):
            base = np.stack([(x + index / frames) % 1.0, y, 1 - x * y], axis=-1)
            noise = rng.normal(0, 0.03, base.shape)
            picture = np.clip((base + noise) * 255, 0, 255).astype(np.uint8)
            pictures.append(picture)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples = int(48000 * frames / rate)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
            step = sound.codec_context.frame_size or 1024
            for start in range(0, samples, step):
                chunk = np.ascontiguousarray(tone[None, start : start + step])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return pictures

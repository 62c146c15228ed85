"""Shared test helpers (tests/ is on sys.path under pytest's default import mode)."""

import numpy as np


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

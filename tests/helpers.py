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

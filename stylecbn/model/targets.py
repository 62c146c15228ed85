"""The style targets a model carries: per style, the Gram matrices it was trained towards.

A model file holds them as the archive member `style_targets.npz` beside Keras' own members
(Keras ignores members it does not know, so `keras.saving.load_model` and older stylecbn
versions load the file as before; a file without the member loads with `style_targets`
None). Each Gram matrix is symmetric: only its upper triangle is stored, in float16, divided
by a power of two per layer so that the largest value fits (float16 keeps about 3 significant
digits at any scale; a power of two divides exactly). 17 styles at VGG-16's four style layers
take about 6 MB.

The member also says what made the matrices, so that an optimization against them
(`stylize(..., refine=N)`) uses the same loss network: its weights ("hed", "imagenet" or
"file") and a SHA-256 fingerprint of their values, the style layers, and each style's name
and the size its painting was read at. Never a path: a model file travels.

Pure NumPy: this module is part of the model wing.
"""

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np

from stylecbn.errors import ModelFileError

__all__ = ["MEMBER", "StyleTargets", "read_targets", "targets_bytes"]

MEMBER = "style_targets.npz"
_FORMAT = "stylecbn-style-targets-v1"
_FLOAT16_ROOM = 16384.0  # the scaled maximum; float16's largest value is 65504


@dataclass(frozen=True)
class StyleTargets:
    """The Gram matrices of a model's styles and what made them.

    Attributes:
        grams: {style layer: float32 array (S, C, C)}, in the model's style order.
        loss_network: {"weights": "hed" | "imagenet" | "file", "fingerprint": hex digest of
            the loss network's weight values}.
        style_names: the S style names (checked against the model's when attached).
        sizes: the longer side, in pixels, each style image was read at.
    """

    grams: dict
    loss_network: dict
    style_names: tuple
    sizes: tuple

    @property
    def layers(self):
        return tuple(self.grams)

    @property
    def num_styles(self):
        return len(self.style_names)

    def blended(self, weights):
        """{layer: (C, C)}: the Gram matrices of a blend, `sum(w_i * G_i)` (weights sum 1).

        Mixing gamma/beta rows mixes the feature statistics the network produces; the blend's
        own painting does not exist, and the weighted mean of the targets is the target the
        blended row comes closest to."""
        weights = np.asarray(weights, np.float32)
        return {layer: np.tensordot(weights, gram, axes=1) for layer, gram in self.grams.items()}

    def nearest(self, grams, style_weight=1.0):
        """The blend of these styles whose Gram matrices come nearest to `grams`.

        The distance is the style loss `sum over layers of weight_l * mean((G - P)^2)`,
        a quadratic in the blend's weights w, `w^T A w - 2 b^T w + c`, minimized over the
        simplex (w >= 0, sum 1) by projected gradient descent from the nearest single style.

        Args:
            grams: {layer: (C, C)} for every layer of these targets.
            style_weight: the loss's style weight (the distances' unit): one number for every
                layer, or {layer: weight} (`LossWeights.layer_style_weights()`).

        Returns:
            (weights, distance, (index, single_distance)): the blend's weights (float64
            (S,), weights under 0.1% dropped), its distance, and the nearest single style.
        """
        count = self.num_styles
        a, b, c = np.zeros((count, count)), np.zeros(count), 0.0
        for layer, value in self.grams.items():
            styles = value.reshape(count, -1).astype(np.float64)
            target = np.asarray(grams[layer], np.float64).reshape(-1)
            weight = style_weight[layer] if isinstance(style_weight, dict) else style_weight
            scale = weight / target.size
            a += scale * styles @ styles.T
            b += scale * styles @ target
            c += scale * target @ target
        singles = np.diag(a) - 2 * b + c
        single = int(np.argmin(singles))
        weights = np.eye(count)[single]
        step = 1.0 / (2 * np.linalg.eigvalsh(a)[-1] + 1e-30)
        for _ in range(2000):
            weights = _onto_simplex(weights - step * 2 * (a @ weights - b))
        weights[weights < 1e-3] = 0.0
        weights /= weights.sum()
        distance = float(weights @ a @ weights - 2 * b @ weights + c)
        return weights, max(distance, 0.0), (single, float(max(singles[single], 0.0)))

    def subset(self, indices):
        """The targets of the styles at `indices`, in that order (a student that learns some
        of a model's styles)."""
        indices = [int(i) for i in indices]
        return StyleTargets(
            {layer: gram[indices] for layer, gram in self.grams.items()}, self.loss_network,
            tuple(self.style_names[i] for i in indices), tuple(self.sizes[i] for i in indices))

    def extended(self, other):
        """These targets followed by `other`'s (styles added to a model). Both must come from
        the same loss network and layers, else ModelFileError."""
        if other.loss_network != self.loss_network or other.layers != self.layers:
            raise ModelFileError(
                "the new styles' Gram matrices come from another loss network or other layers "
                f"({other.loss_network['weights']} {', '.join(other.layers)}) than the model's "
                f"({self.loss_network['weights']} {', '.join(self.layers)})")
        return StyleTargets(
            {layer: np.concatenate([self.grams[layer], other.grams[layer]]) for layer in self.layers},
            self.loss_network, self.style_names + other.style_names, self.sizes + other.sizes)


def _onto_simplex(vector):
    """The Euclidean projection of a vector onto {w >= 0, sum w = 1} (Duchi et al. 2008)."""
    ordered = np.sort(vector)[::-1]
    cumulative = np.cumsum(ordered) - 1.0
    index = np.nonzero(ordered - cumulative / np.arange(1, len(vector) + 1) > 0)[0][-1]
    return np.maximum(vector - cumulative[index] / (index + 1), 0.0)


def targets_bytes(targets):
    """The `style_targets.npz` member of `targets`."""
    info = {"format": _FORMAT, "layers": list(targets.layers),
            "loss_network": targets.loss_network, "style_names": list(targets.style_names),
            "sizes": [int(size) for size in targets.sizes], "scales": []}
    arrays = {}
    for index, layer in enumerate(targets.layers):
        gram = np.asarray(targets.grams[layer], np.float32)
        rows, cols = np.triu_indices(gram.shape[-1])
        upper = gram[:, rows, cols]
        peak = float(np.abs(upper).max()) if upper.size else 0.0
        scale = 2.0 ** max(0, int(np.ceil(np.log2(peak / _FLOAT16_ROOM)))) if peak > 0 else 1.0
        info["scales"].append(scale)
        arrays[f"layer/{index}"] = (upper / scale).astype(np.float16)
    buffer = io.BytesIO()
    np.savez(buffer, info=np.array(json.dumps(info)), **arrays)
    return buffer.getvalue()


def read_targets(path):
    """The `StyleTargets` inside a model file, or None when it has none.

    Raises:
        ModelFileError: the member is there but damaged or of an unknown format.
    """
    with zipfile.ZipFile(path) as archive:
        if MEMBER not in archive.namelist():
            return None
        data = archive.read(MEMBER)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            info = json.loads(str(saved["info"]))
            if info.get("format") != _FORMAT:
                raise ValueError(f"unknown format {info.get('format')!r}")
            grams = {}
            for index, (layer, scale) in enumerate(zip(info["layers"], info["scales"])):
                upper = saved[f"layer/{index}"].astype(np.float32) * np.float32(scale)
                grams[layer] = _symmetric(upper)
        targets = StyleTargets(grams, dict(info["loss_network"]), tuple(info["style_names"]),
                               tuple(int(size) for size in info["sizes"]))
    except (KeyError, ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(
            f"{path}: its style targets ({MEMBER}) are damaged ({exc}); add them again with "
            "`stylecbn add-targets`.") from None
    return targets


def _symmetric(upper):
    """(S, C(C+1)/2) upper triangles -> (S, C, C) symmetric matrices."""
    channels = int(round((np.sqrt(8 * upper.shape[-1] + 1) - 1) / 2))
    if channels * (channels + 1) // 2 != upper.shape[-1]:
        raise ValueError(f"{upper.shape[-1]} values are no triangle")
    rows, cols = np.triu_indices(channels)
    full = np.zeros((upper.shape[0], channels, channels), np.float32)
    full[:, rows, cols] = upper
    full[:, cols, rows] = upper
    return full

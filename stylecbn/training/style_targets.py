"""The style targets of a training run: the Gram matrices of its style images, kept in the run
folder so that a resumed start reads them instead of running the loss network again.

`run_style_grams` computes them (`stylecbn.perceptual.losses.compute_style_grams`) on a run's first start
and writes `style_grams.npz` into the run folder (atomically). A later start of the same run
(`resume`, or a run that was stopped before its first checkpoint) reads that file when its
fingerprint matches: the SHA-256 of every style image file with the size its Grams are
computed at, the style layers, and the loss network (its name, variable paths, shapes and
values). Anything else (another painting, a replaced file, other VGG weights) computes them
anew and replaces the file. A damaged file is computed anew too (as is one whose matrices
have another size or values that are not finite), and a file that cannot be written (a full
disk) only warns: the run goes on.

A resumed run on the same backend then uses exactly the Gram matrices of the run it continues.

The model file a run writes carries the same matrices as its style targets
(`stylecbn.model.targets`, made by `model_targets`); `add_targets` gives them to a model
trained before model files carried them (`stylecbn add-targets`).
"""

import hashlib
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

from keras import ops

from stylecbn.errors import ConfigError, StylecbnWarning
from stylecbn.fileio import atomic_path
from stylecbn.model.saving import load_model, write_targets
from stylecbn.model.targets import StyleTargets
from stylecbn.perceptual.losses import LossWeights, compute_style_grams
from stylecbn.perceptual.vgg import (
    WEIGHT_NAMES,
    build_loss_network,
    loss_network_identity,
    weights_kind,
)
from stylecbn.training.styles import load_style_image, load_styles_folder

__all__ = ["GRAMS_FILE", "add_targets", "model_targets", "recorded_vgg_weights",
           "run_style_grams", "style_fingerprint"]

GRAMS_FILE = "style_grams.npz"
_FORMAT = "stylecbn-style-grams-v1"


def style_fingerprint(specs, loss_network, layers):
    """A hex digest of everything the Gram matrices of `specs` depend on."""
    digest = hashlib.sha256()

    def add(value):
        digest.update(json.dumps(value).encode())

    add([_FORMAT, list(layers), loss_network.name])
    for spec in specs:
        file_digest = hashlib.sha256()
        with open(spec.path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                file_digest.update(block)
        add([file_digest.hexdigest(), int(spec.size)])
    for variable in loss_network.weights:
        value = np.ascontiguousarray(ops.convert_to_numpy(variable))
        add([variable.path, list(value.shape), str(value.dtype)])
        digest.update(value.tobytes())
    return digest.hexdigest()


def run_style_grams(run_dir, specs, images, loss_network, layers):
    """The Gram matrices of the style images: read from the run folder, or computed and saved.

    Args:
        run_dir: the run folder (it exists).
        specs: the `StyleSpec`s, in style order.
        images: a function returning the style images (float32 (H, W, 3) arrays) of `specs`;
            called only when the matrices are computed.
        loss_network, layers: as in `compute_style_grams`.

    Returns:
        (grams, reused): {layer: float32 (S, C, C)}, and whether they were read from the file.
    """
    path = run_dir / GRAMS_FILE
    fingerprint = style_fingerprint(specs, loss_network, layers)
    saved = _read(path, fingerprint, _shapes(loss_network, layers, len(specs)))
    if saved is not None:
        return saved, True
    grams = compute_style_grams(loss_network, images(), layers)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.savez(file, fingerprint=np.array(fingerprint),
                     **{f"layer/{index}": grams[layer] for index, layer in enumerate(layers)})
    except OSError as error:  # a full disk costs the next start some seconds, not this run
        warnings.warn(f"could not keep the Gram matrices in {path} "
                      f"({error.strerror or error}); a resumed start computes them again",
                      StylecbnWarning, stacklevel=2)
    return grams, False


def _shapes(loss_network, layers, count):
    """{layer: (styles, channels, channels)}: the shape of each layer's Gram matrices."""
    channels = {layer: loss_network.output[layer].shape[-1] for layer in layers}
    return {layer: (count, channels[layer], channels[layer]) for layer in layers}


def _read(path, fingerprint, shapes):
    """The saved matrices when `path` holds those of `fingerprint`, of `shapes` ({layer:
    shape}) and finite, else None (a damaged or edited file is computed again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["fingerprint"]) != fingerprint:
                return None
            grams = {layer: saved[f"layer/{index}"] for index, layer in enumerate(shapes)}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # damaged or from another version: compute them again
    for layer, value in grams.items():
        if value.shape != shapes[layer] or value.dtype != np.float32:
            return None
        if not np.all(np.isfinite(value)):
            return None
    return grams


def model_targets(specs, grams, loss_network, description):
    """The `StyleTargets` of `specs` from their Gram matrices {layer: (S, C, C)}."""
    return StyleTargets({layer: np.asarray(value, np.float32) for layer, value in grams.items()},
                        loss_network_identity(loss_network, description),
                        tuple(spec.name for spec in specs), tuple(int(spec.size) for spec in specs))


def recorded_vgg_weights(model):
    """The VGG-16 weights choice a model was trained with, from its metadata: the weights kind
    its description names ("hed", "imagenet"), else the weights file its training config
    gives when that file exists here ("auto" for a model that records nothing).

    Raises:
        ConfigError: the model was trained with a weights file that is not here.
    """
    description = model.metadata.get("vgg_weights")
    if not description:
        return "auto"
    kind = weights_kind(description)
    if kind != "file":
        return kind
    path = (model.metadata.get("training") or {}).get("vgg_weights", "")
    if path and path not in WEIGHT_NAMES and Path(path).is_file():
        return path
    raise ConfigError(
        f"the model was trained with the VGG-16 weights file {path or description!r}, which is "
        "not here; pass that file (or hed or imagenet) as the VGG weights")


def add_targets(model_path, styles, output, vgg_weights=None, loss_network=None, log=print):
    """Give a model file the style targets of its styles folder, written to `output`.

    The Gram matrices are computed as its training computed them: the styles folder's
    images at their manifest sizes, the style layers and VGG-16 weights its metadata records
    (`LossWeights.recorded`, `recorded_vgg_weights`), unless `vgg_weights` says otherwise.

    Args:
        model_path: the model file.
        styles: the styles folder it was trained on (its style names, in the model's order).
        output: the model file to write (may be `model_path`).
        vgg_weights: None (as recorded) or any choice `build_loss_network` takes.
        loss_network: a prebuilt loss network instead of VGG-16 (tests), with `vgg_weights`
            its description.
        log: a function taking one line of text.

    Returns:
        The `StyleTargets` written.

    Raises:
        ModelFileError, ConfigError, DataError: an unusable model, folder or weights, or a
            folder whose styles are not the model's.
    """
    model = load_model(model_path)
    specs = load_styles_folder(styles)
    names = [spec.name for spec in specs]
    if names != list(model.style_names):
        raise ConfigError(
            f"the styles folder {styles} holds the styles {', '.join(names)}, not the model's "
            f"({', '.join(model.style_names)}): give the folder it was trained on")
    weights = LossWeights.recorded(model.metadata)
    if loss_network is None:
        choice = recorded_vgg_weights(model) if vgg_weights is None else vgg_weights
        loss_network, description = build_loss_network(choice, weights.layers)
    else:
        description = str(vgg_weights)
    log(f"loss network: {description}; style layers {', '.join(weights.style_layers)}")
    grams = compute_style_grams(loss_network, [load_style_image(spec) for spec in specs],
                                weights.style_layers)
    targets = model_targets(specs, grams, loss_network, description)
    write_targets(model_path, targets, output)
    log(f"wrote {output}: style targets of {len(specs)} style(s)")
    return targets

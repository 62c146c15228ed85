"""A style network converted for a faster CPU runtime (OpenVINO), cached on disk.

`stylecbn.applying.runtimes` chooses the runtime; this module makes what it runs:

- `cpu_flags()`: the instruction-set flags of this CPU (`/proc/cpuinfo`), which decide whether
  bfloat16 arithmetic runs in hardware (avx512_bf16, amx_bf16).
- `openvino_model(net)`: the network as an OpenVINO model, float32 graph (the precision is
  chosen when it is compiled): image (1, H, W, 3) float32 in [0, 1], any H and W, and style
  weights (1, num_styles) float32 (normalized inside, so blends work); output (1, H, W, 3)
  float32. Per-pixel style weights (masks) are not in this graph: the caller runs those in
  Keras.
- The conversion (a few seconds: TensorFlow traces the network) is cached in
  `cache_dir()/openvino/<fingerprint>/`, the fingerprint being the SHA-256 of the network's
  configuration and weights, this CPU (model name and flags) and the versions of TensorFlow,
  Keras and OpenVINO; the folder is written under a temporary name and renamed into place, so
  a second process never reads half a model, and the second `stylecbn apply` loads in well
  under a second what the first converted.
"""

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

from stylecbn.errors import ConfigError
from stylecbn.fileio import atomic_directory

__all__ = ["CACHE_ENV", "cache_dir", "cpu_flags", "cpu_name", "network_fingerprint",
           "openvino_model"]

CACHE_ENV = "STYLECBN_CACHE_DIR"
MODEL_XML = "model.xml"
IMAGE_INPUT = "image"
STYLE_INPUT = "style"


def cache_dir():
    """Where converted models are kept: $STYLECBN_CACHE_DIR, else $XDG_CACHE_HOME/stylecbn,
    else ~/.cache/stylecbn (the XDG base-directory default)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stylecbn"


def _cpuinfo_field(name, path="/proc/cpuinfo"):
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_flags():
    """This CPU's instruction-set flags as a frozenset (Linux's `/proc/cpuinfo` names, such
    as "avx512_bf16"); empty where the file is missing (another OS): the caller then
    assumes no optional instructions."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def cpu_name():
    """This CPU's model name, or the machine type where /proc/cpuinfo has none."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def network_fingerprint(net):
    """SHA-256 (hex) of a network's configuration and weights: equal for the same model,
    whichever file or object it came from."""
    digest = hashlib.sha256(json.dumps(net.get_config(), sort_keys=True, default=str).encode())
    for weights in net.get_weights():
        array = np.ascontiguousarray(weights)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _conversion_key(net):
    import keras
    import openvino
    import tensorflow as tf

    parts = [network_fingerprint(net), cpu_name(), " ".join(sorted(cpu_flags())),
             tf.__version__, keras.__version__, openvino.__version__]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def openvino_model(net):
    """The network as an `openvino.Model` (see the module docstring), from the cache or
    converted and cached.

    Raises:
        ConfigError: Keras' backend is not TensorFlow (the converter reads TensorFlow graphs).
        ImportError: OpenVINO is not installed.
    """
    import keras
    import openvino as ov

    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            "OpenVINO conversion needs Keras' TensorFlow backend, but this process uses "
            f"{keras.backend.backend()!r}; run with KERAS_BACKEND=tensorflow or runtime keras."
        )
    folder = cache_dir() / "openvino" / _conversion_key(net)
    core = ov.Core()
    if (folder / MODEL_XML).is_file():
        try:
            return core.read_model(folder / MODEL_XML)
        except RuntimeError:
            pass  # damaged by hand: convert again and replace it
    model = _convert(net)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic_directory(folder) as tmp:
            # compress_to_fp16=False: the weights stay float32 (the precision is the
            # compiler's choice, made per CPU when the model is compiled).
            ov.save_model(model, tmp / MODEL_XML, compress_to_fp16=False)
    except OSError:
        pass  # a read-only or full cache: run the model converted now, uncached
    return model


def _convert(net):
    import openvino as ov
    import tensorflow as tf

    from stylecbn.model.export import _float32_model

    net = _float32_model(net)

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, None, None, 3], tf.float32, name=IMAGE_INPUT),
            tf.TensorSpec([1, net.num_styles], tf.float32, name=STYLE_INPUT),
        ],
        autograph=False,
    )
    def stylize(image, style):
        return net((image, style), training=False)

    model = ov.convert_model(stylize)
    # Name the inputs as this module does, whatever the converter called them.
    for port, name in zip(model.inputs, (IMAGE_INPUT, STYLE_INPUT)):
        port.get_tensor().set_names({name})
    return model

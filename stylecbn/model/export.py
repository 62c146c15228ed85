"""Export a style network as a TensorFlow SavedModel (Hub, Serving), a TensorFlow Lite file or
an ONNX file.

The artifacts take the same inputs and give the same output as `StyleTransferNetwork`:

- `image`: uint8 (B, H, W, 3), any H and W of at least 5 px;
- `style_weights`: float32 (B, num_styles), one weight per style, normalized inside to sum 1
  (so `[3, 1]` is the same blend as `[0.75, 0.25]`), which is how blends work on device;
- `stylized_image`: uint8 (B, H, W, 3), rounded half to even like `stylecbn.media.reading`.

SavedModel (a folder): signature `serving_default` (above; an image batch of 1 is broadcast
against B style-weight rows and the other way round; negative, non-finite or all-zero weights
fail with InvalidArgumentError) and signature `style_names` (no inputs; a string tensor of
shape (num_styles,)). The names also ship as the asset `assets/style_names.txt`, one a line.

TensorFlow Lite (one file): the same `serving_default` signature for one image (B = 1), with a
fixed (H, W) or, by default, a dynamic one (resize the input tensor before allocating). Only
TFLite builtin ops are used (reflect padding is the builtin MIRROR_PAD), so no Flex delegate is
needed. Weights are not checked on device: keep them >= 0 with a positive sum (a zero sum gives
a flat grey image). `quantize`: "none" (float32), "float16" (half-size weights, computed in
float32 on CPU) or "dynamic" (int8 weights, dynamic-range kernels).

ONNX (one file, opset 17, for ONNX Runtime, OpenVINO and others): the `serving_default`
inputs and output for B images with B weight rows (no broadcasting, no checks: keep weights
>= 0 with a positive sum), any H and W. `quantize`: "none" (float32) or "int8": the
convolutions quantized after training (int8 weights, one scale per output channel; their
uint8 inputs and outputs calibrated on the photos given, at least one), everything else (the
instance normalization's statistics and affine included) in float32. Needs `tf2onnx` and `onnx`, and for "int8"
`onnxruntime` (`pip install stylecbn[onnx]`).

This is the one module of the library that imports TensorFlow; it needs Keras' TensorFlow
backend. Outputs are written atomically: the artifact is built beside the destination under a
temporary name and renamed into place, so a failed export leaves nothing behind.
"""

import dataclasses
import re
import tempfile
from pathlib import Path

from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import keras
import tensorflow as tf

from stylecbn.errors import ConfigError, ModelFileError
from stylecbn.fileio import atomic_directory, atomic_path
from stylecbn.model.saving import load_model, resolve_model_path
from stylecbn.model.network import StyleTransferNetwork

__all__ = [
    "ExportConfig",
    "FORMATS",
    "QUANTIZATIONS",
    "export_model",
    "export_model_file",
    "onnx_model_bytes",
    "parse_input_size",
    "tflite_model_bytes",
]

FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZATIONS = ("none", "float16", "dynamic")
ONNX_QUANTIZATIONS = ("none", "int8")
ONNX_OPSET = 17
SERVING_SIGNATURE = "serving_default"
STYLE_NAMES_SIGNATURE = "style_names"
IMAGE_INPUT = "image"
STYLE_WEIGHTS_INPUT = "style_weights"
OUTPUT = "stylized_image"
STYLE_NAMES_ASSET = "style_names.txt"
# The network pads images to a multiple of 4 and then reflect-pads by 4: 5 px is the least
# that works (8 after padding).
MIN_INPUT_SIZE = 5


def parse_input_size(text):
    """Parse "HxW" (or "N" for N x N) into (height, width).

    Raises:
        ConfigError: not of that form, or a side below MIN_INPUT_SIZE.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(text))
    if not match:
        raise ConfigError(
            f"Input size must be HEIGHTxWIDTH in pixels, like 512x384 (or 512 for a square); "
            f"got {text!r}."
        )
    height = int(match.group(1))
    width = int(match.group(2) or match.group(1))
    if min(height, width) < MIN_INPUT_SIZE:
        raise ConfigError(
            f"Input size {height}x{width} is too small: each side must be at least "
            f"{MIN_INPUT_SIZE} px."
        )
    return height, width


@dataclasses.dataclass
class ExportConfig:
    """What to export, and where.

    Args:
        format: "saved_model" (a folder), "tflite" (a .tflite file) or "onnx" (a .onnx file).
        output: destination path.
        quantize: TFLite: "none", "float16" or "dynamic"; ONNX: "none" or "int8".
        input_size: TFLite only: (height, width) or "HxW" for a fixed input size; None for a
            dynamic one.
        force: replace an existing artifact at `output` (a SavedModel folder or an empty
            folder for "saved_model", a file for "tflite" and "onnx"); never anything else.
        calibration: ONNX int8 only: uint8 (H, W, 3) photos whose activations set the
            quantization ranges (each is run with one style in turn).
    """

    format: str
    output: Path
    quantize: str = "none"
    input_size: tuple | None = None
    force: bool = False
    calibration: tuple = ()

    def __post_init__(self):
        self.output = Path(self.output)
        if self.format not in FORMATS:
            raise ConfigError(
                f"Unknown export format {self.format!r}; use one of: {', '.join(FORMATS)}."
            )
        if self.format == "onnx":
            _check_onnx(self)
            return
        if len(self.calibration):
            raise ConfigError(
                "`calibration` photos are for `format` 'onnx' with `quantize` 'int8' only."
            )
        _check_quantize(self.quantize)
        if self.input_size is not None:
            if isinstance(self.input_size, str):
                self.input_size = parse_input_size(self.input_size)
            else:
                self.input_size = parse_input_size("x".join(map(str, self.input_size)))
        if self.format == "saved_model" and (self.quantize != "none" or self.input_size):
            raise ConfigError(
                "Quantization and a fixed input size apply to `format` 'tflite' only; a "
                "SavedModel is float32 and takes any image size."
            )
        if self.format == "tflite" and self.output.suffix != ".tflite":
            raise ConfigError(
                f"A TensorFlow Lite file name must end in .tflite; got {self.output}."
            )


def export_model_file(model_path, config):
    """Load a model (a built-in name such as "default", or a .keras file) and export it as
    `config` says (checks the destination first).

    Returns:
        The path written.

    Raises:
        ModelFileError: the model file is unusable, or the destination exists (without
            `force`), is of another kind, or cannot be written.
        ConfigError: the Keras backend is not TensorFlow.
    """
    _check_backend()
    _check_destination(config)
    return export_model(load_model(resolve_model_path(model_path)), config)


def export_model(model, config):
    """Export a `StyleTransferNetwork` as `config` says.

    Returns:
        The path written (a SavedModel folder or a .tflite file).

    Raises:
        ModelFileError: the destination exists (without `force`), is of another kind, cannot
            be written, or TFLite conversion fails.
        ConfigError: the Keras backend is not TensorFlow.
    """
    _check_backend()
    if not isinstance(model, StyleTransferNetwork):
        raise ModelFileError(f"Only stylecbn networks can be exported; got {type(model).__name__}.")
    _check_destination(config)
    if config.format == "saved_model":
        _write_saved_model(_float32_model(model), config)
    elif config.format == "onnx":
        data = onnx_model_bytes(model, quantize=config.quantize, calibration=config.calibration)
        _write_bytes(data, config)
    else:
        data = tflite_model_bytes(model, quantize=config.quantize, input_size=config.input_size)
        _write_bytes(data, config)
    return config.output


def tflite_model_bytes(model, quantize="none", input_size=None):
    """Convert a network to a TensorFlow Lite flatbuffer in memory (builtin ops only).

    Args:
        model: a `StyleTransferNetwork`.
        quantize: "none", "float16" or "dynamic".
        input_size: (height, width) for a fixed input, or None for a dynamic one.

    Returns:
        The .tflite file's bytes.

    Raises:
        ModelFileError: the converter fails (its first error line is in the message).
    """
    _check_backend()
    _check_quantize(quantize)
    height, width = input_size if input_size else (None, None)
    module = _serving_module(
        _float32_model(model), batch_size=1, height=height, width=width, check_weights=False
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.stylize.get_concrete_function()], module
    )
    # Builtins only: a Flex (SELECT_TF_OPS) dependency would add megabytes to every app.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as exc:  # ConverterError and friends carry pages of MLIR.
        raise ModelFileError(
            f"TensorFlow Lite conversion of {model.name} failed: {_first_error_line(exc)}"
        ) from None


def onnx_model_bytes(model, quantize="none", calibration=()):
    """Convert a network to an ONNX file in memory (see the module docstring).

    Args:
        model: a `StyleTransferNetwork`.
        quantize: "none" or "int8".
        calibration: for "int8", uint8 (H, W, 3) photos (at least one).

    Returns:
        The .onnx file's bytes.

    Raises:
        ConfigError: tf2onnx, onnx or onnxruntime is missing, or int8 without photos.
        ModelFileError: the conversion fails.
    """
    _check_backend()
    if quantize not in ONNX_QUANTIZATIONS:
        raise ConfigError(f"Unknown ONNX quantization {quantize!r}; use one of: "
                          f"{', '.join(ONNX_QUANTIZATIONS)}.")
    if quantize == "int8" and not len(calibration):
        raise ConfigError("int8 quantization needs `calibration` photos.")
    try:
        import tf2onnx
    except ImportError:
        raise ConfigError(
            "ONNX export needs tf2onnx and onnx: pip install 'stylecbn[onnx]'."
        ) from None
    module = _serving_module(
        _float32_model(model), batch_size=None, height=None, width=None, check_weights=False
    )
    function = module.stylize
    try:
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=function.input_signature, opset=ONNX_OPSET
        )
    except Exception as exc:  # tf2onnx raises bare exceptions of many kinds
        raise ModelFileError(
            f"ONNX conversion of {model.name} failed: {_first_error_line(exc)}"
        ) from None
    data = proto.SerializeToString()
    if quantize == "int8":
        data = _quantize_onnx(data, calibration, model.num_styles)
    return data


def _quantize_onnx(data, calibration, num_styles):
    """Static int8 quantization of the convolutions of an ONNX model (QDQ format)."""
    import numpy as np

    try:
        from onnxruntime import quantization
    except ImportError:
        raise ConfigError(
            "int8 ONNX export needs onnxruntime: pip install 'stylecbn[onnx]'."
        ) from None
    eye = np.eye(num_styles, dtype=np.float32)
    feeds = iter([
        {IMAGE_INPUT: np.asarray(photo, np.uint8)[None], STYLE_WEIGHTS_INPUT: eye[i % num_styles][None]}
        for i, photo in enumerate(calibration)
    ])

    class Reader(quantization.CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "float32.onnx", Path(scratch) / "int8.onnx"
        source.write_bytes(data)
        # Only the convolutions: the normalization's means and variances (reductions over
        # the whole image) and the style affine stay float32, where 8 bits would band.
        quantization.quantize_static(
            str(source), str(target), Reader(), quant_format=quantization.QuantFormat.QDQ,
            per_channel=True, activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8, op_types_to_quantize=["Conv"],
        )
        return target.read_bytes()


def _check_onnx(config):
    if config.quantize not in ONNX_QUANTIZATIONS:
        raise ConfigError(f"Unknown ONNX quantization {config.quantize!r}; use one of: "
                          f"{', '.join(ONNX_QUANTIZATIONS)}.")
    if config.input_size is not None:
        raise ConfigError("A fixed input size applies to `format` 'tflite' only; an ONNX file "
                          "takes any image size.")
    if config.output.suffix != ".onnx":
        raise ConfigError(f"An ONNX file name must end in .onnx; got {config.output}.")
    if config.quantize == "int8" and not len(config.calibration):
        raise ConfigError("`quantize` 'int8' needs photos to calibrate on: pass `calibration` "
                          "(a few photos like the ones you will stylize).")
    if config.quantize != "int8" and len(config.calibration):
        raise ConfigError(
            "`calibration` photos are for `format` 'onnx' with `quantize` 'int8' only."
        )


def _check_quantize(quantize):
    if quantize not in QUANTIZATIONS:
        raise ConfigError(
            f"Unknown quantization {quantize!r}; use one of: {', '.join(QUANTIZATIONS)}."
        )


def _check_backend():
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ConfigError(
            f"Export needs Keras' TensorFlow backend, but this process uses {backend!r}; "
            "run it with KERAS_BACKEND=tensorflow."
        )


def _float32_model(model):
    """The model itself, or a float32 copy of a mixed-precision one (exports run in float32)."""
    if model.compute_dtype == "float32":
        return model
    copy = StyleTransferNetwork.from_config({**model.get_config(), "dtype": "float32"})
    copy.set_weights(model.get_weights())
    return copy


def _serving_module(model, batch_size, height, width, check_weights):
    """A tf.Module with `stylize` (the serving function) and `style_names`.

    Args:
        model: a float32 `StyleTransferNetwork`.
        batch_size, height, width: static sizes of the image input, or None for dynamic.
        check_weights: assert in the graph that style weights are finite, >= 0, with a
            positive sum, and broadcast a batch of 1 (TF Assert ops are not TFLite builtins).
    """
    num_styles = model.num_styles

    def stylize(image, style_weights):
        if check_weights:
            style_weights = _checked_style_weights(style_weights)
            image, style_weights = _broadcast_batch(image, style_weights)
        stylized = model((image, style_weights), training=False)
        # minimum/maximum rather than clip_by_value: ClipByValue is not a TFLite builtin.
        stylized = tf.minimum(tf.maximum(stylized, 0.0), 1.0)
        return {OUTPUT: tf.cast(tf.round(stylized * 255.0), tf.uint8)}

    module = tf.Module()
    module.stylize = tf.function(
        stylize,
        input_signature=[
            tf.TensorSpec([batch_size, height, width, 3], tf.uint8, name=IMAGE_INPUT),
            tf.TensorSpec([batch_size, num_styles], tf.float32, name=STYLE_WEIGHTS_INPUT),
        ],
        autograph=False,
    )
    # Track the tf.Variables the function reads, not the Keras model: with the model tracked,
    # the TFLite converter keeps them as uninitialized resource variables (all-zero weights).
    module.model_variables = list(module.stylize.get_concrete_function().variables)
    names = list(model.style_names)
    module.style_names = tf.function(
        lambda: {STYLE_NAMES_SIGNATURE: tf.constant(names, dtype=tf.string)},
        input_signature=[],
        autograph=False,
    )
    return module


def _checked_style_weights(style_weights):
    """Style weights with graph assertions matching `stylecbn.applying.blend.resolve_style`'s checks."""
    checks = [
        tf.debugging.assert_all_finite(style_weights, "style_weights must be finite numbers"),
        tf.debugging.assert_non_negative(
            style_weights, message="style_weights must not be negative"
        ),
        tf.debugging.assert_positive(
            tf.reduce_sum(style_weights, axis=-1),
            message="each row of style_weights must have a positive sum",
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(style_weights)


def _broadcast_batch(image, style_weights):
    """Broadcast a batch of 1 (image or weights) against the other input's batch."""
    batch = tf.maximum(tf.shape(image)[0], tf.shape(style_weights)[0])
    image = tf.broadcast_to(image, tf.concat([[batch], tf.shape(image)[1:]], axis=0))
    style_weights = tf.broadcast_to(
        style_weights, tf.stack([batch, tf.shape(style_weights)[1]])
    )
    return tf.ensure_shape(image, [None, None, None, 3]), style_weights


def _first_error_line(exc):
    """The first "error: ..." of a converter message (the rest is pages of MLIR)."""
    match = re.search(r"error: (.+)", str(exc))
    text = match.group(1) if match else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text.strip()[:300]


def _is_saved_model_dir(path):
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def _check_destination(config):
    """Refuse a destination that exists (unless `force` and of the same kind) or has no folder."""
    path = config.output
    if not path.parent.is_dir():
        raise ModelFileError(f"Cannot write {path}: folder {path.parent} does not exist.")
    if not (path.exists() or path.is_symlink()):
        return
    if config.format == "saved_model":
        replaceable = path.is_dir() and (_is_saved_model_dir(path) or not any(path.iterdir()))
        kind = "a SavedModel folder or an empty folder"
    else:
        replaceable = path.is_file()
        kind = "a file"
    if not replaceable:
        raise ModelFileError(
            f"Cannot write {path}: it exists and is not {kind}; choose another output path."
        )
    if not config.force:
        raise ModelFileError(f"{path} already exists; pass `force` to replace it.")


def _write_saved_model(model, config):
    module = _serving_module(model, batch_size=None, height=None, width=None, check_weights=True)
    signatures = {
        SERVING_SIGNATURE: module.stylize.get_concrete_function(),
        STYLE_NAMES_SIGNATURE: module.style_names.get_concrete_function(),
    }
    try:
        with tempfile.TemporaryDirectory() as scratch, atomic_directory(config.output) as tmp:
            names_file = Path(scratch) / STYLE_NAMES_ASSET
            names_file.write_text("".join(f"{name}\n" for name in model.style_names), "utf-8")
            module.style_names_file = tf.saved_model.Asset(str(names_file))
            tf.saved_model.save(module, str(tmp), signatures=signatures)
    except (OSError, tf.errors.OpError) as exc:
        raise ModelFileError(f"Cannot write {config.output}: {_os_error_text(exc)}.") from None


def _write_bytes(data, config):
    try:
        with atomic_path(config.output) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ModelFileError(f"Cannot write {config.output}: {_os_error_text(exc)}.") from None


def _os_error_text(exc):
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return exc.message.splitlines()[0] if exc.message else type(exc).__name__

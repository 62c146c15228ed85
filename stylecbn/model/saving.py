"""The model file: one `.keras` file with architecture, weights and metadata.

The metadata (style names and credits, normalization kind, architecture and width, and the
training configuration with the loss-network weights used) lives in the network's config, so
Keras' own format carries it and `load_model` needs nothing beside the file. The style
targets (the Gram matrices the styles were trained towards, `stylecbn.model.targets`) are one
more archive member, which Keras ignores: `load_model` attaches them as `model.style_targets`.

Built-in models ship as `stylecbn/assets/<name>.keras`; wherever a model is asked for
(`Stylizer(model)`, `--model`), a name of `BUILT_IN_MODELS` picks one and anything else is a
path to a model file.
"""

import json
import tempfile
import zipfile
from pathlib import Path

import h5py
from stylecbn.backend import start_quietly

start_quietly()  # Keras starts here, without TensorFlow's native chatter (stylecbn.backend)

import keras
import numpy as np

from stylecbn.errors import ModelFileError, shorten
from stylecbn.fileio import atomic_path
from stylecbn.model.network import StyleTransferNetwork
from stylecbn.model.targets import MEMBER as TARGETS_MEMBER
from stylecbn.model.targets import StyleTargets, read_targets, targets_bytes

__all__ = [
    "BUILT_IN_MODELS",
    "attach_targets",
    "built_in_model_path",
    "default_model_path",
    "load_default_model",
    "load_model",
    "resolve_model_path",
    "save_model",
    "write_targets",
]

_CLASS_NAME = "StyleTransferNetwork"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_MODEL = "default"
# name -> what it is; the file is ASSETS_DIR / "<name>.keras" and may be absent from a build.
BUILT_IN_MODELS = {
    "default": "the full network (preset full): the best quality",
    "fast": "the fast model: the default model's styles distilled into a network that computes "
            "at half resolution (preset lowres)",
}
# Metadata keys renamed since files were written with them (old -> new); renamed on load.
# "style_weights" held the styles manifest's per-style loss multipliers, not a blend.
_RENAMED_METADATA = {"style_weights": "style_coefficients"}
# config.json holds the style names and credits and the metadata: a 100,000-style model's
# take a few MB. Read whole, a larger one is only memory for nothing.
MAX_CONFIG_BYTES = 16 * 2**20


def built_in_model_path(name):
    """Where the built-in model `name` ships inside the package (it may be absent)."""
    return ASSETS_DIR / f"{name}.keras"


def default_model_path():
    """Where the built-in default model ships inside the package (it may be absent)."""
    return built_in_model_path(DEFAULT_MODEL)


def resolve_model_path(model=None):
    """The file of a model given by built-in name or by path.

    Args:
        model: None or "default" (the built-in default model), another name of
            `BUILT_IN_MODELS`, or the path of a .keras model file.

    Returns:
        A Path. A built-in model's file exists; a path is returned as given (`load_model`
        checks it).

    Raises:
        ModelFileError: the built-in model is not installed in this build, or `model` is
            neither a built-in name nor a model file path.
    """
    name = DEFAULT_MODEL if model is None else model
    if isinstance(name, str) and name in BUILT_IN_MODELS:
        path = built_in_model_path(name)
        if not path.is_file():
            raise ModelFileError(_not_installed(name, path))
        return path
    path = Path(model)
    if path.suffix != ".keras" and not path.exists():
        raise ModelFileError(
            f"Unknown model {str(model)!r}: give a built-in model name "
            f"({', '.join(BUILT_IN_MODELS)}) or the path of a .keras model file."
        )
    return path


def _not_installed(name, path):
    if name == DEFAULT_MODEL:
        return (
            f"No built-in model is installed (expected {path}); pass a model file as `model`, "
            "or train one with `stylecbn train`."
        )
    return (
        f"The built-in model {name!r} is not installed in this build (expected {path}); make "
        f"one with `stylecbn distill --teacher default --content PHOTOS -o {name}.keras` and "
        "pass its file as `model`."
    )


def save_model(model, path, weights_dtype="float32"):
    """Save `model` to `path` (must end in .keras) atomically: whole file or nothing.

    Args:
        model: a StyleTransferNetwork.
        path: the destination, ending in .keras.
        weights_dtype: "float32" (a bit-exact round trip) or "float16" (half the size; the
            weights are rounded to float16 in the file and loaded back into float32
            variables; `benchmarks/half_precision.py` measures what that changes).
    """
    if weights_dtype not in ("float32", "float16"):
        raise ModelFileError(f"weights_dtype must be float32 or float16; got {weights_dtype!r}.")
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"Model file name {path} must end in .keras.")
    if not isinstance(model, StyleTransferNetwork):
        raise ModelFileError(f"Only stylecbn networks can be saved; got {type(model).__name__}.")
    if not path.parent.is_dir():
        raise ModelFileError(f"Cannot write {path}: folder {path.parent} does not exist.")
    from stylecbn import __version__

    model.metadata["stylecbn_version"] = __version__
    try:
        with atomic_path(path, suffix=".keras") as tmp:
            keras.saving.save_model(model, tmp)
            if model.style_targets is not None:
                with zipfile.ZipFile(tmp, "a") as archive:
                    archive.writestr(TARGETS_MEMBER, targets_bytes(model.style_targets),
                                     compress_type=zipfile.ZIP_DEFLATED)
            if weights_dtype == "float16":
                _halve_weights(tmp)
    except OSError as exc:
        raise ModelFileError(f"Cannot write {path}: {exc.strerror or exc}.") from None


def _halve_weights(path):
    """Rewrite the weights inside a .keras archive as float16 (a fresh HDF5 file: HDF5 does
    not give back the space of deleted datasets)."""
    # Scratch space in the system's temporary folder, not beside the output: a run killed
    # here leaves nothing in the user's folder.
    with tempfile.TemporaryDirectory() as folder:
        original, half = Path(folder) / "full.h5", Path(folder) / "half.h5"
        with zipfile.ZipFile(path) as archive:
            entries = {entry: archive.read(entry) for entry in archive.infolist()}
        weights = next(entry for entry in entries if entry.filename == "model.weights.h5")
        original.write_bytes(entries.pop(weights))
        with h5py.File(original, "r") as source, h5py.File(half, "w") as target:
            target.attrs.update(source.attrs)

            def copy(name, item):
                if isinstance(item, h5py.Dataset):
                    data = item[()]
                    if data.dtype == np.float32:
                        data = data.astype(np.float16)
                    copied = target.create_dataset(name, data=data)
                else:
                    copied = target.require_group(name)
                copied.attrs.update(item.attrs)

            source.visititems(copy)
        with zipfile.ZipFile(path, "w") as archive:
            for entry, data in entries.items():
                archive.writestr(entry, data)  # as it was, compression included
            archive.write(half, "model.weights.h5")


def _check_container(path):
    if not path.exists():
        raise ModelFileError(f"Model file {path} does not exist.")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give the path of a .keras model file.")
    if path.suffix != ".keras":
        raise ModelFileError(f"Model file {path} must be a .keras file.")
    if path.stat().st_size == 0:
        raise ModelFileError(f"Model file {path} is empty (0 bytes); re-save or re-copy it.")
    hint = "it may be truncated or another format; re-save or re-copy it"
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a stylecbn model file (.keras): {hint}.")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ModelFileError(f"{path} is damaged (entry {bad} fails its checksum); {hint}.")
            names = set(archive.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ModelFileError(f"{path} is not a Keras model file: {hint}.")
            size = archive.getinfo("config.json").file_size
            if size > MAX_CONFIG_BYTES:
                raise ModelFileError(
                    f"{path}: its config.json is {size:,} bytes, over the {MAX_CONFIG_BYTES:,} "
                    f"a model's needs: {hint}."
                )
            config = json.loads(archive.read("config.json"))
            shapes = _stored_shapes(archive)
    except RecursionError:
        raise ModelFileError(f"{path}: its config.json is nested too deeply: {hint}.") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelFileError(f"{path} cannot be read as a model file ({exc}): {hint}.") from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ModelFileError(f"{path}: its config.json is not a model configuration: {hint}.")
    if config.get("class_name") != _CLASS_NAME:
        raise ModelFileError(
            f"{path} is a Keras model ({shorten(config.get('class_name'))}) but not a stylecbn "
            "style network; train one with `stylecbn train`."
        )
    _check_sizes(path, config["config"], shapes)
    return shapes


def _stored_shapes(archive):
    """The shape of every weight array in the file, read from the HDF5 headers (no values)."""
    shapes = []

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            shapes.append(tuple(int(side) for side in item.shape))

    with archive.open("model.weights.h5") as weights, h5py.File(weights, "r") as file:
        file.visititems(visit)
    return shapes


def _check_sizes(path, config, shapes):
    """Refuse a config that asks for a larger network than the weights hold, before building
    it: building allocates every weight (a million styles are gigabytes of gamma/beta)."""
    mismatch = "config.json and the weights do not match; re-save or re-copy the model"
    styles = config.get("num_styles")
    rows = {shape[0] for shape in shapes if len(shape) == 2}  # the (styles, channels) tables
    if rows and rows != {styles}:
        raise ModelFileError(
            f"{path}: config.json says {shorten(styles)} styles but the weights hold style "
            f"tables of {', '.join(map(str, sorted(rows)))}: {mismatch}."
        )
    architecture = config.get("architecture")
    width = config.get("width_multiplier", 1.0)
    if not isinstance(architecture, dict) or not isinstance(width, (int, float)):
        return  # Keras refuses these when it builds, in its own words
    channels = [c for key in ("down_channels", "up_channels")
                for c in architecture.get(key) or () if isinstance(c, (int, float))]
    widest = max((side for shape in shapes for side in shape), default=0)
    if channels and max(channels) * width > widest:
        raise ModelFileError(
            f"{path}: config.json asks for {max(channels) * width:g} channels but no weight "
            f"array is wider than {widest}: {mismatch}."
        )
    blocks = architecture.get("residual_blocks")
    if isinstance(blocks, int) and blocks > len(shapes):
        raise ModelFileError(
            f"{path}: config.json asks for {blocks} residual blocks but the file holds "
            f"{len(shapes)} weight arrays in all: {mismatch}."
        )


def _check_loaded(path, model, shapes):
    """Refuse a network that Keras built from the file but that is not the file's weights."""
    if not isinstance(model.dtype_policy, keras.DTypePolicy):
        raise ModelFileError(f"{path}: config.json gives no valid dtype; re-save the model.")
    built = sorted(tuple(weight.shape) for weight in model.weights)
    if built != sorted(shapes):
        raise ModelFileError(
            f"{path}: its config.json builds {len(built)} weight arrays but the file holds "
            f"{len(shapes)} (another number of residual blocks?): config.json and the weights "
            "do not match; re-save or re-copy the model."
        )
    for weight in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight))):
            raise ModelFileError(
                f"{path}: its weight {weight.path} is not finite numbers (NaN or inf), so it "
                "would paint black: the run that wrote it diverged; retrain it or use another."
            )


def load_model(path):
    """Load a stylecbn model file with Keras' safe mode on.

    Raises:
        ModelFileError: the file is missing, empty, truncated, damaged or not a stylecbn
            model; the message names the file.
    """
    path = Path(path)
    shapes = _check_container(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds; all mean "this file is unusable".
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} could not be loaded as a stylecbn model: {first_line}") from None
    if not isinstance(model, StyleTransferNetwork):
        raise ModelFileError(f"{path} is not a stylecbn style network.")
    _check_loaded(path, model, shapes)
    for old, new in _RENAMED_METADATA.items():
        if old in model.metadata:
            model.metadata.setdefault(new, model.metadata.pop(old))
    targets = read_targets(path)
    if targets is not None:
        attach_targets(model, targets, source=path)
    return model


def attach_targets(model, targets, source="the style targets"):
    """Give `model` its style targets (a `StyleTargets` of exactly its styles, in order).

    Raises:
        ModelFileError: the targets are of other styles; the message names `source`.
    """
    if not isinstance(targets, StyleTargets):
        raise ModelFileError(f"style targets must be a StyleTargets; got {type(targets).__name__}.")
    if list(targets.style_names) != list(model.style_names):
        raise ModelFileError(
            f"{source}: the style targets are of the styles {', '.join(targets.style_names)}, "
            f"not the model's ({', '.join(model.style_names)}); add them again with "
            "`stylecbn add-targets`.")
    model.style_targets = targets


def write_targets(source, targets, output):
    """Write the model file `source` with `targets` as its style targets to `output`
    (atomically; `output` may be `source`). Every other member is copied as it is, so the
    weights stay bit for bit what they were.

    Raises:
        ModelFileError: `source` is not a usable model file, the targets are of other styles,
            or `output` cannot be written.
    """
    source, output = Path(source), Path(output)
    attach_targets(load_model(source), targets, source=source)
    if output.suffix != ".keras":
        raise ModelFileError(f"Model file name {output} must end in .keras.")
    if not output.parent.is_dir():
        raise ModelFileError(f"Cannot write {output}: folder {output.parent} does not exist.")
    try:
        with atomic_path(output, suffix=".keras") as tmp:
            with zipfile.ZipFile(source) as original, zipfile.ZipFile(tmp, "w") as copy:
                for entry in original.infolist():
                    if entry.filename != TARGETS_MEMBER:
                        copy.writestr(entry, original.read(entry))
                copy.writestr(TARGETS_MEMBER, targets_bytes(targets),
                              compress_type=zipfile.ZIP_DEFLATED)  # float16 Grams: -19%
    except OSError as exc:
        raise ModelFileError(f"Cannot write {output}: {exc.strerror or exc}.") from None


def load_default_model():
    """Load the built-in default model, or raise ModelFileError saying none is installed."""
    return load_model(resolve_model_path(DEFAULT_MODEL))

"""`stylecbn styles` and `stylecbn info`: what a model holds and what it runs on."""

import json
import platform
from importlib import metadata
from pathlib import Path

import click

from .. import __version__
from ..cli import handle_errors
from .common import echo_json, load_stylizer, model_option

LABEL = 23  # label column of `info`: the longest label, "  style_coefficients:", and a space


@click.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per style.")
@handle_errors
def styles(model_path, as_json):
    """List the model's styles: index, name and credits."""
    model = load_stylizer(model_path).model
    rows = list(zip(range(model.num_styles), model.style_names, model.style_credits))
    if as_json:
        for index, name, credit in rows:
            echo_json({"index": index, "name": name, "credits": credit})
        return
    width = max(len(name) for _, name, _ in rows)
    for index, name, credit in rows:
        click.echo(f"{index:>3}  {name:<{width}}  {credit}".rstrip())


def _version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@click.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
@handle_errors
def info(model_path, as_json):
    """Versions, Keras backend, devices, and a summary of the model."""
    import keras

    from ..modelfile import default_model_path

    backend = keras.backend.backend()
    record = {
        "stylecbn": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _version({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(
            backend, backend)),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "click": _version("click"),
        "devices": [str(d) for d in keras.distribution.list_devices()],
    }
    path = Path(model_path) if model_path else default_model_path()
    if model_path or path.is_file():
        model = load_stylizer(model_path).model
        record["model"] = {
            "path": str(path),
            "file_bytes": path.stat().st_size,
            "num_styles": model.num_styles,
            "styles": model.style_names,
            "normalization": model.normalization,
            "width_multiplier": model.width_multiplier,
            "parameters": int(model.count_params()),
            "metadata": model.metadata,
        }
    else:
        record["model"] = None
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True, default=str))
        return
    for key in ("stylecbn", "python", "platform", "keras", "backend", "backend_version", "numpy",
                "pillow", "click"):
        click.echo(f"{key + ':':<{LABEL}}{record[key]}")
    click.echo(f"{'devices:':<{LABEL}}{', '.join(record['devices']) or 'none found'}")
    model = record["model"]
    if model is None:
        click.echo(f"{'model:':<{LABEL}}no built-in model installed (expected {path}); pass --model FILE")
        return
    click.echo(f"{'model:':<{LABEL}}{model['path']} ({model['file_bytes'] / 1e6:.1f} MB)")
    click.echo(
        f"{'':<{LABEL}}{model['num_styles']} styles, {model['normalization']} normalization, "
        f"width x{model['width_multiplier']:g}, {model['parameters']:,} parameters"
    )
    click.echo(f"{'styles:':<{LABEL}}{', '.join(f'{i}={n}' for i, n in enumerate(model['styles']))}")
    for key, value in sorted(model["metadata"].items()):
        text = json.dumps(value, sort_keys=True, default=str)
        click.echo(f"{'  ' + key + ':':<{LABEL}}{text if len(text) <= 100 else text[:97] + '...'}")

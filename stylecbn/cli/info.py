"""`stylecbn styles` and `stylecbn info`: what a model holds and what it runs on."""

import dataclasses
import json
import platform
from importlib import metadata

import click

from stylecbn import __version__
from stylecbn.errors import printable
from stylecbn.cli.root import handle_errors
from stylecbn.cli.common import echo_json, load_stylizer, model_option, runtime_option

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
    # Names and credits from a file: escaped, so control characters cannot reach the terminal.
    rows = [(index, printable(name), printable(credit)) for index, name, credit in rows]
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
@runtime_option
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
@handle_errors
def info(model_path, runtime, as_json):
    """Versions, Keras backend, devices, the runtime, the built-in models, and a summary of
    the model."""
    import keras

    from stylecbn.applying.runtimes import choose_runtime

    from stylecbn.model.saving import (
        BUILT_IN_MODELS,
        built_in_model_path,
        default_model_path,
        resolve_model_path,
    )

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
        "openvino": _version("openvino"),
        "runtime": None,
        "built_in_models": [
            {
                "name": name,
                "installed": built_in_model_path(name).is_file(),
                "path": str(built_in_model_path(name)),
                "description": description,
            }
            for name, description in BUILT_IN_MODELS.items()
        ],
    }
    default_path = default_model_path()
    if model_path or default_path.is_file():
        path = resolve_model_path(model_path)
        model = load_stylizer(model_path).model
        record["model"] = {
            "path": str(path),
            "file_bytes": path.stat().st_size,
            "num_styles": model.num_styles,
            "styles": model.style_names,
            "normalization": model.normalization,
            "preset": model.preset,
            "width_multiplier": model.width_multiplier,
            "parameters": int(model.count_params()),
            "metadata": model.metadata,
        }
        record["runtime"] = dataclasses.asdict(choose_runtime(runtime or "auto", model))
    else:
        record["model"] = None
        record["runtime"] = dataclasses.asdict(choose_runtime(runtime or "auto"))
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True, default=str))
        return
    for key in ("stylecbn", "python", "platform", "keras", "backend", "backend_version", "numpy",
                "pillow", "click"):
        click.echo(f"{key + ':':<{LABEL}}{record[key]}")
    click.echo(f"{'devices:':<{LABEL}}{', '.join(record['devices']) or 'none found'}")
    click.echo(f"{'openvino:':<{LABEL}}{record['openvino'] or 'not installed'}")
    click.echo(f"{'runtime:':<{LABEL}}{record['runtime']['name']} ({record['runtime']['reason']})")
    for i, entry in enumerate(record["built_in_models"]):
        label = "built-in models:" if i == 0 else ""
        state = "installed    " if entry["installed"] else "not installed"
        click.echo(f"{label:<{LABEL}}{entry['name']:<8} {state}  {entry['description']}")
    model = record["model"]
    if model is None:
        click.echo(
            f"{'model:':<{LABEL}}no built-in model installed (expected {default_path}); "
            "pass --model FILE"
        )
        return
    click.echo(f"{'model:':<{LABEL}}{model['path']} ({model['file_bytes'] / 1e6:.1f} MB)")
    click.echo(
        f"{'':<{LABEL}}{model['num_styles']} styles, {model['normalization']} normalization, "
        f"preset {model['preset'] or 'custom'}, width x{model['width_multiplier']:g}, "
        f"{model['parameters']:,} parameters"
    )
    styles = ", ".join(f"{i}={printable(n)}" for i, n in enumerate(model["styles"]))
    click.echo(f"{'styles:':<{LABEL}}{styles}")
    for key, value in sorted(model["metadata"].items()):
        text = json.dumps(value, sort_keys=True, default=str)
        click.echo(f"{'  ' + key + ':':<{LABEL}}{text if len(text) <= 100 else text[:97] + '...'}")

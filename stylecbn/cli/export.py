"""`stylecbn export`: a model file as a TensorFlow SavedModel or a TensorFlow Lite file.

The command parses its options into an `ExportConfig` and calls
`stylecbn.model.export.export_model_file`; errors become one-line messages with exit code 2.
"""

import click

from stylecbn.cli.root import handle_errors


@click.command()
@click.argument("model_path", metavar="NAME|FILE")
@click.option(
    "--format",
    "-f",
    "export_format",
    required=True,
    metavar="FORMAT",
    help="saved_model (a folder, for TF Serving and TF Hub) or tflite (a .tflite file).",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(),
    help="Where to write: a folder for saved_model, a .tflite file for tflite.",
)
@click.option(
    "--quantize",
    default="none",
    show_default=True,
    metavar="KIND",
    help="tflite only: none (float32), float16 (half-size file) or dynamic (int8 weights).",
)
@click.option(
    "--input-size",
    default=None,
    metavar="HxW",
    help="tflite only: a fixed input size such as 512x512. Default: any size (resize the "
    "interpreter's input before running).",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing SavedModel folder or .tflite file."
)
@handle_errors
def export(model_path, export_format, output, quantize, input_size, force):
    """Export a model (a built-in name such as default, or a .keras file) for TF Serving /
    TF Hub (saved_model) or phones (tflite).

    Both take a uint8 image and one weight per style (normalized to sum 1, so blends work)
    and return the stylized uint8 image. Writes atomically; refuses to overwrite without
    --force.
    """
    from stylecbn.model.export import ExportConfig, export_model_file

    config = ExportConfig(
        format=export_format,
        output=output,
        quantize=quantize,
        input_size=input_size,
        force=force,
    )
    path = export_model_file(model_path, config)
    click.echo(f"Wrote {path}")

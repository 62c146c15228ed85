"""`stylecbn export`: a model file as a TensorFlow SavedModel, a TensorFlow Lite file or an
ONNX file.

The command parses its options (and reads the calibration photos of an int8 ONNX export) into
an `ExportConfig` and calls
`stylecbn.model.export.export_model_file`; errors become one-line messages with exit code 2.
"""

import click

from stylecbn.cli.root import fail, handle_errors

CALIBRATION_PHOTOS = 32  # more only makes calibration slower: ranges settle within a few dozen
CALIBRATION_SIZE = 512


def _calibration_photos(folder):
    """The photos of `folder` (sorted by name, at most CALIBRATION_PHOTOS) as uint8 arrays of
    at most CALIBRATION_SIZE px on the longest side; () for None."""
    if folder is None:
        return ()
    from pathlib import Path

    from stylecbn.media.pixels import resize_to_max
    from stylecbn.media.reading import looks_like_image, read_image

    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and looks_like_image(p))
    if not files:
        fail(f"--calibration {folder} holds no images; give a folder of photos.")
    return tuple(
        resize_to_max(read_image(path).frames[0], CALIBRATION_SIZE)
        for path in files[:CALIBRATION_PHOTOS]
    )


@click.command()
@click.argument("model_path", metavar="NAME|FILE")
@click.option(
    "--format",
    "-f",
    "export_format",
    required=True,
    metavar="FORMAT",
    help="saved_model (a folder, for TF Serving and TF Hub), tflite (a .tflite file) or onnx "
    "(a .onnx file, for ONNX Runtime, OpenVINO and others).",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(),
    help="Where to write: a folder for saved_model, a .tflite file for tflite, a .onnx file "
    "for onnx.",
)
@click.option(
    "--quantize",
    default="none",
    show_default=True,
    metavar="KIND",
    help="tflite: none (float32), float16 (half-size file) or dynamic (int8 weights); onnx: "
    "none (float32) or int8 (convolutions in int8, calibrated on --calibration photos).",
)
@click.option(
    "--calibration",
    default=None,
    metavar="FOLDER",
    type=click.Path(exists=True, file_okay=False),
    help="onnx --quantize int8 only: a folder of photos like the ones to be stylized (up to "
    f"{CALIBRATION_PHOTOS}, shrunk to {CALIBRATION_SIZE} px), which set the int8 ranges.",
)
@click.option(
    "--input-size",
    default=None,
    metavar="HxW",
    help="tflite only: a fixed input size such as 512x512. Default: any size (resize the "
    "interpreter's input before running).",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing SavedModel folder, .tflite or .onnx file."
)
@handle_errors
def export(model_path, export_format, output, quantize, input_size, calibration, force):
    """Export a model (a built-in name such as default, or a .keras file) for TF Serving /
    TF Hub (saved_model), phones (tflite) or ONNX runtimes (onnx).

    All take a uint8 image and one weight per style (normalized to sum 1, so blends work)
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
        calibration=_calibration_photos(calibration),
    )
    path = export_model_file(model_path, config)
    click.echo(f"Wrote {path}")

"""Where stylized outputs go: the inputs that files and folders name, and each one's output path.

The rules `stylecbn apply` follows, for Python callers too:
- An input is a file, a folder (its images and videos, hidden ones left out; with `recursive`
  its subfolders' too) or "-" for stdin (once). A file named twice is stylized once.
- `output` is a file (one input), a folder (the inputs' subfolders mirrored below it; created
  when several inputs or a folder need one), "-" for stdout (one image), or None: beside each
  input (stdout for stdin).
- Output names come from a pattern with the fields {stem}, {style}, {ext} and {index}.
- Nothing is written over an input and no two inputs write one file: such a plan is refused
  whole, before anything is stylized.

`OutputPlan` is made in two steps, so that bad arguments are refused before a model loads:
the plan (inputs, the kind of output), then `jobs(style)`, whose names need the style's label.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from stylecbn.errors import ConfigError, DataError, ImageError
from stylecbn.fileio import same_file
from stylecbn.media.reading import IMAGE_SUFFIXES
from stylecbn.media.video import VIDEO_SUFFIXES, is_video
from stylecbn.media.writing import OUTPUT_SUFFIXES

__all__ = ["OutputPlan", "Job", "check_image_output", "check_name_pattern", "DEFAULT_NAME",
           "FORMATS", "STDIO"]

STDIO = "-"  # stdin as an input, stdout as the output
DEFAULT_NAME = "{stem}_{style}.{ext}"
NAME_FIELDS = ("stem", "style", "ext", "index")
FORMATS = ("png", "jpg", "webp", "gif", "tif", "bmp")


@dataclass(frozen=True)
class Job:
    """One input and where its output goes."""

    source: str  # a path, or "-" for stdin
    output: Path | None  # None: stdout


@dataclass(frozen=True)
class _Input:
    source: str  # a path, or "-" for stdin
    relative: Path  # the input's path below the folder it was found in (its name otherwise)


class OutputPlan:
    """The inputs of a batch and the kind of output they go to, checked before any work.

    Args:
        inputs: paths of files and folders, or "-" for stdin.
        output: a file, a folder, "-" for stdout, or None (beside each input; stdout for
            stdin). A folder that several inputs (or a folder input) need is created.
        name: the output file names' pattern (fields {stem}, {style}, {ext}, {index}); used
            for folder outputs and outputs beside the inputs.
        format: images' output format, one of `FORMATS` (any case); None keeps the input's
            (PNG where it has none that can be written). Videos keep their container.
        recursive: look for images and videos in the folders' subfolders too.

    Attributes:
        kind: "stdout", "file", "folder" or "beside".
        format: the format asked for, in lower case, or None.

    Raises:
        ImageError: an input does not exist, or the output folder cannot be created.
        DataError: a folder holds no images or videos.
        ConfigError: a bad name pattern or format, stdin named twice, or an output that
            cannot hold these inputs (several images to stdout or to a file, a video to
            stdout or to an image file, an image to a video file, a missing folder).

    Examples:
    >>> plan = OutputPlan(["photos/"], "styled/", recursive=True)
    >>> for job in plan.jobs("starry"):
    ...     print(job.source, "->", job.output)
    """

    def __init__(self, inputs, output=None, *, name=DEFAULT_NAME, format=None, recursive=False):
        inputs = [os.fspath(item) for item in inputs]
        output = None if output is None else os.fspath(output)
        check_name_pattern(name)
        self.format = None if format is None else str(format).lower()
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}; received: {format!r}")
        self._name = name
        self._output = output
        self._inputs = _find_inputs(inputs, recursive)
        from_folder = any(Path(item).is_dir() for item in inputs if item != STDIO)
        self.kind = _output_kind(output, self._inputs, from_folder)

    def jobs(self, style):
        """Each input with its output path, named with `style` (the {style} field).

        Raises:
            ConfigError: an output would overwrite an input, or two inputs would write the
                same file.
        """
        if self.kind == "stdout":
            return [Job(item.source, None) for item in self._inputs]
        if self.kind == "file":
            jobs = [Job(item.source, Path(self._output)) for item in self._inputs]
        else:
            jobs = [Job(item.source, self._folder(item) / self._file_name(item, index, style))
                    for index, item in enumerate(self._inputs)]
        _refuse_collisions(jobs)
        return jobs

    def _folder(self, item):
        if self.kind == "beside":
            return Path(item.source).parent
        return Path(self._output) / item.relative.parent

    def _file_name(self, item, index, style):
        source_ext = Path(item.source).suffix.lower().lstrip(".") if item.source != STDIO else ""
        if is_video(item.source):
            ext = source_ext  # a video keeps its container; format is for images
        else:
            ext = self.format or (source_ext if "." + source_ext in OUTPUT_SUFFIXES else "png")
        return self._name.format(stem=item.relative.stem, style=style, ext=ext, index=index)


def check_name_pattern(pattern):
    """ConfigError unless `pattern` gives a file name from the fields {stem}, {style}, {ext},
    {index}."""
    try:
        name = pattern.format(stem="a", style="b", ext="png", index=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"Bad name pattern {pattern!r} ({exc}); use the fields "
            f"{', '.join('{' + f + '}' for f in NAME_FIELDS)}, e.g. {DEFAULT_NAME!r}."
        ) from None
    if "/" in name or "\\" in name:
        raise ConfigError(
            f"The name pattern {pattern!r} must give a file name, not a path; the folder goes "
            "in the output."
        )


def check_image_output(output):
    """ConfigError unless `output` (not "-", not an existing folder) names an image file that
    can be written: not a folder that is missing, a suffix that names a format, an existing
    parent folder."""
    path = Path(output)
    if str(output).endswith(("/", "\\")) or not path.suffix:
        raise ConfigError(f"Output folder {output} does not exist; create it first.")
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(
            f"Cannot tell the image format of {output}; use one of {', '.join(OUTPUT_SUFFIXES)}."
        )
    _check_parent(output)


def _check_parent(output):
    path = Path(output)
    if not path.parent.is_dir():
        raise ConfigError(f"Cannot write {output}: the folder {path.parent} does not exist.")


def _find_inputs(inputs, recursive):
    """Expand files and folders into inputs; missing paths and empty folders are errors."""
    found_inputs, seen = [], set()
    for item in inputs:
        if item == STDIO:
            found_inputs.append(_Input(STDIO, Path("stdin")))
            continue
        path = Path(item)
        if not path.exists():
            raise ImageError(f"{path} does not exist.")
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(
                p
                for p in path.glob(pattern)
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                where = "or its subfolders " if recursive else ""
                hint = "" if recursive else " (use recursive=True to look in subfolders)"
                raise DataError(
                    f"No images or videos in {path} {where}(looked for "
                    f"{', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)}){hint}."
                )
            files = [(p, p.relative_to(path)) for p in found]
        else:
            files = [(path, Path(path.name))]
        for file, relative in files:
            key = str(file.resolve())
            if key not in seen:
                seen.add(key)
                found_inputs.append(_Input(str(file), relative))
    if sum(item.source == STDIO for item in found_inputs) > 1:
        raise ConfigError("stdin ('-') can be given only once.")
    return found_inputs


def _output_kind(output, inputs, from_folder):
    """'stdout', 'file', 'folder' or 'beside' (no output), checking that the target can exist."""
    stdin_input = any(item.source == STDIO for item in inputs)
    if output == STDIO or (output is None and stdin_input):
        if len(inputs) > 1:
            raise ConfigError("Only one image can go to stdout; several inputs need an output "
                              "folder.")
        if is_video(inputs[0].source):
            raise ConfigError(f"A video cannot go to stdout; write it to a file such as "
                              f"out{Path(inputs[0].source).suffix}.")
        return "stdout"
    if output is None:
        return "beside"
    path = Path(output)
    if path.is_dir():
        return "folder"
    if len(inputs) > 1 or from_folder or output.endswith(("/", "\\")):  # created, as batch
        if path.exists():                                                 # tools do
            raise ConfigError(f"The output {output} is a file, not a folder; several images "
                              "need a folder.")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ImageError(
                f"Cannot create the output folder {output}: {exc.strerror or exc}.") from None
        return "folder"
    source = inputs[0].source
    if is_video(source):
        if not is_video(path):
            raise ConfigError(f"A video is written as a video: the output must be a "
                              f"{', '.join(VIDEO_SUFFIXES)} file.")
        _check_parent(output)
    elif is_video(path):
        raise ConfigError(f"{source} is an image: the output {output} is for a video; use one "
                          f"of {', '.join(OUTPUT_SUFFIXES)}.")
    else:
        check_image_output(output)
    return "file"


def _refuse_collisions(jobs):
    """ConfigError if an output would overwrite an input or two inputs would write one file."""
    outputs = {}
    for job in jobs:
        for other in jobs:
            if other.source != STDIO and same_file(job.output, other.source):
                raise ConfigError(
                    f"Writing {job.output} would overwrite the input {other.source}; inputs are "
                    "never overwritten: choose another output or name pattern."
                )
        key = str(job.output.resolve())
        if key in outputs:
            raise ConfigError(
                f"{outputs[key]} and {job.source} would both be written to {job.output}; "
                "use an output folder and a name pattern that keep them apart."
            )
        outputs[key] = job.source

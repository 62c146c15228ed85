"""Exceptions raised by stylecbn.

The library raises these with a message that names the offending file or value and says what
to do; the CLI turns them into one-line errors and exit codes.
"""


class StylecbnError(Exception):
    """Base class of every error stylecbn raises on purpose."""


class StylecbnWarning(UserWarning):
    """Something stylecbn skipped or worked around (a file left out, a setting lowered).

    The library reports these through Python's `warnings`; the CLI prints each as one
    `Warning: ...` line, without Python's file-and-line decoration.
    """


class StyleSpecError(StylecbnError, ValueError):
    """A style index, name, blend or style-weight vector is invalid."""


class ModelFileError(StylecbnError):
    """A model file is missing, truncated, empty or not a stylecbn model."""


class ImageError(StylecbnError):
    """An image cannot be read, is too small, or cannot be written."""


class VideoError(StylecbnError):
    """A video cannot be read, is damaged, or cannot be written in the format asked for."""


class DataError(StylecbnError):
    """A styles folder, content folder or manifest is unusable."""


class ConfigError(StylecbnError, ValueError):
    """A configuration value or file is invalid."""


class TrainingError(StylecbnError):
    """Training cannot go on (its loss is no longer a finite number)."""


def shorten(value, limit=80):
    """`repr(value)` cut to `limit` characters with an ellipsis, for echoing user input in a
    message: a 100 kB --style value must not become a 100 kB error line."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit limit for str(), or holding one
        holder = "" if isinstance(value, int) else f"a {type(value).__name__} holding "
        return f"({holder}a number of over 4,300 digits)"
    if len(text) <= limit:
        return text
    return f"{text[:limit - 1]}… ({len(str(value)):,} characters)"


def printable(text, limit=None):
    """`text` with control and other unprintable characters escaped ("\\x1b", "\\n"), so a
    name read from a file cannot move the cursor, recolour or retitle a terminal; cut to
    `limit` characters with an ellipsis."""
    text = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in str(text)
    )
    return text if limit is None or len(text) <= limit else text[:limit - 1] + "…"

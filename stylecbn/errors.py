"""Exceptions raised by stylecbn, and the one checker of numeric arguments.

The library raises these with a message that names the offending file or value and says what
to do; the CLI turns them into one-line errors and exit codes.

Numeric arguments are checked by `check_int` and `check_number`, with one rule for every
argument (below) and one voice: "`steps` must be an integer >= 1. Received: steps=0".
"""

import math
import numbers
import operator


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


# ------------------------------------------------------------------ checking numeric arguments
#
# The rule. An integer argument takes Python and NumPy integers (anything `operator.index`
# accepts, 0-d integer arrays included) and nothing else: never a bool (True is not a count),
# never a float, even 3.0 (a float where a count belongs is usually a mistake upstream). A
# number argument takes any real number (Python or NumPy, integers included) that is finite:
# never a bool, nan or inf.


def is_integer(value):
    """Whether `value` counts as an integer under the rule above (for arguments that accept
    an integer or something else, like a style index or a name)."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def is_number(value):
    """Whether `value` is a real number under the rule above, finite or not (for arguments
    that accept a number or something else, like a blend's weights)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def _bounds(minimum, maximum, above):
    """The range of a message: ">= 1", "> 0", "from 1 to 100", "<= 5" or ""."""
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if above is not None:
        return f" > {above}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _refuse(name, value, kind, minimum, maximum, above, hint, error):
    hint = f" ({hint})" if hint else ""
    # NumPy scalars shown as the numbers they are, not as "np.int64(-1)"
    if is_integer(value):
        value = operator.index(value)
    elif is_number(value):
        try:
            value = float(value)
        except OverflowError:
            pass
    raise error(
        f"`{name}` must be {kind}{_bounds(minimum, maximum, above)}{hint}. "
        f"Received: {name}={shorten(value)}"
    )


def check_int(name, value, *, minimum=None, maximum=None, hint="", error=ConfigError):
    """`value` as a Python int, or `error` unless it is an integer within the bounds.

    Args:
        name: the argument's name, as the caller wrote it.
        value: what was given; see the rule at the top of this section.
        minimum, maximum: inclusive bounds (None: unbounded).
        hint: a few words on what a value means, added to the message ("0 keeps the size").
        error: the exception class to raise (a `StylecbnError`).

    Examples:
    >>> check_int("steps", 5, minimum=1)
    5
    >>> check_int("steps", 0, minimum=1)
    Traceback (most recent call last):
    stylecbn.errors.ConfigError: `steps` must be an integer >= 1. Received: steps=0
    """
    if is_integer(value):
        number = operator.index(value)
        if (minimum is None or number >= minimum) and (maximum is None or number <= maximum):
            return number
    _refuse(name, value, "an integer", minimum, maximum, None, hint, error)


def check_number(name, value, *, minimum=None, maximum=None, above=None, hint="",
                 error=ConfigError):
    """`value` as a Python float, or `error` unless it is a finite real number within the
    bounds.

    Args:
        name: the argument's name, as the caller wrote it.
        value: what was given; see the rule at the top of this section.
        minimum, maximum: inclusive bounds (None: unbounded).
        above: an exclusive lower bound (`above=0`: positive), instead of `minimum`.
        hint: a few words on what a value means, added to the message.
        error: the exception class to raise (a `StylecbnError`).
    """
    if is_number(value):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float's range is not finite
            number = math.inf
        if (
            math.isfinite(number)
            and (minimum is None or number >= minimum)
            and (maximum is None or number <= maximum)
            and (above is None or number > above)
        ):
            return number
    _refuse(name, value, "a finite number", minimum, maximum, above, hint, error)


def printable(text, limit=None):
    """`text` with control and other unprintable characters escaped ("\\x1b", "\\n"), so a
    name read from a file cannot move the cursor, recolour or retitle a terminal; cut to
    `limit` characters with an ellipsis."""
    text = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in str(text)
    )
    return text if limit is None or len(text) <= limit else text[:limit - 1] + "…"

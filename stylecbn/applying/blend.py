"""The style a user chose, resolved once: `Blend` and its parser `resolve_style`.

A style specification is an index, a name, a blend string ("3:0.5,12:0.5", "starry:1,wave:2"),
a dict {index_or_name: weight} or a weight vector. `resolve_style` is the only place that
reads one: it checks it against the model's styles, normalizes the weights to sum 1 and
returns a `Blend`, an immutable value that the rest of the library and the CLI pass down
unchanged (a `Blend` given where a specification is expected is used as it is).
"""

import difflib
import math
from dataclasses import dataclass

import numpy as np

from stylecbn.errors import StyleSpecError, is_integer, is_number, printable, shorten

__all__ = ["Blend", "resolve_style", "style_index", "mix"]


@dataclass(frozen=True)
class Blend:
    """A resolved style: one weight per style of a model, summing to 1.

    Attributes:
        weights: tuple of floats (float32 values), one per style, summing to 1.
        label: a short file-name-safe name: "starry", or "starry50-wave50" for a mix
            (styles by falling weight, each with its percentage).
    """

    weights: tuple
    label: str

    @classmethod
    def from_weights(cls, weights, style_names):
        """A Blend of weights that already sum to 1 (as the parser and `mix` make them)."""
        weights = np.asarray(weights, dtype=np.float32)
        return cls(tuple(float(w) for w in weights), _label(weights, style_names))

    @property
    def vector(self):
        """The weights as a float32 array of shape (num_styles,)."""
        return np.asarray(self.weights, dtype=np.float32)

    @property
    def index(self):
        """The style's index when the blend is a single style, else None."""
        used = [i for i, w in enumerate(self.weights) if w > 0]
        return used[0] if len(used) == 1 else None


def mix(parts, style_names):
    """The Blend `sum(coefficient * blend.vector)` of (coefficient, Blend) pairs.

    The coefficients must be >= 0 and sum to 1 (interpolation steps, bilinear grid cells), so
    the mix of normalized blends is normalized as it is.
    """
    weights = sum(float(c) * np.asarray(b.weights, dtype=np.float64) for c, b in parts)
    return Blend.from_weights(weights, style_names)


_LISTED_STYLES = 10


def _label(weights, style_names):
    used = [i for i in np.argsort(-weights, kind="stable") if weights[i] > 0]
    if len(used) == 1:
        return _safe(style_names[used[0]])
    return "-".join(f"{_safe(style_names[i])}{round(100 * weights[i])}" for i in used)


def _safe(name):
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


def _valid_styles(model):
    # A model may have thousands of styles: the line names the first few.
    names = model.style_names[:_LISTED_STYLES]
    listing = ", ".join(f"{i}={printable(name, 40)}" for i, name in enumerate(names))
    if model.num_styles > _LISTED_STYLES:
        listing += (f", … and {model.num_styles - _LISTED_STYLES:,} more (`stylecbn styles` "
                    "lists them)")
    return (
        f"valid styles (index or name): {listing}; blends look like "
        f"'0:0.5,{min(1, model.num_styles - 1)}:0.5' or 'name:1,other:2'"
    )


def _close_names(text, names):
    """The style names a mistyped `text` may have meant: those it begins (case aside), then
    the close spellings (difflib's ratio of at least 0.6), at most three."""
    lowered = {name.lower(): name for name in names}
    key = text.lower()
    found = [name for low, name in lowered.items() if key and low.startswith(key)]
    found += [lowered[low] for low in difflib.get_close_matches(key, list(lowered), n=3)]
    return list(dict.fromkeys(found))[:3]


def style_index(key, model):
    """Index of one style given by index (int or digit string) or name.

    A whole number is always an index, even where a style is named like one ("1"): training
    refuses such names now, and older models keep their styles reachable by index.

    Raises:
        StyleSpecError: unknown name, out-of-range index or another type; the message lists
            the valid styles (values cut to 80 characters).
    """
    if isinstance(key, str):
        text = key.strip()
        digits = text.lstrip("-")
        if digits.isdigit() and digits.isascii():
            if len(digits) > 18:  # out of range, and int() refuses over 4,300 digits
                raise StyleSpecError(
                    f"Style index {shorten(text)} is out of range (this model has "
                    f"{model.num_styles} styles, 0..{model.num_styles - 1}): "
                    f"{_valid_styles(model)}."
                )
            key = int(text)
        elif text in model.style_names:
            return model.style_names.index(text)
        else:
            close = _close_names(text, model.style_names)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise StyleSpecError(f"Unknown style {shorten(text)}{hint}: {_valid_styles(model)}.")
    if not is_integer(key):
        raise StyleSpecError(
            f"A style must be an index or a name; got {shorten(key)}: {_valid_styles(model)}."
        )
    if not 0 <= int(key) < model.num_styles:
        raise StyleSpecError(
            f"Style index {shorten(int(key))} is out of range (this model has {model.num_styles} "
            f"styles, 0..{model.num_styles - 1}): {_valid_styles(model)}."
        )
    return int(key)


def _parse_weight(text, part, spec):
    try:
        return float(text)
    except ValueError:
        raise StyleSpecError(
            f"Bad blend {shorten(spec)}: {shorten(part)} needs a number after ':' (like "
            "'starry:0.5')."
        ) from None


def _number(weight, spec):
    """A dict or vector entry as a float; huge integers become inf (refused as not finite)."""
    if not is_number(weight):
        raise StyleSpecError(
            f"Bad blend {shorten(spec)}: weight {shorten(weight)} is not a number."
        )
    try:
        return float(weight)
    except OverflowError:
        return math.inf


def _normalized(weights, spec):
    """Weights (Python floats, any size) scaled to sum 1, as float32.

    Divided by their largest first, so that weights near the float64 limit ("0:1e308,1:1e308")
    give their blend (0.5 each) instead of overflowing to inf and a grey image of zeros.
    """
    if not all(math.isfinite(w) for w in weights):
        raise StyleSpecError(f"Bad blend {shorten(spec)}: weights must be finite numbers.")
    if any(w < 0 for w in weights):
        raise StyleSpecError(f"Bad blend {shorten(spec)}: weights must not be negative.")
    top = max(weights, default=0.0)
    if top <= 0:
        raise StyleSpecError(f"Bad blend {shorten(spec)}: at least one weight must be above 0.")
    scaled = np.asarray([w / top for w in weights], dtype=np.float64)
    return (scaled / scaled.sum()).astype(np.float32)


def _one_hot(index, num_styles):
    return np.eye(num_styles, dtype=np.float32)[index]


def _add(weights, index, weight):
    """Add to one entry of a list of Python floats (inf on overflow, without NumPy warnings)."""
    weights[index] = weights[index] + weight


def _weights(spec, model):
    """The normalized float32 weight vector of a specification (see `resolve_style`)."""
    num_styles = model.num_styles
    if isinstance(spec, dict):
        if not spec:
            raise StyleSpecError(f"Empty style blend {{}}: {_valid_styles(model)}.")
        weights = [0.0] * num_styles
        for key, weight in spec.items():
            _add(weights, style_index(key, model), _number(weight, spec))
        return _normalized(weights, spec)
    if isinstance(spec, str):
        text = spec.strip()
        if text in model.style_names or (":" not in text and "," not in text):
            return _one_hot(style_index(text, model), num_styles)
        weights = [0.0] * num_styles
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise StyleSpecError(
                    f"Bad blend {shorten(spec)}: empty entry; write it like 'starry:1,wave:2'."
                )
            if part in model.style_names or ":" not in part:
                key, weight = part, 1.0
            else:
                key, _, weight_text = part.rpartition(":")
                weight = _parse_weight(weight_text, part, spec)
            _add(weights, style_index(key, model), weight)
        return _normalized(weights, spec)
    if is_integer(spec):
        return _one_hot(style_index(int(spec), model), num_styles)
    if isinstance(spec, (list, tuple, np.ndarray)):
        nested = (spec.ndim != 1 if isinstance(spec, np.ndarray)
                  else any(isinstance(w, (list, tuple, np.ndarray)) for w in spec))
        if nested or len(spec) != num_styles:
            shape = spec.shape if isinstance(spec, np.ndarray) else (len(spec),)
            got = "a nested sequence" if nested and not isinstance(spec, np.ndarray) else \
                f"shape {shape}"
            raise StyleSpecError(
                f"A style weight vector needs one entry per style ({num_styles}); got {got}: "
                f"{_valid_styles(model)}."
            )
        return _normalized([_number(w, spec) for w in spec], spec)
    raise StyleSpecError(
        f"Cannot use {shorten(spec)} ({type(spec).__name__}) as a style: "
        f"{_valid_styles(model)}."
    )


def resolve_style(spec, model):
    """Resolve a style specification into a `Blend`.

    Args:
        spec: a `Blend` (returned as it is), an index (int or digit string; a whole number is
            always an index), a style name, a blend string such as "3:0.5,12:0.5" or
            "starry:1,wave:2" (an entry without ":" has weight 1; repeated entries add up), a
            dict {index_or_name: weight}, or a sequence/array of one weight per style.
        model: the network (anything with `style_names` and `num_styles`).

    Returns:
        A `Blend` whose weights sum to 1.

    Raises:
        StyleSpecError: unknown name, out-of-range index, malformed blend, negative or
            non-finite weights, all-zero weights, a vector (or a Blend) of the wrong length.
            The message lists the valid indices and names.
    """
    if isinstance(spec, Blend):
        if len(spec.weights) != model.num_styles:
            raise StyleSpecError(
                f"Blend {spec.label!r} has {len(spec.weights)} weights but this model has "
                f"{model.num_styles} styles: {_valid_styles(model)}."
            )
        return spec
    return Blend.from_weights(_weights(spec, model), model.style_names)

"""Checks of the arguments a student passes, shared by every public function of the course.

Each check returns the value as a plain Python type, or raises an error that names the argument,
quotes the value and says what is expected, *before* any TensorFlow graph is traced (a bad value
would otherwise surface as an autograph or graph-execution traceback, or be silently truncated:
``int(2.7) == 2``).

Two kinds of error:

- a value of the wrong *type* (``"4"`` or ``True`` where a number belongs, ``2.7`` where a whole
  number belongs) raises :class:`WrongTypeError`, a ``TypeError`` that is also a ``ValueError``,
  so ``except ValueError`` catches every bad argument;
- a value of the right type but out of range raises ``ValueError``.

NumPy scalars (``np.int64(3)``, ``np.float32(4.0)``) and 0-d arrays are accepted wherever the
Python number is.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

__all__ = [
    "WrongTypeError", "describe", "suggestion", "check_number", "check_int", "check_steps", "check_seed",
    "check_flag", "check_size", "check_batch", "MAX_WORKING_BYTES", "check_memory", "seed_offset", "effective_seed",
    "MAX_GRADIENT_BYTES", "check_gradient_memory",
]

MAX_WORKING_BYTES = 1_000_000_000
"""The most memory (bytes) the arrays of one call may take, as estimated before it starts: 1 GB,
the same bound as a loop's history (:data:`course_utils.core.loop.MAX_HISTORY_BYTES`). A
careless size or count (a 30000 x 30000 picture, a population of 3000 ImageNet pictures) would
otherwise fill the computer's memory and kill the kernel; it is refused up front instead."""

MAX_SEED = 2**31 - 1
"""Seeds become 32-bit integers inside the compiled loop (stateless random numbers)."""


class WrongTypeError(TypeError, ValueError):
    """An argument of the wrong type. A ``TypeError``, and a ``ValueError`` too, so that one
    ``except ValueError`` catches every bad argument of the course."""


def describe(value: Any) -> str:
    """The value quoted and its type, for messages: ``'4' (a str)``, ``2.7 (a float)``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{text} ({article} {kind})"


def suggestion(value: Any, whole: bool) -> str:
    """What to write instead, where that is clear: ``"; write 145"`` for ``145.0`` where a whole
    number belongs (``whole``), ``"; write the number without quotes"`` for ``"4"``; else ``""``."""
    if isinstance(value, (str, np.str_)):
        try:
            float(value)
        except ValueError:
            return ""
        return "; write the number without quotes"
    if whole and isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return f"; write {int(value)}"
    return ""


def _scalar(value: Any) -> Any:
    """A 0-d NumPy array or tensor as its Python scalar; anything else unchanged."""
    if getattr(value, "shape", None) == () and not isinstance(value, (np.generic, str)):
        try:
            return np.asarray(value).item()
        except (TypeError, ValueError):
            return value
    return value


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _bounds(minimum: float | None, maximum: float | None, above: bool, below: bool) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if above else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"{'<' if below else '<='} {maximum:g}")
    return " and ".join(parts)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: bool = False,
    below: bool = False,
) -> float:
    """``value`` as a finite float within the bounds, or a clear error.

    Args:
        name: the argument's name, for the message.
        value: an int or float (Python or NumPy); not a bool, not a str.
        minimum, maximum: inclusive bounds (``None``: no bound).
        above, below: make ``minimum`` / ``maximum`` exclusive (``> 0`` rather than ``>= 0``).

    Raises:
        WrongTypeError: not a number (``"4"``, ``True``, ``None``, a list...).
        ValueError: NaN, infinite, or outside the bounds.
    """
    bounds = _bounds(minimum, maximum, above, below)
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Real):
        expected = f"a number {bounds}".rstrip()
        raise WrongTypeError(f"{name} must be {expected}, got {describe(value)}{suggestion(value, False)}")
    v = float(value)
    low_bad = minimum is not None and (v <= minimum if above else v < minimum)
    high_bad = maximum is not None and (v >= maximum if below else v > maximum)
    if not np.isfinite(v) or low_bad or high_bad:
        expected = f"a finite number {bounds}".rstrip()
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return v


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within ``minimum..maximum`` (inclusive), or a clear error.

    Floats are refused even when whole (``145.0``): an index or a count is written as an int.

    Raises:
        WrongTypeError: not a whole number (``2.7``, ``145.0``, ``"2"``, ``True``, ``None``).
        ValueError: outside the bounds.
    """
    if minimum is not None and maximum is not None:
        expected = f"a whole number in {minimum}..{maximum}"
    else:
        expected = f"a whole number {_bounds(minimum, maximum, False, False)}".rstrip()
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise WrongTypeError(f"{name} must be {expected}, got {describe(value)}{suggestion(value, True)}")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {expected}, got {v}")
    return v


def check_steps(steps: Any) -> int:
    """``steps`` as an int, or a clear error if it is not a whole number >= 1."""
    return check_int("steps", steps, minimum=1)


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed for the course's random numbers: a whole number in ``0..2**31 - 1``."""
    return check_int(name, seed, minimum=0, maximum=MAX_SEED)


def check_flag(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    """``True`` or ``False`` (or ``None`` if allowed); ``"False"`` is refused, not read as true."""
    if value is None and allow_none:
        return None
    if not _is_bool(value):
        expected = "True, False or None" if allow_none else "True or False"
        raise WrongTypeError(f"{name} must be {expected}, got {describe(value)}")
    return bool(value)


def check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """``(height, width)`` in whole pixels >= 1; one whole number means a square."""
    size = _scalar(size)
    if isinstance(size, numbers.Integral) and not _is_bool(size):
        size = (size, size)
    expected = f"{name} must be (height, width): two whole numbers >= 1 (or one, for a square)"
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise WrongTypeError(f"{expected}, got {describe(size)}{suggestion(size, True)}")
    try:
        h, w = (check_int(name, s, minimum=1) for s in size)
    except WrongTypeError:
        raise WrongTypeError(f"{expected}, got {size!r}") from None
    except ValueError:
        raise ValueError(f"{name} must be positive: (height, width), each >= 1 pixel, got {size!r}") from None
    return h, w


def check_batch(x: np.ndarray, what: str = "images") -> np.ndarray:
    """Refuse an empty batch ``(0, H, W, C)``: there would be nothing to optimise or report."""
    if len(x) == 0:
        raise ValueError(f"got an empty batch of {what} (shape {tuple(x.shape)}); give at least one image")
    return x


def check_memory(name: Any, value: Any, need: float, most: Any, what: str, limit: float = MAX_WORKING_BYTES) -> None:
    """Refuse a call whose arrays would take more than ``limit`` bytes (:data:`MAX_WORKING_BYTES`).

    Args:
        name: the argument that scales the memory (``"population"``, ``"size"``...).
        value: its value, quoted in the message.
        need: the bytes the call would take with ``value`` (an estimate made before any work).
        most: the largest value of the argument that fits, named in the message.
        what: what takes the memory, for the message (``"3,000 pictures of 224 x 224 x 3 and
            the model's activations"``).

    Raises:
        ValueError: ``need > limit``; the message names the largest value that fits.
    """
    if need > limit:
        shown = f"{value:,}" if isinstance(value, numbers.Integral) and not _is_bool(value) else repr(value)
        raise ValueError(
            f"{name}={shown} would take about {need / 1e9:,.1f} GB of memory ({what}); the limit is "
            f"{limit / 1e9:g} GB so one call cannot fill the computer's memory. Use {name} "
            f"at most {most}"
        )


# ---------------------------------------------------------------- the seed knob

_SEED_VARIABLE = "COURSE_SEED"
"""The environment variable that holds the course-wide seed offset (a whole number >= 0)."""


def seed_offset() -> int:
    """The course-wide seed offset: ``int($COURSE_SEED)``, or 0 when it is unset or empty.

    Raises:
        ValueError: the variable is set to something other than a whole number in ``0..2**31 - 1``
            (the message quotes it and says how to fix it).
    """
    text = os.environ.get(_SEED_VARIABLE, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"{_SEED_VARIABLE}={text!r} is not a seed offset: set it to a whole number such as 0, 1 or 2 "
            f"(or unset it for the course's own seeds)"
        )
    return value


def effective_seed(seed: object, name: str = "seed") -> int:
    """The seed a call really uses: ``seed`` (checked, ``0..2**31 - 1``) plus :func:`seed_offset`,
    wrapped into the same range. With ``COURSE_SEED`` unset it is ``seed`` itself.

    Every seeded call in the course (the loops, the start pictures, PGD's random starts, lesson 3's
    noise, lesson 4's photo variants) draws from ``effective_seed(seed)``, so ``COURSE_SEED=1 make
    test`` runs everything as if each seed were one more: the stability harness
    (``tools/stability.py``) uses it to check that a claim holds for the lesson's reason, not for one
    lucky picture. The offset is read from the environment, never set by the course."""
    return (check_seed(seed, name) + seed_offset()) % (MAX_SEED + 1)

MAX_GRADIENT_BYTES = 5_000_000_000
"""The most memory (bytes) one gradient batch of an attack may take, as estimated by
:func:`check_gradient_memory`: 5 GB. Higher than :data:`MAX_WORKING_BYTES` because the lessons'
own batches need it (16 pictures through EfficientNet-Lite0 and Lite1 together: about 4 GB); a
careless batch (64 pictures through both, or a million faces) would take 6 GB or far more and
kill a laptop's kernel."""


def _activation_floats(model: Any) -> int:
    """The output sizes of all the model's layers (nested models included), per example, read from
    the layers' shapes without running the model; an unknown dimension counts as 1."""
    floats = 0
    for layer in getattr(model, "layers", ()):
        if hasattr(layer, "layers"):  # a nested model (an ensemble, a defended model)
            floats += _activation_floats(layer)
            continue
        try:
            outputs = layer.output
        except (AttributeError, ValueError):  # a layer never called in a graph: no known size
            continue
        for out in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            floats += int(np.prod([d or 1 for d in tuple(out.shape)[1:]]))
    return floats


def check_gradient_memory(model: Any, images: Any, *, batch_size: int | None = None, copies: int = 1) -> None:
    """Refuse a gradient attack whose batch would not fit in :data:`MAX_GRADIENT_BYTES`, before any work.

    The estimate per image: the output sizes of all the model's layers x 4 bytes (float32) x 1.25
    (the forward pass's outputs, kept for the backward pass, and the gradients it holds while it
    runs), times ``copies``; a model without ``layers`` (a plain function) counts as its input.
    Plus three float32 copies of every image (the batch, the adversarial batch, a working copy).

    Args:
        model: the attacked model (its layers' output sizes give the memory per example).
        images: the images as passed, ``(H, W, C)`` or ``(N, H, W, C)`` (only their shape is read).
        batch_size: images per compiled call (``None``: all at once).
        copies: model calls per image and step (EOT draws, samples, a detector's squeezers).

    Raises:
        ValueError: the message names the largest ``batch_size`` (or number of images) that fits.
    """
    try:
        shape = tuple(getattr(images, "shape", None) or np.shape(images))
    except (ValueError, TypeError):
        return  # not one array: the image check says so
    if len(shape) not in (3, 4) or not all(isinstance(d, numbers.Integral) for d in shape):
        return  # not an image batch: the image check says so
    n, pixels = (1 if len(shape) == 3 else int(shape[0])), int(np.prod(shape[-3:])) * 4
    per = max(_activation_floats(model) * 5, pixels) * copies
    arrays = 3 * pixels
    chunk = n if batch_size is None else min(batch_size, n)
    need = n * arrays + chunk * per
    what = f"{chunk:,} image(s) through {getattr(model, 'name', 'the model')}'s layers, {per / 1e6:,.0f} MB each"
    fits = int((MAX_GRADIENT_BYTES - n * arrays) // per)
    if batch_size is not None and fits >= 1:
        check_memory("batch_size", batch_size, need, f"{fits:,}", what, MAX_GRADIENT_BYTES)
    most = f"{max(1, int(MAX_GRADIENT_BYTES // (arrays + per))):,}"
    check_memory("len(images)", n, need, most, what, MAX_GRADIENT_BYTES)

"""Checks of the arguments a student passes, shared by every public function of the course.

Each check returns the value as a plain Python type, or raises an error that names the argument,
quotes the value and says what is expected, *before* any TensorFlow graph is traced. A value of the
wrong *type* (``"4"``, ``True``, ``2.7`` where a whole number belongs) raises :class:`WrongTypeError`
(also a ``ValueError``); a value out of range raises ``ValueError``. NumPy scalars and 0-d arrays
count as the Python number. Also here: the memory bounds of one call, and the one seed knob
(``COURSE_SEED``, :func:`effective_seed`).
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

__all__ = [
    "WrongTypeError", "describe", "check_number", "check_int", "check_steps", "check_seed", "check_flag", "check_size",
    "MAX_WORKING_BYTES", "check_memory", "effective_seed", "MAX_GRADIENT_BYTES", "check_gradient_memory",
]

MAX_WORKING_BYTES = 1_000_000_000
"""The most memory (bytes) the arrays of one call, or a run's history, may take, as estimated before
it starts: 1 GB. A careless size or count (a 30000 x 30000 picture, a population of 3000 ImageNet
pictures, ``steps=10**9``) would otherwise fill the computer's memory and kill the kernel."""

MAX_SEED = 2**31 - 1
"""Seeds become 32-bit integers inside the compiled loop (stateless random numbers)."""


class WrongTypeError(TypeError, ValueError):
    """An argument of the wrong type. A ``TypeError``, and a ``ValueError`` too, so that one
    ``except ValueError`` catches every bad argument of the course."""


def describe(value: Any, whole: bool | None = None) -> str:
    """The value quoted and its type, for messages: ``'4' (a str)``, ``2.7 (a float)``. Where a number
    belongs (``whole``: a whole one), what to write instead if that is clear: ``"; write 145"`` for
    ``145.0``, ``"; write the number without quotes"`` for ``"4"``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{text} ({article} {kind}){'' if whole is None else _suggestion(value, whole)}"


def _suggestion(value: Any, whole: bool) -> str:
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
    """``value`` (an int or float, not a bool or a str) as a finite float within the inclusive bounds
    ``minimum``, ``maximum`` (``None``: no bound; ``above``, ``below`` make them exclusive), or a
    :class:`WrongTypeError` (``"4"``, ``True``, ``None``...) or ``ValueError`` (NaN, infinite, out of
    bounds) that names ``name``."""
    bounds = _bounds(minimum, maximum, above, below)
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Real):
        expected = f"a number {bounds}".rstrip()
        raise WrongTypeError(f"{name} must be {expected}, got {describe(value, whole=False)}")
    v = float(value)
    low_bad = minimum is not None and (v <= minimum if above else v < minimum)
    high_bad = maximum is not None and (v >= maximum if below else v > maximum)
    if not np.isfinite(v) or low_bad or high_bad:
        expected = f"a finite number {bounds}".rstrip()
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return v


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within ``minimum..maximum`` (inclusive), or a :class:`WrongTypeError` (not
    a whole number: ``2.7``, ``"2"``, ``True``, and ``145.0`` too, as an index or a count is written as
    an int) or ``ValueError`` (out of bounds)."""
    if minimum is not None and maximum is not None:
        expected = f"a whole number in {minimum}..{maximum}"
    else:
        expected = f"a whole number {_bounds(minimum, maximum, False, False)}".rstrip()
    value = _scalar(value)
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise WrongTypeError(f"{name} must be {expected}, got {describe(value, whole=True)}")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {expected}, got {v}")
    return v


def check_steps(steps: Any, batch: int = 0, width: int = 0, *, at_least: bool = False) -> int:
    """``steps`` as a whole number >= 1, or a clear error. With ``batch``: also refuse a run whose
    history, ``steps + 1`` rows of ``batch`` losses and ``batch x width`` tracked values (float32, kept
    to plot and report), would take more than :data:`MAX_WORKING_BYTES`; the message gives the size
    and the most steps that fit. ``at_least``: ``width`` is only a lower bound (not traced yet)."""
    steps = check_int("steps", steps, minimum=1)
    per_step = 4 * batch * (1 + width)
    need = (steps + 1) * per_step
    if need > MAX_WORKING_BYTES:
        raise ValueError(
            f"steps={steps:,} would keep {'at least ' if at_least else ''}{need / 1e9:,.1f} GB of history "
            f"({batch} image(s) x {1 + width}{'+' if at_least else ''} "
            f"values x 4 bytes per step, kept in memory to plot and report); the limit is "
            f"{MAX_WORKING_BYTES / 1e9:g} GB so a run cannot fill the computer's memory. Use fewer "
            f"steps (at most {MAX_WORKING_BYTES // per_step - 1:,} here) or fewer images"
        )
    return steps


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
        raise WrongTypeError(f"{expected}, got {describe(size, whole=True)}")
    try:
        h, w = (check_int(name, s, minimum=1) for s in size)
    except WrongTypeError:
        raise WrongTypeError(f"{expected}, got {size!r}") from None
    except ValueError:
        raise ValueError(f"{name} must be positive: (height, width), each >= 1 pixel, got {size!r}") from None
    return h, w


def check_memory(name: Any, value: Any, need: float, most: Any, what: str, limit: float = MAX_WORKING_BYTES) -> None:
    """Refuse (``ValueError``) a call whose arrays would take ``need`` bytes (estimated before any work)
    when that is more than ``limit``: the message quotes the argument ``name=value`` that scales the
    memory, ``what`` takes it (``"3,000 pictures of 224 x 224 x 3 ..."``) and ``most``, the largest
    value that fits."""
    if need > limit:
        shown = f"{value:,}" if isinstance(value, numbers.Integral) and not _is_bool(value) else repr(value)
        raise ValueError(
            f"{name}={shown} would take about {need / 1e9:,.1f} GB of memory ({what}); the limit is "
            f"{limit / 1e9:g} GB so one call cannot fill the computer's memory. Use {name} "
            f"at most {most}"
        )


# ---------------------------------------------------------------- the seed knob


def effective_seed(seed: object, name: str = "seed") -> int:
    """The seed a call really uses: ``seed`` (checked, ``0..2**31 - 1``) plus the course-wide offset
    ``int($COURSE_SEED)`` (0 when unset or empty), wrapped into the same range; ``effective_seed(0)``
    is the offset itself, what a seed tensor inside a compiled graph adds.

    Every seeded call in the course draws from it, so ``COURSE_SEED=1 make test`` runs everything as
    if each seed were one more: the stability harness (``tools/stability.py``) uses it to check that a
    claim holds for the lesson's reason, not for one lucky picture. The course never sets it.

    Raises:
        ValueError: a bad ``seed``, or ``COURSE_SEED`` set to anything but a whole number in
            ``0..2**31 - 1`` (the message quotes it and says how to fix it).
    """
    seed = check_seed(seed, name)
    text = os.environ.get("COURSE_SEED", "").strip()
    try:
        offset = int(text or 0)
    except ValueError:
        offset = -1
    if not 0 <= offset <= MAX_SEED:
        raise ValueError(f"COURSE_SEED={text!r} is not a seed offset: set it to a whole number such as 0, 1 or 2 "
                         f"(or unset it for the course's own seeds)")
    return (seed + offset) % (MAX_SEED + 1)


MAX_GRADIENT_BYTES = 5_000_000_000
"""The most memory (bytes) one gradient batch of an attack may take (:func:`check_gradient_memory`):
5 GB, as the lessons' own batches need about 4 (16 pictures through EfficientNet-Lite0 and Lite1);
a careless one (64 pictures through both, a million faces) would kill a laptop's kernel."""


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

    ``images``: as passed, ``(H, W, C)`` or ``(N, H, W, C)`` (only the shape is read); ``batch_size``:
    images per compiled call (``None``: all at once); ``copies``: model calls per image and step (EOT
    draws, samples, a detector's squeezers). The ``ValueError`` names the largest ``batch_size`` (or
    number of images) that fits.
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

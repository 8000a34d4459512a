"""Claims a lesson makes about its own numbers, checked with their margin and recorded.

A notebook states what the reader should see ("the attack reaches p >= 0.95") and checks it, so
that CI notices when a lesson stops being true. Feature visualisation and attacks are chaotic: a
different CPU, thread count or seed gives a different picture, so a claim is worth making only if
it holds with room to spare. :func:`claim` checks one and, when the environment variable
``COURSE_CLAIMS_LOG`` names a file, appends one JSON line to it (the claim, its value, its
threshold and its margin); ``tools/stability.py`` runs every notebook and test under several
perturbations and tables those lines.

The margin says how far the value is from failing, in one of two scales:

- ``"relative"`` (the default): the distance as a fraction of the threshold, ``|value -
  threshold| / |threshold|`` (a ratio 12 against a threshold 5 has margin 1.4);
- ``"log-odds"`` for probabilities and rates in 0..1: the distance in ``log(p / (1 - p))``, so
  0.999 against 0.99 counts as far (2.3) and 0.993 against 0.99 as near (0.35).

A claim whose worst margin over the perturbations is under :data:`MIN_MARGIN` (10%, or 0.5 in
log-odds) is too close to its threshold to be stated as a fact of the lesson.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

__all__ = ["CLAIMS_LOG_VARIABLE", "MIN_MARGIN", "ClaimFailed", "claim"]

CLAIMS_LOG_VARIABLE = "COURSE_CLAIMS_LOG"
"""The environment variable naming the file that :func:`claim` appends its records to."""

MIN_MARGIN = {"relative": 0.10, "log-odds": 0.5}
"""The smallest worst-case margin a claim may have, per scale."""

_OPS = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
}
_EPS = 1e-6  # probabilities are clipped to [_EPS, 1 - _EPS] before their log-odds


class ClaimFailed(AssertionError):
    """A lesson's claim did not hold: the message says the value, the threshold and what to check."""


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def _margin(value: float, op: str, threshold: float, scale: str = "relative") -> float | None:
    """How far ``value`` is from breaking ``value op threshold``: positive when it holds,
    negative when it does not, ``None`` for a relative margin against a threshold of 0.

    Args:
        value, threshold: plain numbers; for ``scale="log-odds"`` both in 0..1.
        op: one of ``">", ">=", "<", "<="``.
        scale: ``"relative"`` (fraction of ``|threshold|``) or ``"log-odds"``.
    """
    if op not in _OPS:
        raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
    if scale not in MIN_MARGIN:
        raise ValueError(f"scale must be one of {sorted(MIN_MARGIN)}, got {scale!r}")
    if math.isnan(value):
        return -math.inf
    sign = 1.0 if op.startswith(">") else -1.0
    if scale == "log-odds":
        if not (0.0 <= value <= 1.0 and 0.0 <= threshold <= 1.0):
            raise ValueError(f"a log-odds margin needs a value and threshold in 0..1, got {value!r} and {threshold!r}")
        return sign * (_logit(value) - _logit(threshold))
    if threshold == 0:
        return None
    return sign * (value - threshold) / abs(threshold)


def _number(name: str, x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"a claim's {name} must be a number, got {type(x).__name__} {x!r}") from None
    return v


def claim(what: str, value: Any, op: str, threshold: Any, *, scale: str = "relative", hint: str = "") -> float:
    """Check ``value op threshold``, record it (see the module's docstring) and return ``value``.

    Args:
        what: the claim in a few words, unique in its notebook; it names the row of the stability
            table (e.g. ``"L2 king penguin: final probability"``).
        value: the number the lesson computed (a Python or NumPy scalar).
        op: ``">", ">=", "<"`` or ``"<="``.
        threshold: the number it is compared with.
        scale: ``"relative"`` or ``"log-odds"`` (for probabilities and rates in 0..1).
        hint: what to check if the claim fails (appended to the error message).

    Raises:
        ClaimFailed: the claim does not hold; the message quotes the value and the threshold.
        TypeError, ValueError: ``value`` or ``threshold`` is not a number, or ``op``/``scale``
            is not one of the choices.
    """
    v, t = _number("value", value), _number("threshold", threshold)
    m = _margin(v, op, t, scale)
    held = bool(_OPS[op](v, t))
    path = os.environ.get(CLAIMS_LOG_VARIABLE, "").strip()
    if path:
        record = {"claim": str(what), "value": v, "op": op, "threshold": t, "scale": scale,
                  "margin": m if m is None or math.isfinite(m) else None, "held": held}
        with open(path, "a", encoding="utf-8") as f:  # one short line per write: safe to append from two processes
            f.write(json.dumps(record) + "\n")
    if not held:
        message = f"{what}: {v:.4g} is not {op} {t:.4g}"
        raise ClaimFailed(message + (f". {hint}" if hint else ""))
    return value

"""How a lesson checks itself: the claims it makes about its own numbers, and the grading of the
students' answers (the one helper every ``lessonN`` module shares, :class:`Exercise`).

**Claims.** A notebook states what the reader should see ("the attack reaches p >= 0.95") and checks it, so
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

**Grading.** Every check takes the student's answer first and ends in one of three ways (it returns nothing,
so a notebook shows only what it prints):

- the answer is ``None``, or a function whose body is still the student copy's ``return None``:
  it prints "not answered yet" (:meth:`Exercise.not_answered`), so a student copy runs from top to bottom
  without an error;
- the answer is right: it prints "correct" and why (:meth:`Exercise.correct`);
- the answer is wrong: it raises :class:`WrongAnswer`, whose message quotes the answer and gives a
  hint that says which property failed (never the answer itself), so "Run All" stops where the
  student has work to do.

Two kinds of answer are graded. A *value* (read off the lesson, or predicted on paper) is
compared with a value the check computes itself, on the student's machine, and shown only when
the answer is right. A *function* the student writes is run on hidden cases (:meth:`Exercise.run_answer`,
with random numbers from :meth:`Exercise.hidden_rng`) and compared with a reference kept in the lesson's
module.
"""

from __future__ import annotations

import json
import math
import os
from numbers import Integral, Real
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["CLAIMS_LOG_VARIABLE", "MIN_MARGIN", "claim", "NOT_ANSWERED", "WrongAnswer", "Exercise"]

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


class _ClaimFailed(AssertionError):
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
        AssertionError: the claim does not hold; the message quotes the value and the threshold.
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
        raise _ClaimFailed(message + (f". {hint}" if hint else ""))
    return value


NOT_ANSWERED = "not answered yet"


class WrongAnswer(AssertionError):
    """A wrong answer to an exercise. The message says what was wrong and gives a hint."""


class Exercise:
    """The grading of one exercise, named once (``ex = Exercise("Exercise 4")``; ``f"{ex}"`` is the name).

    Each method takes the student's answer (or what their function returned) and either returns it
    in the form the check compares, prints a verdict, or raises :class:`WrongAnswer` whose message
    starts with the exercise's name.
    """

    class Stub(Exception):
        """The student's function still returns ``None`` (the student copy's placeholder body)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name

    def not_answered(self, *answers: Any) -> bool:
        """Whether any of ``answers`` is still ``None``; if so, print that the exercise is not answered yet."""
        if any(a is None for a in answers):
            print(f"{self}: {NOT_ANSWERED}. Set your answer in the cell above, run it, then run this cell again.")
            return True
        return False

    def not_yet(self) -> None:
        """Print that the exercise is not answered yet (its function is still the student copy's stub)."""
        self.not_answered(None)

    def correct(self, why: str) -> None:
        """Print that the answer is right, and ``why``."""
        print(f"{self}: correct. {why}")

    def whole_number(self, name: str, value: Any) -> int:
        """``value`` as an ``int``; anything but a whole number (``True`` and ``4.0`` included) is wrong."""
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise WrongAnswer(f"{self}: {name} must be a whole number, got {value!r} ({type(value).__name__}).")
        return int(value)

    def true_or_false(self, name: str, value: Any) -> bool:
        """``value`` as a ``bool``; anything but ``True`` or ``False`` (``"no"``, ``0``) is wrong."""
        if not isinstance(value, (bool, np.bool_)):
            raise WrongAnswer(f"{self}: {name} must be True or False, got {value!r}.")
        return bool(value)

    def a_number(self, name: str, value: Any) -> float:
        """``value`` (a prediction) as a finite ``float``; a string, a bool, NaN or infinity is wrong."""
        if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(float(value)):
            raise WrongAnswer(f"{self}: {name} must be a number, got {value!r}.")
        return float(value)

    def one_of(self, name: str, value: Any, choices: Sequence[float]) -> float:
        """``value`` as a ``float`` if it is one of ``choices`` (e.g. a table's budgets), else wrong."""
        if isinstance(value, bool) or not isinstance(value, Real) or float(value) not in [float(c) for c in choices]:
            raise WrongAnswer(f"{self}: choose {name} from {[float(c) for c in choices]}, got {value!r}.")
        return float(value)

    def check_function(self, fn: Any) -> bool:
        """Whether ``fn`` is an answer to check: ``None`` says "not answered yet" (``False``), a
        non-function is wrong."""
        if self.not_answered(fn):
            return False
        if not callable(fn):
            raise WrongAnswer(f"{self}: the answer is a function (def ...), got {type(fn).__name__} {fn!r}.")
        return True

    def run_answer(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` on a hidden case: an exception in the student's code becomes a hint, a result
        of ``None`` raises :class:`Exercise.Stub` (the check then says "not answered yet")."""
        try:
            out = fn(*args)
        except Exception as err:  # the student's code: any error becomes a hint
            raise WrongAnswer(f"{self}: your function raised {type(err).__name__}: {err}") from None
        if out is None:
            raise Exercise.Stub
        return out

    def answer_array(self, out: Any, shape: tuple, what: str) -> np.ndarray:
        """What the student's function returned, as a float64 array of ``shape``; ``what`` says in
        words what it should be (e.g. "one price per image") for the hint when it is not."""
        try:
            a = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            raise WrongAnswer(f"{self}: your function should return {what}, got {type(out).__name__}.") from None
        if a.shape != tuple(shape):
            raise WrongAnswer(f"{self}: your function returned shape {a.shape}, expected {tuple(shape)}: {what}.")
        return a

    @staticmethod
    def hidden_rng(seed: int) -> np.random.Generator:
        """The random numbers of a check's hidden cases: fixed by ``seed``, not the course's ``COURSE_SEED``."""
        return np.random.default_rng(seed)

    def smallest_that_works(
        self,
        answer: Any,
        candidates: Sequence[float],
        works: Callable[[float], tuple[bool, float]],
        *,
        failing: str,
        reached: str = "p",
        budget: str = "epsilon={:g}",
    ) -> None:
        """Check ``answer``, the smallest budget in ``candidates`` (ascending, each double the one
        before; grey levels) at which an attack works.

        ``works(epsilon)`` runs the attack and gives ``(success, p)``, ``p`` the probability (0..1) of
        the class it aims at. It runs at the answer, and, if that works, at the next smaller candidate,
        which must not. The hints say that at the answer ``failing`` (e.g. "20 steps do not make the
        model say 'man'"); ``reached`` names ``p`` in the "correct" line and ``budget`` spells a budget.
        """
        if self.not_answered(answer):
            return
        eps = self.one_of("smallest_epsilon", answer, candidates)
        ok, p = works(eps)
        if not ok:
            raise WrongAnswer(f"{self}: at {budget.format(eps)}, {failing} (p = {p:.3f}). Try a bigger budget.")
        smaller = [c for c in candidates if c < eps]
        if smaller:
            ok_smaller, p_smaller = works(max(smaller))
            if ok_smaller:
                raise WrongAnswer(
                    f"{self}: {budget.format(eps)} works, but so does the smaller {budget.format(max(smaller))} "
                    f"(p = {p_smaller:.3f}). Try smaller budgets."
                )
        self.correct(f"{budget.format(eps)} reaches {reached} = {p:.3f}; half of it is not enough.")

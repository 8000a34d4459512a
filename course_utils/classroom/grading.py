"""How a lesson checks itself: :func:`claim`, the claims it makes about its own numbers, and
:class:`Exercise`, the grading every ``lessonN`` module's checks share.

A claim is worth stating only if it holds with room to spare on other CPUs, thread counts and seeds:
:func:`claim` records its margin, ``tools/stability.py`` tables the margins over those perturbations,
and a worst margin under :data:`MIN_MARGIN` is too thin to state as a fact of the lesson.
"""

from __future__ import annotations

import functools
import json
import math
import os
from numbers import Integral, Real
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["CLAIMS_LOG_VARIABLE", "MIN_MARGIN", "claim", "NOT_ANSWERED", "Exercise"]

CLAIMS_LOG_VARIABLE = "COURSE_CLAIMS_LOG"
"""The environment variable naming the file that :func:`claim` appends its records to (one JSON line each)."""

MIN_MARGIN = {"relative": 0.10, "log-odds": 0.5}
"""The smallest worst-case margin a claim may have, per scale."""

_OPS = {">": lambda v, t: v > t, ">=": lambda v, t: v >= t, "<": lambda v, t: v < t, "<=": lambda v, t: v <= t}
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
        scale: ``"relative"``: ``|value - threshold| / |threshold|`` (12 against 5 is 1.4);
            ``"log-odds"``: the distance in ``log(p / (1 - p))``, for probabilities and rates
            (0.999 against 0.99 is 2.3, 0.993 against 0.99 only 0.35).
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
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"a claim's {name} must be a number, got {type(x).__name__} {x!r}") from None


def claim(what: str, value: Any, op: str, threshold: Any, *, scale: str = "relative", hint: str = "") -> float:
    """Check ``value op threshold``, record it with its margin (see :func:`_margin`) and return ``value``.

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
        raise _ClaimFailed(f"{what}: {v:.4g} is not {op} {t:.4g}" + (f". {hint}" if hint else ""))
    return value


NOT_ANSWERED = "not answered yet"


class Exercise:
    """The grading of one exercise, named once (``ex = Exercise("Exercise 4")``; ``f"{ex}"`` is the name).

    A check (decorated with :meth:`graded`) takes the student's answer first, returns nothing and
    either prints "not answered yet" (an answer is ``None``, or a function still returns ``None``, as
    in the student copy: it runs from top to bottom), prints "correct" and why (:meth:`correct`), or
    raises :class:`Exercise.WrongAnswer` (:meth:`wrong`) with a hint that says which property failed,
    never the answer, so "Run All" stops where the student has work to do. A *value* is compared with
    one the check computes itself; a *function* is run on hidden cases (:meth:`run_answer`,
    :meth:`hidden_rng`) against a reference kept in the lesson's module.
    """

    class WrongAnswer(AssertionError):
        """A wrong answer to an exercise. The message says what was wrong and gives a hint."""

    class Stub(Exception):
        """An answer is not there yet (``None``, or a function that returns ``None``); carries the exercise."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def graded(check: Callable[..., None]) -> Callable[..., None]:
        """Decorate a check: an :class:`Exercise.Stub` raised in it prints "not answered yet"."""
        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                check(*args, **kwargs)
            except Exercise.Stub as stub:
                print(f"{stub.args[0]}: {NOT_ANSWERED}. Set your answer in the cell above, run it, "
                      "then run this cell again.")
        return run

    def answered(self, *answers: Any) -> None:
        """Raise :class:`Exercise.Stub` if any of ``answers`` is still ``None``."""
        if any(a is None for a in answers):
            raise Exercise.Stub(self)

    def wrong(self, message: str) -> Exercise.WrongAnswer:
        """The error to raise for a wrong answer: the exercise's name, then ``message``."""
        return Exercise.WrongAnswer(f"{self}: {message}")

    def correct(self, why: str) -> None:
        """Print that the answer is right, and ``why``."""
        print(f"{self}: correct. {why}")

    def whole_number(self, name: str, value: Any) -> int:
        """``value`` as an ``int``; anything but a whole number (``True`` and ``4.0`` included) is wrong."""
        self.answered(value)
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise self.wrong(f"{name} must be a whole number, got {value!r} ({type(value).__name__}).")
        return int(value)

    def true_or_false(self, name: str, value: Any) -> bool:
        """``value`` as a ``bool``; anything but ``True`` or ``False`` (``"no"``, ``0``) is wrong."""
        self.answered(value)
        if not isinstance(value, (bool, np.bool_)):
            raise self.wrong(f"{name} must be True or False, got {value!r}.")
        return bool(value)

    def a_number(self, name: str, value: Any) -> float:
        """``value`` (a prediction) as a finite ``float``; a string, a bool, NaN or infinity is wrong."""
        self.answered(value)
        if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(float(value)):
            raise self.wrong(f"{name} must be a number, got {value!r}.")
        return float(value)

    def one_of(self, name: str, value: Any, choices: Sequence[float]) -> float:
        """``value`` as a ``float`` if it is one of ``choices`` (e.g. a table's budgets), else wrong."""
        self.answered(value)
        if isinstance(value, bool) or not isinstance(value, Real) or float(value) not in [float(c) for c in choices]:
            raise self.wrong(f"choose {name} from {[float(c) for c in choices]}, got {value!r}.")
        return float(value)

    def function(self, fn: Any) -> Callable:
        """``fn``, the student's function: ``None`` is not answered yet, a non-function is wrong."""
        self.answered(fn)
        if not callable(fn):
            raise self.wrong(f"the answer is a function (def ...), got {type(fn).__name__} {fn!r}.")
        return fn

    def run_answer(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` on a hidden case: an exception in the student's code becomes a hint, a result
        of ``None`` is the student copy's stub (not answered yet)."""
        try:
            out = fn(*args)
        except Exception as err:  # the student's code: any error becomes a hint
            raise self.wrong(f"your function raised {type(err).__name__}: {err}") from None
        self.answered(out)
        return out

    def answer_array(self, out: Any, shape: tuple, what: str) -> np.ndarray:
        """What the student's function returned, as a float64 array of ``shape``; ``what`` says in
        words what it should be (e.g. "one price per image") for the hint when it is not."""
        try:
            a = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            raise self.wrong(f"your function should return {what}, got {type(out).__name__}.") from None
        if a.shape != tuple(shape):
            raise self.wrong(f"your function returned shape {a.shape}, expected {tuple(shape)}: {what}.")
        return a

    @staticmethod
    def hidden_rng(seed: int) -> np.random.Generator:
        """The random numbers of a check's hidden cases: fixed by ``seed``, not the course's ``COURSE_SEED``."""
        return np.random.default_rng(seed)

    def smallest_that_works(self, answer: Any, candidates: Sequence[float],
                            works: Callable[[float], tuple[bool, float]], *, failing: str,
                            reached: str = "p", budget: str = "epsilon={:g}") -> None:
        """Check ``answer``, the smallest budget in ``candidates`` (ascending, each double the one
        before; grey levels) at which an attack works.

        ``works(epsilon)`` runs the attack and gives ``(success, p)``, ``p`` the probability (0..1) of
        the class it aims at. It runs at the answer, and, if that works, at the next smaller candidate,
        which must not. The hints say that at the answer ``failing`` (e.g. "20 steps do not make the
        model say 'man'"); ``reached`` names ``p`` in the "correct" line and ``budget`` spells a budget.
        """
        eps = self.one_of("smallest_epsilon", answer, candidates)
        ok, p = works(eps)
        if not ok:
            raise self.wrong(f"at {budget.format(eps)}, {failing} (p = {p:.3f}). Try a bigger budget.")
        smaller = [c for c in candidates if c < eps]
        if smaller:
            ok_smaller, p_smaller = works(max(smaller))
            if ok_smaller:
                raise self.wrong(f"{budget.format(eps)} works, but so does the smaller {budget.format(max(smaller))} "
                                 f"(p = {p_smaller:.3f}). Try smaller budgets.")
        self.correct(f"{budget.format(eps)} reaches {reached} = {p:.3f}; half of it is not enough.")

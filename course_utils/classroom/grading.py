"""How the lessons' checks grade an answer: the helpers every ``lessonN`` module shares.

Every check takes the student's answer first and ends in one of three ways (it returns nothing,
so a notebook shows only what it prints):

- the answer is ``None``, or a function whose body is still the student copy's ``return None``:
  it prints "not answered yet" (:func:`not_answered`), so a student copy runs from top to bottom
  without an error;
- the answer is right: it prints "correct" and why (:func:`correct`);
- the answer is wrong: it raises :class:`WrongAnswer`, whose message quotes the answer and gives a
  hint that says which property failed (never the answer itself), so "Run All" stops where the
  student has work to do.

Two kinds of answer are graded. A *value* (read off the lesson, or predicted on paper) is
compared with a value the check computes itself, on the student's machine, and shown only when
the answer is right. A *function* the student writes is run on hidden cases (:func:`run_answer`,
with random numbers from :func:`hidden_rng`) and compared with a reference kept in the lesson's
module.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "NOT_ANSWERED", "WrongAnswer", "StubAnswer", "not_answered", "not_yet", "correct", "whole_number",
    "true_or_false", "a_number", "one_of", "check_function", "run_answer", "answer_array", "hidden_rng",
    "smallest_that_works",
]

NOT_ANSWERED = "not answered yet"


class WrongAnswer(AssertionError):
    """A wrong answer to an exercise. The message says what was wrong and gives a hint."""


class StubAnswer(Exception):
    """The student's function still returns ``None`` (the student copy's placeholder body)."""


def not_answered(exercise: str, *answers: Any) -> bool:
    """Whether any of ``answers`` is still ``None``; if so, print that ``exercise`` is not answered yet."""
    if any(a is None for a in answers):
        print(f"{exercise}: {NOT_ANSWERED}. Set your answer in the cell above, run it, then run this cell again.")
        return True
    return False


def not_yet(exercise: str) -> None:
    """Print that ``exercise`` is not answered yet (its function is still the student copy's stub)."""
    not_answered(exercise, None)


def correct(exercise: str, why: str) -> None:
    """Print that the answer to ``exercise`` is right, and ``why``."""
    print(f"{exercise}: correct. {why}")


def whole_number(exercise: str, name: str, value: Any) -> int:
    """``value`` as an ``int``; anything but a whole number (``True`` and ``4.0`` included) is wrong."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise WrongAnswer(f"{exercise}: {name} must be a whole number, got {value!r} ({type(value).__name__}).")
    return int(value)


def true_or_false(exercise: str, name: str, value: Any) -> bool:
    """``value`` as a ``bool``; anything but ``True`` or ``False`` (``"no"``, ``0``) is wrong."""
    if not isinstance(value, (bool, np.bool_)):
        raise WrongAnswer(f"{exercise}: {name} must be True or False, got {value!r}.")
    return bool(value)


def a_number(exercise: str, name: str, value: Any) -> float:
    """``value`` (a prediction) as a finite ``float``; a string, a bool, NaN or infinity is wrong."""
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(float(value)):
        raise WrongAnswer(f"{exercise}: {name} must be a number, got {value!r}.")
    return float(value)


def one_of(exercise: str, name: str, value: Any, choices: Sequence[float]) -> float:
    """``value`` as a ``float`` if it is one of ``choices`` (e.g. a table's budgets), else wrong."""
    if isinstance(value, bool) or not isinstance(value, Real) or float(value) not in [float(c) for c in choices]:
        raise WrongAnswer(f"{exercise}: choose {name} from {[float(c) for c in choices]}, got {value!r}.")
    return float(value)


def check_function(exercise: str, fn: Any) -> bool:
    """Whether ``fn`` is an answer to check: ``None`` says "not answered yet" (``False``), a
    non-function is wrong."""
    if not_answered(exercise, fn):
        return False
    if not callable(fn):
        raise WrongAnswer(f"{exercise}: the answer is a function (def ...), got {type(fn).__name__} {fn!r}.")
    return True


def run_answer(exercise: str, fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` on a hidden case: an exception in the student's code becomes a hint, a result
    of ``None`` raises :class:`StubAnswer` (the check then says "not answered yet")."""
    try:
        out = fn(*args)
    except Exception as err:  # the student's code: any error becomes a hint
        raise WrongAnswer(f"{exercise}: your function raised {type(err).__name__}: {err}") from None
    if out is None:
        raise StubAnswer
    return out


def answer_array(exercise: str, out: Any, shape: tuple, what: str) -> np.ndarray:
    """What the student's function returned, as a float64 array of ``shape``; ``what`` says in
    words what it should be (e.g. "one price per image") for the hint when it is not."""
    try:
        a = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise WrongAnswer(f"{exercise}: your function should return {what}, got {type(out).__name__}.") from None
    if a.shape != tuple(shape):
        raise WrongAnswer(f"{exercise}: your function returned shape {a.shape}, expected {tuple(shape)}: {what}.")
    return a


def hidden_rng(seed: int) -> np.random.Generator:
    """The random numbers of a check's hidden cases: fixed by ``seed``, not the course's ``COURSE_SEED``."""
    return np.random.default_rng(seed)


def smallest_that_works(
    exercise: str,
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
    if not_answered(exercise, answer):
        return
    eps = one_of(exercise, "smallest_epsilon", answer, candidates)
    ok, p = works(eps)
    if not ok:
        raise WrongAnswer(f"{exercise}: at {budget.format(eps)}, {failing} (p = {p:.3f}). Try a bigger budget.")
    smaller = [c for c in candidates if c < eps]
    if smaller:
        ok_smaller, p_smaller = works(max(smaller))
        if ok_smaller:
            raise WrongAnswer(
                f"{exercise}: {budget.format(eps)} works, but so does the smaller {budget.format(max(smaller))} "
                f"(p = {p_smaller:.3f}). Try smaller budgets."
            )
    correct(exercise, f"{budget.format(eps)} reaches {reached} = {p:.3f}; half of it is not enough.")

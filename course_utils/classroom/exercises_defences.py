"""Checks for the exercises of lesson 4 (defences), with the conventions of :mod:`course_utils.classroom.exercises`.

Every check takes the student's answer first and ends in one of three ways:

- the answer is ``None`` (the student copy's placeholder): it prints "not answered yet";
- the answer is right: it prints "correct" and why;
- the answer is wrong: it raises :class:`course_utils.classroom.exercises.WrongAnswer` with a hint (never
  the answer itself).

What they compare against is computed from the lesson's own results on the student's machine.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Sequence

import numpy as np
import pandas as pd

from course_utils.classroom.exercises import WrongAnswer, _right, _unanswered

__all__ = [
    "LESSON4_EPSILONS",
    "lesson4_budget_below_half",
    "lesson4_transfer_half",
    "lesson4_smallest_epsilon_robust",
]

#: The budgets (grey levels) exercise 4.3 chooses from: each one doubles the one before.
LESSON4_EPSILONS: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0, 24.0, 48.0)


def _number_from(exercise: str, name: str, value: Any, choices: Sequence[float]) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or float(value) not in [float(c) for c in choices]:
        raise WrongAnswer(f"{exercise}: choose {name} from {[float(c) for c in choices]}, got {value!r}.")
    return float(value)


def lesson4_budget_below_half(answer: Any, robustness: pd.DataFrame, model: str = "robust") -> None:
    """Exercise 4.1: the smallest budget in the robustness table at which ``model``'s accuracy
    on the held-out faces falls below 0.5.

    ``robustness`` is :func:`course_utils.models.faces.load_robustness`'s table (index
    ``epsilon``, one accuracy column per model).
    """
    ex = "Exercise 1"
    if _unanswered(ex, answer):
        return
    budgets = [float(e) for e in robustness.index]
    eps = _number_from(ex, "budget_below_half", answer, budgets)
    accuracy = robustness[model]
    if accuracy.loc[eps] >= 0.5:
        raise WrongAnswer(
            f"{ex}: at epsilon = {eps:g} the {model} model still gets {accuracy.loc[eps]:.2f} of the faces right. "
            "Look at larger budgets in the table."
        )
    smaller = [e for e in budgets if e < eps and accuracy.loc[e] < 0.5]
    if smaller:
        raise WrongAnswer(
            f"{ex}: at epsilon = {eps:g} the {model} model is below 0.5, but it already is at a smaller "
            "budget. Look for the first row where it drops below 0.5."
        )
    return _right(ex, f"at epsilon = {eps:g} the {model} model gets {accuracy.loc[eps]:.2f} right; one budget "
                      "smaller it was still above 0.5.")


def lesson4_transfer_half(answer: Any, rates: pd.DataFrame, model: str = "Lite2") -> None:
    """Exercise 4.2: the smallest budget at which changes crafted on the substitute change
    ``model``'s answer on at least half of the pictures.

    ``rates`` is section 2's transfer table: a column ``epsilon`` and one column per model with
    the share (0..1) of pictures whose answer changed.
    """
    ex = "Exercise 2"
    if _unanswered(ex, answer):
        return
    table = rates.set_index("epsilon")[model]
    budgets = [float(e) for e in table.index]
    eps = _number_from(ex, "transfer_half", answer, budgets)
    if not (table >= 0.5).any():
        raise WrongAnswer(f"{ex}: on this run no budget in the table fools {model} on half of the pictures; "
                          "there is no right answer here. Look at the table: which budget comes closest?")
    if table.loc[eps] < 0.5:
        raise WrongAnswer(
            f"{ex}: at epsilon = {eps:g} only {table.loc[eps]:.0%} of {model}'s answers change. Look at larger budgets."
        )
    smaller = [e for e in budgets if e < eps and table.loc[e] >= 0.5]
    if smaller:
        raise WrongAnswer(
            f"{ex}: at epsilon = {eps:g} half of {model}'s answers change, but that already happens at a smaller "
            "budget. Find the first row that reaches one half."
        )
    return _right(ex, f"at epsilon = {eps:g}, {table.loc[eps]:.0%} of {model}'s answers change, without {model} ever "
                      "being attacked.")


def lesson4_smallest_epsilon_robust(
    answer: Any,
    model: Any,
    face: np.ndarray,
    target: str = "man",
    *,
    steps: int = 20,
    candidates: Sequence[float] = LESSON4_EPSILONS,
) -> None:
    """Exercise 4.3: the smallest budget in ``candidates`` at which a targeted PGD-``steps``
    attack (no random start) makes ``model`` answer ``target`` for ``face``.

    Runs the attack at the answer and at the next smaller candidate (two short runs).
    """
    from course_utils.attacks.gradient import pgd_attack

    ex = "Exercise 3"
    if _unanswered(ex, answer):
        return
    eps = _number_from(ex, "smallest_epsilon", answer, candidates)

    def works(e: float) -> tuple[bool, float]:
        r = pgd_attack(model, face, target, e, steps=steps, targeted=True, random_start=False)
        logits = np.asarray(model(r.adversarial, training=False), np.float64)[0]
        p = np.exp(logits - logits.max())
        return bool(r.success[0]), float(p[r.labels[0]] / p.sum())

    ok, p = works(eps)
    if not ok:
        raise WrongAnswer(
            f"{ex}: at epsilon = {eps:g}, {steps} steps do not make the model say {target!r} (p = {p:.3f}). "
            "Try a bigger budget."
        )
    smaller = [c for c in candidates if c < eps]
    if smaller:
        ok_smaller, p_smaller = works(max(smaller))
        if ok_smaller:
            raise WrongAnswer(
                f"{ex}: epsilon = {eps:g} works, but so does the smaller epsilon = {max(smaller):g} "
                f"(p = {p_smaller:.3f}). Try smaller budgets."
            )
    return _right(ex, f"epsilon = {eps:g} reaches p({target}) = {p:.3f}; half of it is not enough.")

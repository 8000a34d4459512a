"""Lesson 2's exercise checks (``02_iterative_attack``), graded as :mod:`course_utils.classroom.grading` says.

Exercises 1-3 are answers read off the lesson's runs (exercise 1 runs the attack itself);
exercise 4 is a coding task (one step of the iterative attack), exercise 5 a prediction (the L2
length of an FGSM step).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from course_utils.classroom.grading import (
    StubAnswer, WrongAnswer, a_number, answer_array, check_function, correct, hidden_rng, not_answered,
    not_yet, run_answer, smallest_that_works, true_or_false,
)

__all__ = [
    "LESSON2_EPSILONS", "lesson2_smallest_epsilon", "lesson2_fewer_steps", "lesson2_survives_rounding",
    "lesson2_bim_step", "lesson2_fgsm_l2",
]


# --------------------------------------------------------------------------- exercises 1-3: read off the lesson

LESSON2_EPSILONS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""The budgets (grey levels) exercise 2.1 chooses from: each one doubles the one before."""


def lesson2_smallest_epsilon(
    answer: Any,
    model: Any,
    image: np.ndarray,
    target: str | int = "king penguin",
    *,
    steps: int = 40,
    candidates: Sequence[float] = LESSON2_EPSILONS,
    progress: bool = True,
) -> None:
    """Exercise 2.1: the smallest budget in ``candidates`` at which ``steps`` steps of the
    iterative attack (step size ``epsilon / 4``) make ``target`` the top class of ``image``.

    Runs the attack at the answer and at the next smaller candidate (two short runs, each with a
    progress bar unless ``progress`` is false).
    """
    from course_utils.attacks.pgd import iterative_attack

    def works(e: float) -> tuple[bool, float]:
        r = iterative_attack(model, image, target, epsilon=e, steps=steps, step_size=e / 4, progress=progress)
        return bool(r.success[0]), float(r.final_probability()[0])

    smallest_that_works("Exercise 1", answer, candidates, works,
                        failing=f"{steps} steps do not make '{target}' the top class")


def lesson2_fewer_steps(
    answer: Any, targeted_steps: int, untargeted_steps: int, ends_as: Sequence[str] = ()
) -> None:
    """Exercise 2.2: which attack succeeded in fewer steps, "targeted" or "untargeted"?

    The two step arguments are ``steps_to_success[0]`` of each attack (-1 = never); ``ends_as``,
    if given, the classes the targeted and the untargeted attack end in, shown after the verdict.
    """
    ex = "Exercise 2"
    if not_answered(ex, answer):
        return
    if answer not in ("targeted", "untargeted"):
        raise WrongAnswer(f"{ex}: answer 'targeted' or 'untargeted', got {answer!r}.")
    t, u = int(targeted_steps), int(untargeted_steps)
    if t < 0 and u < 0:
        raise WrongAnswer(f"{ex}: neither attack succeeded here, so neither is faster. Give them more steps.")
    runs = {"targeted": t if t >= 0 else np.inf, "untargeted": u if u >= 0 else np.inf}
    if runs["targeted"] == runs["untargeted"]:
        raise WrongAnswer(f"{ex}: both succeeded at step {t}: a tie. Give a smaller budget and compare again.")
    expected = min(runs, key=runs.get)
    if answer != expected:
        raise WrongAnswer(
            f"{ex}: {answer!r} is not the faster one here. Compare steps_to_success of the two results "
            "(-1 means it never succeeded)."
        )
    ends = f"\nThe targeted attack ends as '{ends_as[0]}', the untargeted one as '{ends_as[1]}'." if ends_as else ""
    return correct(ex, f"steps to success: targeted {t}, untargeted {u} (-1 = never).{ends}")


def lesson2_survives_rounding(answer: Any, top_label_after_rounding: str, target: str = "king penguin") -> None:
    """Exercise 2.3: is ``target`` still the top class after rounding the attacked photo to uint8?"""
    ex = "Exercise 3"
    if not_answered(ex, answer):
        return
    said = true_or_false(ex, "survives_rounding", answer)
    if said != (top_label_after_rounding == target):
        raise WrongAnswer(
            f"{ex}: survives_rounding = {said} does not match the network: print(top) and read the top "
            "class of the rounded photo."
        )
    return correct(ex, f"After rounding, the top class is '{top_label_after_rounding}'.")


# --------------------------------------------------------------------------- exercises 4-5: a coding task, a prediction


def _bim(x: np.ndarray, x0: np.ndarray, grad: np.ndarray, step: float, eps: float) -> np.ndarray:
    return np.clip(np.clip(x - step * np.sign(grad), x0 - eps, x0 + eps), 0.0, 255.0)


def lesson2_bim_step(bim_step: Any) -> None:
    """Exercise 2.4: ``bim_step(x, x0, grad, step_size, epsilon)`` is one step of section 4's loop:
    down the sign of ``grad`` (the loss's gradient), back into the ±epsilon box around ``x0``, into
    0..255."""
    ex = "Exercise 4"
    if not check_function(ex, bim_step):
        return
    rng = hidden_rng(24)
    cases = []
    for shape, step, eps in [((1, 6, 6, 3), 0.5, 4.0), ((2, 5, 4, 3), 1.0, 1.5), ((1, 8, 8, 1), 3.0, 2.0)]:
        x0 = rng.choice([0.0, 1.0, 128.0, 254.5, 255.0], size=shape) + rng.uniform(0, 0.4, shape)
        x0 = np.clip(x0, 0, 255)
        x = np.clip(x0 + rng.uniform(-eps, eps, shape), 0, 255)
        grad = rng.normal(0, 1e-3, shape) * rng.choice([0.0, 1.0, 50.0], size=shape)
        cases.append((x.astype(np.float32), x0.astype(np.float32), grad.astype(np.float32), step, eps))
    try:
        for x, x0, grad, step, eps in cases:
            out = run_answer(ex, bim_step, x, x0, grad, step, eps)
            got = answer_array(ex, out, x.shape, "an image batch of x's shape")
            if np.allclose(got, _bim(x, x0, grad, step, eps), atol=1e-3):
                continue
            if got.min() < -1e-3 or got.max() > 255 + 1e-3:
                raise WrongAnswer(f"{ex}: your step gives pixels outside 0..255: not a valid picture.")
            if np.abs(got - x0).max() > eps + 1e-3:
                raise WrongAnswer(f"{ex}: your step leaves the budget: a pixel ends {np.abs(got - x0).max():.2f} "
                                  f"grey levels from the photo, with epsilon = {eps:g}.")
            if np.allclose(got, np.clip(np.clip(x + step * np.sign(grad), x0 - eps, x0 + eps), 0, 255), atol=1e-3):
                raise WrongAnswer(f"{ex}: your step goes *up* the gradient. grad is the gradient of the loss, "
                                  "which the attack minimises.")
            inside = (np.abs(_bim(x, x0, grad, step, eps) - x0) < eps - 1e-3) & (x > step) & (x < 255 - step)
            moved = np.abs(got - x)[inside & (grad != 0)]
            if moved.size and not np.allclose(moved, step, atol=1e-3):
                raise WrongAnswer(f"{ex}: where no clipping applies, every pixel should move by exactly step_size "
                                  f"({step:g}); yours move by {moved.min():.3g} to {moved.max():.3g}.")
            raise WrongAnswer(f"{ex}: your step differs from section 4's loop on a hidden case (look at where "
                              "the gradient is exactly 0, and at the order of the two clips).")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, f"Your step agrees with the loop of section 4 on {len(cases)} hidden cases.")


def lesson2_fgsm_l2(answer: Any, model: Any, image: np.ndarray | None = None, epsilon: float = 2.0) -> None:
    """Exercise 2.5 (predict, then check): the L2 length (grey levels) of one targeted FGSM step of
    ``epsilon`` on a 224×224 colour photo (by default the coffee photo; the check runs it)."""
    from course_utils.attacks.pgd import fgsm
    from course_utils.io.images import load_image, sample_image

    ex = "Exercise 5"
    if not_answered(ex, answer):
        return
    said = a_number(ex, "fgsm_l2", answer)
    photo = load_image(sample_image("coffee"), size=224) if image is None else image
    l2 = float(fgsm(model, photo, "king penguin", epsilon=epsilon).l2[0])   # not shown unless right
    if np.isclose(said, l2, rtol=0.05):
        return correct(ex, f"The step's L2 length is {l2:.1f} grey levels: every one of the {np.size(photo):,} "
                           f"values moves by {epsilon:g} (a few less where 0..255 clips), so ε·√n.")
    if np.isclose(said, epsilon):
        raise WrongAnswer(f"{ex}: {said:g} is the L-inf size, the largest change of one value. The L2 length "
                          "adds up the squares of *all* the changes before the square root.")
    if said > 10 * l2:
        raise WrongAnswer(f"{ex}: {said:g} is far too large: that adds up the changes themselves (the L1 size). "
                          "L2 is the square root of the sum of their squares.")
    raise WrongAnswer(f"{ex}: {said:g} is not it. How many values does a 224×224 colour photo have, by how much "
                      "does FGSM move each one, and what is the length of a vector whose entries are all equal?")

"""Lesson 2's exercise checks (``02_iterative_attack``), graded as :mod:`course_utils.classroom.grading` says."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from course_utils.classroom.grading import Exercise

__all__ = [
    "LESSON2_EPSILONS", "lesson2_smallest_epsilon", "lesson2_fewer_steps", "lesson2_survives_rounding",
    "lesson2_l2_step", "lesson2_fgsm_l2",
]

LESSON2_EPSILONS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""The budgets (grey levels) exercise 2.1 chooses from: each one doubles the one before."""


@Exercise.graded
def lesson2_smallest_epsilon(answer: Any, model: Any, image: np.ndarray, target: str | int = "king penguin", *,
                             steps: int = 40, candidates: Sequence[float] = LESSON2_EPSILONS,
                             progress: bool = False) -> None:
    """Exercise 2.1: the smallest budget in ``candidates`` at which ``steps`` steps of the
    iterative attack (step size ``epsilon / 4``) make ``target`` the top class of ``image``.

    Runs the attack at the answer and at the next smaller candidate (two short runs, each with a
    progress bar only if ``progress`` is true: the verdict comes first on the page).
    """
    from course_utils.attacks.pgd import iterative_attack

    def works(e: float) -> tuple[bool, float]:
        r = iterative_attack(model, image, target, epsilon=e, steps=steps, step_size=e / 4, progress=progress)
        return bool(r.success[0]), float(r.final_probability()[0])

    Exercise("Exercise 1").smallest_that_works(answer, candidates, works,
                        failing=f"{steps} steps do not make '{target}' the top class")


@Exercise.graded
def lesson2_fewer_steps(answer: Any, targeted_steps: int, untargeted_steps: int, ends_as: Sequence[str] = ()) -> None:
    """Exercise 2.2: which attack succeeded in fewer steps, "targeted" or "untargeted"?

    The two step arguments are ``steps_to_success[0]`` of each attack (-1 = never); ``ends_as``,
    if given, the classes the targeted and the untargeted attack end in, shown after the verdict.
    """
    ex = Exercise("Exercise 2")
    ex.answered(answer)
    if answer not in ("targeted", "untargeted"):
        raise ex.wrong(f"answer 'targeted' or 'untargeted', got {answer!r}.")
    t, u = int(targeted_steps), int(untargeted_steps)
    if t < 0 and u < 0:
        raise ex.wrong("neither attack succeeded here, so neither is faster. Give them more steps.")
    runs = {"targeted": t if t >= 0 else np.inf, "untargeted": u if u >= 0 else np.inf}
    if runs["targeted"] == runs["untargeted"]:
        raise ex.wrong(f"both succeeded at step {t}: a tie. Give a smaller budget and compare again.")
    expected = min(runs, key=runs.get)
    if answer != expected:
        raise ex.wrong(f"{answer!r} is not the faster one here. Compare steps_to_success of the two results "
                       "(-1 means it never succeeded).")
    ends = f"\nThe targeted attack ends as '{ends_as[0]}', the untargeted one as '{ends_as[1]}'." if ends_as else ""
    return ex.correct(f"steps to success: targeted {t}, untargeted {u} (-1 = never).{ends}")


@Exercise.graded
def lesson2_survives_rounding(answer: Any, top_label_after_rounding: str, target: str = "king penguin") -> None:
    """Exercise 2.3: is ``target`` still the top class after rounding the attacked photo to uint8?"""
    ex = Exercise("Exercise 3")
    said = ex.true_or_false("survives_rounding", answer)
    if said != (top_label_after_rounding == target):
        raise ex.wrong(f"survives_rounding = {said} does not match the network: print(top) and read the top "
                       "class of the rounded photo.")
    return ex.correct(f"After rounding, the top class is '{top_label_after_rounding}'.")


def _l2_step(x: np.ndarray, x0: np.ndarray, grad: np.ndarray, step: float, eps: float) -> np.ndarray:
    axes = tuple(range(1, x.ndim))
    norm = np.sqrt(np.sum(np.square(grad.astype(np.float64)), axis=axes, keepdims=True))
    x = x - step * grad / norm
    delta = x - x0
    length = np.sqrt(np.sum(np.square(delta), axis=axes, keepdims=True))
    delta = delta * np.minimum(1.0, eps / np.maximum(length, 1e-12))
    return np.clip(x0 + delta, 0.0, 255.0)


@Exercise.graded
def lesson2_l2_step(l2_step: Any) -> None:
    """Exercise 2.4: ``l2_step(x, x0, grad, step_size, epsilon)``, one step of the iterative attack with an
    **L2** budget on batches ``(N, H, W, C)``, as the lesson's exercise states it. Checked on hidden batches,
    with pixels near 0 and 255 and changes inside and outside the ball."""
    ex = Exercise("Exercise 4")
    ex.function(l2_step)
    rng = Exercise.hidden_rng(24)
    cases = []
    for shape, step, eps in [((2, 6, 6, 3), 5.0, 20.0), ((3, 5, 4, 3), 40.0, 10.0), ((1, 8, 8, 1), 3.0, 50.0)]:
        x0 = np.clip(rng.choice([0.0, 1.0, 128.0, 254.5, 255.0], size=shape) + rng.uniform(0, 0.4, shape), 0, 255)
        x = np.clip(x0 + rng.normal(0, 0.5 * eps / np.sqrt(np.prod(shape[1:])), shape), 0, 255)
        grad = rng.normal(0, 1e-3, shape) * rng.choice([0.0, 1.0, 50.0], size=shape)
        grad[..., 0, 0, 0] += 1e-3                                    # never all zero
        cases.append((x.astype(np.float32), x0.astype(np.float32), grad.astype(np.float32), step, eps))
    axes = (1, 2, 3)
    for x, x0, grad, step, eps in cases:
        out = ex.run_answer(l2_step, x, x0, grad, step, eps)
        got = ex.answer_array(out, x.shape, "an image batch of x's shape")
        want = _l2_step(x, x0, grad, step, eps)
        if np.allclose(got, want, atol=1e-3):
            continue
        if got.min() < -1e-3 or got.max() > 255 + 1e-3:
            raise ex.wrong("your step gives pixels outside 0..255: not a valid picture.")
        if np.allclose(got, np.clip(np.clip(x - step * np.sign(grad), x0 - eps, x0 + eps), 0, 255), atol=1e-3):
            raise ex.wrong("that is section 4's L-inf step (the sign, the ±epsilon box). With an L2 "
                           "budget the step follows the gradient itself, scaled to length step_size.")
        lengths = np.sqrt(np.sum(np.square(got - x0), axis=axes))
        if lengths.max() > eps * (1 + 1e-3) + 1e-3:
            raise ex.wrong(f"your step leaves the budget: an image ends at L2 length {lengths.max():.2f} "
                           f"from the photo, with epsilon = {eps:g}. Shrink the whole change, not each pixel.")
        if np.allclose(got, _l2_step(x, x0, -grad, step, eps), atol=1e-3):
            raise ex.wrong("your step goes *up* the gradient. grad is the gradient of the loss, "
                           "which the attack minimises.")
        whole = np.sqrt(np.sum(np.square(grad.astype(np.float64))))
        if np.allclose(got, np.clip(x0 + np.clip(x - step * grad / whole - x0, -eps, eps), 0, 255), atol=1e-3) or \
                len(x) > 1 and np.allclose(got, np.clip(x - step * grad / whole, 0, 255), atol=1e-3):
            raise ex.wrong("your step scales the gradient by the length of the whole batch; each "
                           "image's step should have L2 length step_size on its own.")
        raise ex.wrong("your step differs from the L2 step on a hidden batch (check each image's "
                       "gradient length, the projection onto the ball, and the order: ball, then 0..255).")
    return ex.correct(f"Your L2 step agrees with the reference on {len(cases)} hidden batches.")


@Exercise.graded
def lesson2_fgsm_l2(answer: Any, model: Any, image: np.ndarray | None = None, epsilon: float = 2.0) -> None:
    """Exercise 2.5 (predict, then check): the L2 length (grey levels) of one targeted FGSM step of
    ``epsilon`` on a 224×224 colour photo (by default the coffee photo; the check runs it)."""
    from course_utils.attacks.pgd import fgsm
    from course_utils.io.images import load_image, sample_image

    ex = Exercise("Exercise 5")
    said = ex.a_number("fgsm_l2", answer)
    photo = load_image(sample_image("coffee"), size=224) if image is None else image
    l2 = float(fgsm(model, photo, "king penguin", epsilon=epsilon).l2[0])   # not shown unless right
    if np.isclose(said, l2, rtol=0.05):
        return ex.correct(f"The step's L2 length is {l2:.1f} grey levels: every one of the {np.size(photo):,} "
                           f"values moves by {epsilon:g} (a few less where 0..255 clips), so ε·√n.")
    if np.isclose(said, epsilon):
        raise ex.wrong(f"{said:g} is the L-inf size, the largest change of one value. The L2 length "
                       "adds up the squares of *all* the changes before the square root.")
    if said > 10 * l2:
        raise ex.wrong(f"{said:g} is far too large: that adds up the changes themselves (the L1 size). "
                       "L2 is the square root of the sum of their squares.")
    raise ex.wrong(f"{said:g} is not it. How many values does a 224×224 colour photo have, by how much "
                   "does FGSM move each one, and what is the length of a vector whose entries are all equal?")

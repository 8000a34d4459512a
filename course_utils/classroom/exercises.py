"""Checks for the lessons' exercises.

Every check takes the student's answer first and ends in one of three ways (it returns nothing,
so a notebook shows only what it prints):

- the answer is ``None`` (the student copy's placeholder): it prints "not answered yet", so a
  student copy runs from top to bottom without an error;
- the answer is right: it prints "correct" and why;
- the answer is wrong: it raises :class:`WrongAnswer`, whose message quotes the answer and gives a
  hint (never the answer itself), so "Run All" stops where the student has work to do.

The checks compute what they compare against from the lesson's own results, on the student's
machine, so they hold on any CPU. Each lesson's checks are grouped by a prefix: ``lesson1_...``.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "WrongAnswer",
    "NOT_ANSWERED",
    "lesson1_first_step_as_man",
    "lesson1_transfers",
    "lesson1_back_is_smaller",
    "LESSON2_EPSILONS",
    "lesson2_smallest_epsilon",
    "lesson2_fewer_steps",
    "lesson2_survives_rounding",
    "lesson3_receptive_field",
    "lesson3_jitter_prevents_099",
    "lesson3_fewest_steps",
]

NOT_ANSWERED = "not answered yet"


class WrongAnswer(AssertionError):
    """A wrong answer to an exercise. The message says what was wrong and gives a hint."""


def _unanswered(exercise: str, *answers: Any) -> bool:
    """Whether any answer is still ``None`` (and if so, say so)."""
    if any(a is None for a in answers):
        print(f"{exercise}: {NOT_ANSWERED}. Set your answer in the cell above, run it, then run this cell again.")
        return True
    return False


def _right(exercise: str, why: str) -> None:
    print(f"{exercise}: correct. {why}")


def _whole(exercise: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise WrongAnswer(f"{exercise}: {name} must be a whole number, got {value!r} ({type(value).__name__}).")
    return int(value)


def _boolean(exercise: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise WrongAnswer(f"{exercise}: {name} must be True or False, got {value!r}.")
    return bool(value)


# --------------------------------------------------------------------------- lesson 1


def lesson1_first_step_as_man(answer: Any, plain: Any) -> None:
    """Exercise 1.1: the first step at which the unpenalised noise filter makes "man" the answer.

    ``plain`` is the :class:`~course_utils.attacks.AttackResult` of ``noise_filter`` (one image);
    its ``probabilities[t, 0]`` are the network's probabilities at the start of step ``t``.
    """
    ex = "Exercise 1"
    if _unanswered(ex, answer):
        return
    step = _whole(ex, "first_step_as_man", answer)
    probs = plain.probabilities[:, 0]
    says_man = probs.argmax(-1) == 0
    if not 0 <= step < len(probs):
        raise WrongAnswer(f"{ex}: step {step} is outside the run (steps 0..{len(probs) - 1}).")
    if not says_man[step]:
        raise WrongAnswer(
            f"{ex}: at step {step} the network still says 'woman' (p(man) = {probs[step, 0]:.3f}). "
            "Look later: plot plain.probabilities[:, 0, 0] and find where it crosses 0.5."
        )
    if step > 0 and says_man[step - 1]:
        raise WrongAnswer(
            f"{ex}: at step {step} the network says 'man', but it already did one step earlier. "
            "Look for the *first* step (plain.steps_to_success holds it)."
        )
    return _right(ex, f"From step {step} on, p(man) is above 0.5 ({probs[step, 0]:.3f} there).")


def lesson1_transfers(answer: Any, p_man_with_dx: float) -> None:
    """Exercise 1.2: does the astronaut's DX make the network call Grace Hopper a man?

    ``p_man_with_dx`` is p(man) for Grace Hopper's face plus the astronaut's DX (0..1).
    """
    ex = "Exercise 2"
    if _unanswered(ex, answer):
        return
    said = _boolean(ex, "transfers", answer)
    really = float(p_man_with_dx) > 0.5
    if said != really:
        raise WrongAnswer(
            f"{ex}: transfers = {said} is not what the table shows. The network says 'man' only "
            "when p man is above 0.5: read the 'p man' column of the second row."
        )
    return _right(ex, f"p(man) with the astronaut's DX is {p_man_with_dx:.3f}.")


def lesson1_back_is_smaller(answer: Any, to_man_l2: float, back_l2: float) -> None:
    """Exercise 1.3: is the filter back to "woman" smaller (L2, grey levels) than the way there?"""
    ex = "Exercise 3"
    if _unanswered(ex, answer):
        return
    said = _boolean(ex, "back_is_smaller", answer)
    if said != (back_l2 < to_man_l2):
        raise WrongAnswer(
            f"{ex}: back_is_smaller = {said} does not match the run. Compare back.l2[0] with "
            "plain.l2[0] (both printed above)."
        )
    return _right(ex, f"‖DX‖₂ there {to_man_l2:.1f}, back {back_l2:.1f} grey levels.")


# --------------------------------------------------------------------------- lesson 2

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
    from course_utils.attacks.gradient import iterative_attack

    ex = "Exercise 1"
    if _unanswered(ex, answer):
        return
    if isinstance(answer, bool) or not isinstance(answer, Real) or float(answer) not in candidates:
        raise WrongAnswer(f"{ex}: choose smallest_epsilon from {list(candidates)}, got {answer!r}.")
    eps = float(answer)

    def works(e: float):
        r = iterative_attack(model, image, target, epsilon=e, steps=steps, step_size=e / 4, progress=progress)
        return bool(r.success[0]), float(r.final_probability()[0])

    ok, p = works(eps)
    if not ok:
        raise WrongAnswer(
            f"{ex}: at epsilon={eps:g}, {steps} steps do not make '{target}' the top class "
            f"(p = {p:.3f}). Try a bigger budget."
        )
    smaller = [c for c in candidates if c < eps]
    if smaller:
        ok_smaller, p_smaller = works(max(smaller))
        if ok_smaller:
            raise WrongAnswer(
                f"{ex}: epsilon={eps:g} works, but so does the smaller epsilon={max(smaller):g} "
                f"(p = {p_smaller:.3f}). Try smaller budgets."
            )
    return _right(ex, f"epsilon={eps:g} reaches p = {p:.3f}; half of it is not enough.")


def lesson2_fewer_steps(answer: Any, targeted_steps: int, untargeted_steps: int) -> None:
    """Exercise 2.2: which attack succeeded in fewer steps, "targeted" or "untargeted"?

    The two arguments are ``steps_to_success[0]`` of each attack (-1 = never).
    """
    ex = "Exercise 2"
    if _unanswered(ex, answer):
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
    return _right(ex, f"steps to success: targeted {t}, untargeted {u} (-1 = never).")


def lesson2_survives_rounding(answer: Any, top_label_after_rounding: str, target: str = "king penguin") -> None:
    """Exercise 2.3: is ``target`` still the top class after rounding the attacked photo to uint8?"""
    ex = "Exercise 3"
    if _unanswered(ex, answer):
        return
    said = _boolean(ex, "survives_rounding", answer)
    if said != (top_label_after_rounding == target):
        raise WrongAnswer(
            f"{ex}: survives_rounding = {said} does not match the table above: what is the top class of "
            "the rounded photo?"
        )
    return _right(ex, f"After rounding, the top class is '{top_label_after_rounding}'.")


# --------------------------------------------------------------------------- lesson 3


def lesson3_receptive_field(
    largest_layer: Any, sees_whole: Any, fields: Mapping[str, int], input_size: int = 224
) -> None:
    """Exercise 3.1: the shown layer with the largest receptive field, and whether it covers the
    whole ``input_size`` picture. ``fields`` maps layer name -> receptive field in pixels."""
    ex = "Exercise 1"
    if _unanswered(ex, largest_layer, sees_whole):
        return
    if largest_layer not in fields:
        raise WrongAnswer(f"{ex}: {largest_layer!r} is not one of the layers we looked at: {list(fields)}.")
    best = max(fields, key=fields.get)
    if largest_layer != best:
        raise WrongAnswer(
            f"{ex}: {largest_layer!r} sees {fields[largest_layer]} pixels, but another layer sees more. "
            "Look at the receptive_field column of section 1."
        )
    whole = _boolean(ex, "sees_whole_picture", sees_whole)
    if whole != (fields[best] >= input_size):
        raise WrongAnswer(
            f"{ex}: the layer is right; now compare its receptive field ({fields[best]} pixels) with the "
            f"picture's side ({input_size} pixels)."
        )
    return _right(ex, f"{best} sees {fields[best]} pixels along a side, the picture has {input_size}.")


def lesson3_jitter_prevents_099(answer: Any, jittered_probabilities: Sequence[float]) -> None:
    """Exercise 3.2: does jitter alone keep "sea snake" below 0.99 at every step of the run?

    ``jittered_probabilities`` is p(sea snake) at every step of the jittered run.
    """
    ex = "Exercise 2"
    if _unanswered(ex, answer):
        return
    said = _boolean(ex, "jitter_prevents_099", answer)
    best = float(np.max(jittered_probabilities))
    if said != (best < 0.99):
        raise WrongAnswer(
            f"{ex}: jitter_prevents_099 = {said} does not match the run. Look at the highest probability "
            "the jittered run reached, not only at its last step."
        )
    return _right(ex, f"The jittered run's highest p(sea snake) is {best:.4f}.")


def lesson3_fewest_steps(answer_class: Any, answer_steps: Any, model: Any, image: np.ndarray) -> None:
    """Exercise 3.3: the fewest steps of 1 grey level (RMS) that push ``answer_class`` to p >= 0.99
    in ``image``. Runs ``maximize_class`` for ``answer_steps`` steps once."""
    from course_utils.vis.filters import maximize_class

    ex = "Exercise 3"
    if _unanswered(ex, answer_class, answer_steps):
        return
    steps = _whole(ex, "coffee_steps", answer_steps)
    if steps < 1:
        raise WrongAnswer(f"{ex}: coffee_steps must be at least 1, got {steps}.")
    run = maximize_class(model, answer_class, image=image, steps=steps, step_size=1.0, progress=False)
    curve = run.curves().iloc[:, 0].to_numpy()
    name = run.what[0]
    if curve[-1] < 0.99:
        raise WrongAnswer(
            f"{ex}: after {steps} steps p({name}) is {curve[-1]:.3f}, not yet 0.99. Try more steps "
            "(or another class)."
        )
    first = int(np.argmax(curve >= 0.99))
    if first < steps:
        raise WrongAnswer(
            f"{ex}: {steps} steps work, but p({name}) already reached 0.99 earlier. Try fewer steps: "
            "the run's curve shows where it crosses 0.99."
        )
    return _right(ex, f"'{name}' reaches p = {curve[-1]:.3f} at step {steps}, and not before.")

"""Lesson 1's exercise checks (``01_noise_filter``), graded as :mod:`course_utils.classroom.grading` says.

Exercises 1-3 are answers read off the lesson's runs; exercise 4 is a coding task (the L2
price), exercise 5 a prediction (how far one step of the price moves a pixel).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from course_utils.classroom.grading import (
    StubAnswer, WrongAnswer, a_number, answer_array, check_function, correct, hidden_rng, not_answered,
    not_yet, run_answer, true_or_false, whole_number,
)

__all__ = [
    "lesson1_first_step_as_man", "lesson1_transfers", "lesson1_back_is_smaller", "lesson1_l2_price",
    "lesson1_price_step",
]


# --------------------------------------------------------------------------- exercises 1-3: read off the lesson


def lesson1_first_step_as_man(answer: Any, plain: Any) -> None:
    """Exercise 1.1: the first step at which the unpenalised noise filter makes "man" the answer.

    ``plain`` is the :class:`~course_utils.attacks.AttackResult` of ``noise_filter`` (one image);
    its ``probabilities[t, 0]`` are the network's probabilities at the start of step ``t``.
    """
    ex = "Exercise 1"
    if not_answered(ex, answer):
        return
    step = whole_number(ex, "first_step_as_man", answer)
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
    return correct(ex, f"From step {step} on, p(man) is above 0.5 ({probs[step, 0]:.3f} there).")


def lesson1_transfers(answer: Any, p_man_with_dx: float) -> None:
    """Exercise 1.2: does the astronaut's DX make the network call Grace Hopper a man?

    ``p_man_with_dx`` is p(man) for Grace Hopper's face plus the astronaut's DX (0..1).
    """
    ex = "Exercise 2"
    if not_answered(ex, answer):
        return
    said = true_or_false(ex, "transfers", answer)
    really = float(p_man_with_dx) > 0.5
    if said != really:
        raise WrongAnswer(
            f"{ex}: transfers = {said} is not what the network says. It says 'man' only when p man is "
            "above 0.5: print(table) and read the 'p man' column of the second row."
        )
    return correct(ex, f"p(man) with the astronaut's DX is {p_man_with_dx:.3f}.")


def lesson1_back_is_smaller(answer: Any, to_man_l2: float, back_l2: float) -> None:
    """Exercise 1.3: is the filter back to "woman" smaller (L2, grey levels) than the way there?"""
    ex = "Exercise 3"
    if not_answered(ex, answer):
        return
    said = true_or_false(ex, "back_is_smaller", answer)
    if said != (back_l2 < to_man_l2):
        raise WrongAnswer(
            f"{ex}: back_is_smaller = {said} does not match the run. Compare back.l2[0] with "
            "plain.l2[0]."
        )
    return correct(ex, f"‖DX‖₂ there {to_man_l2:.1f}, back {back_l2:.1f} grey levels.")


# --------------------------------------------------------------------------- exercises 4-5: a coding task, a prediction


def _price(delta: np.ndarray, beta: float) -> np.ndarray:
    return beta * 0.5 * np.sum(np.square(delta.astype(np.float64)), axis=tuple(range(1, delta.ndim)))


def lesson1_l2_price(l2_price: Any) -> None:
    """Exercise 1.4: ``l2_price(delta, beta)`` returns section 5's price, one number per image of
    the batch ``delta`` (shape ``(N, H, W, C)``, grey levels)."""
    ex = "Exercise 4"
    if not check_function(ex, l2_price):
        return
    rng = hidden_rng(14)
    cases = [(rng.normal(0, 3, (2, 48, 48, 1)), 3e-4), (rng.normal(0, 1, (3, 5, 7, 2)), 0.1),
             (rng.uniform(-4, 4, (1, 4, 4, 3)), 2.0)]
    try:
        for delta, beta in cases:
            want = _price(delta, beta)
            out = run_answer(ex, l2_price, delta.astype(np.float32), beta)
            if np.ndim(out) == 0:
                raise WrongAnswer(f"{ex}: your function returned one number for a batch of {len(delta)} images: "
                                  "the price is one number per image (sum over each image's own pixels).")
            got = answer_array(ex, out, want.shape, "one price per image")
            if np.allclose(got, want, rtol=1e-3, atol=1e-9):
                continue
            doubled = answer_array(ex, run_answer(ex, l2_price, 2 * delta.astype(np.float32), beta), want.shape,
                                   "one price per image")
            if not np.allclose(doubled, 4 * got, rtol=1e-3, atol=1e-9):
                raise WrongAnswer(f"{ex}: doubling DX should multiply the price by 4 (it is quadratic in DX); yours "
                                  f"multiplies it by {float(np.mean(doubled / got)):.2f}.")
            if np.allclose(got / want, np.mean(got / want), rtol=1e-3):
                raise WrongAnswer(f"{ex}: your price is quadratic, but off by a constant factor "
                                  f"({float(np.mean(got / want)):.3g} times the right one): check every factor "
                                  "of the formula in section 5.")
            raise WrongAnswer(f"{ex}: your price differs from the formula of section 5 on a hidden batch.")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, f"Your price agrees with β·½·ΣDX² on {len(cases)} hidden batches.")


def lesson1_price_step(answer: Any, beta: float = 3e-4, dx: float = 20.0, learning_rate: float = 30.0) -> None:
    """Exercise 1.5 (predict, then check): by how many grey levels does one step of gradient descent
    on the price alone pull a pixel with ``DX = dx`` back towards the photo?"""
    import tensorflow as tf

    ex = "Exercise 5"
    if not_answered(ex, answer):
        return
    said = a_number(ex, "price_step", answer)
    d = tf.Variable([[dx, -3.0]], dtype=tf.float64)       # two pixels of a change; the first one is asked about
    with tf.GradientTape() as tape:
        price = beta * 0.5 * tf.reduce_sum(d ** 2)
    moved = float(learning_rate * tape.gradient(price, d)[0, 0])   # computed here, not shown
    if np.isclose(said, moved, rtol=0.02):
        return correct(ex, f"The price's gradient at that pixel is β·DX, so a step moves it back by "
                           f"{learning_rate:g} × {beta:g} × {dx:g} = {moved:.3g} grey levels.")
    if np.isclose(said, moved / learning_rate, rtol=0.02):
        raise WrongAnswer(f"{ex}: {said:g} is the gradient itself; a step of gradient descent multiplies it by "
                          "the learning rate.")
    if np.isclose(said, 2 * moved, rtol=0.02) or np.isclose(said, learning_rate * beta * 0.5 * dx ** 2, rtol=0.02):
        raise WrongAnswer(f"{ex}: {said:g} is not it. Differentiate β·½·DX_i² with respect to DX_i (the other "
                          "pixels' terms do not depend on it); what happens to the ½?")
    raise WrongAnswer(f"{ex}: {said:g} grey levels is not it. A step moves a pixel by learning_rate × ∂price/∂DX_i; "
                      "work out that derivative first.")

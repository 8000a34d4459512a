"""Lesson 1's exercise checks (``01_noise_filter``), graded as :mod:`course_utils.classroom.grading` says."""

from __future__ import annotations

from typing import Any

import numpy as np

from course_utils.classroom.grading import Exercise

__all__ = [
    "LESSON1_STEP_RANGES", "lesson1_first_step_range", "lesson1_transfers", "lesson1_back_is_smaller",
    "lesson1_away_step", "lesson1_price_step",
]


LESSON1_STEP_RANGES = ("1-10", "11-100", "101-1000", "never")
"""The answers exercise 1.1 chooses from: the range of steps in which "man" first becomes the answer."""


@Exercise.graded
def lesson1_first_step_range(answer: Any, plain: Any) -> None:
    """Exercise 1.1 (predict, then check): in which range of steps (one of :data:`LESSON1_STEP_RANGES`)
    does the unpenalised noise filter first make "man" the answer?

    ``plain`` is the :class:`~course_utils.attacks.AttackResult` of ``noise_filter`` (one image);
    its ``probabilities[t, 0]`` are the network's probabilities at the start of step ``t``.
    """
    ex = Exercise("Exercise 1")
    ex.answered(answer)
    if not isinstance(answer, str) or answer.strip() not in LESSON1_STEP_RANGES:
        raise ex.wrong(f"choose first_step_range from {', '.join(repr(r) for r in LESSON1_STEP_RANGES)} "
                       f"(a string), not {answer!r}.")
    probs = plain.probabilities[:, 0]
    says_man = np.flatnonzero(probs.argmax(-1) == 0)
    step = int(says_man[0]) if says_man.size else -1
    right = "never" if step < 0 else next(r for r in LESSON1_STEP_RANGES[:-1] if step <= int(r.split("-")[1]))
    if answer.strip() != right:
        if right == "never" or answer.strip() == "never":
            hint = "plot plain.probabilities[:, 0, 0] and see whether it ever crosses 0.5."
        elif LESSON1_STEP_RANGES.index(answer.strip()) < LESSON1_STEP_RANGES.index(right):
            hint = ("it takes longer: after the ten hand-written steps the loss was still about 1, that is "
                    "p(man) = exp(-1), about 0.37.")
        else:
            hint = "it is quicker than that: look at where the curve of p(man) crosses 0.5."
        raise ex.wrong(f"{answer!r} is not the range the run shows; {hint}")
    return ex.correct(f"'man' first became the answer at step {step} (p(man) = {probs[step, 0]:.3f} there), "
                       f"in the range {right}.")


@Exercise.graded
def lesson1_transfers(answer: Any, p_man_with_dx: float) -> None:
    """Exercise 1.2: does the astronaut's DX make the network call Grace Hopper a man?

    ``p_man_with_dx`` is p(man) for Grace Hopper's face plus the astronaut's DX (0..1).
    """
    ex = Exercise("Exercise 2")
    said = ex.true_or_false("transfers", answer)
    really = float(p_man_with_dx) > 0.5
    if said != really:
        raise ex.wrong(f"transfers = {said} is not what the network says. It says 'man' only when p man is "
                       "above 0.5: print(table) and read the 'p man' column of the second row.")
    return ex.correct(f"p(man) with the astronaut's DX is {p_man_with_dx:.3f}.")


@Exercise.graded
def lesson1_back_is_smaller(answer: Any, to_man_l2: float, back_l2: float) -> None:
    """Exercise 1.3: is the filter back to "woman" smaller (L2, grey levels) than the way there?"""
    ex = Exercise("Exercise 3")
    said = ex.true_or_false("back_is_smaller", answer)
    if said != (back_l2 < to_man_l2):
        raise ex.wrong(f"back_is_smaller = {said} does not match the run. Compare back.l2[0] with plain.l2[0].")
    return ex.correct(f"‖DX‖₂ there {to_man_l2:.1f}, back {back_l2:.1f} grey levels.")


def _ce_gradient(model: Any, x: np.ndarray, true_class: int) -> np.ndarray:
    """The gradient of the cross-entropy to ``true_class`` with respect to the batch ``x``."""
    import tensorflow as tf

    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.keras.losses.sparse_categorical_crossentropy(
            tf.fill([x.shape[0]], true_class), model(xt), from_logits=True)
    return tape.gradient(loss, xt).numpy()


def _hidden_model(rng: np.random.Generator, shape: tuple, classes: int) -> Any:
    """A small linear classifier with hidden weights (it returns logits), for exercise 1.4's cases."""
    import keras

    inputs = keras.Input(shape)
    dense = keras.layers.Dense(classes)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([rng.normal(0, 0.05, (int(np.prod(shape)), classes)).astype(np.float32),
                       rng.normal(0, 1, classes).astype(np.float32)])
    return model


@Exercise.graded
def lesson1_away_step(away_step: Any) -> None:
    """Exercise 1.4: ``away_step(model, x, true_class, learning_rate)``, one step of an *untargeted* noise
    filter (up the cross-entropy to ``true_class``, then into 0..255) on a batch ``(N, H, W, C)``, as the
    lesson's exercise states it. Checked on hidden small linear models, with pixels near 0 and 255."""
    ex = Exercise("Exercise 4")
    ex.function(away_step)
    rng = Exercise.hidden_rng(14)
    cases = []
    for shape, n, lr in [((6, 6, 1), 2, 300.0), ((4, 5, 3), 3, 2000.0), ((8, 8, 1), 1, 5000.0)]:
        model = _hidden_model(rng, shape, 3)
        x = rng.choice([0.5, 3.0, 128.0, 252.0, 254.9], size=(n, *shape)).astype(np.float32)
        cases.append((model, x, int(rng.integers(0, 3)), lr))
    for model, x, true_class, lr in cases:
        out = ex.run_answer(away_step, model, x.copy(), true_class, lr)
        got = ex.answer_array(out, x.shape, "a batch of x's shape")
        step = lr * _ce_gradient(model, x, true_class)
        if np.allclose(got, np.clip(x + step, 0.0, 255.0), atol=1e-2):
            continue
        if got.min() < -1e-3 or got.max() > 255 + 1e-3:
            raise ex.wrong("your step gives pixels outside 0..255: not a valid picture.")
        if np.allclose(got, np.clip(x - step, 0.0, 255.0), atol=1e-2):
            raise ex.wrong("your step goes *down* the cross-entropy to the network's own answer: "
                           "that makes the network surer of it. To leave that answer, climb its loss.")
        raise ex.wrong("your step differs from one step up the cross-entropy to true_class on a "
                       "hidden model (check the loss, the learning rate, and the clip to 0..255).")
    return ex.correct(f"Your step agrees with one step up the cross-entropy on {len(cases)} hidden models.")


@Exercise.graded
def lesson1_price_step(answer: Any, beta: float = 3e-4, dx: float = 20.0, learning_rate: float = 30.0) -> None:
    """Exercise 1.5 (predict, then check): by how many grey levels does one step of gradient descent
    on the price alone pull a pixel with ``DX = dx`` back towards the photo?"""
    import tensorflow as tf

    ex = Exercise("Exercise 5")
    said = ex.a_number("price_step", answer)
    d = tf.Variable([[dx, -3.0]], dtype=tf.float64)       # two pixels of a change; the first one is asked about
    with tf.GradientTape() as tape:
        price = beta * 0.5 * tf.reduce_sum(d ** 2)
    moved = float(learning_rate * tape.gradient(price, d)[0, 0])   # computed here, not shown
    if np.isclose(said, moved, rtol=0.02):
        return ex.correct(f"The price's gradient at that pixel is β·DX, so a step moves it back by "
                           f"{learning_rate:g} × {beta:g} × {dx:g} = {moved:.3g} grey levels.")
    if np.isclose(said, moved / learning_rate, rtol=0.02):
        raise ex.wrong(f"{said:g} is the gradient itself; a step of gradient descent multiplies it by "
                       "the learning rate.")
    if np.isclose(said, 2 * moved, rtol=0.02) or np.isclose(said, learning_rate * beta * 0.5 * dx ** 2, rtol=0.02):
        raise ex.wrong(f"{said:g} is not it. Differentiate β·½·DX_i² with respect to DX_i (the other "
                       "pixels' terms do not depend on it); what happens to the ½?")
    raise ex.wrong(f"{said:g} grey levels is not it. A step moves a pixel by learning_rate × ∂price/∂DX_i; "
                   "work out that derivative first.")

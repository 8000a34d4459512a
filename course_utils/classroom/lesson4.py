"""Lesson 4's exercise checks (``04_defences``), graded as :mod:`course_utils.classroom.grading` says.

Exercises 1-3 are answers read off the lesson's tables and runs (exercise 3 runs the attack
itself); exercises 4-6 are coding tasks (PGD's random start, BPDA's straight-through line, EOT's
averaged gradient).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from course_utils.classroom.grading import (
    StubAnswer, WrongAnswer, answer_array, check_function, correct, hidden_rng, not_answered, not_yet, one_of,
    run_answer, smallest_that_works,
)

__all__ = [
    "LESSON4_EPSILONS", "lesson4_budget_below_half", "lesson4_transfer_half",
    "lesson4_smallest_epsilon_robust", "lesson4_random_start", "lesson4_straight_through",
    "lesson4_eot_gradient",
]


# --------------------------------------------------------------------------- exercises 1-3: read off the lesson

#: The budgets (grey levels) exercise 4.3 chooses from: each one doubles the one before.
LESSON4_EPSILONS: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0, 24.0, 48.0)


def lesson4_budget_below_half(answer: Any, robustness: pd.DataFrame, model: str = "robust") -> None:
    """Exercise 4.1: the smallest budget in the robustness table at which ``model``'s accuracy
    on the held-out faces falls below 0.5.

    ``robustness`` is :func:`course_utils.models.faces.load_robustness`'s table (index
    ``epsilon``, one accuracy column per model).
    """
    ex = "Exercise 1"
    if not_answered(ex, answer):
        return
    budgets = [float(e) for e in robustness.index]
    eps = one_of(ex, "budget_below_half", answer, budgets)
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
    return correct(ex, f"at epsilon = {eps:g} the {model} model gets {accuracy.loc[eps]:.2f} right; one budget "
                       "smaller it was still above 0.5.")


def lesson4_transfer_half(answer: Any, rates: pd.DataFrame, model: str = "Lite2") -> None:
    """Exercise 4.2: the smallest budget at which changes crafted on the substitute change
    ``model``'s answer on at least half of the pictures.

    ``rates`` is section 2's transfer table: a column ``epsilon`` and one column per model with
    the share (0..1) of pictures whose answer changed.
    """
    ex = "Exercise 2"
    if not_answered(ex, answer):
        return
    table = rates.set_index("epsilon")[model]
    budgets = [float(e) for e in table.index]
    eps = one_of(ex, "transfer_half", answer, budgets)
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
    return correct(ex, f"at epsilon = {eps:g}, {table.loc[eps]:.0%} of {model}'s answers change, without {model} ever "
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
    from course_utils.attacks.pgd import pgd_attack

    def works(e: float) -> tuple[bool, float]:
        r = pgd_attack(model, face, target, e, steps=steps, targeted=True, random_start=False)
        logits = np.asarray(model(r.adversarial, training=False), np.float64)[0]
        p = np.exp(logits - logits.max())
        return bool(r.success[0]), float(p[r.labels[0]] / p.sum())

    smallest_that_works("Exercise 3", answer, candidates, works, budget="epsilon = {:g}",
                        failing=f"{steps} steps do not make the model say {target!r}", reached=f"p({target})")


# --------------------------------------------------------------------------- exercises 4-6: coding tasks


def lesson4_random_start(random_start: Any) -> None:
    """Exercise 4.4: ``random_start(x, epsilon, seed)`` is PGD's start: a point drawn uniformly from
    the ±epsilon box around the batch ``x`` (grey levels), then clipped to 0..255; the same seed
    gives the same point."""
    ex = "Exercise 4"
    if not check_function(ex, random_start):
        return
    mid, edges = np.full((2, 32, 32, 3), 128.0, np.float32), np.zeros((1, 16, 16, 3), np.float32)
    edges[..., 1:] = 255.0
    try:
        for x, eps, seed in [(mid, 4.0, 3), (mid, 0.5, 7), (edges, 8.0, 3)]:
            got = answer_array(ex, run_answer(ex, random_start, x, eps, seed), x.shape, "a batch of x's shape")
            d = got - x
            if got.min() < -1e-4 or got.max() > 255 + 1e-4:
                raise WrongAnswer(f"{ex}: your start has pixels outside 0..255: clip it to valid pixels.")
            if np.abs(d).max() > eps + 1e-4:
                raise WrongAnswer(f"{ex}: your start leaves the box: a pixel moved {np.abs(d).max():.2f} grey levels "
                                  f"with epsilon = {eps:g}.")
            again = answer_array(ex, run_answer(ex, random_start, x, eps, seed), x.shape, "a batch of x's shape")
            if not np.array_equal(again, got):
                raise WrongAnswer(f"{ex}: the same seed gave two different starts: draw from a generator made "
                                  "from `seed` (np.random.default_rng(seed), or a stateless TensorFlow op).")
            if x is edges:
                continue
            other = answer_array(ex, run_answer(ex, random_start, x, eps, seed + 1), x.shape, "a batch")
            if np.array_equal(other, got):
                raise WrongAnswer(f"{ex}: another seed gave the same start: the seed should choose the random numbers.")
            if np.mean(np.isclose(np.abs(d), eps, atol=1e-4)) > 0.5:
                raise WrongAnswer(f"{ex}: most of your changes sit exactly at ±epsilon, the corners of the box. "
                                  "A uniform draw fills the whole box.")
            if abs(float(d.mean())) > 0.1 * eps or min(np.mean(d > 0), np.mean(d < 0)) < 0.3:
                raise WrongAnswer(f"{ex}: your changes lean to one side (mean {float(d.mean()):+.2f}); they should "
                                  "go up and down equally, from -epsilon to +epsilon.")
            if not 0.4 * eps < float(np.abs(d).mean()) < 0.6 * eps:
                raise WrongAnswer(f"{ex}: your changes are not spread evenly over -epsilon..epsilon (a uniform draw "
                                  "has a mean size of epsilon / 2).")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, "Your start is uniform in the box, valid pixels, repeatable with its seed.")


def lesson4_straight_through(straight_through: Any) -> None:
    """Exercise 4.5: ``straight_through(x, transform)`` is BPDA's line: the value of ``transform(x)``
    forwards, the identity's gradient backwards."""
    import tensorflow as tf

    ex = "Exercise 5"
    if not check_function(ex, straight_through):
        return
    rng = hidden_rng(45)
    x = tf.constant(rng.uniform(0, 255, (2, 5, 5, 3)), tf.float32)
    w = tf.constant(rng.normal(size=(2, 5, 5, 3)), tf.float32)
    transforms = {"rounding": tf.round, "8-level quantising": lambda v: tf.round(v / 32.0) * 32.0,
                  "a contrast change": lambda v: 0.5 * v + 64.0}
    try:
        for name, transform in transforms.items():
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = run_answer(ex, straight_through, x, transform)
                if not isinstance(out, tf.Tensor):
                    raise WrongAnswer(f"{ex}: return a TensorFlow tensor (the gradient has to flow through it), "
                                      f"got {type(out).__name__}.")
                total = tf.reduce_sum(w * out)
            grad = tape.gradient(total, x)
            if not np.allclose(out.numpy(), transform(x).numpy(), atol=1e-3):
                raise WrongAnswer(f"{ex}: forwards, your output is not the transformed picture (tried with {name}): "
                                  "the network must see exactly what the defence gives it.")
            if grad is None or not np.any(grad.numpy()):
                raise WrongAnswer(f"{ex}: no gradient reaches x through your line (tried with {name}): the backward "
                                  "pass must go around the transform, not through it.")
            if not np.allclose(grad.numpy(), w.numpy(), atol=1e-4):
                raise WrongAnswer(f"{ex}: backwards, your line uses the transform's own gradient (tried with {name}); "
                                  "BPDA takes the gradient as if the transform were the identity.")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, "Forwards the transform, backwards the identity, for three hidden transforms.")


def lesson4_eot_gradient(eot_gradient: Any) -> None:
    """Exercise 4.6: ``eot_gradient(loss_fn, x, transforms)`` is EOT's gradient: the average over
    ``transforms`` of the gradient of ``loss_fn(t(x))`` with respect to ``x``."""
    import tensorflow as tf

    ex = "Exercise 6"
    if not check_function(ex, eot_gradient):
        return
    rng = hidden_rng(46)
    x = tf.constant(rng.uniform(0, 255, (1, 6, 6, 3)), tf.float32)
    w = tf.constant(rng.normal(size=(1, 6, 6, 3)), tf.float32)

    def loss_fn(v: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(w * tf.sin(v / 40.0))

    transforms = [lambda v: v, lambda v: tf.roll(v, 1, axis=2), lambda v: 0.8 * v + 20.0,
                  lambda v: tf.image.flip_left_right(v)]
    grads = []
    for t in transforms:
        with tf.GradientTape() as tape:
            tape.watch(x)
            grads.append(tape.gradient(loss_fn(t(x)), x).numpy())
    want = np.mean(grads, axis=0)
    try:
        out = run_answer(ex, eot_gradient, loss_fn, x, list(transforms))
        got = answer_array(ex, out, tuple(x.shape), "a gradient of x's shape")
    except StubAnswer:
        return not_yet(ex)
    if np.allclose(got, want, atol=1e-5):
        return correct(ex, f"Your gradient is the mean over the {len(transforms)} hidden transforms.")
    if np.allclose(got, len(transforms) * want, atol=1e-5):
        raise WrongAnswer(f"{ex}: your gradient is {len(transforms)} times too large for {len(transforms)} transforms: "
                          "the expectation is an average, not a sum.")
    if any(np.allclose(got, g, atol=1e-5) for g in grads):
        raise WrongAnswer(f"{ex}: your gradient is that of one transform only; EOT averages over all of them.")
    raise WrongAnswer(f"{ex}: your gradient differs from the average over the transforms; differentiate "
                      "loss_fn(t(x)) with respect to x (watch x, not t(x)), for each t.")

"""Lesson 7's exercise checks (``07_hidden_gradients``), graded as :mod:`course_utils.classroom.grading` says."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

from course_utils.classroom.grading import Exercise

__all__ = ["lesson7_targeted_margin", "lesson7_samples_needed"]


def _targeted_reference(logits: np.ndarray, targets: np.ndarray, kappa: float) -> np.ndarray:
    z = logits.astype(np.float64)
    target = z[np.arange(len(z)), targets]
    other = np.where(np.eye(z.shape[1], dtype=bool)[targets], -np.inf, z).max(axis=1)
    return np.maximum(other - target, -kappa)


@Exercise.graded
def lesson7_targeted_margin(targeted_margin_loss: Any, predicted_floor_gradient: Any) -> None:
    """Exercise 1 of lesson 7: ``predicted_floor_gradient`` is the prediction (the largest absolute
    entry of the loss's gradient with respect to the logits once the loss sits at its floor
    ``-kappa``) and ``targeted_margin_loss(logits, targets, kappa)`` Carlini & Wagner's targeted
    loss on the logits, ``max(max_{j != t} Z_j - Z_t, -kappa)``, one value per row, as a
    TensorFlow tensor that has a gradient even where the softmax is saturated."""
    import tensorflow as tf

    ex = Exercise("Exercise 1")
    ex.answered(predicted_floor_gradient)
    ex.function(targeted_margin_loss)
    if ex.a_number("predicted_floor_gradient", predicted_floor_gradient) != 0.0:
        raise ex.wrong("look at your prediction again: what is the gradient of max(m, -kappa) with respect "
                       "to m where m is below -kappa?")
    rng = Exercise.hidden_rng(71)
    cases = [
        (rng.normal(0, 3, (5, 2)), rng.integers(0, 2, 5), 0.0),
        (rng.normal(0, 3, (6, 5)), rng.integers(0, 5, 6), 1.5),  # more classes: the best *other* logit
        (np.array([[900.0, -900.0], [-700.0, 650.0]]), np.array([1, 0]), 0.0),  # a distilled model's logits
    ]
    for logits, targets, kappa in cases:
        z = tf.constant(logits, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(z)
            out = ex.run_answer(targeted_margin_loss, z, tf.constant(targets, tf.int32), kappa)
            if not isinstance(out, tf.Tensor):
                raise ex.wrong(f"return a TensorFlow tensor (the attack differentiates it), got {type(out).__name__}.")
            total = tf.reduce_sum(out)
        got = ex.answer_array(out.numpy(), (len(targets),), "one loss per row of logits")
        want = _targeted_reference(logits, targets, kappa)
        tol = 1e-3 * max(1.0, np.abs(want).max())
        if np.allclose(got, -want, atol=tol) and not np.allclose(want, 0.0):
            raise ex.wrong("your loss has the wrong sign: the attack minimises it, so it is the best "
                           "other logit minus the target's.")
        close = np.isclose(got, want, atol=tol)
        if not close.all() and np.allclose(got, _targeted_reference(logits, targets, np.inf), atol=tol):
            raise ex.wrong("your loss is not floored at -kappa: take max(margin, -kappa).")
        if not close.all():
            i = int(np.flatnonzero(~close)[0])
            raise ex.wrong("your loss differs from max(max_(j != t) Z_j - Z_t, -kappa) on hidden logits "
                           f"with {logits.shape[1]} classes (e.g. {got[i]:.3f} where {want[i]:.3f} was expected).")
        grad = tape.gradient(total, z)
        if logits is cases[2][0] and (grad is None or not np.any(grad.numpy())):
            raise ex.wrong("on saturated logits (900 and -900) your loss has no gradient: do not go "
                           "through the softmax; subtract the logits themselves.")
    ex.correct("Your targeted margin is right on hidden logits, and keeps its gradient where the softmax is saturated.")
    print("At the floor the gradient is exactly 0: the attack stops pushing once its goal is met by kappa, so kappa "
          "sets how confident the adversarial example is (Carlini & Wagner's 'high-confidence' examples).")


def _samples_reference(radius: float, sigma: float, alpha: float) -> int:
    """The smallest n with ``sigma * Phi^-1(alpha ** (1 / n)) >= radius``, all n votes for one class."""
    tail = statistics.NormalDist().cdf(-radius / sigma)          # 1 - p_A, accurate when it is tiny
    return math.ceil(math.log(alpha) / math.log1p(-tail))


# hidden cases, (radius, sigma, alpha): each ratio log(alpha) / log(p_A) is well away from a whole number
_SAMPLE_CASES = [(30.0, 24.0, 0.001), (57.0, 24.0, 0.001), (60.0, 24.0, 0.01), (20.0, 12.0, 0.001),
                 (40.0, 50.0, 0.05), (90.0, 24.0, 0.001)]


@Exercise.graded
def lesson7_samples_needed(samples_needed: Any, predicted_possible: Any) -> None:
    """Exercise 2 of lesson 7: ``predicted_possible`` is the prediction (whether n = 100,000 samples
    can certify an L2 radius of 192 grey levels at sigma = 24, alpha = 0.001) and
    ``samples_needed(radius, sigma, alpha)`` the smallest whole number n for which a face with all
    n votes for its class is certified to ``radius`` (the Clopper-Pearson bound is then
    ``alpha ** (1 / n)``)."""
    ex = Exercise("Exercise 2")
    ex.answered(predicted_possible)
    ex.function(samples_needed)
    if ex.true_or_false("predicted_possible", predicted_possible):
        raise ex.wrong("look at your prediction again: with n = 1000 the ceiling was about 59 grey levels. "
                       "How fast does it grow with n?")
    for radius, sigma, alpha in _SAMPLE_CASES:
        want = _samples_reference(radius, sigma, alpha)
        out = ex.run_answer(samples_needed, radius, sigma, alpha)
        try:
            got = float(out)
        except (TypeError, ValueError):
            raise ex.wrong(f"return one whole number of samples, got {type(out).__name__} {out!r}.") from None
        if not math.isfinite(got) or got != int(got):
            raise ex.wrong(f"for radius {radius:g}, sigma {sigma:g}, alpha {alpha:g} you returned {got!r}: "
                           "the number of samples is a whole number (the smallest that is enough: round up).")
        if got == want - 1:
            raise ex.wrong(f"for radius {radius:g}, sigma {sigma:g}, alpha {alpha:g}, {int(got)} samples "
                           "fall just short of the radius: round up, not to the nearest.")
        if got != want:
            raise ex.wrong(f"for radius {radius:g}, sigma {sigma:g}, alpha {alpha:g} your n ({got:.6g}) is not the "
                           "smallest n whose ceiling sigma * Phi^-1(alpha ** (1 / n)) reaches the radius.")
    ex.correct(f"Your n is the smallest that reaches the radius on {len(_SAMPLE_CASES)} hidden cases.")
    tail = statistics.NormalDist().cdf(-8.0)
    print(f"For lesson 2's budget (radius 192 = 8 sigma at sigma 24): p_A must be at least 1 - {tail:.1e}, and "
          f"n about {_samples_reference(192.0, 24.0, 0.001):.1e} samples, each a forward pass; "
          f"n = 100,000 reaches {24.0 * statistics.NormalDist().inv_cdf(0.001 ** (1 / 100_000)):.0f} grey levels.")

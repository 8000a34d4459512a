"""Steps: the step rule (which way a step goes) and what happens to the picture after it.

:func:`step_direction` turns the gradient into the direction of one step, per example (plain,
sign, RMS-normalised or L2-normalised: Foolbox's per-norm normalisation).

Each is an :class:`~course_utils.core.pieces.AfterStep`, applied outside the gradient, in the order
given:

- budgets of the attacks: :class:`LinfBall` (every pixel within epsilon of the photo) and
  :class:`L2Ball` (the whole change at most epsilon long), epsilon per call and per example;
  :class:`PixelRange` (valid pixels). (Feature visualisation's priors, ``L2Decay`` and ``Blur``,
  are in :mod:`course_utils.core.transforms`.)

A ball also draws a uniformly random point of itself (:meth:`LinfBall.random_start`,
:meth:`L2Ball.random_start`) for attacks that start at random (PGD, Madry et al. 2018).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import tensorflow as tf

from course_utils.checks import check_number
from course_utils.core.ops import per_example, seed_pair
from course_utils.core.pieces import AfterStep

__all__ = ["StepRule", "step_direction", "PixelRange", "LinfBall", "L2Ball"]

StepRule = Literal["plain", "sign", "rms", "l2"]

_TINY = 1e-12  # keeps a zero change from dividing by zero


def step_direction(grad: tf.Tensor, rule: StepRule) -> tf.Tensor:
    """The direction to *subtract* from ``x`` for one step, per example.

    ``"plain"``: the gradient itself (gradient descent). ``"sign"``: its sign (the L-inf steepest
    step; every pixel moves by exactly the step size). ``"rms"``: the gradient divided by its
    root-mean-square over each example, so the step size is in pixels whatever the scale of the
    objective (the Keras blog's "normalised gradient"). ``"l2"``: the gradient divided by its
    L2 length over each example (the L2 steepest step: the whole change has the step size's length).
    """
    if rule == "plain":
        return grad
    if rule == "sign":
        return tf.sign(grad)
    axes = tf.range(1, tf.rank(grad))
    if rule == "rms":
        rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=axes, keepdims=True))
        return grad / (rms + 1e-8)
    if rule == "l2":
        return grad / tf.maximum(tf.sqrt(tf.reduce_sum(tf.square(grad), axis=axes, keepdims=True)), 1e-12)
    raise ValueError(f"unknown step rule {rule!r}; choose 'plain', 'sign', 'rms' or 'l2'")


def _epsilon(epsilon: Any) -> Any:
    """A default epsilon checked at construction: ``None`` (given per call), a number >= 0, or one per example."""
    if epsilon is None:
        return None
    if np.ndim(epsilon) == 0:
        return check_number("epsilon", epsilon, minimum=0.0)
    return np.asarray([check_number("epsilon", e, minimum=0.0) for e in np.ravel(epsilon)], np.float32)


class PixelRange(AfterStep):
    """After each step, clip to valid pixels ``low..high`` (default 0..255)."""

    def __init__(self, low: float = 0.0, high: float = 255.0) -> None:
        self.low = check_number("PixelRange low", low)
        self.high = check_number("PixelRange high", high, minimum=self.low)

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor, data: Mapping | None = None) -> tf.Tensor:
        return tf.clip_by_value(x, self.low, self.high)


class LinfBall(AfterStep):
    """After each step, stay within ``epsilon`` pixels of the start, pixel by pixel (an L-inf budget).

    ``epsilon`` is read per call from ``data["epsilon"]`` (one per example); the value given here
    is only its default.
    """

    per_call = {"epsilon": tf.float32}

    def __init__(self, epsilon: float | None = None) -> None:
        self.epsilon = _epsilon(epsilon)

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor, data: Mapping | None = None) -> tf.Tensor:
        e = per_example(self.epsilon if data is None else data["epsilon"], x)
        return tf.clip_by_value(x, x0 - e, x0 + e)

    def random_start(self, x0: tf.Tensor, epsilon: Any, seed: Any = 0) -> tf.Tensor:
        """A uniformly random point of the ball around ``x0`` (per example), seeded."""
        x0 = tf.convert_to_tensor(x0, tf.float32)
        noise = tf.random.stateless_uniform(tf.shape(x0), seed=seed_pair(seed, 11), minval=-1.0, maxval=1.0)
        return x0 + noise * per_example(epsilon, x0)


class L2Ball(AfterStep):
    """After each step, shrink the change ``x - x0`` onto length ``epsilon`` where it is longer
    (an L2 budget, per example). A change already inside is left exactly as it is.

    ``epsilon`` is read per call from ``data["epsilon"]``; the value given here is only its default.
    """

    per_call = {"epsilon": tf.float32}

    def __init__(self, epsilon: float | None = None) -> None:
        self.epsilon = _epsilon(epsilon)

    @staticmethod
    def lengths(d: tf.Tensor) -> tf.Tensor:
        """Per-example L2 length of ``d``, shape ``(N, 1, ..., 1)``."""
        return tf.sqrt(tf.reduce_sum(tf.square(d), axis=list(range(1, d.shape.rank)), keepdims=True))

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor, data: Mapping | None = None) -> tf.Tensor:
        e = per_example(self.epsilon if data is None else data["epsilon"], x)
        d = x - x0
        factor = tf.minimum(1.0, e / tf.maximum(self.lengths(d), _TINY))
        return tf.where(factor < 1.0, x0 + d * factor, x)

    def random_start(self, x0: tf.Tensor, epsilon: Any, seed: Any = 0) -> tf.Tensor:
        """A uniformly random point of the ball around ``x0`` (per example), seeded: a direction
        uniform on the sphere, a radius with the density of the ball."""
        x0 = tf.convert_to_tensor(x0, tf.float32)
        direction = tf.random.stateless_normal(tf.shape(x0), seed=seed_pair(seed, 12))
        direction /= tf.maximum(self.lengths(direction), _TINY)
        dims = tf.cast(tf.reduce_prod(tf.shape(x0)[1:]), tf.float32)
        u = tf.random.stateless_uniform(tf.shape(x0)[:1], seed=seed_pair(seed, 13))
        return x0 + direction * per_example(tf.pow(u, 1.0 / dims), x0) * per_example(epsilon, x0)

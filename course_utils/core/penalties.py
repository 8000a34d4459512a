"""Penalties: a price on the picture, added to the loss per example.

:class:`L2Penalty` (a :class:`~course_utils.core.pieces.Penalty` of the older loop,
:mod:`course_utils.core.gradient_loop`): ``beta * sum((x - x0)**2) / 2``, the noise filter's price
on change (lesson 1); ``beta`` per call and per example, so a list of betas runs side by side in
one batch and a new beta traces nothing again. (Lesson 3's ``TotalVariation`` is in
:mod:`course_utils.core.transforms`.)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from course_utils.checks import check_number
from course_utils.core.pieces import Penalty

__all__ = ["L2Penalty"]


class L2Penalty(Penalty):
    """Add ``beta * sum((x - x0)**2) / 2`` per example: a squared L2 price on the change (pixels).

    ``beta`` is read per call from ``data["beta"]`` (one per example, so several prices can be
    compared in one batch); the value given here (one number, or one per example) is its default.
    """

    per_call = {"beta": tf.float32}

    def __init__(self, beta: float | Sequence[float] | np.ndarray | None = None) -> None:
        if beta is None:
            self.beta = None
        else:
            self.beta = np.asarray([check_number("L2Penalty weight", w, minimum=0.0) for w in np.ravel(beta)],
                                   dtype=np.float32).reshape(np.shape(beta))

    @property
    def weight(self) -> np.ndarray | None:
        """The default ``beta`` (the name this piece gave it before ``beta`` came per call)."""
        return self.beta

    def check_input(self, shape: tuple) -> None:
        beta = self.beta
        if beta is not None and beta.ndim == 1 and shape[0] is not None and len(beta) != shape[0]:
            raise ValueError(f"L2Penalty has {len(beta)} weights for a batch of {shape[0]}; give one, or one per image")

    def penalty(self, x: tf.Tensor, x0: tf.Tensor, data: Mapping[str, tf.Tensor] | None = None) -> tf.Tensor:
        beta = tf.constant(self.beta) if data is None else data["beta"]
        return beta * 0.5 * tf.reduce_sum(tf.square(x - x0), axis=tf.range(1, tf.rank(x)))

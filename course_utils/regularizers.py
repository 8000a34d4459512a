"""The pieces that shape the gradient loop: constraints, penalties and image priors.

Each is a :class:`course_utils.optimize.Regularizer` with one job, passed in a tuple:

- constraints of the attacks (:mod:`course_utils.attacks`): :class:`PixelRange`, :class:`LinfBall`,
  :class:`L2Penalty`;
- image priors of feature visualisation (:mod:`course_utils.visualize`): :class:`Jitter`,
  :class:`TotalVariation`, :class:`L2Decay`, :class:`Blur`.

Settings are checked when a piece is made, and :meth:`Regularizer.check_input` refuses an image
the piece cannot work on (a blur wider than the picture) before the loop is traced. All tensors
are float32 batches in pixel units, ``(N, H, W, C)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from course_utils.checks import check_int, check_number
from course_utils.optimize import Regularizer

__all__ = [
    "GRAY",
    "PixelRange",
    "LinfBall",
    "L2Penalty",
    "Jitter",
    "TotalVariation",
    "L2Decay",
    "Blur",
    "default_regularizers",
]

GRAY = 127.5
"""Mid-grey in pixels: where the start noise is centred and where :class:`L2Decay` pulls to."""


# --------------------------------------------------------------------------- constraints (attacks)


class PixelRange(Regularizer):
    """After each step, clip to valid pixels ``low..high`` (default 0..255)."""

    def __init__(self, low: float = 0.0, high: float = 255.0) -> None:
        self.low = check_number("PixelRange low", low)
        self.high = check_number("PixelRange high", high, minimum=self.low)

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(x, self.low, self.high)


class LinfBall(Regularizer):
    """After each step, stay within ``epsilon`` pixels of the start (an L-infinity budget)."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = check_number("epsilon", epsilon, minimum=0.0)

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(x, x0 - self.epsilon, x0 + self.epsilon)


class L2Penalty(Regularizer):
    """Add ``weight * sum((x - x0)**2) / 2`` per example: a squared L2 price on the change (pixels).

    ``weight`` is one number, or one per example (shape ``(N,)``) to compare several prices in
    one batch.
    """

    def __init__(self, weight: float | Sequence[float] | np.ndarray) -> None:
        self.weight = np.asarray([check_number("L2Penalty weight", w, minimum=0.0) for w in np.ravel(weight)],
                                 dtype=np.float32).reshape(np.shape(weight))

    def check_input(self, shape: tuple) -> None:
        if self.weight.ndim == 1 and shape[0] is not None and len(self.weight) != shape[0]:
            raise ValueError(f"L2Penalty has {len(self.weight)} weights for a batch of {shape[0]}; give one, or one per image")

    def penalty(self, x: tf.Tensor, x0: tf.Tensor) -> tf.Tensor:
        axes = tf.range(1, tf.rank(x))
        return tf.constant(self.weight) * 0.5 * tf.reduce_sum(tf.square(x - x0), axis=axes)


# --------------------------------------------------------------------------- image priors (visualisation)


class Jitter(Regularizer):
    """Shift the image by a random ``-pixels..pixels`` in each direction before the model sees it.

    The shift wraps around (what leaves on the right comes back on the left) and changes every
    step. Patterns that only work at one exact position (the high-frequency "fooling" noise) stop
    paying off, so the optimiser draws things that survive being moved.
    """

    def __init__(self, pixels: int = 8) -> None:
        self.pixels = check_int("Jitter pixels", pixels, minimum=0)

    def shift(self, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """The ``(dy, dx)`` shift used at ``step`` (int32, each in ``-pixels..pixels``)."""
        seeds = tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])
        return tf.random.stateless_uniform([2], seed=seeds, minval=-self.pixels, maxval=self.pixels + 1, dtype=tf.int32)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.pixels == 0:
            return x
        return tf.roll(x, shift=self.shift(step, seed), axis=[1, 2])


class TotalVariation(Regularizer):
    """Penalise ``weight`` times the mean absolute difference between neighbouring pixels.

    Zero for a flat image, large for pixel-level noise: the optimiser is asked for smooth areas.
    """

    def __init__(self, weight: float = 0.5) -> None:
        self.weight = check_number("TotalVariation weight", weight, minimum=0.0)

    def check_input(self, shape: tuple) -> None:
        _check_image_side(self, shape, 2, "it compares neighbouring pixels")

    def penalty(self, x: tf.Tensor, x0: tf.Tensor) -> tf.Tensor:
        dy = tf.reduce_mean(tf.abs(x[:, 1:] - x[:, :-1]), axis=[1, 2, 3])
        dx = tf.reduce_mean(tf.abs(x[:, :, 1:] - x[:, :, :-1]), axis=[1, 2, 3])
        return self.weight * (dx + dy)


class L2Decay(Regularizer):
    """After each step pull every pixel a fraction ``rate`` of the way back to mid-grey (127.5).

    Pixels that the objective does not keep pushing fade to grey, so only what matters stays.
    (The same as weight decay on ``x - 127.5``, i.e. a small L2 penalty on the picture.)
    """

    def __init__(self, rate: float = 0.02) -> None:
        self.rate = check_number("L2Decay rate", rate, minimum=0.0, maximum=1.0, below=True)

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        return GRAY + (1.0 - self.rate) * (x - GRAY)


class Blur(Regularizer):
    """After every ``every``-th step (steps ``every-1``, ``2*every-1``, ... counting from 0), blur
    the image with a Gaussian of ``sigma`` pixels. Smooths away pixel noise; edges stay.

    The kernel reaches :attr:`radius` pixels each way and the edges are mirrored, so the image
    must be more than ``radius`` pixels high and wide.
    """

    def __init__(self, sigma: float = 1.0, every: int = 4) -> None:
        self.sigma = check_number("Blur sigma", sigma, minimum=0.0, above=True)
        self.every = check_int("Blur every", every, minimum=1)

    @property
    def radius(self) -> int:
        """How far the kernel reaches, in pixels: ``round(2 * sigma)``, at least 1."""
        return max(1, int(round(2 * self.sigma)))

    def check_input(self, shape: tuple) -> None:
        _check_image_side(self, shape, self.radius + 1, f"its kernel reaches {self.radius} pixels each way")

    def blur(self, x: tf.Tensor) -> tf.Tensor:
        """``x`` blurred (edges reflected, so a flat image stays flat)."""
        radius = self.radius
        t = np.arange(-radius, radius + 1, dtype=np.float32)
        g = np.exp(-0.5 * (t / self.sigma) ** 2)
        g /= g.sum()
        channels = x.shape[-1]
        kernel = tf.constant(np.tile(np.outer(g, g)[:, :, None, None], (1, 1, channels, 1)))
        padded = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
        return tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID")

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        due = tf.equal(tf.math.floormod(tf.cast(step, tf.int32) + 1, self.every), 0)
        return tf.cond(due, lambda: self.blur(x), lambda: tf.identity(x))


def _check_image_side(piece: Regularizer, shape: tuple, smallest: int, why: str) -> None:
    """Refuse images less than ``smallest`` pixels high or wide for ``piece``."""
    if len(shape) != 4:
        raise ValueError(f"{piece!r} works on image batches (N, H, W, C), got shape {tuple(shape)}")
    h, w = shape[1], shape[2]
    if (h is not None and h < smallest) or (w is not None and w < smallest):
        raise ValueError(
            f"{piece!r} needs images at least {smallest}x{smallest} pixels ({why}), got {h}x{w}; "
            "use a larger size or leave it out"
        )


def default_regularizers() -> tuple[Regularizer, ...]:
    """The set lesson 3 compares with the plain loop: jitter, total variation, L2 decay and blur."""
    return (Jitter(8), TotalVariation(0.5), L2Decay(0.02), Blur(1.0, every=4))

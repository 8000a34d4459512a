"""Transformation robustness for feature visualisation (Lucid's ``optvis/transform.py``).

Before the model sees the picture, it is padded, moved, scaled and rotated by a small random
amount that changes every step. A pattern that only works at one exact position, scale and angle
(the fooling noise of plain gradient ascent) stops paying off; what is left are shapes the network
recognises wherever they are. Each piece is a :class:`course_utils.optimize.Regularizer` with only
a :meth:`transform`; :func:`standard_transforms` is Lucid's set.

Randomness is stateless, seeded by ``(seed, step)`` like :class:`course_utils.regularizers.Jitter`
(plus a per-piece ``salt``, so two pieces do not draw the same numbers): the same seed gives the
same run. All tensors are float32 pixels ``(N, H, W, C)``; :class:`Pad`, :class:`RandomCrop` and
:class:`RandomScale` change ``H`` and ``W``, so a model with a fixed input size needs a final
:class:`Resize` (:func:`standard_transforms` adds it when given ``size``).
"""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from course_utils.checks import check_int, check_number, check_size
from course_utils.optimize import Regularizer
from course_utils.regularizers import GRAY

__all__ = ["Pad", "RandomCrop", "RandomScale", "RandomRotate", "Resize", "standard_transforms"]


def _seeds(seed: tf.Tensor, step: tf.Tensor, salt: int) -> tf.Tensor:
    """The stateless seed pair for one piece at one step."""
    return tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32) * 64 + salt])


def _pick(values: Sequence[float], seed: tf.Tensor, step: tf.Tensor, salt: int) -> tf.Tensor:
    """One of ``values`` (float32 scalar), chosen uniformly by ``(seed, step, salt)``."""
    i = tf.random.stateless_uniform([], seed=_seeds(seed, step, salt), minval=0, maxval=len(values), dtype=tf.int32)
    return tf.gather(tf.constant(values, tf.float32), i)


class Pad(Regularizer):
    """Pad ``pixels`` on every side with ``value`` (mid-grey): the picture's edge is no edge for the
    network, and later moves do not wrap the picture around. ``(N, H, W, C) -> (N, H+2p, W+2p, C)``."""

    def __init__(self, pixels: int = 12, value: float = GRAY) -> None:
        self.pixels = check_int("Pad pixels", pixels, minimum=0)
        self.value = check_number("Pad value", value, minimum=0.0, maximum=255.0)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        p = self.pixels
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=self.value)


class RandomCrop(Regularizer):
    """Lucid's ``jitter``: cut a random ``(H - pixels) x (W - pixels)`` window (the same for the whole
    batch), i.e. move the picture by up to ``pixels``. ``(N, H, W, C) -> (N, H-d, W-d, C)``."""

    def __init__(self, pixels: int = 8, salt: int = 1) -> None:
        self.pixels = check_int("RandomCrop pixels", pixels, minimum=0)
        self.salt = check_int("salt", salt, minimum=0, maximum=63)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.pixels == 0:
            return x
        d = self.pixels
        off = tf.random.stateless_uniform([2], seed=_seeds(seed, step, self.salt), minval=0, maxval=d + 1, dtype=tf.int32)
        shape = tf.shape(x)
        return tf.slice(x, [0, off[0], off[1], 0], [shape[0], shape[1] - d, shape[2] - d, shape[3]])


class RandomScale(Regularizer):
    """Resize by a factor picked from ``scales`` each step (bilinear). Default Lucid's
    ``1 + (i - 5) / 50`` for ``i = 0..10``: 0.9..1.1. ``(N, H, W, C) -> (N, sH, sW, C)``."""

    def __init__(self, scales: Sequence[float] = tuple(1 + (i - 5) / 50 for i in range(11)), salt: int = 2) -> None:
        self.scales = tuple(check_number("RandomScale scale", s, minimum=0.0, above=True) for s in scales)
        if not self.scales:
            raise ValueError("RandomScale needs at least one scale")
        self.salt = check_int("salt", salt, minimum=0, maximum=63)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        s = _pick(self.scales, seed, step, self.salt)
        hw = tf.cast(tf.shape(x)[1:3], tf.float32)
        new = tf.maximum(tf.cast(tf.round(hw * s), tf.int32), 1)
        return tf.image.resize(x, new, method="bilinear")


class RandomRotate(Regularizer):
    """Rotate about the centre by an angle (degrees) picked from ``degrees`` each step; corners
    filled with ``fill`` (mid-grey); same size. Default Lucid's -10..10 plus five more zeros."""

    def __init__(self, degrees: Sequence[float] = tuple(range(-10, 11)) + (0,) * 5, fill: float = GRAY, salt: int = 3) -> None:
        self.degrees = tuple(check_number("RandomRotate degrees", d, minimum=-360.0, maximum=360.0) for d in degrees)
        if not self.degrees:
            raise ValueError("RandomRotate needs at least one angle")
        self.fill = check_number("RandomRotate fill", fill, minimum=0.0, maximum=255.0)
        self.salt = check_int("salt", salt, minimum=0, maximum=63)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        angle = _pick(self.degrees, seed, step, self.salt) * (math.pi / 180.0)
        shape = tf.shape(x)
        h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        cos, sin = tf.cos(angle), tf.sin(angle)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        # output (x, y) <- input (a0 x + a1 y + a2, b0 x + b1 y + b2): a rotation about the centre
        matrix = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy,
                           tf.constant(0.0), tf.constant(0.0)])
        transforms = tf.tile(matrix[None], [shape[0], 1])
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=transforms, output_shape=shape[1:3], fill_value=self.fill,
            interpolation="BILINEAR", fill_mode="CONSTANT",
        )


class Resize(Regularizer):
    """Resize to ``size`` (bilinear): the last piece for a model with a fixed input size."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = check_size(size)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.image.resize(x, self.size, method="bilinear")


def standard_transforms(size: int | Sequence[int] | None = None) -> tuple[Regularizer, ...]:
    """Lucid's ``standard_transforms``: pad 12, crop-jitter 8, scale 0.9..1.1, rotate -10..10
    degrees, crop-jitter 4; then :class:`Resize` to ``size`` if given (for fixed-size models)."""
    pieces: tuple[Regularizer, ...] = (Pad(12), RandomCrop(8, salt=1), RandomScale(), RandomRotate(), RandomCrop(4, salt=4))
    return pieces + ((Resize(size),) if size is not None else ())



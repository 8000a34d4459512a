"""Transforms: what the model sees instead of the picture itself, a little different every step.

Each is a :class:`~course_utils.core.pieces.Transform`, applied before the model, differentiable, and
random the way Lucid's are (Olah et al., "Feature Visualization", 2017): a pattern that only works
at one exact position, size or angle (the high-frequency "fooling" noise) stops paying off, so
the optimiser draws things that survive being moved, scaled and turned.

- :class:`Jitter` shifts the picture by a few pixels (wrapping around);
- :class:`RandomScale` zooms it in or out a little about its centre;
- :class:`RandomRotate` turns it by a few degrees about its centre;
- :class:`Pad`, :class:`RandomCrop` and :class:`Resize` are Lucid's padding, crop-jitter and the
  final resize for a model with a fixed input size; :func:`standard_transforms` is Lucid's set
  (``optvis/transform.py``).

The randomness is stateless: the draw at step ``t`` depends only on ``(seed, t)``, so the same
seed gives the same pictures, whether the loop runs in one chunk or many. One draw per step serves
the whole batch. Scaling and turning keep the picture's size (edges are mirrored where they would
leave it empty); only :class:`Pad`, :class:`RandomCrop` and :class:`Resize` change it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from course_utils.checks import check_int, check_number, check_size
from course_utils.core.ops import seed_pair
from course_utils.core.pieces import GRAY, Transform, check_image_side

__all__ = [
    "Jitter", "RandomScale", "RandomRotate", "Pad", "RandomCrop", "Resize", "standard_transforms",
    "LUCID_SCALES", "LUCID_ANGLES",
]

LUCID_SCALES: tuple[float, ...] = tuple(1 + (i - 5) / 50 for i in range(11))
"""Lucid's standard scales, 0.9 .. 1.1 in steps of 0.02."""

LUCID_ANGLES: tuple[float, ...] = tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5
"""Lucid's standard angles in degrees: -10 .. 10, with 0 drawn more often."""


class Jitter(Transform):
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


def _choices(name: str, values: Sequence[float], **bounds) -> tuple[float, ...]:
    if isinstance(values, (int, float, np.number)):
        values = (values,)
    values = tuple(check_number(name, v, **bounds) for v in values)
    if not values:
        raise ValueError(f"{name}: give at least one value")
    return values


def _pick(values: tuple[float, ...], step: tf.Tensor, seed: tf.Tensor, salt: int) -> tf.Tensor:
    """One of ``values`` for this step, drawn from ``(seed, step)`` (float32 scalar)."""
    pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), salt)
    i = tf.random.stateless_uniform([], seed=pair, minval=0, maxval=len(values), dtype=tf.int32)
    return tf.gather(tf.constant(values, tf.float32), i)


def _affine(x: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) -> tf.Tensor:
    """Resample ``x`` so that output pixel ``p`` (column, row), relative to the centre, shows
    input pixel ``centre + [[a, b], [c, d]] @ p`` (bilinear, edges mirrored; same size)."""
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    cx, cy = (tf.cast(w, tf.float32) - 1) / 2, (tf.cast(h, tf.float32) - 1) / 2
    row = tf.stack([a, b, cx - a * cx - b * cy, c, d, cy - c * cx - d * cy, 0.0, 0.0])
    transforms = tf.tile(row[None], [tf.shape(x)[0], 1])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.stack([h, w]), fill_value=tf.constant(0.0),
        interpolation="BILINEAR", fill_mode="REFLECT",
    )


class RandomScale(Transform):
    """Zoom the image about its centre by a factor drawn each step from ``scales`` (Lucid:
    :data:`LUCID_SCALES`, 0.9 .. 1.1). The picture keeps its size: a zoom in crops, a zoom out
    mirrors the edges."""

    def __init__(self, scales: Sequence[float] = LUCID_SCALES) -> None:
        self.scales = _choices("RandomScale scales", scales, minimum=0.0, above=True)

    def check_input(self, shape: tuple) -> None:
        check_image_side(self, shape, 2, "it resamples the picture")

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.scales == (1.0,):
            return x
        inverse = 1.0 / _pick(self.scales, step, seed, salt=21)
        return _affine(x, inverse, 0.0, 0.0, inverse)


class RandomRotate(Transform):
    """Turn the image about its centre by an angle (degrees) drawn each step from ``degrees``
    (Lucid: :data:`LUCID_ANGLES`, -10 .. 10). The picture keeps its size; corners are mirrored in."""

    def __init__(self, degrees: Sequence[float] = LUCID_ANGLES) -> None:
        self.degrees = _choices("RandomRotate degrees", degrees, minimum=-360.0, maximum=360.0)

    def check_input(self, shape: tuple) -> None:
        check_image_side(self, shape, 2, "it resamples the picture")

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if set(self.degrees) == {0.0}:
            return x
        angle = _pick(self.degrees, step, seed, salt=22) * (math.pi / 180.0)
        cos, sin = tf.cos(angle), tf.sin(angle)
        return _affine(x, cos, sin, -sin, cos)


class Pad(Transform):
    """Pad ``pixels`` on every side with ``value`` (mid-grey): the picture's edge is no edge for the
    network, and later moves do not wrap the picture around. ``(N, H, W, C) -> (N, H+2p, W+2p, C)``."""

    def __init__(self, pixels: int = 12, value: float = GRAY) -> None:
        self.pixels = check_int("Pad pixels", pixels, minimum=0)
        self.value = check_number("Pad value", value, minimum=0.0, maximum=255.0)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        p = self.pixels
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=self.value)


class RandomCrop(Transform):
    """Lucid's ``jitter``: cut a random ``(H - pixels) x (W - pixels)`` window (the same for the whole
    batch), i.e. move the picture by up to ``pixels`` without wrapping. ``salt`` keeps two crops of
    one run from drawing the same offsets. ``(N, H, W, C) -> (N, H-d, W-d, C)``."""

    def __init__(self, pixels: int = 8, salt: int = 1) -> None:
        self.pixels = check_int("RandomCrop pixels", pixels, minimum=0)
        self.salt = check_int("RandomCrop salt", salt, minimum=0, maximum=63)

    def check_input(self, shape: tuple) -> None:
        check_image_side(self, shape, self.pixels + 1, f"it cuts {self.pixels} pixels off")

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.pixels == 0:
            return x
        d = self.pixels
        pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), 30 + self.salt)
        off = tf.random.stateless_uniform([2], seed=pair, minval=0, maxval=d + 1, dtype=tf.int32)
        shape = tf.shape(x)
        return tf.slice(x, [0, off[0], off[1], 0], [shape[0], shape[1] - d, shape[2] - d, shape[3]])


class Resize(Transform):
    """Resize to ``size`` (bilinear): the last piece for a model with a fixed input size."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = check_size(size)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.image.resize(x, self.size, method="bilinear")


def standard_transforms(size: int | Sequence[int] | None = None) -> tuple[Transform, ...]:
    """Lucid's ``standard_transforms``: pad 12, crop-jitter 8, scale 0.9..1.1, rotate -10..10
    degrees, crop-jitter 4; then :class:`Resize` to ``size`` if given (for fixed-size models)."""
    pieces: tuple[Transform, ...] = (Pad(12), RandomCrop(8, salt=1), RandomScale(), RandomRotate(), RandomCrop(4, salt=4))
    return pieces + ((Resize(size),) if size is not None else ())

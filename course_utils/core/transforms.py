"""Lesson 3's regularisers: what the feature-visualisation step does to the picture besides the objective.

Three roles, as Lucid/Lucent split them (Olah et al., "Feature Visualization", Distill 2017), each a
small frozen settings object (hashable: a compiled step is kept per settings) with one method:

- **transforms**, ``transform(x, step, seed)``, applied to the picture before the model sees it,
  differentiable and random: a pattern that only works at one exact position, size or angle (the
  high-frequency "fooling" noise) stops paying off. :class:`Jitter` (shift, wrapping around),
  :class:`RandomScale`, :class:`RandomRotate`; :class:`Pad`, :class:`RandomCrop` and :class:`Resize`
  are Lucid's padding, crop-jitter and final resize; :func:`standard_transforms` is Lucid's set.
  The draw at step ``t`` depends only on ``(seed, t)``: the same seed gives the same pictures in
  any number of chunks; one draw per step serves the whole batch. Scaling and turning keep the size
  (edges mirrored); only :class:`Pad`, :class:`RandomCrop` and :class:`Resize` change it.
- **penalties**, ``penalty(x) -> (N,)``, added to the loss: :class:`TotalVariation`.
- **after-step priors**, ``after_step(x, step)``, outside the gradient, on the pixels:
  :class:`L2Decay` (fade towards grey), :class:`Blur` (every few steps).

All work on float32 batches in pixels 0..255, ``(N, H, W, C)``; ``step`` and ``seed`` are int32
scalars. :func:`split_regularizers` checks a tuple of them and sorts it by role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_int, check_number, check_size, describe
from course_utils.core import ops
from course_utils.core.ops import seed_pair

__all__ = [
    "GRAY", "Jitter", "RandomScale", "RandomRotate", "Pad", "RandomCrop", "Resize", "standard_transforms",
    "TotalVariation", "L2Decay", "Blur", "split_regularizers",
]

GRAY = 127.5
"""Mid-grey in pixels: where the start noise is centred and where :class:`L2Decay` pulls to."""

_LUCID_SCALES: tuple[float, ...] = tuple(1 + (i - 5) / 50 for i in range(11))
"""Lucid's standard scales, 0.9 .. 1.1 in steps of 0.02."""

_LUCID_ANGLES: tuple[float, ...] = tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5
"""Lucid's standard angles in degrees: -10 .. 10, with 0 drawn more often."""

frozen = dataclass(frozen=True)


def _set(obj: Any, **values: Any) -> None:
    for name, value in values.items():
        object.__setattr__(obj, name, value)  # a frozen dataclass checks its fields once, when made


def _check_image_side(piece: Any, shape: tuple, smallest: int, why: str) -> None:
    """Refuse images less than ``smallest`` pixels high or wide for ``piece``."""
    if len(shape) != 4:
        raise ValueError(f"{piece!r} works on image batches (N, H, W, C), got shape {tuple(shape)}")
    h, w = shape[1], shape[2]
    if (h is not None and h < smallest) or (w is not None and w < smallest):
        raise ValueError(f"{piece!r} needs images at least {smallest}x{smallest} pixels ({why}), got {h}x{w}; "
                         "use a larger size or leave it out")


# --------------------------------------------------------------------------- transforms


@frozen
class Jitter:
    """Shift the image by a random ``-pixels..pixels`` in each direction before the model sees it.

    The shift wraps around (what leaves on the right comes back on the left) and changes every
    step. Patterns that only work at one exact position (the high-frequency "fooling" noise) stop
    paying off, so the optimiser draws things that survive being moved.
    """

    pixels: int = 8

    def __post_init__(self) -> None:
        _set(self, pixels=check_int("Jitter pixels", self.pixels, minimum=0))

    def shift(self, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """The ``(dy, dx)`` shift used at ``step`` (int32, each in ``-pixels..pixels``)."""
        seeds = tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)])
        return tf.random.stateless_uniform([2], seed=seeds, minval=-self.pixels, maxval=self.pixels + 1, dtype=tf.int32)

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return x if self.pixels == 0 else tf.roll(x, shift=self.shift(step, seed), axis=[1, 2])

    def check_input(self, shape: tuple) -> None:
        pass


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


def _about_centre(x: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) -> tf.Tensor:
    """Resample ``x`` so that output pixel ``p`` (column, row), relative to the centre, shows
    input pixel ``centre + [[a, b], [c, d]] @ p`` (:func:`course_utils.core.ops.affine`; same size)."""
    cx, cy = (tf.cast(tf.shape(x)[2], tf.float32) - 1) / 2, (tf.cast(tf.shape(x)[1], tf.float32) - 1) / 2
    return ops.affine(x, a, b, cx - a * cx - b * cy, c, d, cy - c * cx - d * cy)


@frozen
class RandomScale:
    """Zoom the image about its centre by a factor drawn each step from ``scales`` (Lucid:
    :data:`_LUCID_SCALES`, 0.9 .. 1.1). The picture keeps its size: a zoom in crops, a zoom out
    mirrors the edges."""

    scales: tuple[float, ...] = _LUCID_SCALES

    def __post_init__(self) -> None:
        _set(self, scales=_choices("RandomScale scales", self.scales, minimum=0.0, above=True))

    def check_input(self, shape: tuple) -> None:
        _check_image_side(self, shape, 2, "it resamples the picture")

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.scales == (1.0,):
            return x
        inverse = 1.0 / _pick(self.scales, step, seed, salt=21)
        return _about_centre(x, inverse, 0.0, 0.0, inverse)


@frozen
class RandomRotate:
    """Turn the image about its centre by an angle (degrees) drawn each step from ``degrees``
    (Lucid: :data:`_LUCID_ANGLES`, -10 .. 10). The picture keeps its size; corners are mirrored in."""

    degrees: tuple[float, ...] = _LUCID_ANGLES

    def __post_init__(self) -> None:
        _set(self, degrees=_choices("RandomRotate degrees", self.degrees, minimum=-360.0, maximum=360.0))

    def check_input(self, shape: tuple) -> None:
        _check_image_side(self, shape, 2, "it resamples the picture")

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if set(self.degrees) == {0.0}:
            return x
        angle = _pick(self.degrees, step, seed, salt=22) * (math.pi / 180.0)
        cos, sin = tf.cos(angle), tf.sin(angle)
        return _about_centre(x, cos, sin, -sin, cos)


@frozen
class Pad:
    """Pad ``pixels`` on every side with ``value`` (mid-grey): the picture's edge is no edge for the
    network, and later moves do not wrap the picture around. ``(N, H, W, C) -> (N, H+2p, W+2p, C)``."""

    pixels: int = 12
    value: float = GRAY

    def __post_init__(self) -> None:
        _set(self, pixels=check_int("Pad pixels", self.pixels, minimum=0),
             value=check_number("Pad value", self.value, minimum=0.0, maximum=255.0))

    def check_input(self, shape: tuple) -> None:
        pass

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        p = self.pixels
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=self.value)


@frozen
class RandomCrop:
    """Lucid's ``jitter``: cut a random ``(H - pixels) x (W - pixels)`` window (the same for the whole
    batch), i.e. move the picture by up to ``pixels`` without wrapping. ``salt`` keeps two crops of
    one run from drawing the same offsets. ``(N, H, W, C) -> (N, H-d, W-d, C)``."""

    pixels: int = 8
    salt: int = 1

    def __post_init__(self) -> None:
        _set(self, pixels=check_int("RandomCrop pixels", self.pixels, minimum=0),
             salt=check_int("RandomCrop salt", self.salt, minimum=0, maximum=63))

    def check_input(self, shape: tuple) -> None:
        _check_image_side(self, shape, self.pixels + 1, f"it cuts {self.pixels} pixels off")

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.pixels == 0:
            return x
        d = self.pixels
        pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), 30 + self.salt)
        off = tf.random.stateless_uniform([2], seed=pair, minval=0, maxval=d + 1, dtype=tf.int32)
        shape = tf.shape(x)
        return tf.slice(x, [0, off[0], off[1], 0], [shape[0], shape[1] - d, shape[2] - d, shape[3]])


@frozen
class Resize:
    """Resize to ``size`` (bilinear): the last transform for a model with a fixed input size."""

    size: tuple[int, int]

    def __post_init__(self) -> None:
        _set(self, size=check_size(self.size))

    def check_input(self, shape: tuple) -> None:
        pass

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.image.resize(x, self.size, method="bilinear")


def standard_transforms(size: int | Sequence[int] | None = None) -> tuple:
    """Lucid's ``standard_transforms``: pad 12, crop-jitter 8, scale 0.9..1.1, rotate -10..10
    degrees, crop-jitter 4; then :class:`Resize` to ``size`` if given (for fixed-size models)."""
    pieces = (Pad(12), RandomCrop(8, salt=1), RandomScale(), RandomRotate(), RandomCrop(4, salt=4))
    return pieces + ((Resize(size),) if size is not None else ())


# --------------------------------------------------------------------------- penalty and priors


@frozen
class TotalVariation:
    """Penalise ``weight`` times the mean absolute difference between neighbouring pixels.

    Zero for a flat image, large for pixel-level noise: the optimiser is asked for smooth areas.
    """

    weight: float = 0.5

    def __post_init__(self) -> None:
        _set(self, weight=check_number("TotalVariation weight", self.weight, minimum=0.0))

    def check_input(self, shape: tuple) -> None:
        _check_image_side(self, shape, 2, "it compares neighbouring pixels")

    def penalty(self, x: tf.Tensor) -> tf.Tensor:
        """``(N,)`` the price of pictures ``x`` ``(N, H, W, C)``."""
        dy = tf.reduce_mean(tf.abs(x[:, 1:] - x[:, :-1]), axis=[1, 2, 3])
        dx = tf.reduce_mean(tf.abs(x[:, :, 1:] - x[:, :, :-1]), axis=[1, 2, 3])
        return self.weight * (dx + dy)


@frozen
class L2Decay:
    """After each step pull every pixel a fraction ``rate`` of the way back to mid-grey (127.5).

    Pixels that the objective does not keep pushing fade to grey, so only what matters stays.
    (The same as weight decay on ``x - 127.5``, i.e. a small L2 penalty on the picture.)
    """

    rate: float = 0.02

    def __post_init__(self) -> None:
        _set(self, rate=check_number("L2Decay rate", self.rate, minimum=0.0, maximum=1.0, below=True))

    def check_input(self, shape: tuple) -> None:
        pass

    def after_step(self, x: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        return GRAY + (1.0 - self.rate) * (x - GRAY)


@frozen
class Blur:
    """After every ``every``-th step (steps ``every-1``, ``2*every-1``, ... counting from 0), blur
    the image with a Gaussian of ``sigma`` pixels. Smooths away pixel noise; edges stay.

    The kernel reaches :attr:`radius` pixels each way and the edges are mirrored, so the image
    must be more than ``radius`` pixels high and wide.
    """

    sigma: float = 1.0
    every: int = 4

    def __post_init__(self) -> None:
        _set(self, sigma=check_number("Blur sigma", self.sigma, minimum=0.0, above=True),
             every=check_int("Blur every", self.every, minimum=1))

    @property
    def radius(self) -> int:
        """How far the kernel reaches, in pixels: ``round(2 * sigma)``, at least 1."""
        return max(1, int(round(2 * self.sigma)))

    def check_input(self, shape: tuple) -> None:
        _check_image_side(self, shape, self.radius + 1, f"its kernel reaches {self.radius} pixels each way")

    def blur(self, x: tf.Tensor) -> tf.Tensor:
        """``x`` blurred (:func:`course_utils.core.ops.gaussian_blur`: edges mirrored, so a flat image stays flat)."""
        return ops.gaussian_blur(x, tf.fill(tf.shape(x)[:1], self.sigma), self.radius)

    def after_step(self, x: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        due = tf.equal(tf.math.floormod(tf.cast(step, tf.int32) + 1, self.every), 0)
        return tf.cond(due, lambda: self.blur(x), lambda: tf.identity(x))


ROLES = {"transform": (Jitter, RandomScale, RandomRotate, Pad, RandomCrop, Resize),
         "penalty": (TotalVariation,), "after_step": (L2Decay, Blur)}


def split_regularizers(regularizers: Any, name: str = "regularizers") -> tuple[tuple, tuple, tuple]:
    """``(transforms, penalties, priors)``: the regularisers (a tuple or list, one on its own, or
    ``None``) sorted by role, each in the order given. Refuses names (``"jitter"``), classes not made
    into objects (``Blur`` for ``Blur()``) and anything else, with the reason."""
    known = tuple(c for classes in ROLES.values() for c in classes)
    if regularizers is None:
        return (), (), ()
    if isinstance(regularizers, known):
        regularizers = (regularizers,)
    if isinstance(regularizers, type) and issubclass(regularizers, known):
        raise WrongTypeError(f"{name} got the class {regularizers.__name__}, not a regulariser: write "
                             f"{regularizers.__name__}() (with brackets) to make one")
    if isinstance(regularizers, (str, bytes)) or not isinstance(regularizers, (list, tuple)):
        raise WrongTypeError(f"{name} must be a tuple of regulariser objects such as (Jitter(8), Blur(1.0)), "
                             f"got {describe(regularizers)}")
    for i, r in enumerate(regularizers):
        if isinstance(r, type) and issubclass(r, known):
            raise WrongTypeError(f"{name}[{i}] is the class {r.__name__}, not a regulariser: write {r.__name__}() "
                                 "(with brackets) to make one")
        if not isinstance(r, known):
            raise WrongTypeError(f"{name}[{i}] must be a regulariser object such as Jitter(8) or Blur(1.0), "
                                 f"got {describe(r)}")
    return tuple(tuple(r for r in regularizers if isinstance(r, ROLES[role])) for role in ROLES)

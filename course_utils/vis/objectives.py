"""What lesson 3's step optimises besides its loop, in Lucid's terms (Olah et al., "Feature
Visualization", Distill 2017): the objective and the regularisers, each a small frozen settings
object (hashable: a compiled step is kept per settings).

- **the objective**, :class:`Objective`, ``objective(model, x, data) -> (loss (N,), tracked (N, K))``:
  a class logit, a filter's mean or centre, plus :func:`diversity` (Lucid's ``objectives``);
- **transforms**, ``transform(x, step, seed)``, applied to the picture before the model sees it,
  differentiable and random, so that a pattern that only works at one exact position, size or angle
  stops paying off: :class:`Jitter`, and Lucid's set :func:`standard_transforms` (pad, crop-jitter,
  scale, rotate, crop-jitter, resize). The draw at step ``t`` depends only on ``(seed, t)``, one draw
  per step for the whole batch;
- **penalties**, ``penalty(x) -> (N,)``, added to the loss: :class:`TotalVariation`;
- **after-step priors**, ``after_step(x, step)``, outside the gradient, on the pixels:
  :class:`L2Decay` (fade towards grey), :class:`Blur` (every few steps).

All work on float32 batches in pixels 0..255, ``(N, H, W, C)``; ``step`` and ``seed`` are int32
scalars. :func:`split_regularizers` checks a tuple of regularisers and sorts it by role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_int, check_number, check_size, describe
from course_utils.core import ops
from course_utils.core.ops import seed_pair
from course_utils.models.forward import cached, check_layer, compiled_forward, feature_model

__all__ = ["GRAY", "diversity", "Objective", "Jitter", "standard_transforms", "TotalVariation", "L2Decay", "Blur",
           "split_regularizers"]

GRAY = 127.5
"""Mid-grey in pixels: where the start noise is centred and where :class:`L2Decay` pulls to."""

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


def _draw(step: tf.Tensor, seed: tf.Tensor, salt: int, shape: list, maxval: int, minval: int = 0) -> tf.Tensor:
    """int32 ``shape`` uniform in ``minval..maxval-1``, drawn from ``(seed, step)`` and ``salt``."""
    pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), salt)
    return tf.random.stateless_uniform(shape, seed=pair, minval=minval, maxval=maxval, dtype=tf.int32)


# --------------------------------------------------------------------------- objectives


def diversity(acts: tf.Tensor) -> tf.Tensor:
    """``(N,)`` how alike picture ``i``'s feature *style* is to the others' (Olah et al. 2017), 0..N-1.

    Each picture's Gram matrix of ``acts`` ``(N, h, w, C)`` (channel co-occurrences, summed over
    positions) is normalised to length 1; the value for picture ``i`` is the sum of its dot
    products with the other pictures' (0 for one picture, ``N - 1`` for ``N`` alike pictures).
    The mean over ``i`` is minus Lucid's ``diversity`` objective.
    """
    shape = tf.shape(acts)
    flat = tf.reshape(acts, [shape[0], -1, shape[3]])
    grams = tf.reshape(tf.matmul(flat, flat, transpose_a=True), [shape[0], -1])  # (N, C * C)
    grams = tf.math.l2_normalize(grams, axis=1, epsilon=1e-10)
    sims = tf.matmul(grams, grams, transpose_b=True)  # (N, N)
    return tf.reduce_sum(sims, axis=1) - tf.linalg.diag_part(sims)


@frozen
class Objective:
    """What :func:`~course_utils.vis.visualize.ascent_step` minimises: ``objective(model, x, data) ->
    (loss (N,), tracked (N, K))`` on pixels ``x`` ``(N, H, W, C)``. Frozen settings: equal objectives
    share one compiled step, and the classes or filters come per call in ``data``.

    ``layer=None``: minus the logit of class ``data["labels"][i]`` for picture ``i``; tracks its
    probability and logit, ``(N, 2)``. Else minus channel ``data["filters"][i]`` of the conv feature
    ``layer``, ``at`` ``"mean"`` over positions (Lucent's ``channel``) or ``"center"`` at the centre
    position (Lucid's "neuron"); tracks that value, ``(N, 1)``. ``diversity_weight > 0`` adds that
    times :func:`diversity` of the same response (one pass through the network), tracked as a
    second column. The cut network is kept in the model's cache (:func:`course_utils.models.forward.cached`);
    both run compiled (:func:`~course_utils.models.forward.compiled_forward`), traced once per network however
    many recipes, classes and layers a lesson draws with it.
    """

    layer: str | None = None
    at: str = "mean"
    diversity_weight: float = 0.0

    def features(self, model: keras.Model) -> keras.Model:
        """The network cut at :attr:`layer`, on pictures of any size: built once per model and layer."""
        return cached(model, ("features", self.layer), lambda: feature_model(model, check_layer(model, self.layer)[0]))

    def value(self, acts: tf.Tensor, filters: tf.Tensor) -> tf.Tensor:
        """``(N,)`` channel ``filters[i]`` of the response ``acts[i]`` (``(N, h, w, C)``), mean or centre."""
        if self.at == "center":
            shape = tf.shape(acts)
            return tf.gather(acts[:, shape[1] // 2, shape[2] // 2, :], filters, batch_dims=1)
        return tf.gather(tf.reduce_mean(acts, axis=[1, 2]), filters, batch_dims=1)  # image i -> its filter i

    def __call__(self, model: Any, x: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        if self.layer is None:
            logits = compiled_forward(model)(x)
            chosen = tf.gather(logits, data["labels"], batch_dims=1)
            prob = tf.gather(tf.nn.softmax(logits), data["labels"], batch_dims=1)
            return -chosen, tf.stack([prob, chosen], axis=1)
        acts = compiled_forward(self.features(model))(x)
        value = self.value(acts, data["filters"])
        if not self.diversity_weight:
            return -value, value[:, None]
        alike = diversity(acts)
        return -value + self.diversity_weight * alike, tf.stack([value, alike], axis=1)


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


def _about_centre(x: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) -> tf.Tensor:
    """Resample ``x`` so that output pixel ``p`` (column, row), relative to the centre, shows
    input pixel ``centre + [[a, b], [c, d]] @ p`` (:func:`course_utils.core.ops.affine`; same size)."""
    cx, cy = (tf.cast(tf.shape(x)[2], tf.float32) - 1) / 2, (tf.cast(tf.shape(x)[1], tf.float32) - 1) / 2
    return ops.affine(x, a, b, cx - a * cx - b * cy, c, d, cy - c * cx - d * cy)


@frozen
class _RandomAffine:
    """Lucid's random scale and rotation about the centre, each step one of ``values``: a zoom
    factor (``angle=False``; Lucid's 0.9 .. 1.1) or an angle in degrees (Lucid's -10 .. 10, 0 drawn
    more often). The picture keeps its size: the edges are mirrored in."""

    values: tuple[float, ...]
    angle: bool = False

    def __post_init__(self) -> None:
        bounds = dict(minimum=-360.0, maximum=360.0) if self.angle else dict(minimum=0.0, above=True)
        _set(self, values=_choices("rotation degrees" if self.angle else "scales", self.values, **bounds))

    def check_input(self, shape: tuple) -> None:
        _check_image_side(self, shape, 2, "it resamples the picture")

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if set(self.values) == ({0.0} if self.angle else {1.0}):
            return x
        value = tf.gather(tf.constant(self.values, tf.float32), _draw(step, seed, 22 if self.angle else 21, [],
                                                                       len(self.values)))
        if not self.angle:
            return _about_centre(x, 1.0 / value, 0.0, 0.0, 1.0 / value)
        angle = value * (math.pi / 180.0)
        cos, sin = tf.cos(angle), tf.sin(angle)
        return _about_centre(x, cos, sin, -sin, cos)


@frozen
class _Crop:
    """Lucid's pad (``pixels < 0``: ``-pixels`` of mid-grey on every side, ``(N, H+2p, W+2p, C)``)
    and crop-jitter (``pixels > 0``: a random ``(H - pixels) x (W - pixels)`` window, the same for
    the whole batch, drawn with ``salt``); ``size``: resize to it (bilinear) instead, the last
    transform for a model with a fixed input size."""

    pixels: int = 0
    salt: int = 1
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _set(self, pixels=check_int("crop pixels", self.pixels),
             size=None if self.size is None else check_size(self.size))

    def check_input(self, shape: tuple) -> None:
        if self.pixels > 0:
            _check_image_side(self, shape, self.pixels + 1, f"it cuts {self.pixels} pixels off")

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.size is not None:
            return tf.image.resize(x, self.size, method="bilinear")
        p, d = -self.pixels, self.pixels
        if p > 0:
            return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=GRAY)
        if d == 0:
            return x
        off = _draw(step, seed, 30 + self.salt, [2], d + 1)
        shape = tf.shape(x)
        return tf.slice(x, [0, off[0], off[1], 0], [shape[0], shape[1] - d, shape[2] - d, shape[3]])


def standard_transforms(size: int | Sequence[int] | None = None) -> tuple:
    """Lucid's ``standard_transforms``: pad 12, crop-jitter 8, scale 0.9..1.1, rotate -10..10
    degrees, crop-jitter 4; then a resize to ``size`` if given (for fixed-size models)."""
    scales = tuple(1 + (i - 5) / 50 for i in range(11))
    angles = tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5
    pieces = (_Crop(-12), _Crop(8, salt=1), _RandomAffine(scales), _RandomAffine(angles, angle=True), _Crop(4, salt=4))
    return pieces + ((_Crop(size=size),) if size is not None else ())


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
    the image with a Gaussian of ``sigma`` pixels (:func:`course_utils.core.ops.gaussian_blur`,
    edges mirrored: a flat image stays flat). Smooths away pixel noise; edges stay.

    The kernel reaches :attr:`radius` pixels each way, so the image must be more than ``radius``
    pixels high and wide.
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

    def after_step(self, x: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        due = tf.equal(tf.math.floormod(tf.cast(step, tf.int32) + 1, self.every), 0)
        blurred = lambda: ops.gaussian_blur(x, tf.fill(tf.shape(x)[:1], self.sigma), self.radius)  # noqa: E731
        return tf.cond(due, blurred, lambda: tf.identity(x))


_ROLES = {"transform": (Jitter, _RandomAffine, _Crop), "penalty": (TotalVariation,), "after_step": (L2Decay, Blur)}


def split_regularizers(regularizers: Any, name: str = "regularizers") -> tuple[tuple, tuple, tuple]:
    """``(transforms, penalties, priors)``: the regularisers (a tuple or list, one on its own, or
    ``None``) sorted by role, each in the order given. Refuses names (``"jitter"``), classes not made
    into objects (``Blur`` for ``Blur()``) and anything else, with the reason."""
    known = tuple(c for classes in _ROLES.values() for c in classes)
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
    return tuple(tuple(r for r in regularizers if isinstance(r, _ROLES[role])) for role in _ROLES)

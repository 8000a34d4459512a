"""Print and photograph: what happens to a picture between the screen and a camera, as transforms.

Kurakin, Goodfellow and Bengio ("Adversarial examples in the physical world", 2016; ICLR
workshop 2017) printed adversarial images, photographed the prints with a phone and classified
the photos. The photo differs from the file in ways nobody controls: the light (brightness,
contrast), the focus (blur), the sensor (noise), the phone's JPEG, and the hand (a small turn,
zoom and shift). :class:`PrintPhoto` draws all of them at random, each draw from a seed, and
applies them in that order; it is differentiable (JPEG is left out of the gradient path, or
passed straight through, BPDA, with ``jpeg=``), so the gradient loop can average over its draws:
expectation over transformation (EOT; Athalye, Engstrom, Ilyas and Kwok, ICML 2018).

A drawing transform gives *several* pictures for each one it gets: ``draws`` copies of a batch of
``N``, ``(draws * N, H, W, C)``, row ``j * N + i`` being draw ``j`` of picture ``i``; reshaped to
``(draws, N, ...)``, :func:`course_utils.core.ops.cross_entropy` averages the loss over the draws
(EOT), seeded by the step's ``(seed, step)``.

:func:`paste` puts a (turned, scaled) patch into pictures at given places: the adversarial patch
of :mod:`course_utils.attacks.patch`.

All pictures are float32 pixels 0..255, ``(N, H, W, C)``. A simulation is not a camera: the
ranges below are a plausible phone photo of a print, not a measured one.
"""

from __future__ import annotations

import math
from typing import Hashable

import tensorflow as tf

from course_utils.checks import check_int, check_number
from course_utils.core import ops
from course_utils.core.ops import seed_pair

__all__ = ["PrintPhoto", "paste"]


def _affine_each(x: tf.Tensor, angle: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Turn each picture by ``angle`` (radians), zoom it by ``scale`` and move it by ``shift``
    ``(N, 2)`` pixels (rows, columns) about its centre (bilinear, edges mirrored, same size)."""
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    cx, cy = (tf.cast(w, tf.float32) - 1) / 2, (tf.cast(h, tf.float32) - 1) / 2
    a, b = tf.cos(angle) / scale, tf.sin(angle) / scale
    c, d = -b, a
    ox, oy = cx - shift[:, 1], cy - shift[:, 0]  # the output's centre shows the input's centre - shift
    return ops.affine(x, a, b, cx - a * ox - b * oy, c, d, cy - c * ox - d * oy)


class PrintPhoto:
    """A simulated print-and-photograph: ``draws`` random versions of every picture.

    Each version draws, uniformly and independently, a turn of ``-degrees..degrees``, a zoom of
    ``1 - scale..1 + scale``, a move of ``-shift..shift`` pixels each way, a Gaussian blur of
    width ``0..blur`` pixels, a contrast factor ``1 - contrast..1 + contrast`` (about the
    picture's mean), a brightness change of ``-brightness..brightness`` grey levels and sensor
    noise of ``0..noise`` grey levels (standard deviation), then clips to 0..255; with ``jpeg``
    ``(low, high)`` it is also saved as a JPEG of quality ``low..high``, forwards only (the
    straight-through gradient, BPDA). The draw depends only on ``(seed, step)`` and the row.

    ``(N, H, W, C) -> (draws * N, H, W, C)``, row ``j * N + i`` being draw ``j`` of picture ``i``;
    a step reshapes what the model says to ``(draws, N, ...)`` and averages over the draws
    (:func:`course_utils.attacks.physical.eot_step`).
    """

    def __init__(self, draws: int = 1, *, degrees: float = 5.0, scale: float = 0.08, shift: float = 4.0,
                 blur: float = 1.5, contrast: float = 0.2, brightness: float = 20.0, noise: float = 4.0,
                 jpeg: tuple[int, int] | None = None) -> None:
        self.draws = check_int("PrintPhoto draws", draws, minimum=1)
        self.degrees = check_number("PrintPhoto degrees", degrees, minimum=0.0, maximum=45.0)
        self.scale = check_number("PrintPhoto scale", scale, minimum=0.0, maximum=0.5)
        self.shift = check_number("PrintPhoto shift", shift, minimum=0.0, maximum=32.0)
        self.blur = check_number("PrintPhoto blur", blur, minimum=0.0, maximum=5.0)
        self.contrast = check_number("PrintPhoto contrast", contrast, minimum=0.0, maximum=0.9)
        self.brightness = check_number("PrintPhoto brightness", brightness, minimum=0.0, maximum=128.0)
        self.noise = check_number("PrintPhoto noise", noise, minimum=0.0, maximum=64.0)
        if jpeg is not None:
            if not (isinstance(jpeg, (tuple, list)) and len(jpeg) == 2):
                raise ValueError(f"PrintPhoto jpeg must be None or (low, high) qualities in 1..100, got {jpeg!r}")
            low, high = (check_int("PrintPhoto jpeg quality", q, minimum=1, maximum=100) for q in jpeg)
            if low > high:
                raise ValueError(f"PrintPhoto jpeg: the lowest quality must come first, got {jpeg!r}")
            jpeg = (low, high)
        self.jpeg = jpeg

    def __repr__(self) -> str:
        return f"PrintPhoto({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def key(self) -> Hashable:
        """The settings, as a key for compiled functions."""
        return (type(self).__qualname__, tuple(sorted(vars(self).items())))

    def check_input(self, shape: tuple) -> None:
        """Refuse, before any work, a batch ``(N, H, W, C)`` too small to blur and resample."""
        smallest = 2 * math.ceil(3 * self.blur) + 1
        if len(shape) != 4:
            raise ValueError(f"{self!r} works on image batches (N, H, W, C), got shape {tuple(shape)}")
        if min(shape[1], shape[2]) < smallest:
            raise ValueError(f"{self!r} needs images at least {smallest}x{smallest} pixels (it blurs and resamples "
                             f"the picture), got {shape[1]}x{shape[2]}; use a larger size or leave it out")

    def parameters(self, rows: tf.Tensor | int, step: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """The draw of each of ``rows`` pictures at ``step``: ``(rows,)`` float32 tensors ``angle``
        (degrees), ``scale``, ``blur`` (pixels), ``contrast``, ``brightness`` and ``noise`` (grey
        levels), ``quality``; and ``shift`` ``(rows, 2)`` pixels."""
        pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), 40)
        u = tf.random.stateless_uniform(tf.stack([rows, 9]), seed=pair)  # (rows, 9) in 0..1
        spread = 2.0 * u - 1.0
        low, high = self.jpeg or (100, 100)
        return {
            "angle": self.degrees * spread[:, 0], "scale": 1.0 + self.scale * spread[:, 1],
            "shift": self.shift * spread[:, 2:4], "blur": self.blur * u[:, 4],
            "contrast": 1.0 + self.contrast * spread[:, 5], "brightness": self.brightness * spread[:, 6],
            "noise": self.noise * u[:, 7], "quality": tf.floor(low + (high - low + 1) * u[:, 8]),
        }

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.draws > 1:
            x = tf.concat([x] * self.draws, axis=0)
        p = self.parameters(tf.shape(x)[0], step, seed)
        if self.degrees or self.scale or self.shift:
            x = _affine_each(x, p["angle"] * (math.pi / 180.0), p["scale"], p["shift"])
        if self.blur:
            x = ops.gaussian_blur(x, p["blur"], math.ceil(3 * self.blur))
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = mean + p["contrast"][:, None, None, None] * (x - mean) + p["brightness"][:, None, None, None]
        if self.noise:
            pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), 41)
            x = x + p["noise"][:, None, None, None] * tf.random.stateless_normal(tf.shape(x), seed=pair)
        x = tf.clip_by_value(x, 0.0, 255.0)
        if self.jpeg is not None:
            x = ops.straight_through(x, ops.jpeg(x, p["quality"]))  # BPDA
        return x


def paste(pictures: tf.Tensor, patch: tf.Tensor, centres: tf.Tensor, sides: tf.Tensor,
          angles: tf.Tensor) -> tf.Tensor:
    """``pictures`` ``(M, H, W, C)`` with ``patch`` (``(1 or M, P, P, C)``, pixels 0..255) pasted
    on each: centred at ``centres`` ``(M, 2)`` (row, column, in pixels, 0 = the first pixel's
    centre), ``sides`` ``(M,)`` pixels wide, turned by ``angles`` ``(M,)`` degrees.
    Bilinear, so a patch of its own size at whole-pixel places and no turn lands
    exactly: ``paste(x, p, [[r + (P-1)/2, c + (P-1)/2]], [P], [0])[0, r:r+P, c:c+P] == p[0]``.
    Differentiable with respect to the patch."""
    m = tf.shape(pictures)[0]
    h, w = tf.shape(pictures)[1], tf.shape(pictures)[2]
    patch = tf.broadcast_to(patch, tf.concat([[m], tf.shape(patch)[1:]], axis=0))
    size = tf.cast(tf.shape(patch)[1], tf.float32)
    k = size / tf.cast(sides, tf.float32)
    theta = tf.cast(angles, tf.float32) * (math.pi / 180.0)
    a0, a1 = k * tf.cos(theta), -k * tf.sin(theta)
    b0, b1 = k * tf.sin(theta), k * tf.cos(theta)
    cy, cx = tf.cast(centres[:, 0], tf.float32), tf.cast(centres[:, 1], tf.float32)
    mid = (size - 1.0) / 2.0
    tx, ty = mid - a0 * cx - a1 * cy, mid - b0 * cx - b1 * cy
    mask = ops.affine(tf.ones_like(patch[..., :1]), a0, a1, tx, b0, b1, ty, size=(h, w), fill="CONSTANT")
    return pictures * (1.0 - mask) + ops.affine(patch, a0, a1, tx, b0, b1, ty, size=(h, w), fill="CONSTANT")

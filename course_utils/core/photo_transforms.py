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
``N``, ``(draws * N, H, W, C)``, row ``j * N + i`` being draw ``j`` of picture ``i``.
:class:`DrawnCrossEntropy` is the objective that goes with it: the cross-entropy averaged over the
copies of each picture (the same loss as :class:`~course_utils.core.objectives.CrossEntropy` with
``samples``, which averages over calls of a *random model*; here the randomness is in the
transform, seeded by the loop's ``(seed, step)``).

:func:`paste` puts a (turned, scaled) patch into pictures at given places: the adversarial patch
of :mod:`course_utils.attacks.patch`.

All pictures are float32 pixels 0..255, ``(N, H, W, C)``. A simulation is not a camera: the
ranges below are a plausible phone photo of a print, not a measured one.
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Mapping

import tensorflow as tf

from course_utils.checks import check_int, check_number
from course_utils.core.objectives import Objective
from course_utils.core.ops import seed_pair
from course_utils.core.pieces import Transform, check_image_side

__all__ = ["PrintPhoto", "jpeg_recompress", "blur_each", "paste", "DrawnCrossEntropy"]


def blur_each(x: tf.Tensor, sigma: tf.Tensor, radius: int) -> tf.Tensor:
    """Gaussian blur of each picture with its own width ``sigma`` ``(N,)`` in pixels (separable,
    edges mirrored, ``radius`` taps each side). The batch is folded into the channels, so one
    depthwise convolution applies every picture's own kernel. Differentiable."""
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    s = tf.maximum(tf.cast(sigma, tf.float32), 1e-3)[:, None]
    taps = tf.exp(-0.5 * tf.square(offsets / s))
    taps = taps / tf.reduce_sum(taps, axis=1, keepdims=True)  # (N, K)
    n, h, w, c = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2], x.shape[-1]
    taps = tf.transpose(tf.repeat(taps, c, axis=0))  # (K, N * C)
    folded = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c])
    padded = tf.pad(folded, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    k = 2 * radius + 1
    out = tf.nn.depthwise_conv2d(padded, tf.reshape(taps, [k, 1, n * c, 1]), [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, tf.reshape(taps, [1, k, n * c, 1]), [1, 1, 1, 1], "VALID")
    return tf.ensure_shape(tf.transpose(tf.reshape(out, [h, w, n, c]), [2, 0, 1, 3]), x.shape)


def jpeg_recompress(x: tf.Tensor, quality: tf.Tensor) -> tf.Tensor:
    """Each picture saved as a JPEG of its own ``quality`` ``(N,)`` (whole numbers 1..100) and read
    back: rounded to whole grey levels, fine detail dropped. No gradient (the pixels become bytes)."""
    pixels = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)
    q = tf.cast(tf.clip_by_value(tf.round(tf.cast(quality, tf.float32)), 1.0, 100.0), tf.int32)
    out = tf.map_fn(lambda a: tf.image.adjust_jpeg_quality(a[0], a[1]), (pixels, q),
                    fn_output_signature=tf.TensorSpec(x.shape[1:], tf.uint8))
    return tf.cast(out, tf.float32)


def _affine_each(x: tf.Tensor, angle: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Turn each picture by ``angle`` (radians), zoom it by ``scale`` and move it by ``shift``
    ``(N, 2)`` pixels (rows, columns) about its centre (bilinear, edges mirrored, same size)."""
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    cx, cy = (tf.cast(w, tf.float32) - 1) / 2, (tf.cast(h, tf.float32) - 1) / 2
    a, b = tf.cos(angle) / scale, tf.sin(angle) / scale
    c, d = -b, a
    ox, oy = cx - shift[:, 1], cy - shift[:, 0]  # the output's centre shows the input's centre - shift
    zero = tf.zeros_like(a)
    rows = tf.stack([a, b, cx - a * ox - b * oy, c, d, cy - c * ox - d * oy, zero, zero], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=rows, output_shape=tf.stack([h, w]),
                                                 fill_value=tf.constant(0.0), interpolation="BILINEAR",
                                                 fill_mode="REFLECT")


class PrintPhoto(Transform):
    """A simulated print-and-photograph: ``draws`` random versions of every picture.

    Each version draws, uniformly and independently, a turn of ``-degrees..degrees``, a zoom of
    ``1 - scale..1 + scale``, a move of ``-shift..shift`` pixels each way, a Gaussian blur of
    width ``0..blur`` pixels, a contrast factor ``1 - contrast..1 + contrast`` (about the
    picture's mean), a brightness change of ``-brightness..brightness`` grey levels and sensor
    noise of ``0..noise`` grey levels (standard deviation), then clips to 0..255; with ``jpeg``
    ``(low, high)`` it is also saved as a JPEG of quality ``low..high``, forwards only (the
    straight-through gradient, BPDA). The draw depends only on ``(seed, step)`` and the row.

    ``(N, H, W, C) -> (draws * N, H, W, C)``, row ``j * N + i`` being draw ``j`` of picture ``i``;
    use it with :class:`DrawnCrossEntropy`, which averages over the draws.
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

    def check_input(self, shape: tuple) -> None:
        check_image_side(self, shape, 2 * math.ceil(3 * self.blur) + 1, "it blurs and resamples the picture")

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
            x = blur_each(x, p["blur"], math.ceil(3 * self.blur))
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = mean + p["contrast"][:, None, None, None] * (x - mean) + p["brightness"][:, None, None, None]
        if self.noise:
            pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), 41)
            x = x + p["noise"][:, None, None, None] * tf.random.stateless_normal(tf.shape(x), seed=pair)
        x = tf.clip_by_value(x, 0.0, 255.0)
        if self.jpeg is not None:
            x = x + tf.stop_gradient(jpeg_recompress(x, p["quality"]) - x)
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
    zero = tf.zeros_like(a0)
    rows = tf.stack([a0, a1, mid - a0 * cx - a1 * cy, b0, b1, mid - b0 * cx - b1 * cy, zero, zero], axis=1)

    def place(images: tf.Tensor) -> tf.Tensor:
        return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=rows, output_shape=tf.stack([h, w]),
                                                     fill_value=tf.constant(0.0), interpolation="BILINEAR",
                                                     fill_mode="CONSTANT")

    mask = place(tf.ones_like(patch[..., :1]))
    return pictures * (1.0 - mask) + place(patch)


class DrawnCrossEntropy(Objective):
    """Cross-entropy of ``model``'s logits to the per-call ``labels`` ``(N,)``, averaged over the
    copies a drawing transform made: the batch it sees holds ``copies * N`` pictures, row
    ``j * N + i`` a version of example ``i`` (:class:`PrintPhoto`; a patch pasted on ``copies``
    photos). With no transform in front (the loop's first and last evaluation) ``copies`` is 1.

    ``targeted=True`` minimises it (towards the label), else maximises it. Tracks the softmax
    averaged over the copies, ``(N, classes)``.
    """

    per_call = {"labels": tf.int32}

    def __init__(self, model: Any, targeted: bool = True) -> None:
        self.model = model
        self.targeted = bool(targeted)

    def __call__(self, x: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        labels = data["labels"]
        n = tf.shape(labels)[0]
        logits = self.model(x, training=False)
        classes = logits.shape[-1] if logits.shape[-1] is not None else -1
        logits = tf.reshape(logits, [tf.shape(x)[0] // n, n, classes])  # (copies, N, classes)
        onehot = tf.one_hot(labels, tf.shape(logits)[-1])
        ce = -tf.reduce_mean(tf.reduce_sum(onehot[None] * tf.nn.log_softmax(logits), axis=-1), axis=0)
        return (ce if self.targeted else -ce), tf.reduce_mean(tf.nn.softmax(logits), axis=0)

    def key(self) -> Hashable:
        return ("drawn-cross-entropy", self.targeted)

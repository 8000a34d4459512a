"""The small tensor operations the course's steps are written with (pixels 0..255, batches ``(N, ...)``),
so that a step reads like the loop the notebook writes by hand: per-example broadcasting and seeds,
the attack losses, a step's direction, the projection into the budget and PGD's random start, and the
picture operations that defences, the print-and-photo simulation and the patch share, one home each
(blur, affine resampling, JPEG, rounding, the straight-through gradient).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import tensorflow as tf

__all__ = [
    "Norm", "NORMS", "per_example", "seed_pair", "cross_entropy", "logit_margin", "direction", "project", "random_start",
    "gaussian_blur", "affine", "jpeg", "round_pixels", "straight_through",
]

Norm = Literal["linf", "l2"]
#: The attack budgets: no pixel moves more than epsilon (``"linf"``), the whole change at most epsilon long (``"l2"``).
NORMS: tuple[str, ...] = ("linf", "l2")


def per_example(value: Any, x: tf.Tensor) -> tf.Tensor:
    """``value`` (a scalar or one per example, ``(N,)``) as float32 ``(N, 1, ..., 1)``, to broadcast over ``x``."""
    v = tf.broadcast_to(tf.convert_to_tensor(value, tf.float32), tf.shape(x)[:1])
    return tf.reshape(v, tf.concat([tf.shape(x)[:1], tf.ones([x.shape.rank - 1], tf.int32)], axis=0))


def seed_pair(seed: Any, salt: int) -> tf.Tensor:
    """An int32 ``(2,)`` seed for TensorFlow's stateless random ops, from an int or an int32 tensor
    ``()`` or ``(2,)``, mixed with ``salt`` so that different uses of one seed draw differently."""
    s = tf.concat([tf.reshape(tf.cast(seed, tf.int32), [-1]), tf.zeros([1], tf.int32)], axis=0)[:2]
    return tf.random.experimental.stateless_fold_in(s, salt)


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """``(N,)`` cross-entropy (natural log) of ``logits`` to the int ``labels (N,)``.

    ``logits``: ``(N, K)``, or ``(S, N, K)`` from ``S`` calls of a random model, whose
    cross-entropies are averaged (expectation over transformation, Athalye et al. 2018).
    """
    labels = tf.cast(labels, tf.int32)
    if logits.shape.rank == 2 or logits.shape[0] == 1:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.reshape(logits, tf.shape(logits)[-2:]))
    onehot = tf.one_hot(labels, tf.shape(logits)[-1])
    return -tf.reduce_mean(tf.reduce_sum(onehot[None] * tf.nn.log_softmax(logits), axis=-1), axis=0)


def logit_margin(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """``(N,)`` Carlini & Wagner's (2017) margin on the logits: ``Z_label - max_{j != label} Z_j``.

    Positive while the label leads. Unlike the cross-entropy it never goes through the softmax, so a
    saturated softmax (defensive distillation) does not hide its gradient.
    """
    hot = tf.equal(tf.range(tf.shape(logits)[-1])[None], tf.cast(labels, tf.int32)[:, None])
    chosen = tf.reduce_sum(tf.where(hot, logits, 0.0), axis=-1)
    return chosen - tf.reduce_max(tf.where(hot, tf.float32.min, logits), axis=-1)


def direction(grad: tf.Tensor, rule: str) -> tf.Tensor:
    """The direction of one step *up* the gradient, per example.

    ``"linf"`` (also ``"sign"``): its sign, so every pixel moves by exactly the step size (the
    L-inf steepest step). ``"l2"``: the gradient over its L2 length, so the whole change has the step
    size's length. ``"rms"``: the gradient over its root-mean-square, so the step size is in pixels
    whatever the scale of the objective (the Keras blog's "normalised gradient"). ``"plain"``: the
    gradient itself.
    """
    if rule in ("linf", "sign"):
        return tf.sign(grad)
    if rule == "plain":
        return grad
    axes = tf.range(1, tf.rank(grad))
    if rule == "l2":
        return grad / tf.maximum(tf.sqrt(tf.reduce_sum(tf.square(grad), axis=axes, keepdims=True)), 1e-12)
    if rule == "rms":
        return grad / (tf.sqrt(tf.reduce_mean(tf.square(grad), axis=axes, keepdims=True)) + 1e-8)
    raise ValueError(f"unknown step direction {rule!r}; choose 'linf', 'l2', 'rms' or 'plain'")


def project(x: tf.Tensor, x0: tf.Tensor, epsilon: Any, norm: str) -> tf.Tensor:
    """``x`` moved back into the budget around ``x0``: every pixel within ``epsilon`` of it
    (``"linf"``), or the change ``x - x0`` shortened to L2 length ``epsilon`` where it is longer
    (``"l2"``; a change already inside stays exactly as it is). ``epsilon``: pixels, a scalar or
    one per example."""
    e = per_example(epsilon, x)
    if norm == "linf":
        return tf.clip_by_value(x, x0 - e, x0 + e)
    shrink = tf.minimum(1.0, e / tf.maximum(_length(x - x0), 1e-12))
    return tf.where(shrink < 1.0, x0 + (x - x0) * shrink, x)


def random_start(x0: tf.Tensor, epsilon: Any, norm: str, seed: Any) -> tf.Tensor:
    """A uniformly random point of the budget around ``x0`` (per example), clipped to pixels 0..255.

    ``seed``: an int or an int32 tensor ``()`` or ``(2,)`` (stateless: the same seed, the same start).
    L-inf: every pixel uniform in ``[-epsilon, epsilon]``. L2: a direction uniform on the sphere and a
    length ``epsilon * u ** (1 / d)`` (``d`` numbers per picture), uniform in the ball's volume.
    """
    x0 = tf.convert_to_tensor(x0, tf.float32)
    if norm == "linf":
        noise = tf.random.stateless_uniform(tf.shape(x0), seed=seed_pair(seed, 11), minval=-1.0, maxval=1.0)
        return tf.clip_by_value(x0 + noise * per_example(epsilon, x0), 0.0, 255.0)
    unit = tf.random.stateless_normal(tf.shape(x0), seed=seed_pair(seed, 12))
    unit /= tf.maximum(_length(unit), 1e-12)
    d = tf.cast(tf.reduce_prod(tf.shape(x0)[1:]), tf.float32)
    u = tf.random.stateless_uniform(tf.shape(x0)[:1], seed=seed_pair(seed, 13))
    return tf.clip_by_value(x0 + unit * per_example(tf.pow(u, 1.0 / d), x0) * per_example(epsilon, x0), 0.0, 255.0)


def _length(d: tf.Tensor) -> tf.Tensor:
    """Per-example L2 length of ``d``, ``(N, 1, ..., 1)``."""
    return tf.sqrt(tf.reduce_sum(tf.square(d), axis=list(range(1, d.shape.rank)), keepdims=True))


# --------------------------------------------------------------------------- picture operations


def gaussian_blur(x: tf.Tensor, sigma: Any, radius: int) -> tf.Tensor:
    """Gaussian blur of each picture of ``x`` ``(N, H, W, C)`` with its own width ``sigma`` ``(N,)``
    in pixels (at least 0.001): separable, ``radius`` taps each side, edges mirrored (so ``H`` and
    ``W`` must exceed ``radius``). The batch is folded into the channels, so one depthwise
    convolution applies every picture's own kernel. Differentiable."""
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    s = tf.maximum(tf.cast(sigma, tf.float32), 1e-3)[:, None]
    taps = tf.exp(-0.5 * tf.square(offsets / s))
    taps = taps / tf.reduce_sum(taps, axis=1, keepdims=True)                    # (N, K)
    n, h, w, c = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2], x.shape[-1]
    taps = tf.transpose(tf.repeat(taps, c, axis=0))                             # (K, N * C): one per picture and channel
    folded = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c])
    padded = tf.pad(folded, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    k = 2 * radius + 1
    out = tf.nn.depthwise_conv2d(padded, tf.reshape(taps, [k, 1, n * c, 1]), [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, tf.reshape(taps, [1, k, n * c, 1]), [1, 1, 1, 1], "VALID")
    return tf.ensure_shape(tf.transpose(tf.reshape(out, [h, w, n, c]), [2, 0, 1, 3]), x.shape)


def affine(x: tf.Tensor, a: Any, b: Any, tx: Any, c: Any, d: Any, ty: Any, *, size: Any = None,
           fill: str = "REFLECT") -> tf.Tensor:
    """Each picture of ``x`` ``(N, H, W, C)`` resampled (bilinear): output pixel at column ``u``,
    row ``v`` shows the input at column ``a u + b v + tx``, row ``c u + d v + ty`` (pixels, 0 = the
    first pixel's centre). Each coefficient is one number or one per picture ``(N,)``. ``size``:
    the output's ``(height, width)``, default the input's. ``fill``: what shows where the input
    ends, ``"REFLECT"`` (edges mirrored) or ``"CONSTANT"`` (zeros). Differentiable in ``x``."""
    n = tf.shape(x)[0]
    a, b, tx, c, d, ty = (tf.broadcast_to(tf.cast(v, tf.float32), [n]) for v in (a, b, tx, c, d, ty))
    zero = tf.zeros_like(a)
    rows = tf.stack([a, b, tx, c, d, ty, zero, zero], axis=1)
    size = tf.shape(x)[1:3] if size is None else tf.cast(tf.stack(size), tf.int32)
    return tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=rows, output_shape=size,
                                                 fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode=fill)


def round_pixels(x: tf.Tensor, bits: int = 8) -> tf.Tensor:
    """``x`` clipped to 0..255 and rounded to ``2**bits`` grey levels evenly spread over 0..255:
    ``bits=8`` whole grey levels (as saving to 8 bits does), fewer bits coarser
    (``round(x / 255 * (2**bits - 1)) / (2**bits - 1) * 255``). No gradient (TensorFlow defines none)."""
    x = tf.clip_by_value(x, 0.0, 255.0)
    if bits == 8:
        return tf.round(x)
    levels = float(2 ** bits - 1)
    return tf.round(x / 255.0 * levels) / levels * 255.0


def jpeg(x: tf.Tensor, quality: Any, *, chroma_downsampling: bool = True) -> tf.Tensor:
    """Each picture of ``x`` ``(N, H, W, C)`` (1 or 3 channels) saved as a JPEG and read back:
    whole grey levels 0..255, the fine detail people do not notice dropped. No gradient (the
    pixels become bytes).

    ``quality``: a whole number 1..100 for all, or a tensor ``(N,)``, one per picture (rounded and
    clipped to 1..100). ``chroma_downsampling``: store colour at half resolution, as phones and
    TensorFlow's default do; ``False`` keeps it (only with one ``quality`` for all).
    """
    pixels = tf.cast(round_pixels(x), tf.uint8)
    spec = tf.TensorSpec(x.shape[1:], tf.uint8)
    if isinstance(quality, (int, np.integer)):
        def one(image: tf.Tensor) -> tf.Tensor:
            data = tf.io.encode_jpeg(image, quality=int(quality), chroma_downsampling=chroma_downsampling)
            return tf.io.decode_jpeg(data, channels=image.shape[-1])

        return tf.cast(tf.map_fn(one, pixels, fn_output_signature=spec), tf.float32)
    if not chroma_downsampling:
        raise ValueError("jpeg: one quality per picture always stores colour at half resolution; "
                         "give one whole-number quality to keep it (chroma_downsampling=False)")
    q = tf.cast(tf.clip_by_value(tf.round(tf.cast(quality, tf.float32)), 1.0, 100.0), tf.int32)
    out = tf.map_fn(lambda a: tf.image.adjust_jpeg_quality(a[0], a[1]), (pixels, q), fn_output_signature=spec)
    return tf.cast(out, tf.float32)


def straight_through(x: tf.Tensor, forward: tf.Tensor) -> tf.Tensor:
    """``forward`` (a transform of ``x``, same shape) on the way forwards, the identity on the way
    back: BPDA, the straight-through gradient (Athalye, Carlini & Wagner, 2018). A good
    approximation for any transform that keeps the picture roughly as it was (rounding, JPEG)."""
    return x + tf.stop_gradient(forward - x)

"""The small tensor operations the course's steps are written with (pixels 0..255, batches ``(N, ...)``).

Each is a few lines of TensorFlow that a lesson's step calls by name, so the step itself reads like
the loop the notebook writes by hand:

- :func:`per_example` one number per example, shaped to broadcast over its picture; :func:`seed_pair`
  a stateless seed;
- :func:`cross_entropy`, :func:`logit_margin` the attack losses, per example;
- :func:`direction` which way a step goes: the gradient's sign (L-inf), its unit vector (L2), or the
  gradient divided by its root-mean-square (feature visualisation);
- :func:`project` back into the budget around the photo (L-inf box or L2 ball);
- :func:`random_start` a uniformly random point of the budget (PGD's start), seeded.
"""

from __future__ import annotations

from typing import Any, Literal

import tensorflow as tf

__all__ = ["Norm", "NORMS", "per_example", "seed_pair", "cross_entropy", "logit_margin", "direction", "project", "random_start"]

Norm = Literal["linf", "l2"]
#: The attack budgets: ``"linf"`` (no pixel moves more than epsilon) and ``"l2"`` (the whole change
#: is at most epsilon long).
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

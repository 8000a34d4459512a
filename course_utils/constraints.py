"""Budgets for attacks: where a changed batch may go, and how long a step is.

Pure TensorFlow functions on pixel batches ``(N, H, W, C)``, float32, **pixels 0..255**. They
hold no state and build no graph of their own, so they run eagerly, inside a ``tf.function``
and inside a Keras ``train_step`` alike (as Foolbox 3 splits its gradient attacks into a
per-norm ``normalize`` and ``project``).

- :func:`project_linf`, :func:`project_l2` -- back into the ball of radius ``eps`` around ``x0``;
- :func:`clip_pixels` -- back into valid pixels 0..255;
- :func:`normalize` -- the steepest step of length 1 for a norm: the sign of the gradient for
  ``"linf"`` (every pixel moves by the step size), the gradient over its L2 length for ``"l2"``.

``eps`` is one number for the whole batch or one per example (shape ``(N,)``); it is in pixels
(grey levels), like everything in the course.
"""

from __future__ import annotations

from typing import Literal

import tensorflow as tf

__all__ = ["Norm", "NORMS", "check_norm", "per_example", "project_linf", "project_l2", "project", "clip_pixels", "normalize"]

Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = ("linf", "l2")

_TINY = 1e-12  # keeps a zero gradient or a zero change from dividing by zero


def check_norm(norm: str) -> str:
    """``norm`` if it is ``"linf"`` or ``"l2"``, else a ``ValueError`` that names the choices."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose 'linf' (largest change of any pixel) or 'l2' (Euclidean length)")
    return norm


def per_example(value: tf.Tensor | float, x: tf.Tensor) -> tf.Tensor:
    """A scalar or ``(N,)`` value as float32 of shape ``(N, 1, 1, 1)`` (any rank of ``x``), to
    broadcast against the batch ``x``."""
    v = tf.convert_to_tensor(value, tf.float32)
    rank = x.shape.rank if x.shape.rank is not None else 4
    if v.shape.rank == 0:
        v = tf.fill(tf.shape(x)[:1], v)
    return tf.reshape(v, tf.concat([tf.shape(x)[:1], tf.ones([rank - 1], tf.int32)], axis=0))


def _l2_lengths(d: tf.Tensor) -> tf.Tensor:
    """Per-example L2 length of ``d``, shape ``(N, 1, 1, 1)`` (same rank as ``d``)."""
    axes = list(range(1, d.shape.rank))
    return tf.sqrt(tf.reduce_sum(tf.square(d), axis=axes, keepdims=True))


def project_linf(x: tf.Tensor, x0: tf.Tensor, eps: tf.Tensor | float) -> tf.Tensor:
    """Clip ``x`` into the box ``x0 - eps .. x0 + eps`` (every pixel within ``eps`` grey levels)."""
    e = per_example(eps, x)
    return tf.clip_by_value(x, x0 - e, x0 + e)


def project_l2(x: tf.Tensor, x0: tf.Tensor, eps: tf.Tensor | float) -> tf.Tensor:
    """Shrink ``x - x0`` onto the L2 ball of radius ``eps`` where it is longer, per example.

    A change already inside the ball is left exactly as it is.
    """
    e = per_example(eps, x)
    d = x - x0
    length = _l2_lengths(d)
    factor = tf.minimum(1.0, e / tf.maximum(length, _TINY))
    return x0 + d * factor


def project(x: tf.Tensor, x0: tf.Tensor, eps: tf.Tensor | float, norm: Norm) -> tf.Tensor:
    """:func:`project_linf` or :func:`project_l2`, chosen by ``norm``."""
    return project_linf(x, x0, eps) if check_norm(norm) == "linf" else project_l2(x, x0, eps)


def clip_pixels(x: tf.Tensor, low: float = 0.0, high: float = 255.0) -> tf.Tensor:
    """Clip to valid pixels ``low..high`` (default 0..255)."""
    return tf.clip_by_value(x, low, high)


def normalize(grad: tf.Tensor, norm: Norm) -> tf.Tensor:
    """The direction of steepest ascent of length 1 in ``norm``, per example.

    ``"linf"``: ``sign(grad)`` (every pixel moves by the same amount). ``"l2"``: ``grad`` divided
    by its L2 length over each example. A zero gradient gives a zero step either way.
    """
    if check_norm(norm) == "linf":
        return tf.sign(grad)
    return grad / tf.maximum(_l2_lengths(grad), _TINY)

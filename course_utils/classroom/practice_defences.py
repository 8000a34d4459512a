"""Lesson 4's practice exercises (coding tasks), with the conventions of :mod:`course_utils.classroom.practice`:
``None`` or a function still returning ``None`` is "not answered yet", a right function prints
"correct", a wrong one raises :class:`~course_utils.classroom.exercises.WrongAnswer` naming the property that
failed. Each check runs the student's function on hidden cases against a reference kept here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from course_utils.classroom.exercises import WrongAnswer, _right
from course_utils.classroom.practice import _Stub, _array, _function, _not_yet, _rng, _run

__all__ = ["lesson4_random_start", "lesson4_straight_through", "lesson4_eot_gradient"]



def lesson4_random_start(random_start: Any) -> None:
    """Exercise 4.4: ``random_start(x, epsilon, seed)`` is PGD's start: a point drawn uniformly from
    the ±epsilon box around the batch ``x`` (grey levels), then clipped to 0..255; the same seed
    gives the same point."""
    ex = "Exercise 4"
    if not _function(ex, random_start):
        return
    mid, edges = np.full((2, 32, 32, 3), 128.0, np.float32), np.zeros((1, 16, 16, 3), np.float32)
    edges[..., 1:] = 255.0
    try:
        for x, eps, seed in [(mid, 4.0, 3), (mid, 0.5, 7), (edges, 8.0, 3)]:
            got = _array(ex, _run(ex, random_start, x, eps, seed), x.shape, "a batch of x's shape")
            d = got - x
            if got.min() < -1e-4 or got.max() > 255 + 1e-4:
                raise WrongAnswer(f"{ex}: your start has pixels outside 0..255: clip it to valid pixels.")
            if np.abs(d).max() > eps + 1e-4:
                raise WrongAnswer(f"{ex}: your start leaves the box: a pixel moved {np.abs(d).max():.2f} grey levels "
                                  f"with epsilon = {eps:g}.")
            again = _array(ex, _run(ex, random_start, x, eps, seed), x.shape, "a batch of x's shape")
            if not np.array_equal(again, got):
                raise WrongAnswer(f"{ex}: the same seed gave two different starts: draw from a generator made "
                                  "from `seed` (np.random.default_rng(seed), or a stateless TensorFlow op).")
            if x is edges:
                continue
            if np.array_equal(_array(ex, _run(ex, random_start, x, eps, seed + 1), x.shape, "a batch"), got):
                raise WrongAnswer(f"{ex}: another seed gave the same start: the seed should choose the random numbers.")
            if np.mean(np.isclose(np.abs(d), eps, atol=1e-4)) > 0.5:
                raise WrongAnswer(f"{ex}: most of your changes sit exactly at ±epsilon, the corners of the box. "
                                  "A uniform draw fills the whole box.")
            if abs(float(d.mean())) > 0.1 * eps or min(np.mean(d > 0), np.mean(d < 0)) < 0.3:
                raise WrongAnswer(f"{ex}: your changes lean to one side (mean {float(d.mean()):+.2f}); they should "
                                  "go up and down equally, from -epsilon to +epsilon.")
            if not 0.4 * eps < float(np.abs(d).mean()) < 0.6 * eps:
                raise WrongAnswer(f"{ex}: your changes are not spread evenly over -epsilon..epsilon (a uniform draw "
                                  "has a mean size of epsilon / 2).")
    except _Stub:
        return _not_yet(ex)
    return _right(ex, "Your start is uniform in the box, valid pixels, repeatable with its seed.")


def lesson4_straight_through(straight_through: Any) -> None:
    """Exercise 4.5: ``straight_through(x, transform)`` is BPDA's line: the value of ``transform(x)``
    forwards, the identity's gradient backwards."""
    import tensorflow as tf

    ex = "Exercise 5"
    if not _function(ex, straight_through):
        return
    rng = _rng(45)
    x = tf.constant(rng.uniform(0, 255, (2, 5, 5, 3)), tf.float32)
    w = tf.constant(rng.normal(size=(2, 5, 5, 3)), tf.float32)
    transforms = {"rounding": tf.round, "8-level quantising": lambda v: tf.round(v / 32.0) * 32.0,
                  "a contrast change": lambda v: 0.5 * v + 64.0}
    try:
        for name, transform in transforms.items():
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = _run(ex, straight_through, x, transform)
                if not isinstance(out, tf.Tensor):
                    raise WrongAnswer(f"{ex}: return a TensorFlow tensor (the gradient has to flow through it), "
                                      f"got {type(out).__name__}.")
                total = tf.reduce_sum(w * out)
            grad = tape.gradient(total, x)
            if not np.allclose(out.numpy(), transform(x).numpy(), atol=1e-3):
                raise WrongAnswer(f"{ex}: forwards, your output is not the transformed picture (tried with {name}): "
                                  "the network must see exactly what the defence gives it.")
            if grad is None or not np.any(grad.numpy()):
                raise WrongAnswer(f"{ex}: no gradient reaches x through your line (tried with {name}): the backward "
                                  "pass must go around the transform, not through it.")
            if not np.allclose(grad.numpy(), w.numpy(), atol=1e-4):
                raise WrongAnswer(f"{ex}: backwards, your line uses the transform's own gradient (tried with {name}); "
                                  "BPDA takes the gradient as if the transform were the identity.")
    except _Stub:
        return _not_yet(ex)
    return _right(ex, "Forwards the transform, backwards the identity, for three hidden transforms.")


def lesson4_eot_gradient(eot_gradient: Any) -> None:
    """Exercise 4.6: ``eot_gradient(loss_fn, x, transforms)`` is EOT's gradient: the average over
    ``transforms`` of the gradient of ``loss_fn(t(x))`` with respect to ``x``."""
    import tensorflow as tf

    ex = "Exercise 6"
    if not _function(ex, eot_gradient):
        return
    rng = _rng(46)
    x = tf.constant(rng.uniform(0, 255, (1, 6, 6, 3)), tf.float32)
    w = tf.constant(rng.normal(size=(1, 6, 6, 3)), tf.float32)

    def loss_fn(v: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(w * tf.sin(v / 40.0))

    transforms = [lambda v: v, lambda v: tf.roll(v, 1, axis=2), lambda v: 0.8 * v + 20.0,
                  lambda v: tf.image.flip_left_right(v)]
    grads = []
    for t in transforms:
        with tf.GradientTape() as tape:
            tape.watch(x)
            grads.append(tape.gradient(loss_fn(t(x)), x).numpy())
    want = np.mean(grads, axis=0)
    try:
        got = _array(ex, _run(ex, eot_gradient, loss_fn, x, list(transforms)), tuple(x.shape), "a gradient of x's shape")
    except _Stub:
        return _not_yet(ex)
    if np.allclose(got, want, atol=1e-5):
        return _right(ex, f"Your gradient is the mean over the {len(transforms)} hidden transforms.")
    if np.allclose(got, len(transforms) * want, atol=1e-5):
        raise WrongAnswer(f"{ex}: your gradient is {len(transforms)} times too large for {len(transforms)} transforms: "
                          "the expectation is an average, not a sum.")
    if any(np.allclose(got, g, atol=1e-5) for g in grads):
        raise WrongAnswer(f"{ex}: your gradient is that of one transform only; EOT averages over all of them.")
    raise WrongAnswer(f"{ex}: your gradient differs from the average over the transforms; differentiate "
                      "loss_fn(t(x)) with respect to x (watch x, not t(x)), for each t.")

"""The driver (core.loop) on steps whose answers are known by hand: each test writes its step as a
lesson does, a few lines of TensorFlow, and checks what the driver does with it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.core import ops
from course_utils.core.loop import Loop

X0 = np.zeros((2, 4, 4, 1), np.float32)


def quadratic_step(model, x, x0, i, seed, data, *, rule="plain", shift=0.0, noise=False):
    """One step down ``loss = sum((x_in - target)^2)``, ``x_in = x + shift`` (+ seeded noise); tracks mean(x)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        x_in = x + shift
        if noise:
            x_in += tf.random.stateless_normal(tf.shape(x), seed=tf.stack([seed[0], i]))
        loss = tf.reduce_sum(tf.square(x_in - data["target"][:, None, None, None]), axis=[1, 2, 3])
    x_next = x - ops.per_example(data["rate"], x) * ops.direction(tape.gradient(loss, x), rule)
    return x_next, loss, tf.reduce_mean(x, axis=[1, 2, 3])[:, None], None


def run(steps=5, rate=0.1, target=3.0, *, seed=0, progress=False, **settings):
    data = {"target": np.full(2, target, np.float32), "rate": np.full(2, rate, np.float32)}
    return Loop(quadratic_step, None, **settings).run(X0, data, steps=steps, seed=seed, progress=progress)


def test_plain_gradient_descent_matches_the_formula():
    # d/dx (x - 3)^2 = 2 (x - 3): with rate 0.1, x_{t+1} = x_t - 0.2 (x_t - 3) -> 3 (1 - 0.8^t)
    r = run()
    np.testing.assert_allclose(r.x, 3 * (1 - 0.8**5), rtol=1e-5)
    np.testing.assert_allclose(r.tracked[:, 0, 0], 3 * (1 - 0.8 ** np.arange(6)), rtol=1e-5, atol=1e-6)
    assert r.losses.shape == (6, 2) and r.tracked.shape == (6, 2, 1) and r.steps == 5
    assert np.all(np.diff(r.losses[:, 0]) < 0)


def test_sign_steps_move_exactly_the_step_size():
    np.testing.assert_allclose(run(steps=3, rate=0.5, target=10.0, rule="linf").x, 1.5)


def test_rms_steps_are_in_pixels_whatever_the_scale():
    np.testing.assert_allclose(run(steps=2, rate=1.0, target=1e6, rule="rms").x, 2.0, rtol=1e-5)


def test_chunked_progress_gives_the_same_result_as_one_chunk():
    quiet = run(steps=60, rate=0.01)
    shown = run(steps=60, rate=0.01, progress=True)
    np.testing.assert_allclose(quiet.x, shown.x, rtol=1e-6)
    np.testing.assert_allclose(quiet.losses, shown.losses, rtol=1e-6)


def test_the_history_rows_are_what_the_step_saw_and_the_last_is_the_final_batch():
    r = run(steps=4, rate=0.1, shift=1.0)
    # every row: 16 * (x + 1 - 3)^2 with x the batch at the start of that step; x_1 = 0 - 0.1 * 2 * (1 - 3) = 0.4
    assert r.losses[0, 0] == pytest.approx(16 * 4)
    assert r.losses[1, 0] == pytest.approx(16 * (0.4 + 1 - 3) ** 2, rel=1e-4)
    assert r.losses[-1, 0] == pytest.approx(16 * (r.x[0, 0, 0, 0] + 1 - 3) ** 2, rel=1e-4)


def test_seeded_randomness_is_reproducible():
    a, b, c = (run(steps=3, target=1.0, noise=True, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.allclose(a.x, c.x)


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_bad_step_counts_are_refused(steps):
    with pytest.raises((ValueError, TypeError), match="steps"):
        run(steps=steps)


def test_step_direction_rules():
    g = tf.constant([[[[-2.0], [0.5]]]])
    np.testing.assert_allclose(ops.direction(g, "linf").numpy().ravel(), [-1, 1])
    rms = np.sqrt((4 + 0.25) / 2)
    np.testing.assert_allclose(ops.direction(g, "rms").numpy().ravel(), [-2 / rms, 0.5 / rms], rtol=1e-5)
    np.testing.assert_allclose(ops.direction(g, "plain").numpy().ravel(), [-2.0, 0.5])
    with pytest.raises(ValueError, match="step direction"):
        ops.direction(g, "adam")

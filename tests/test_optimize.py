"""The shared gradient loop, on objectives whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.core.gradient_loop import GradientLoop
from course_utils.core.pieces import Regularizer
from course_utils.core.steps import step_direction


def run_gradient_loop(objective, x0, *, step_rule="plain", regularizers=(), jit_compile=False, **run):
    """A one-off loop: build it with its structure, run it with the per-call values."""
    return GradientLoop(objective, step_rule=step_rule, regularizers=regularizers, jit_compile=jit_compile).run(x0, **run)


def quadratic(target: float):
    """loss = sum((x - target)^2) per example; tracked = mean of x."""

    def objective(x):
        loss = tf.reduce_sum(tf.square(x - target), axis=[1, 2, 3])
        return loss, tf.reduce_mean(x, axis=[1, 2, 3])[:, None]

    return objective


X0 = np.zeros((2, 4, 4, 1), np.float32)


def test_plain_gradient_descent_matches_the_formula():
    # d/dx (x - 3)^2 = 2 (x - 3): with rate 0.1, x_{t+1} = x_t - 0.2 (x_t - 3) -> 3 (1 - 0.8^t)
    r = run_gradient_loop(quadratic(3.0), X0, steps=5, step_size=0.1, step_rule="plain", progress=False)
    np.testing.assert_allclose(r.x, 3 * (1 - 0.8**5), rtol=1e-5)
    np.testing.assert_allclose(r.tracked[:, 0, 0], 3 * (1 - 0.8 ** np.arange(6)), rtol=1e-5, atol=1e-6)
    assert r.losses.shape == (6, 2) and r.tracked.shape == (6, 2, 1) and r.steps == 5
    assert np.all(np.diff(r.losses[:, 0]) < 0)


def test_sign_steps_move_exactly_the_step_size():
    r = run_gradient_loop(quadratic(10.0), X0, steps=3, step_size=0.5, step_rule="sign", progress=False)
    np.testing.assert_allclose(r.x, 1.5)


def test_rms_steps_are_in_pixels_whatever_the_scale():
    def big(x):
        return -1e6 * tf.reduce_sum(x, axis=[1, 2, 3]), tf.zeros([tf.shape(x)[0], 1])

    r = run_gradient_loop(big, X0, steps=2, step_size=1.0, step_rule="rms", progress=False)
    np.testing.assert_allclose(r.x, 2.0, rtol=1e-5)


def test_chunked_progress_gives_the_same_result_as_one_chunk():
    kwargs = dict(steps=60, step_size=0.01, step_rule="plain")
    quiet = run_gradient_loop(quadratic(3.0), X0, progress=False, **kwargs)
    shown = run_gradient_loop(quadratic(3.0), X0, progress=True, **kwargs)  # 20 chunks of 3 steps
    np.testing.assert_allclose(quiet.x, shown.x, rtol=1e-6)
    np.testing.assert_allclose(quiet.losses, shown.losses, rtol=1e-6)


class Recorder(Regularizer):
    """Shifts the model's view by +1, adds a penalty of 5, and clips after each step."""

    def transform(self, x, step, seed):
        return x + 1.0

    def penalty(self, x, x0):
        return tf.fill([tf.shape(x)[0]], 5.0)

    def after_step(self, x, x0, step):
        return tf.minimum(x, 1.0)


def test_regulariser_hooks_are_applied_in_their_places():
    r = run_gradient_loop(quadratic(3.0), X0, steps=4, step_size=0.1, regularizers=[Recorder()], progress=False)
    # The first and the final rows are measured on x itself (no transform), plus the penalty 5:
    # 16 * (0 - 3)^2 + 5 at the start, 16 * (1 - 3)^2 + 5 at the end (after_step clipped x to 1).
    assert r.losses[0, 0] == pytest.approx(16 * 9 + 5)
    assert r.x.max() <= 1.0
    assert r.losses[-1, 0] == pytest.approx(16 * 4 + 5)
    # The rows in between are what the model saw, x + 1; one plain step of 0.1 on the gradient 2 (0 + 1 - 3)
    # per pixel gives x = 0.4.
    assert r.losses[1, 0] == pytest.approx(16 * (0.4 + 1 - 3) ** 2 + 5, rel=1e-4)


def test_seeded_randomness_is_reproducible():
    class Noise(Regularizer):
        def transform(self, x, step, seed):
            return x + tf.random.stateless_normal(tf.shape(x), seed=tf.stack([seed, step]))

    a = run_gradient_loop(quadratic(1.0), X0, steps=3, step_size=0.1, regularizers=[Noise()], seed=1, progress=False)
    b = run_gradient_loop(quadratic(1.0), X0, steps=3, step_size=0.1, regularizers=[Noise()], seed=1, progress=False)
    c = run_gradient_loop(quadratic(1.0), X0, steps=3, step_size=0.1, regularizers=[Noise()], seed=2, progress=False)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.allclose(a.x, c.x)


@pytest.mark.parametrize("kwargs, message", [({"steps": 0}, "steps"), ({"step_size": -1.0}, "step_size"), ({"step_rule": "adam"}, "step rule")])
def test_bad_arguments(kwargs, message):
    args = {"steps": 2, "step_size": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        run_gradient_loop(quadratic(1.0), X0, progress=False, **args)


def test_step_direction_rules():
    g = tf.constant([[[[-2.0], [0.5]]]])
    np.testing.assert_allclose(step_direction(g, "sign").numpy().ravel(), [-1, 1])
    rms = np.sqrt((4 + 0.25) / 2)
    np.testing.assert_allclose(step_direction(g, "rms").numpy().ravel(), [-2 / rms, 0.5 / rms], rtol=1e-5)

"""The loop's pieces by role: after-step budgets, transforms, penalties; per-call values; keys."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.core.penalties import L2Penalty, TotalVariation
from course_utils.core.steps import Blur, L2Ball, LinfBall, PixelRange
from course_utils.core.transforms import Jitter, RandomRotate, RandomScale

RNG = np.random.default_rng(0)
X0 = tf.constant(RNG.uniform(50, 200, (4, 12, 10, 3)).astype(np.float32))
FAR = X0 + tf.constant(RNG.normal(0, 60, (4, 12, 10, 3)).astype(np.float32))  # far outside small balls
EPS = tf.constant([0.0, 0.5, 4.0, 1000.0])  # one budget per example, the last larger than any change


def _linf(d) -> np.ndarray:
    return np.abs(np.asarray(d)).reshape(len(d), -1).max(1)


def _l2(d) -> np.ndarray:
    return np.sqrt(np.square(np.asarray(d, np.float64)).reshape(len(d), -1).sum(1))


# --------------------------------------------------------------------------- balls


def test_linf_ball_projection_never_leaves_the_ball_per_example():
    out = LinfBall().after_step(FAR, X0, tf.constant(0), {"epsilon": EPS})
    np.testing.assert_array_less(_linf(out - X0), EPS.numpy() + 1e-4)
    np.testing.assert_array_equal(out[0], X0[0])  # a zero budget: exactly the start
    np.testing.assert_array_equal(out[3], FAR[3])  # a change already inside is untouched
    assert _linf(out - X0)[2] == pytest.approx(4.0, abs=1e-4)  # the far change is clipped to the edge


def test_l2_ball_projection_never_leaves_the_ball_per_example():
    eps = tf.constant([0.0, 5.0, 100.0, 1e6])
    out = L2Ball().after_step(FAR, X0, tf.constant(0), {"epsilon": eps})
    lengths = _l2(out - X0)
    assert np.all(lengths <= eps.numpy() * (1 + 1e-5) + 1e-6)
    np.testing.assert_array_equal(out[0], X0[0])
    np.testing.assert_array_equal(out[3], FAR[3])  # inside: left exactly as it was
    assert lengths[2] == pytest.approx(100.0, rel=1e-4)  # shrunk onto the sphere
    direction = (np.asarray(out[2] - X0[2]) / lengths[2]).ravel()  # ... in the same direction
    far = np.asarray(FAR[2] - X0[2]).ravel()
    np.testing.assert_allclose(direction, far / np.linalg.norm(far), atol=1e-5)


@pytest.mark.parametrize("ball, measure", [(LinfBall(), _linf), (L2Ball(), _l2)])
def test_random_starts_lie_in_the_ball_and_are_seeded(ball, measure):
    eps = tf.constant([1.0, 8.0, 30.0, 0.0])
    a, b, c = (ball.random_start(X0, eps, seed) for seed in (3, 3, 4))
    assert np.all(measure(a - X0) <= eps.numpy() * (1 + 1e-5) + 1e-5)
    assert measure(a - X0)[2] > 0.3 * 30.0  # it does move away from the start
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_budget_given_when_made_is_only_the_default():
    ball = LinfBall(2.0)
    assert ball.defaults() == {"epsilon": 2.0} and LinfBall().defaults() == {}
    assert ball.key() == LinfBall(7.0).key() == LinfBall().key() != L2Ball().key()  # epsilon is not structure
    assert PixelRange(0, 255).key() != PixelRange(0, 1).key() and Blur(1.0).key() != Blur(2.0).key()
    out = ball.after_step(FAR, X0, tf.constant(0))  # no per-call data: the default
    assert _linf(out - X0).max() <= 2.0 + 1e-4
    with pytest.raises(ValueError):
        LinfBall(-1.0)


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("piece, kinds", [(Jitter(3), 3), (RandomScale(), 3), (RandomRotate(), 3), (RandomScale((0.8, 1.25)), 2)])
def test_transforms_are_seeded_keep_the_shape_and_change_by_step(piece, kinds):
    outs = [piece.transform(X0, tf.constant(step), tf.constant(seed)).numpy() for step, seed in
            [(0, 1), (0, 1), (1, 1), (2, 1), (3, 1), (0, 2)]]
    assert all(o.shape == tuple(X0.shape) and o.dtype == np.float32 for o in outs)
    np.testing.assert_array_equal(outs[0], outs[1])  # same (seed, step), same picture
    assert len({o.tobytes() for o in outs}) >= kinds  # other steps or seeds draw others
    assert all(np.isfinite(o).all() and o.min() >= X0.numpy().min() - 1e-3 and o.max() <= X0.numpy().max() + 1e-3
               for o in outs)  # resampled, mirrored at the edges: no new values outside the picture's


def test_identity_transforms_leave_the_picture_alone():
    for piece in (Jitter(0), RandomScale((1.0,)), RandomRotate((0.0,))):
        np.testing.assert_array_equal(piece.transform(X0, tf.constant(5), tf.constant(0)), X0)


def test_scale_and_rotation_move_a_dot_about_the_centre():
    dot = np.zeros((1, 21, 21, 1), np.float32)
    dot[0, 10, 15] = 255.0  # 5 pixels right of the centre (10, 10)
    zoomed = RandomScale((2.0,)).transform(tf.constant(dot), tf.constant(0), tf.constant(0)).numpy()[0, ..., 0]
    assert np.unravel_index(zoomed.argmax(), zoomed.shape) == (10, 20)  # twice as far from the centre
    turned = RandomRotate((90.0,)).transform(tf.constant(dot), tf.constant(0), tf.constant(0)).numpy()[0, ..., 0]
    row, col = np.unravel_index(turned.argmax(), turned.shape)
    assert col == 10 and abs(row - 10) == 5  # a quarter turn: now straight above or below the centre
    with pytest.raises(ValueError):
        RandomScale((0.0,))
    with pytest.raises(ValueError):
        RandomRotate(())


def test_transforms_are_differentiable():
    x = tf.Variable(X0)
    for piece in (RandomScale(), RandomRotate()):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(piece.transform(x, tf.constant(1), tf.constant(0)))
        grad = tape.gradient(y, x)
        assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0


# --------------------------------------------------------------------------- penalties


def test_l2_penalty_reads_beta_per_call_and_per_example():
    d = np.asarray(FAR - X0, np.float64)
    beta = tf.constant([0.0, 1e-3, 1e-2, 1.0])
    got = L2Penalty().penalty(FAR, X0, {"beta": beta}).numpy()
    expected = beta.numpy() * 0.5 * np.square(d).reshape(4, -1).sum(1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(L2Penalty(1e-2).penalty(FAR, X0), 1e-2 * 0.5 * np.square(d).reshape(4, -1).sum(1),
                               rtol=1e-5)  # no per-call data: the default beta
    assert L2Penalty(0.5).key() == L2Penalty().key() and L2Penalty().per_call == {"beta": tf.float32}
    assert TotalVariation(0.5).key() != TotalVariation(1.0).key()  # a baked-in weight is structure

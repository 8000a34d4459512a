"""The small tensor operations the steps are written with (:mod:`course_utils.core.ops`): projections
into a budget, random starts in it, step directions; one value per example throughout.

(PGD's own use of them, and the L-inf/L2 directions' unit steps, are in ``tests/test_pgd.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.core.ops import direction, per_example, project, random_start, seed_pair

RNG = np.random.default_rng(0)
X0 = tf.constant(RNG.uniform(50, 200, (4, 12, 10, 3)).astype(np.float32))
FAR = X0 + tf.constant(RNG.normal(0, 60, (4, 12, 10, 3)).astype(np.float32))  # far outside small balls
EPS = tf.constant([0.0, 0.5, 4.0, 1000.0])  # one budget per example, the last larger than any change


def _linf(d) -> np.ndarray:
    return np.abs(np.asarray(d)).reshape(len(d), -1).max(1)


def _l2(d) -> np.ndarray:
    return np.sqrt(np.square(np.asarray(d, np.float64)).reshape(len(d), -1).sum(1))


# --------------------------------------------------------------------------- budgets


def test_linf_projection_never_leaves_the_box_per_example():
    out = project(FAR, X0, EPS, "linf")
    np.testing.assert_array_less(_linf(out - X0), EPS.numpy() + 1e-4)
    np.testing.assert_array_equal(out[0], X0[0])  # a zero budget: exactly the start
    np.testing.assert_array_equal(out[3], FAR[3])  # a change already inside is untouched
    assert _linf(out - X0)[2] == pytest.approx(4.0, abs=1e-4)  # the far change is clipped to the edge
    np.testing.assert_array_equal(project(FAR, X0, 4.0, "linf")[2], out[2])  # one scalar budget for all


def test_l2_projection_never_leaves_the_ball_per_example():
    eps = tf.constant([0.0, 5.0, 100.0, 1e6])
    out = project(FAR, X0, eps, "l2")
    lengths = _l2(out - X0)
    assert np.all(lengths <= eps.numpy() * (1 + 1e-5) + 1e-6)
    np.testing.assert_array_equal(out[0], X0[0])
    np.testing.assert_array_equal(out[3], FAR[3])  # inside: left exactly as it was
    assert lengths[2] == pytest.approx(100.0, rel=1e-4)  # shrunk onto the sphere
    unit = (np.asarray(out[2] - X0[2]) / lengths[2]).ravel()  # ... in the same direction
    far = np.asarray(FAR[2] - X0[2]).ravel()
    np.testing.assert_allclose(unit, far / np.linalg.norm(far), atol=1e-5)


@pytest.mark.parametrize("norm, measure", [("linf", _linf), ("l2", _l2)])
def test_random_starts_lie_in_the_ball_and_are_seeded(norm, measure):
    eps = tf.constant([1.0, 8.0, 30.0, 0.0])
    a, b, c = (random_start(X0, eps, norm, seed) for seed in (3, 3, 4))
    assert a.shape == X0.shape and a.dtype == tf.float32
    assert np.all(measure(a - X0) <= eps.numpy() * (1 + 1e-5) + 1e-5)
    assert measure(a - X0)[2] > 0.3 * 30.0  # it does move away from the start
    np.testing.assert_array_equal(a[3], X0[3])  # a zero budget: the start itself
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(random_start(X0, eps, norm, tf.constant([3, 0])), a)  # an int or a (2,) tensor
    inside = random_start(X0, tf.fill([4], 1e4), norm, 5)
    assert np.asarray(inside).min() >= 0 and np.asarray(inside).max() <= 255  # valid pixels, whatever the budget


def test_linf_random_starts_fill_the_box():
    a = np.asarray(random_start(X0, 10.0, "linf", 1) - X0)[:, 2:-2, 2:-2]  # away from 0..255 clipping
    assert a.min() < -9.0 and a.max() > 9.0 and abs(a.mean()) < 0.5  # uniform in [-10, 10]


# --------------------------------------------------------------------------- directions


def test_rms_and_plain_directions():
    g = tf.constant(RNG.normal(size=(3, 4, 4, 2)) * np.array([1e-4, 1.0, 1e4])[:, None, None, None], tf.float32)
    r = np.asarray(direction(g, "rms"))
    rms = np.sqrt(np.square(r).reshape(3, -1).mean(1))
    np.testing.assert_allclose(rms, 1.0, rtol=1e-3)  # a step of step_size pixels RMS, whatever the scale
    ratio = r / np.asarray(g)  # the gradient itself, scaled: one factor per example
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1, :1, :1], ratio.shape), rtol=1e-4)
    np.testing.assert_array_equal(direction(g, "plain"), g)
    np.testing.assert_array_equal(direction(g, "sign"), direction(g, "linf"))
    assert np.all(np.asarray(direction(tf.zeros([1, 2, 2, 1]), "rms")) == 0)  # a zero gradient, no NaN


# --------------------------------------------------------------------------- per-call values


def test_one_value_or_one_per_example_broadcasts_over_the_picture():
    assert per_example(2.0, X0).shape == (4, 1, 1, 1)
    np.testing.assert_array_equal(np.asarray(per_example([1.0, 2.0, 3.0, 4.0], X0)).ravel(), [1, 2, 3, 4])
    np.testing.assert_array_equal(np.asarray(per_example(2.0, X0)).ravel(), [2.0] * 4)


def test_seed_pairs_are_stateless_and_salted():
    assert np.array_equal(seed_pair(3, 11), seed_pair(tf.constant(3), 11))
    assert np.array_equal(seed_pair(3, 11), seed_pair(tf.constant([3, 0]), 11))
    assert not np.array_equal(seed_pair(3, 11), seed_pair(3, 12))  # different uses of one seed draw differently
    assert not np.array_equal(seed_pair(3, 11), seed_pair(4, 11))

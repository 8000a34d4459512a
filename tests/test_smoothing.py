"""Randomized smoothing (course_utils.attacks.smoothing): the statistics on values known by hand, CERTIFY and
PREDICT on classifiers whose answer is known exactly, and an empirical check on lesson 7's noisy face CNN."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

import course_utils  # noqa: F401  (before keras: it quiets TensorFlow's start-up)
import keras
from course_utils.attacks.smoothing import certified_accuracy, certify, clopper_pearson_lower, smoothed_predict

SIDE = 8  # tiny 8x8x1 "images" for the exact classifiers


def linear_model(w: np.ndarray, b: np.ndarray) -> keras.Model:
    """logits = flatten(x) @ w + b: a base classifier whose smoothed version is known exactly."""
    inputs = keras.Input((SIDE, SIDE, 1))
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([w.astype(np.float32), b.astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def constant() -> keras.Model:
    """Always answers class 1, whatever the noise."""
    return linear_model(np.zeros((SIDE * SIDE, 2)), np.array([0.0, 1.0]))


@pytest.fixture(scope="module")
def half_plane() -> keras.Model:
    """Class 1 where mean(x) > 128, class 0 below: the boundary is at L2 distance
    |mean(x) - 128| * SIDE from x (the direction (1, ..., 1) / SIDE)."""
    w = np.zeros((SIDE * SIDE, 2))
    w[:, 1] = 1.0 / (SIDE * SIDE)
    return linear_model(w, np.array([0.0, -128.0]))


def grey(level: float, count: int = 1) -> np.ndarray:
    return np.full((count, SIDE, SIDE, 1), level, np.float32)


# ---------------------------------------------------------------- statistics on values known by hand


def upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed term by term (exact integers, no SciPy)."""
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


def test_clopper_pearson_closed_forms():
    for n in (1, 2, 7, 100, 1000):
        for alpha in (0.001, 0.05, 0.5):
            assert clopper_pearson_lower(0, n, alpha) == 0.0  # no successes: nothing to bound away from 0
            # all n successes: P(X >= n | p) = p**n = alpha
            np.testing.assert_allclose(clopper_pearson_lower(n, n, alpha), alpha ** (1 / n), rtol=1e-12)
    # one success in two: P(X >= 1 | p) = 1 - (1 - p)**2 = alpha
    for alpha in (0.001, 0.05, 0.5):
        np.testing.assert_allclose(clopper_pearson_lower(1, 2, alpha), 1 - math.sqrt(1 - alpha), rtol=1e-10)
    # the textbook exact 95% interval for 5 of 10 is (0.1871, 0.8129): its lower end is the one-sided 2.5% bound
    assert round(float(clopper_pearson_lower(5, 10, 0.025)), 4) == 0.1871


@pytest.mark.parametrize("n", [3, 10, 30])
def test_clopper_pearson_is_where_the_binomial_tail_reaches_alpha(n):
    for alpha in (0.001, 0.05, 0.5):
        for k in range(1, n + 1):
            bound = float(clopper_pearson_lower(k, n, alpha))
            assert upper_tail(k, n, bound) == pytest.approx(alpha, rel=1e-8)


def test_clopper_pearson_shape_and_monotonicity():
    k = np.arange(0, 101)
    low = clopper_pearson_lower(k, 100, 0.01)
    assert low.shape == (101,) and low.dtype == np.float64
    assert np.all(np.diff(low) > 0)  # more successes, a higher bound
    assert np.all(low[1:] < k[1:] / 100)  # below the observed share
    grid = clopper_pearson_lower(np.array([[3, 7], [0, 10]]), 10, 0.05)
    assert grid.shape == (2, 2)
    # the same share of more trials bounds tighter; a smaller alpha bounds lower
    assert clopper_pearson_lower(90, 100, 0.01) < clopper_pearson_lower(900, 1000, 0.01) < 0.9
    assert clopper_pearson_lower(90, 100, 0.001) < clopper_pearson_lower(90, 100, 0.01) < clopper_pearson_lower(90, 100, 0.1)


def test_statistics_refuse_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        clopper_pearson_lower(3, 10, 0.0)
    with pytest.raises(ValueError, match="0..10"):
        clopper_pearson_lower(11, 10, 0.01)
    with pytest.raises(ValueError, match="n must"):
        clopper_pearson_lower(0, 0, 0.01)


# ---------------------------------------------------------------- bad inputs, before any work


@pytest.mark.parametrize("kwargs, word", [
    ({"sigma": 0.0}, "sigma"), ({"sigma": -2.0}, "sigma"), ({"sigma": float("nan")}, "sigma"),
    ({"n": 0}, "n must"), ({"n0": 0}, "n0"), ({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha"),
    ({"alpha": 1.5}, "alpha"), ({"batch_size": 0}, "batch_size"),
])
def test_certify_refuses_bad_settings(constant, kwargs, word):
    settings = {"sigma": 8.0, "n0": 10, "n": 20, "alpha": 0.01, "batch_size": 64} | kwargs
    with pytest.raises(ValueError, match=word):
        certify(constant, grey(100.0), **settings)
    if "n0" not in kwargs:
        settings.pop("n0")
        with pytest.raises(ValueError, match=word):
            smoothed_predict(constant, grey(100.0), **settings)


def test_refuses_bad_images_and_labels(constant):
    with pytest.raises(ValueError, match="NaN"):
        certify(constant, grey(float("nan")), 8.0, 10, 20)
    result = certify(constant, grey(100.0, 2), 8.0, 10, 20)
    with pytest.raises(ValueError, match="3 labels for 2"):
        certified_accuracy(result, [1, 1, 1], [0.0])


# ---------------------------------------------------------------- behaviour on exact classifiers


def test_constant_classifier_gets_the_all_successes_radius(constant):
    sigma, n, alpha = 12.0, 500, 0.001
    result = certify(constant, grey(90.0, 3), sigma, n0=20, n=n, alpha=alpha, batch_size=256)
    assert np.all(result.predicted == 1) and not result.abstained.any()
    assert np.all(result.counts[:, 1] == n)
    want = sigma * statistics.NormalDist().inv_cdf(alpha ** (1 / n))  # all n votes: p_lower = alpha ** (1 / n)
    np.testing.assert_allclose(result.radius, want, rtol=1e-6)
    assert 2.20 < want / sigma < 2.21  # Phi^-1(0.001 ** (1 / 500)) = Phi^-1(0.98628...) ~ 2.205


def test_predict_answers_when_the_binomial_test_rejects(constant):
    # all n votes for one class, none for the runner-up: the two-sided p-value is 2 * 0.5 ** n
    for n in (9, 10, 11):
        p_value = 2 * 0.5**n  # 0.0039, 0.0020, 0.00098
        for alpha in (0.8 * p_value, 1.2 * p_value):
            result = smoothed_predict(constant, grey(100.0, 2), 8.0, n=n, alpha=alpha, batch_size=64)
            assert result.abstained.tolist() == [alpha < p_value] * 2
            assert result.predicted.tolist() == ([-1] * 2 if alpha < p_value else [1, 1])
            assert np.all(result.p_lower == 1.0) and np.all(result.counts[:, 1] == n)


def test_a_tie_is_abstained_on(half_plane):
    x = grey(128.0, 4)  # exactly on the boundary: the noise splits the votes about evenly
    result = certify(half_plane, x, 16.0, n0=50, n=1000, alpha=0.001, batch_size=512)
    assert result.abstained.all() and np.all(result.predicted == -1) and np.all(result.radius == 0)
    assert np.all(np.abs(result.counts[:, 1] / 1000 - 0.5) < 0.1)
    predicted = smoothed_predict(half_plane, x, 16.0, n=1000, alpha=0.001)
    assert predicted.abstained.sum() >= 3  # the binomial test rejects with probability ~alpha per face


def test_radius_is_below_the_true_distance_and_not_far_below(half_plane):
    # g = f here (symmetric noise, linear f), so the exact robust radius is the distance to the plane.
    levels = np.array([132.0, 136.0, 140.0, 120.0])
    distance = np.abs(levels - 128.0) * SIDE  # grey levels, L2
    result = certify(half_plane, grey(0.0, 4) + levels[:, None, None, None], 24.0, n0=100, n=4000, alpha=0.001)
    assert np.array_equal(result.predicted, [1, 1, 1, 0])
    assert np.all(result.radius <= distance)
    assert np.all(result.radius >= 0.6 * distance)


def test_same_seed_same_result_other_seed_other_counts(half_plane):
    x = grey(130.0, 5)
    a = certify(half_plane, x, 16.0, n0=30, n=400, seed=3, batch_size=128)
    b = certify(half_plane, x, 16.0, n0=30, n=400, seed=3, batch_size=128)
    c = certify(half_plane, x, 16.0, n0=30, n=400, seed=4, batch_size=128)
    assert np.array_equal(a.counts, b.counts) and np.array_equal(a.radius, b.radius)
    assert not np.array_equal(a.counts, c.counts)
    # image i's noise depends on (seed, i, copies per step), not on how many images share a step
    d = certify(half_plane, x, 16.0, n0=30, n=400, seed=3, batch_size=400)
    e = certify(half_plane, x, 16.0, n0=30, n=400, seed=3, batch_size=2000)
    assert np.array_equal(d.counts, e.counts)


def test_certified_accuracy_falls_with_the_radius(half_plane):
    levels = np.linspace(100.0, 156.0, 15)
    labels = (levels > 128).astype(int)
    labels[0] = 1  # one wrong label: certified accuracy must not count it
    result = certify(half_plane, grey(0.0, 15) + levels[:, None, None, None], 24.0, n0=50, n=500)
    radii = np.linspace(0.0, 300.0, 31)
    accuracy = certified_accuracy(result, labels, radii)
    assert np.all(np.diff(accuracy) <= 0)
    assert accuracy[0] >= 10 / 15 and accuracy[-1] == 0.0
    assert accuracy[0] <= 14 / 15


# ---------------------------------------------------------------- an attack within the radius (lesson 7's model)


def test_l2_pgd_within_the_radius_does_not_move_the_smoothed_answer():
    from course_utils.attacks.pgd import pgd_attack
    from course_utils.io.images import FACE_BOXES, sample_face
    from course_utils.models.faces import face_facts, load_face_model

    model, sigma = load_face_model("noisy"), float(face_facts("noisy")["sigma"])
    faces = np.stack([sample_face(name) for name in FACE_BOXES])
    faces = np.concatenate([faces, faces[:, :, ::-1]])  # and their mirror images
    result = certify(model, faces, sigma, n0=100, n=1000, alpha=0.001)
    keep = ~result.abstained & (result.radius > 4.0)
    assert keep.sum() >= 2, f"too few faces certified: radii {result.radius}"
    x, y, radius = faces[keep], result.predicted[keep], result.radius[keep]
    # half the certified radius (margin), PGD-L2 on the base model f, which alone is easy to fool
    attacked = pgd_attack(model, x, y, 0.5 * radius, steps=30, norm="l2", seed=0)
    moved = np.sqrt(((attacked.adversarial - x) ** 2).sum(axis=(1, 2, 3)))
    assert np.all(moved <= 0.5 * radius + 1e-3)
    after = smoothed_predict(model, attacked.adversarial, sigma, n=1000, alpha=0.001, seed=11)
    assert np.all((after.predicted == y) | after.abstained)
    assert np.sum(after.predicted == y) >= keep.sum() - 1
    # control: the same attack at three times the radius does change the answers (the radius matters)
    beyond = pgd_attack(model, x, y, 3.0 * radius, steps=30, norm="l2", seed=0)
    assert np.mean(beyond.predicted != y) >= 0.5
    assert np.any(smoothed_predict(model, beyond.adversarial, sigma, n=1000, alpha=0.001, seed=11).predicted != y)


def test_the_compiled_sampler_lets_the_model_go():
    import gc
    import weakref

    model = linear_model(np.zeros((SIDE * SIDE, 2)), np.array([0.0, 1.0]))
    certify(model, grey(100.0), 8.0, n0=10, n=20)
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None

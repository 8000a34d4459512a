"""Budgets (core.ops.project), step directions and PGD (attacks.pgd.pgd_step on the driver), on tiny models
whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras

from course_utils.attacks.pgd import _check_norm, pgd_attack, pgd_perturb, pgd_step, robust_accuracy
from course_utils.core.loop import compiled
from course_utils.core.ops import direction, project
from course_utils.models.imagenet import ClassNames

RNG = np.random.default_rng(0)


def _batch(n: int = 5, shape=(6, 6, 2)) -> tuple[tf.Tensor, tf.Tensor]:
    x0 = tf.constant(RNG.uniform(20, 235, size=(n, *shape)), tf.float32)
    x = x0 + tf.constant(RNG.normal(0, 30, size=(n, *shape)), tf.float32)
    return x, x0


def _linf(d) -> np.ndarray:
    return np.abs(np.asarray(d)).reshape(len(d), -1).max(1)


def _l2(d) -> np.ndarray:
    return np.sqrt((np.asarray(d, np.float64) ** 2).reshape(len(d), -1).sum(1))


# --------------------------------------------------------------------------- budgets (the balls PGD uses)


def project_linf(x, x0, eps):
    return project(x, x0, tf.broadcast_to(tf.constant(eps, tf.float32), [len(x)]), "linf")


def project_l2(x, x0, eps):
    return project(x, x0, tf.broadcast_to(tf.constant(eps, tf.float32), [len(x)]), "l2")


@pytest.mark.parametrize("eps", [3.0, np.array([0.0, 0.5, 2.0, 8.0, 100.0], np.float32)])
def test_linf_projection_never_leaves_the_box(eps):
    x, x0 = _batch()
    p = project_linf(x, x0, eps)
    limit = np.broadcast_to(eps, (5,))
    assert np.all(_linf(p - x0) <= limit + 1e-4)
    inside = np.abs(np.asarray(x - x0)) <= np.asarray(limit)[:, None, None, None]
    np.testing.assert_array_equal(np.asarray(p)[inside], np.asarray(x)[inside])  # inside: untouched


@pytest.mark.parametrize("eps", [10.0, np.array([0.0, 1.0, 20.0, 60.0, 1e4], np.float32)])
def test_l2_projection_never_leaves_the_ball_and_keeps_the_direction(eps):
    x, x0 = _batch()
    p = project_l2(x, x0, eps)
    limit = np.broadcast_to(eps, (5,)).astype(np.float64)
    lengths = _l2(p - x0)
    before = _l2(x - x0)
    assert np.all(lengths <= limit * (1 + 1e-5) + 1e-4)
    np.testing.assert_allclose(lengths, np.minimum(before, limit), rtol=1e-4, atol=1e-3)  # shrunk only if longer
    d, dp = np.asarray(x - x0).reshape(5, -1), np.asarray(p - x0).reshape(5, -1)
    keep = lengths > 0
    cos = (d * dp).sum(1)[keep] / (before[keep] * lengths[keep])
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)


def test_a_budget_larger_than_the_change_leaves_it_alone_and_an_unknown_norm_is_refused():
    x, x0 = _batch()
    for norm in ("linf", "l2"):
        np.testing.assert_array_equal(np.asarray(project(x, x0, 1e6, norm)), np.asarray(x))
    with pytest.raises(ValueError, match="'linf'"):
        _check_norm("l1")
    with pytest.raises(ValueError, match="'rms'"):
        direction(tf.zeros([1, 2]), "l1")


def test_step_directions_are_unit_steps_per_example():
    g = tf.constant(RNG.normal(size=(4, 3, 3, 1)) * np.array([1e-6, 1, 1e3, 0])[:, None, None, None], tf.float32)
    s = np.asarray(direction(g, "linf"))
    np.testing.assert_array_equal(s, np.sign(np.asarray(g)))
    u = np.asarray(direction(g, "l2"))
    np.testing.assert_allclose(_l2(u)[:3], 1.0, rtol=1e-5)
    assert np.all(u[3] == 0)  # a zero gradient gives a zero step, not NaN


# --------------------------------------------------------------------------- PGD on a tiny model


def _tiny_model(seed: int = 1) -> keras.Model:
    """A linear 3-class model on 4x4x1 pixels (its gradient is its weights)."""
    keras.utils.set_random_seed(seed)
    pixels = keras.Input((4, 4, 1), name="pixels")
    x = keras.layers.Rescaling(1 / 255)(pixels)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(x))
    model = keras.Model(pixels, logits, name="tiny")
    w = RNG.normal(0, 3, size=(16, 3)).astype(np.float32)
    model.get_layer("logits").set_weights([w, np.zeros(3, np.float32)])
    return model


def _ce(model, x, labels) -> np.ndarray:
    logits = model(tf.constant(x, tf.float32), training=False)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant(labels, tf.int32), logits=logits).numpy()


@pytest.mark.parametrize("norm,eps", [("linf", 8.0), ("l2", 40.0)])
def test_pgd_raises_the_loss_and_stays_in_the_budget(norm, eps):
    model = _tiny_model()
    x = RNG.uniform(40, 215, size=(6, 4, 4, 1)).astype(np.float32)
    y = np.asarray(model(x, training=False)).argmax(-1)
    adv = pgd_perturb(model, x, y, eps, steps=10, norm=norm, seed=3).numpy()
    assert np.all(_ce(model, adv, y) > 1.5 * _ce(model, x, y)), "PGD should raise every example's loss"
    size = _linf(adv - x) if norm == "linf" else _l2(adv - x)
    assert np.all(size <= eps * (1 + 1e-5) + 1e-3) and adv.min() >= 0 and adv.max() <= 255


def test_targeted_pgd_reaches_its_target_and_eps_can_be_per_example():
    model = _tiny_model()
    x = RNG.uniform(40, 215, size=(3, 4, 4, 1)).astype(np.float32)
    y = np.asarray(model(x, training=False)).argmax(-1)
    target = (y + 1) % 3
    eps = np.array([0.0, 60.0, 60.0], np.float32)
    adv = pgd_attack(model, x, target, eps, steps=20, targeted=True, seed=0).adversarial
    pred = np.asarray(model(adv, training=False)).argmax(-1)
    assert pred[0] == y[0] and np.all(adv[0] == x[0]), "a zero budget must leave the image as it was"
    np.testing.assert_array_equal(pred[1:], target[1:])
    assert np.all(_linf(adv - x) <= eps + 1e-3)


def test_pgd_is_seeded_and_runs_inside_tf_function():
    model = _tiny_model()
    x = tf.constant(RNG.uniform(0, 255, size=(2, 4, 4, 1)), tf.float32)
    y = tf.constant([0, 1])
    a = pgd_perturb(model, x, y, 4.0, steps=0, seed=5).numpy()  # the random start alone
    b = pgd_perturb(model, x, y, 4.0, steps=0, seed=5).numpy()
    c = pgd_perturb(model, x, y, 4.0, steps=0, seed=6).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    graph = tf.function(lambda x, eps, seed: pgd_perturb(model, x, y, eps, steps=3, seed=seed))
    np.testing.assert_allclose(graph(x, tf.constant(4.0), tf.constant([5, 0])), pgd_perturb(model, x, y, 4.0, steps=3, seed=5), atol=1e-4)


def test_robust_accuracy_at_zero_is_clean_accuracy_and_never_retraces():
    model = _tiny_model(seed=2)
    x = RNG.uniform(0, 255, size=(40, 4, 4, 1)).astype(np.float32)
    predicted = np.asarray(model(x, training=False)).argmax(-1)
    labels = np.where(np.arange(40) % 4 == 0, (predicted + 1) % 3, predicted)  # a quarter wrong
    table = robust_accuracy(model, x, labels, [0, 1, 4], steps=5, batch_size=16)
    assert isinstance(table, pd.DataFrame) and list(table.columns) == ["epsilon", "accuracy", "n"]
    assert table.accuracy[0] == pytest.approx(np.mean(predicted == labels)) and table.n[0] == 40
    assert table.accuracy.is_monotonic_decreasing
    loop = compiled(pgd_step, model, norm="linf", targeted=False, loss="ce", samples=1)
    traces = loop.traces["perturb"]
    assert 1 <= traces <= 2, "one graph for all budgets; at most one more for the last, smaller batch"
    robust_accuracy(model, x, labels, [0.5, 2, 3, 16], steps=7, step_size=0.5, batch_size=10, seed=4)
    assert loop.traces["perturb"] == traces, "a new epsilon, step count, step size, seed or batch size must not re-trace"


def test_pgd_attack_defaults_to_the_models_own_answer():
    model = _tiny_model()
    x = RNG.uniform(40, 215, size=(4, 4, 4, 1)).astype(np.float32)
    r = pgd_attack(model, x, None, [0.0, 20.0, 20.0, 20.0], steps=10)
    np.testing.assert_array_equal(r.labels, np.asarray(model(x, training=False)).argmax(-1))
    assert not r.success[0] and r.success[1:].all()
    assert r.adversarial.shape == x.shape and "AttackResult(pgd" in repr(r)


def resolve_labels(model, labels, n):
    return np.asarray(ClassNames.of(model).indices(labels, n, name="labels"))


def test_labels_are_resolved_per_model():
    from course_utils.models.imagenet import _imagenet_labels as imagenet_labels

    face = keras.Model(k := keras.Input((4,)), keras.layers.Dense(2)(k))
    face.class_names = ("man", "woman")  # as the course's loaders name their models' classes
    imagenet = keras.Model(i := keras.Input((4,)), keras.layers.Dense(1000)(i))
    imagenet.class_names = imagenet_labels()
    np.testing.assert_array_equal(resolve_labels(face, ["woman", "man", 1], 3), [1, 0, 1])
    np.testing.assert_array_equal(resolve_labels(face, "man", 2), [0, 0])
    np.testing.assert_array_equal(resolve_labels(imagenet, ["tabby", 145, np.int64(3)], 3), [281, 145, 3])
    with pytest.raises(ValueError, match="2"):
        resolve_labels(face, [0, 1, 1], 2)
    with pytest.raises(ValueError, match="man"):
        resolve_labels(face, "cat", 1)


def test_bad_arguments_are_refused():
    model = _tiny_model()
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="epsilon"):
        robust_accuracy(model, x, [0], [-1.0])
    with pytest.raises(ValueError, match="steps"):
        robust_accuracy(model, x, [0], [1.0], steps=2.5)
    with pytest.raises(ValueError, match="norm"):
        pgd_perturb(model, x, [0], 1.0, steps=1, norm="l1")
    with pytest.raises(ValueError, match="samples"):
        pgd_attack(model, x, [0], 1.0, steps=1, samples=0)


def test_stop_at_success_keeps_the_first_change_that_works():
    model = _tiny_model()
    x = np.random.default_rng(7).uniform(100, 155, size=(4, 4, 4, 1)).astype(np.float32)
    y = np.asarray(model(x, training=False)).argmax(-1)
    common = dict(steps=90, step_size=1.0, random_start=False)
    full = pgd_perturb(model, x, y, 90.0, **common).numpy()
    assert np.all(np.asarray(model(full, training=False)).argmax(-1) != y), "the budget should fool every example"
    early = pgd_perturb(model, x, y, 90.0, stop_at_success=True, **common).numpy()
    assert np.all(np.asarray(model(early, training=False)).argmax(-1) != y), "every example should end fooled"
    assert np.all(_linf(early - x) <= _linf(full - x))
    for i, k in enumerate(np.round(_linf(early - x)).astype(int)):  # sign steps of 1: k steps were taken
        assert k >= 1
        before = pgd_perturb(model, x[i : i + 1], y[i : i + 1], 90.0, steps=k - 1, step_size=1.0, random_start=False)
        assert np.asarray(model(before, training=False)).argmax(-1)[0] == y[i], "one step fewer should not have fooled it"

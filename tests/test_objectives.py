"""Objectives by role: what each one minimises and tracks, and how they combine."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.models.faces import load_gender_cnn
from course_utils.io.images import sample_face
from course_utils.core import ops
from course_utils.core.objectives import ClassLogit, FilterMean, Objective, Sum, _as_objective
from course_utils.core.loop import Loop
from course_utils.vis.visualize import ascent_step


def run_objective(objective, x0, *, steps, step_size, data=None):
    """Plain gradient descent on ``objective`` with the driver: the step a test writes by hand."""

    def step(model, x, x0, i, seed, data, *, objective):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, tracked = objective(x, data)
        return x - step_size * tape.gradient(loss, x), loss, tracked, None

    return Loop(step, None, objective=objective).run(x0, dict(data or {}), steps=steps, progress=False)


@pytest.fixture(scope="module")
def model():
    return load_gender_cnn()


@pytest.fixture(scope="module")
def x() -> tf.Tensor:
    face = sample_face("astronaut")
    return tf.constant(np.stack([face, face[:, ::-1]]))


LABELS = {"labels": tf.constant([0, 1]), "filters": tf.constant([2, 5])}


def test_the_attacks_cross_entropy_is_minus_log_p(model, x):
    logits = model(x, training=False)
    ce = ops.cross_entropy(logits, tf.constant([0, 1])).numpy()
    log_p = logits.numpy() - np.log(np.exp(logits.numpy()).sum(-1, keepdims=True))
    np.testing.assert_allclose(ce, -log_p[[0, 1], [0, 1]], rtol=1e-5)
    twice = ops.cross_entropy(tf.stack([logits, logits]), tf.constant([0, 1])).numpy()  # EOT over two equal draws
    np.testing.assert_allclose(twice, ce, rtol=1e-5)


def test_class_logit_and_filter_mean_pick_one_per_example(model, x):
    loss, tracked = ClassLogit(model)(x, LABELS)
    logits = model(x, training=False).numpy()
    np.testing.assert_allclose(loss.numpy(), -logits[[0, 1], [0, 1]], rtol=1e-6)
    assert tracked.shape == (2, 2) and np.all((tracked.numpy()[:, 0] > 0) & (tracked.numpy()[:, 0] < 1))
    means = FilterMean(model, "conv2")
    loss, tracked = means(x, LABELS)
    every = means.mean_activations(x).numpy()  # (2, 6 channels)
    np.testing.assert_allclose(loss.numpy(), -every[[0, 1], [2, 5]], rtol=1e-6)
    np.testing.assert_allclose(tracked.numpy()[:, 0], every[[0, 1], [2, 5]], rtol=1e-6)


def test_objectives_combine_like_numbers(model, x):
    a, b = ClassLogit(model), FilterMean(model, "conv3")
    mixed = a + 0.5 * b
    assert isinstance(mixed, Sum) and [w for w, _ in mixed.terms] == [1.0, 0.5]
    loss, tracked = mixed(x, LABELS)
    (la, ta), (lb, tb) = a(x, LABELS), b(x, LABELS)
    np.testing.assert_allclose(loss.numpy(), la.numpy() + 0.5 * lb.numpy(), rtol=1e-5)
    np.testing.assert_array_equal(tracked.numpy(), np.concatenate([ta.numpy(), tb.numpy()], axis=1))
    assert mixed.per_call == {"labels": tf.int32, "filters": tf.int32}
    # subtraction, negation, division and sum() give the weights one expects, nested sums flatten
    assert [w for w, _ in (a - b / 4).terms] == [1.0, -0.25]
    assert [w for w, _ in (-(2 * a)).terms] == [-2.0]
    assert [w for w, _ in sum([a, b, a]).terms] == [1.0, 1.0, 1.0]
    # the same structure gives the same cache key; another weight another one
    assert (a + 0.5 * b).key() == (ClassLogit(model) + 0.5 * FilterMean(model, "conv3")).key()
    assert (a + 0.5 * b).key() != (a + 0.25 * b).key()
    assert a + 0.5 * b == ClassLogit(model) + 0.5 * FilterMean(model, "conv3") != a + 0.25 * b  # one compiled step
    assert hash(a + 0.5 * b) == hash(ClassLogit(model) + 0.5 * FilterMean(model, "conv3"))
    with pytest.raises(ValueError):
        a * float("nan")


def test_a_combined_objective_runs_in_the_loop_with_per_call_data(model, x):
    objective = ClassLogit(model) + 0.01 * FilterMean(model, "conv1")
    data = {"labels": np.array([1, 1], np.int32), "filters": np.array([0, 2], np.int32),
            "step_size": np.array([2.0, 2.0], np.float32)}
    result = Loop(ascent_step, model, objective=objective).run(x, data, steps=5, progress=False)  # lesson 3's step
    assert result.tracked.shape == (6, 2, 3)  # probability, logit, filter mean
    assert np.all(result.tracked[-1, :, 1] > result.tracked[0, :, 1])  # the logit went up


def test_plain_functions_are_objectives_too():
    def quadratic(x):
        return tf.reduce_sum(tf.square(x - 3.0), axis=[1, 2, 3]), tf.reduce_mean(x, axis=[1, 2, 3])[:, None]

    def shifted(x, data):
        return quadratic(x - data["shift"][:, None, None, None])

    assert isinstance(_as_objective(quadratic), Objective)
    x0 = np.zeros((2, 2, 2, 1), np.float32)
    plain = run_objective(_as_objective(quadratic), x0, steps=3, step_size=0.1)
    np.testing.assert_allclose(plain.x, 3 * (1 - 0.8**3), rtol=1e-5)
    tripled = run_objective(_as_objective(quadratic) + 2.0 * _as_objective(quadratic), x0, steps=1, step_size=0.1 / 3)
    np.testing.assert_allclose(tripled.x, 0.6, rtol=1e-5)  # one step along 3x the gradient -6
    moved = run_objective(_as_objective(shifted, {"shift": tf.float32}), x0, data={"shift": np.array([0.0, 1.0], np.float32)},
                          steps=1, step_size=0.1)
    np.testing.assert_allclose(moved.x[:, 0, 0, 0], [0.6, 0.8], rtol=1e-5)  # the minimum moved to 4 for image 1
    with pytest.raises(TypeError, match="objective must be"):
        _as_objective("logit")

"""Objectives by role: what each one minimises and tracks, and how they combine."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.models.faces import load_gender_cnn
from course_utils.io.images import sample_face
from course_utils.core.objectives import ClassLogit, CrossEntropy, FilterMean, Objective, Sum, as_objective
from course_utils.core.gradient_loop import GradientLoop
from course_utils.core.loop import Loop
from course_utils.vis.visualize import ascent_step


def run_gradient_loop(objective, x0, *, step_rule="plain", regularizers=(), jit_compile=False, **run):
    """A one-off loop: build it with its structure, run it with the per-call values."""
    return GradientLoop(objective, step_rule=step_rule, regularizers=regularizers, jit_compile=jit_compile).run(x0, **run)


@pytest.fixture(scope="module")
def model():
    return load_gender_cnn()


@pytest.fixture(scope="module")
def x() -> tf.Tensor:
    face = sample_face("astronaut")
    return tf.constant(np.stack([face, face[:, ::-1]]))


LABELS = {"labels": tf.constant([0, 1]), "filters": tf.constant([2, 5])}


def test_cross_entropy_targeted_and_untargeted_are_opposites(model, x):
    to, tracked = CrossEntropy(model)(x, LABELS)
    away, _ = CrossEntropy(model, targeted=False)(x, LABELS)
    logits = model(x, training=False).numpy()
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(to.numpy(), -log_p[[0, 1], [0, 1]], rtol=1e-5)
    np.testing.assert_allclose(away.numpy(), -to.numpy())
    np.testing.assert_allclose(tracked.numpy().sum(-1), 1.0, rtol=1e-6)  # softmax rows


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
    with pytest.raises(ValueError, match="needs the per-call value 'filters'"):
        GradientLoop(objective).run(x, {"labels": [1, 1]}, steps=1, step_size=1.0)
    with pytest.raises(ValueError, match="reads no per-call value 'epsilon'"):
        GradientLoop(objective).run(x, {"labels": 1, "filters": 0, "epsilon": 2.0}, steps=1, step_size=1.0)


def test_plain_functions_are_objectives_too():
    def quadratic(x):
        return tf.reduce_sum(tf.square(x - 3.0), axis=[1, 2, 3]), tf.reduce_mean(x, axis=[1, 2, 3])[:, None]

    def shifted(x, data):
        return quadratic(x - data["shift"][:, None, None, None])

    assert isinstance(as_objective(quadratic), Objective)
    x0 = np.zeros((2, 2, 2, 1), np.float32)
    plain = run_gradient_loop(quadratic, x0, steps=3, step_size=0.1, progress=False)
    np.testing.assert_allclose(plain.x, 3 * (1 - 0.8**3), rtol=1e-5)
    tripled = run_gradient_loop(as_objective(quadratic) + 2.0 * as_objective(quadratic), x0, steps=1,
                                step_size=0.1 / 3, progress=False)
    np.testing.assert_allclose(tripled.x, 0.6, rtol=1e-5)  # one step along 3x the gradient -6
    moved = run_gradient_loop(as_objective(shifted, {"shift": tf.float32}), x0, data={"shift": [0.0, 1.0]},
                              steps=1, step_size=0.1, progress=False)
    np.testing.assert_allclose(moved.x[:, 0, 0, 0], [0.6, 0.8], rtol=1e-5)  # the minimum moved to 4 for image 1
    with pytest.raises(TypeError, match="objective must be"):
        as_objective("logit")

"""Lesson 3's objective: what it minimises and tracks for a class or a filter, with and without diversity."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.models.faces import load_gender_cnn
from course_utils.io.images import sample_face
from course_utils.core import ops
from course_utils.core.loop import Loop
from course_utils.vis.objectives import Objective, diversity
from course_utils.vis.visualize import ascent_step


def run_objective(objective, x0, *, steps, step_size, data=None):
    """Plain gradient descent on ``objective`` with the driver: the step a test writes by hand."""

    def step(model, x, x0, i, seed, data, *, objective):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, tracked = objective(model, x, data)
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
    loss, tracked = Objective()(model, x, LABELS)
    logits = model(x, training=False).numpy()
    np.testing.assert_allclose(loss.numpy(), -logits[[0, 1], [0, 1]], rtol=1e-6)
    assert tracked.shape == (2, 2) and np.all((tracked.numpy()[:, 0] > 0) & (tracked.numpy()[:, 0] < 1))
    means = Objective("conv2")
    loss, tracked = means(model, x, LABELS)
    every = tf.reduce_mean(means.features(model)(x), axis=[1, 2]).numpy()  # (2, 6 channels)
    np.testing.assert_allclose(loss.numpy(), -every[[0, 1], [2, 5]], rtol=1e-6)
    np.testing.assert_allclose(tracked.numpy()[:, 0], every[[0, 1], [2, 5]], rtol=1e-6)
    assert means.features(model) is means.features(model)  # the cut network is built once per model and layer


def test_the_diversity_term_adds_to_the_loss_and_is_tracked(model, x):
    plain, apart = Objective("conv3"), Objective("conv3", diversity_weight=0.5)
    (lp, tp), (la, ta) = plain(model, x, LABELS), apart(model, x, LABELS)
    alike = diversity(plain.features(model)(x)).numpy()
    np.testing.assert_allclose(la.numpy(), lp.numpy() + 0.5 * alike, rtol=1e-5)
    np.testing.assert_array_equal(ta.numpy()[:, :1], tp.numpy())
    np.testing.assert_allclose(ta.numpy()[:, 1], alike, rtol=1e-6)
    # settings, equal by value: one compiled step serves equal objectives, another weight is another step
    assert apart == Objective("conv3", "mean", 0.5) != Objective("conv3", diversity_weight=0.25)
    assert hash(apart) == hash(Objective("conv3", diversity_weight=0.5))


def test_the_class_objective_runs_in_the_loop_with_per_call_data(model, x):
    data = {"labels": np.array([1, 1], np.int32), "step_size": np.array([2.0, 2.0], np.float32)}
    result = Loop(ascent_step, model, objective=Objective()).run(x, data, steps=5, progress=False)  # lesson 3's step
    assert result.tracked.shape == (6, 2, 2)  # probability, logit
    assert np.all(result.tracked[-1, :, 1] > result.tracked[0, :, 1])  # the logit went up


def test_plain_functions_are_objectives_too():
    def quadratic(model, x, data):
        return tf.reduce_sum(tf.square(x - 3.0), axis=[1, 2, 3]), tf.reduce_mean(x, axis=[1, 2, 3])[:, None]

    def shifted(model, x, data):
        return quadratic(model, x - data["shift"][:, None, None, None], data)

    x0 = np.zeros((2, 2, 2, 1), np.float32)
    plain = run_objective(quadratic, x0, steps=3, step_size=0.1)
    np.testing.assert_allclose(plain.x, 3 * (1 - 0.8**3), rtol=1e-5)
    moved = run_objective(shifted, x0, data={"shift": np.array([0.0, 1.0], np.float32)}, steps=1, step_size=0.1)
    np.testing.assert_allclose(moved.x[:, 0, 0, 0], [0.6, 0.8], rtol=1e-5)  # the minimum moved to 4 for image 1

"""The graph-level run (``Loop.perturb``): tensors in, a tensor out, eagerly, inside a ``tf.function``
and inside a Keras ``train_step``; PGD (:func:`~course_utils.attacks.pgd.pgd_perturb`) on it.

A tiny classifier is trained for a few steps first, so that it is right on most of its training
images; the attack claims are relative (Foolbox style): adversarial accuracy below clean accuracy.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.defences import AdversarialTraining
from course_utils.attacks.pgd import pgd_perturb, pgd_step
from course_utils.core.loop import compiled

PGD = dict(norm="linf", targeted=False, loss="ce", samples=1)  # the settings pgd_perturb compiles its step with


def _net(inputs: keras.KerasTensor) -> keras.KerasTensor:
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dense(2)(x)


def _data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of 8x8 grey pictures: dark (0) and bright (1), with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int32)
    x = np.clip(rng.normal(90 + 70 * y[:, None, None, None], 25, (n, 8, 8, 1)), 0, 255).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def trained() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, _net(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    return model, x, y


def _copy(model: keras.Model) -> keras.Model:
    """The same weights in a new model: a model of its own, so its compiled loops start untraced."""
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def _accuracy(model: keras.Model, x, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(model(x, training=False)).argmax(-1) == y))


def test_pgd_on_perturb_lowers_accuracy_within_its_ball(trained):
    model, x, y = trained
    clean = _accuracy(model, x, y)
    assert clean >= 0.9
    linf = pgd_perturb(model, x, y, 40.0, steps=10)
    l2 = pgd_perturb(model, x, y, 300.0, steps=10, norm="l2")
    assert isinstance(linf, tf.Tensor) and linf.shape == x.shape and linf.dtype == tf.float32
    assert _accuracy(model, linf, y) < clean and _accuracy(model, l2, y) < clean
    assert np.abs(linf - x).max() <= 40.0 + 1e-3
    lengths = np.sqrt(np.sum(np.square(np.asarray(l2 - x, np.float64)), axis=(1, 2, 3)))
    assert lengths.max() <= 300.0 * (1 + 1e-5)
    assert np.asarray(linf).min() >= 0 and np.asarray(linf).max() <= 255
    weaker = pgd_perturb(model, x, y, 4.0, steps=10)  # a smaller budget fools fewer images
    assert _accuracy(model, weaker, y) >= _accuracy(model, linf, y)


def test_pgd_with_one_epsilon_per_example(trained):
    model, x, y = trained
    eps = np.where(np.arange(len(x)) % 2 == 0, 0.0, 30.0).astype(np.float32)
    out = np.asarray(pgd_perturb(model, x, y, eps, steps=5))
    change = np.abs(out - x).reshape(len(x), -1).max(1)
    np.testing.assert_array_equal(change[::2], 0.0)  # a zero budget leaves the picture exactly as it was
    assert np.all(change[1::2] <= 30.0 + 1e-3) and change[1::2].max() > 20.0


def test_random_start_is_seeded(trained):
    model, x, y = trained
    a, b, c = (np.asarray(pgd_perturb(model, x[:8], y[:8], 20.0, steps=2, seed=s)) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_perturb_inside_a_tf_function_traces_once_for_any_values(trained):
    model, x, y = trained
    model = _copy(model)  # untraced: the counts below are this test's own
    loop = compiled(pgd_step, model, **PGD)

    @tf.function
    def robust_accuracy(images, labels, epsilon, steps, seed):
        data = {"labels": labels, "epsilon": epsilon, "step_size": epsilon / 4}
        adversarial = loop.perturb(images, data, steps=steps, seed=seed)
        hits = tf.equal(tf.argmax(model(adversarial, training=False), -1, output_type=tf.int32), labels)
        return tf.reduce_mean(tf.cast(hits, tf.float32))

    args = (tf.constant(x), tf.constant(y, tf.int32))
    accuracies = [float(robust_accuracy(*args, tf.constant(e), tf.constant(n), tf.constant(s)))
                  for e, n, s in [(0.0, 8, 0), (10.0, 8, 1), (40.0, 8, 2), (40.0, 3, 3)]]
    assert robust_accuracy.experimental_get_tracing_count() == 1
    assert loop.traces == {"chunk": 0, "final": 0, "perturb": 1}
    assert accuracies[0] == pytest.approx(_accuracy(model, x, y))
    assert accuracies[2] < accuracies[0]
    assert accuracies[2] <= accuracies[1] <= accuracies[0]


def test_a_new_epsilon_target_step_size_or_seed_never_traces_perturb_again(trained):
    model, x, y = trained
    model = _copy(model)
    for kwargs in [dict(), dict(epsilon=4.0), dict(labels=1 - y), dict(step_size=0.5), dict(seed=5), dict(steps=7),
                   dict(epsilon=np.linspace(0, 20, len(x)).astype(np.float32))]:
        call = {"labels": y, "epsilon": 20.0, "steps": 3, **kwargs}
        pgd_perturb(model, x, call.pop("labels"), call.pop("epsilon"), **call)
    assert compiled(pgd_step, model, **PGD).traces["perturb"] == 1


def test_perturb_gives_no_gradient_to_the_weights(trained):
    model, x, y = trained
    loop = compiled(pgd_step, model, **PGD)
    with tf.GradientTape() as tape:
        adversarial = loop.perturb(x[:4], {"labels": y[:4], "epsilon": 8.0, "step_size": 2.0}, steps=2)
        loss = tf.reduce_sum(model(adversarial, training=False))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)  # the weights are watched: the gradient through the model is there
    with tf.GradientTape() as tape:
        adversarial = loop.perturb(x[:4], {"labels": y[:4], "epsilon": 8.0, "step_size": 2.0}, steps=2)
        loss = tf.reduce_sum(adversarial)
    assert all(g is None for g in tape.gradient(loss, model.trainable_variables))  # ... but none through the attack


class Recorded(AdversarialTraining):
    """The course's adversarial training, with the attack's largest change in each batch's logs."""

    def train_step(self, data):
        logs = dict(super().train_step(data))
        logs["linf"] = tf.reduce_max(tf.abs(self.perturb(data[0], data[1]) - data[0]))
        return logs


def test_pgd_inside_a_keras_train_step():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    classifier = keras.Model(inputs, _net(inputs))
    model = Recorded(classifier, epsilon=20.0, steps=3)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(32, seed=2)
    # Every batch's logs (Keras < 3.3 keeps only compiled metrics in fit's history, not train_step's keys).
    batches: list[dict] = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(dict(logs)))
    before = [w.copy() for w in classifier.get_weights()]
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[record])
    loss, linf = [float(b["loss"]) for b in batches], [float(b["linf"]) for b in batches]
    assert len(batches) == 8 and np.all(np.isfinite(loss))
    assert max(linf) <= 20.0 + 1e-3 and min(linf) > 0
    assert any(not np.array_equal(a, b) for a, b in zip(before, classifier.get_weights()))  # it did train
    loop = compiled(pgd_step, classifier, **PGD)
    assert loop.traces["perturb"] == 1  # traced with the train step, never per batch (new seed, new weights)
    model.set_epsilon(8.0)  # a new budget mid-training: read from a variable, no new graph
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[record])
    assert max(float(b["linf"]) for b in batches[8:]) <= 8.0 + 1e-3
    assert loop.traces["perturb"] == 1


STEPS_RUN = tf.Variable(0, dtype=tf.int64, trainable=False)  # how often _creep has run


def _creep(model, x, x0, i, seed, data):
    """A step with no model: every pixel one grey level up; it has succeeded once ``x`` is
    ``data["goal"]`` levels above ``x0``. Counts its runs in :data:`STEPS_RUN`."""
    climbed = x[:, 0, 0, 0] - x0[:, 0, 0, 0]
    counted = STEPS_RUN.assign_add(1)
    with tf.control_dependencies([counted]):
        x_next = x + 1.0
    return x_next, climbed, climbed[:, None], climbed >= data["goal"]


def test_stop_at_success_stops_perturb_early():
    x0 = np.zeros((3, 2, 2, 1), np.float32)
    goal = np.array([2.0, 4.0, 1.0], np.float32)
    until = compiled(_creep, None, stop_at_success=True)
    STEPS_RUN.assign(0)
    out = until.perturb(x0, {"goal": goal}, steps=1000).numpy()
    np.testing.assert_array_equal(out[:, 0, 0, 0], goal)  # each frozen where it first succeeded
    assert int(STEPS_RUN.numpy()) == 5  # steps 0..4: the last example succeeds before step 4, then the loop ends
    STEPS_RUN.assign(0)
    out = compiled(_creep, None).perturb(x0, {"goal": goal}, steps=20).numpy()
    np.testing.assert_array_equal(out[:, 0, 0, 0], 20.0)  # without it: every step for every example
    assert int(STEPS_RUN.numpy()) == 20


def test_stop_at_success_freezes_each_example_in_run_and_perturb(trained):
    """With stop_at_success the driver leaves an example where it is from the step its goal is met
    (judged before the step), in the notebook run and the graph-level run alike."""
    model, x, y = trained
    loop = compiled(pgd_step, model, stop_at_success=True, **PGD)
    data = {"labels": y, "epsilon": np.full(len(x), 60.0, np.float32), "step_size": np.full(len(x), 6.0, np.float32)}
    result = loop.run(x, data, steps=12, progress=False)
    fooled = np.asarray(model(result.x, training=False)).argmax(-1) != y
    assert fooled.mean() > 0.5
    predicted = result.tracked.argmax(-1)  # (steps + 1, N): the answer before each step, then the final
    for i in np.flatnonzero(fooled):
        first = int(np.argmax(predicted[:, i] != y[i]))
        np.testing.assert_array_equal(predicted[first:, i], predicted[first, i])  # frozen from there on
        np.testing.assert_allclose(result.losses[first:, i], result.losses[first, i], rtol=1e-6)
    np.testing.assert_allclose(loop.perturb(x, data, steps=12).numpy(), result.x, atol=1e-3)
    free = compiled(pgd_step, model, **PGD).run(x, data, steps=12, progress=False)
    assert not np.allclose(free.x, result.x, atol=1e-3)  # without it, the fooled ones move on

"""The graph-level run (``GradientLoop.perturb``): tensors in, a tensor out, inside a ``tf.function``
and inside a Keras ``train_step``; and PGD written on top of it in a few lines.

A tiny classifier is trained for a few steps first, so that it is right on most of its training
images; the attack claims are relative (Foolbox style): adversarial accuracy below clean accuracy.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_utils.core.objectives import CrossEntropy, weak
from course_utils.core.gradient_loop import GradientLoop
from course_utils.core.cache import loop_for
from course_utils.core.steps import L2Ball, LinfBall, PixelRange


def _net(inputs: keras.KerasTensor) -> keras.KerasTensor:
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dense(2)(x)


def _data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of 8x8 grey pictures: dark (0) and bright (1), with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
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


def _accuracy(model: keras.Model, x: tf.Tensor, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(model(x, training=False)).argmax(-1) == y))


def pgd(model, x, labels, epsilon, *, steps, step_size=None, norm="linf", random_start=True, seed=0, targeted=False):
    """PGD (Madry et al. 2018) on top of the course's loop: the whole attack is its structure
    (objective, step rule, projection) plus per-call values."""
    ball = LinfBall() if norm == "linf" else L2Ball()
    loop = loop_for(model, CrossEntropy(weak(model), targeted=targeted), step_rule="sign" if norm == "linf" else "l2",
                    regularizers=(ball, PixelRange()))
    x = tf.convert_to_tensor(x, tf.float32)
    eps = tf.broadcast_to(tf.cast(epsilon, tf.float32), tf.shape(x)[:1])
    start = tf.clip_by_value(ball.random_start(x, eps, seed), 0.0, 255.0) if random_start else None
    rate = 2.5 * eps / tf.cast(steps, tf.float32) if step_size is None else step_size
    return loop.perturb(x, {"labels": labels, "epsilon": eps}, steps=steps, step_size=rate, seed=seed, start=start)


def test_pgd_on_top_of_perturb_lowers_accuracy_within_its_ball(trained):
    model, x, y = trained
    clean = _accuracy(model, x, y)
    assert clean >= 0.9
    linf = pgd(model, x, y, 40.0, steps=10)
    l2 = pgd(model, x, y, 300.0, steps=10, norm="l2")
    assert _accuracy(model, linf, y) < clean and _accuracy(model, l2, y) < clean
    assert np.abs(linf - x).max() <= 40.0 + 1e-3
    lengths = np.sqrt(np.sum(np.square(np.asarray(l2 - x, np.float64)), axis=(1, 2, 3)))
    assert lengths.max() <= 300.0 * (1 + 1e-5)
    assert np.asarray(linf).min() >= 0 and np.asarray(linf).max() <= 255
    weaker = pgd(model, x, y, 4.0, steps=10)  # a smaller budget fools fewer images
    assert _accuracy(model, weaker, y) >= _accuracy(model, linf, y)


def test_pgd_with_one_epsilon_per_example(trained):
    model, x, y = trained
    eps = np.where(np.arange(len(x)) % 2 == 0, 0.0, 30.0).astype(np.float32)
    out = np.asarray(pgd(model, x, y, eps, steps=5))
    change = np.abs(out - x).reshape(len(x), -1).max(1)
    np.testing.assert_array_equal(change[::2], 0.0)  # a zero budget leaves the picture exactly as it was
    assert np.all(change[1::2] <= 30.0 + 1e-3) and change[1::2].max() > 20.0


def test_random_start_is_seeded(trained):
    model, x, y = trained
    a, b, c = (np.asarray(pgd(model, x[:8], y[:8], 20.0, steps=2, seed=s)) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_perturb_inside_a_tf_function_traces_once_for_any_values(trained):
    model, x, y = trained
    loop = GradientLoop(CrossEntropy(model, targeted=False), step_rule="sign", regularizers=(LinfBall(), PixelRange()))

    @tf.function
    def robust_accuracy(images, labels, epsilon, steps):
        adversarial = loop.perturb(images, {"labels": labels, "epsilon": epsilon}, steps=steps, step_size=epsilon / 4)
        hits = tf.equal(tf.argmax(model(adversarial, training=False), -1, output_type=tf.int32), labels)
        return tf.reduce_mean(tf.cast(hits, tf.float32))

    args = (tf.constant(x), tf.constant(y, tf.int32))
    accuracies = [float(robust_accuracy(*args, tf.constant(e), tf.constant(8))) for e in (0.0, 10.0, 40.0)]
    assert robust_accuracy.experimental_get_tracing_count() == 1 and loop.traces["perturb"] == 1
    assert accuracies[0] == pytest.approx(_accuracy(model, x, y))
    assert accuracies[2] < accuracies[0]
    assert accuracies[2] <= accuracies[1] <= accuracies[0]


def test_perturb_gives_no_gradient_to_the_weights(trained):
    model, x, y = trained
    loop = GradientLoop(CrossEntropy(model, targeted=False), step_rule="sign", regularizers=(LinfBall(8.0),))
    with tf.GradientTape() as tape:
        adversarial = loop.perturb(x[:4], {"labels": y[:4]}, steps=2, step_size=2.0)
        loss = tf.reduce_sum(adversarial)
    assert all(g is None for g in tape.gradient(loss, model.trainable_variables))


class AdversarialModel(keras.Model):
    """Adversarial training (Madry et al.): every batch is replaced by its PGD version first."""

    epsilon = 20.0

    def train_step(self, data):
        x, y = data
        x_adv = self.attack.perturb(x, {"labels": y, "epsilon": self.epsilon}, steps=3, step_size=self.epsilon / 2,
                                    seed=tf.cast(self.optimizer.iterations, tf.int32))
        with tf.GradientTape() as tape:
            logits = self(x_adv, training=True)
            loss = self.compute_loss(x=x_adv, y=y, y_pred=logits)
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
        return {"loss": loss, "linf": tf.reduce_max(tf.abs(x_adv - x))}


@pytest.mark.parametrize("jit_compile", [False, True])
def test_perturb_inside_a_keras_train_step(jit_compile):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    model = AdversarialModel(inputs, _net(inputs))
    model.attack = GradientLoop(CrossEntropy(weak(model), targeted=False), step_rule="sign",
                                regularizers=(LinfBall(), PixelRange()))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    x, y = _data(32, seed=2)
    # Every batch's logs (Keras < 3.3 keeps only compiled metrics in fit's history, not train_step's keys).
    batches: list[dict] = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(dict(logs)))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[record])
    loss, linf = [float(b["loss"]) for b in batches], [float(b["linf"]) for b in batches]
    assert len(batches) == 8 and np.all(np.isfinite(loss))
    assert max(linf) <= AdversarialModel.epsilon + 1e-3 and min(linf) > 0
    assert model.attack.traces["perturb"] == 1  # traced with the train step, never per batch


def test_the_whole_loop_under_xla_gives_the_same_batch(trained):
    """jit_compile="loop" compiles perturb's whole while-loop with XLA: the same maths, the same
    batch (to float rounding); anything but False, True or "loop" is refused before tracing."""
    model, x, y = trained
    data = {"labels": y, "epsilon": 20.0}
    plain, whole = (GradientLoop(CrossEntropy(weak(model), targeted=False), step_rule="sign",
                                 regularizers=(LinfBall(), PixelRange()), jit_compile=jit) for jit in (False, "loop"))
    a = plain.perturb(x, data, steps=8, step_size=4.0).numpy()
    b = whole.perturb(x, data, steps=8, step_size=4.0).numpy()
    assert np.mean(np.abs(a - b) < 1e-3) > 0.99, "the same steps, compiled as one XLA program"
    assert whole.traces["perturb"] == 1
    with pytest.raises(ValueError, match="jit_compile must be False, True .* or 'loop'"):
        GradientLoop(CrossEntropy(weak(model)), jit_compile="yes")


def test_stop_at_success_freezes_each_example_in_run_and_perturb(trained):
    """With stop_at_success the loop leaves an example where it is from the step its goal is met
    (judged before the step), in the notebook run and the graph-level run alike."""
    model, x, y = trained
    loop = GradientLoop(CrossEntropy(weak(model), targeted=False), step_rule="sign",
                        regularizers=(LinfBall(), PixelRange()), stop_at_success=True)
    data = {"labels": y, "epsilon": 60.0}
    result = loop.run(x, data, steps=12, step_size=6.0, progress=False)
    fooled = np.asarray(model(result.x, training=False)).argmax(-1) != y
    assert fooled.mean() > 0.5
    predicted = result.tracked.argmax(-1)  # (steps + 1, N): the answer before each step, then the final
    for i in np.flatnonzero(fooled):
        first = int(np.argmax(predicted[:, i] != y[i]))
        np.testing.assert_array_equal(predicted[first:, i], predicted[first, i])  # frozen from there on
    np.testing.assert_allclose(loop.perturb(x, data, steps=12, step_size=6.0).numpy(), result.x, atol=1e-3)
    with pytest.raises(TypeError, match="goal"):
        GradientLoop(lambda z: (tf.reduce_sum(z, axis=[1, 2, 3]), z[:, :1, 0, 0]), stop_at_success=True)

"""Lesson 6's defensive distillation: the margin objective, PGD's loss choice, the shipped distilled
model (its saturated softmax and hidden gradient) and the training tool's refusals."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.pgd import pgd_attack
from course_utils.core.ops import logit_margin
from course_utils.io.images import FACE_BOXES, sample_face
from course_utils.models.faces import FACE_VARIANTS, face_facts, load_face_model, load_gender_cnn


def _faces() -> tuple[np.ndarray, np.ndarray]:
    """The sample faces, mirrored and moved by one pixel (20 faces), and lesson 1's model's answers."""
    base = [sample_face(name) for name in FACE_BOXES]
    faces = np.stack([np.roll(f[:, ::flip], shift, axis=axis) for f in base for flip in (1, -1)
                      for axis, shift in ((0, 0), (0, -1), (0, 1), (1, -1), (1, 1))]).astype(np.float32)
    return faces, np.asarray(load_gender_cnn()(faces)).argmax(-1)


def _identity(x, training=False):
    return x  # "logits" given directly


def _margin_loss(logits, labels, targeted=False, kappa=0.0):
    """What PGD minimises with loss="margin" (C&W's f6): max(gap, -kappa), gap = the label's lead (untargeted) or
    the best other's lead over the target (targeted); success where the gap is below 0."""
    gap = -logit_margin(logits, labels) if targeted else logit_margin(logits, labels)
    return tf.maximum(gap, -kappa), tf.nn.softmax(logits), gap < 0


@pytest.mark.parametrize("targeted,kappa", [(False, 0.0), (False, 0.5), (True, 0.0), (True, 0.5)])
def test_logit_margin_values_on_hand_made_logits(targeted, kappa):
    logits = tf.constant([[3.0, 5.0, -1.0], [2.0, 1.0, 0.5], [4.0, 4.0, 0.0]])
    labels = tf.constant([0, 0, 1], tf.int32)
    loss, tracked, success = _margin_loss(logits, labels, targeted, kappa)
    if not targeted:
        # row 0: 3 - 5 = -2 -> max(-2, -kappa); row 1: 2 - 1 = 1; row 2: a tie, 4 - 4 = 0
        assert np.allclose(loss.numpy(), [max(-2.0, -kappa), 1.0, 0.0])
        assert success.numpy().tolist() == [True, False, False]  # a tie is no success
    else:
        # targeted at label t: best other minus Z_t: row 0: 5 - 3 = 2; row 1: 1 - 2 = -1; row 2: 4 - 4 = 0
        assert np.allclose(loss.numpy(), [2.0, max(-1.0, -kappa), 0.0])
        assert success.numpy().tolist() == [False, True, False]
    assert np.allclose(tracked.numpy().sum(axis=1), 1.0)  # the softmax


def test_margin_keeps_a_gradient_where_the_softmax_saturates():
    logits = tf.constant([[900.0, -900.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        margin = _margin_loss(logits, tf.constant([0]))[0]
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant([0]), logits)
    assert not np.any(tape.gradient(ce, logits).numpy())  # float32: exactly zero
    assert np.allclose(tape.gradient(margin, logits).numpy(), [[1.0, -1.0]])


def test_bad_inputs_are_refused_clearly(capsys):
    model = load_gender_cnn()
    face = sample_face("astronaut")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        pgd_attack(model, face, None, 2.0, loss="hinge")
    with pytest.raises(ValueError, match="samples=1"):
        pgd_attack(model, face[None], [0], 2.0, steps=1, loss="margin", samples=4)
    from tools.facetrain.variants import check_temperature
    from tools.train_face_model import main

    for bad in (0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="temperature T"):
            check_temperature(bad)
    assert main(["--variant", "distilled", "--temperature", "0", "--data", "nowhere.npz"]) == 1  # before any data is read
    assert "temperature T must be a finite number > 0" in capsys.readouterr().err


def test_the_default_loss_is_unchanged():
    model = load_gender_cnn()
    faces, labels = _faces()
    default = pgd_attack(model, faces[:4], labels[:4], 4.0, steps=3)
    np.testing.assert_array_equal(default.adversarial, pgd_attack(model, faces[:4], labels[:4], 4.0, steps=3, loss="ce").adversarial)
    assert not np.array_equal(default.adversarial,
                              pgd_attack(model, faces[:4], labels[:4], 4.0, steps=3, loss="margin").adversarial)


def test_shipped_distilled_model_and_facts():
    model = load_face_model("distilled")
    assert [model.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == list(FACE_VARIANTS["distilled"].filters)
    facts = face_facts("distilled")
    assert facts["temperature"] > 1
    assert facts["clean_accuracy"]["distilled"] > 0.8
    ce, margin = (facts["robust_accuracy"]["distilled"][k] for k in ("ce", "margin"))
    std = facts["robust_accuracy"]["standard"]["margin"]
    i = facts["epsilons"].index(4.0)
    assert ce[i] - margin[i] > 0.3  # the cross-entropy attack is the one that fails
    assert margin[i] < std[i] + 0.15  # the margin attack is about as good as on an undefended model
    assert FACE_VARIANTS["distilled"].card.is_file()


def test_ce_gradient_vanishes_on_the_distilled_model_but_not_the_margin_gradient():
    faces, labels = _faces()
    model = load_face_model("distilled")
    x = tf.constant(faces)
    y = tf.constant(labels, tf.int32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x))
        margin = _margin_loss(model(x), y)[0]
    g_ce = tape.gradient(ce, x).numpy().reshape(len(faces), -1)
    g_margin = tape.gradient(margin, x).numpy().reshape(len(faces), -1)
    zero_ce = np.all(g_ce == 0, axis=1)
    assert zero_ce.mean() >= 0.5, f"only {zero_ce.mean():.0%} of the faces have a zero cross-entropy gradient"
    assert np.all(np.abs(g_margin).max(axis=1) > 0)  # the margin always has one
    lesson1 = load_gender_cnn()
    with tf.GradientTape() as tape:
        tape.watch(x)
        ce1 = tf.nn.sparse_softmax_cross_entropy_with_logits(y, lesson1(x))
    assert not np.any(np.all(tape.gradient(ce1, x).numpy().reshape(len(faces), -1) == 0, axis=1))


def test_margin_pgd_beats_cross_entropy_pgd_on_the_distilled_model():
    faces, _ = _faces()
    model = load_face_model("distilled")
    y = np.asarray(model(faces)).argmax(-1)
    ce = pgd_attack(model, faces, y, 8.0, steps=20, loss="ce")
    margin = pgd_attack(model, faces, y, 8.0, steps=20, loss="margin")
    assert margin.success.mean() >= ce.success.mean() + 0.4, (ce.success.mean(), margin.success.mean())
    assert margin.success.mean() >= 0.8
    assert np.abs(margin.delta).max() <= 8.0 + 1e-3


def test_the_targeted_margin_exercise_check(capsys):
    from course_utils.classroom.grading import Exercise
    from course_utils.classroom.lesson7 import lesson7_targeted_margin

    def right(logits, targets, kappa):   # notebooks/07_hidden_gradients.ipynb, the solution
        target = tf.gather(logits, targets, batch_dims=1)
        others = tf.where(tf.one_hot(targets, tf.shape(logits)[-1]) > 0, tf.float32.min, logits)
        return tf.maximum(tf.reduce_max(others, axis=1) - target, -kappa)

    def wrong_sign(logits, targets, kappa):   # the page's untargeted margin, not turned round
        return _margin_loss(logits, targets, kappa=kappa)[0]

    lesson7_targeted_margin(right, 0.0)
    out = capsys.readouterr().out
    assert out.startswith("Exercise 1: correct")
    lesson7_targeted_margin(lambda logits, targets, kappa: None, 0.0)
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(Exercise.WrongAnswer, match="prediction"):
        lesson7_targeted_margin(right, 1.0)
    with pytest.raises(Exercise.WrongAnswer):
        lesson7_targeted_margin(wrong_sign, 0.0)
    with pytest.raises(Exercise.WrongAnswer, match="no gradient"):
        lesson7_targeted_margin(lambda z, y, k: tf.stop_gradient(right(z, y, k)), 0.0)
    with pytest.raises(Exercise.WrongAnswer, match="not floored"):
        lesson7_targeted_margin(lambda z, y, k: right(z, y, np.inf), 0.0)

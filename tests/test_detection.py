"""Lesson 6's feature-squeezing detector and the adaptive attack that evades it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from course_utils.attacks.defences import (
    BitDepth, MedianFilter, adaptive_attack, _adaptive_step, default_squeezers, detection_rate, detector_scores,
    _squeeze_score, threshold_for_fpr,
)
from course_utils.attacks.pgd import pgd_attack
from course_utils.core.loop import compiled
from course_utils.io.images import FACE_BOXES, sample_face
from course_utils.models.faces import build_gender_cnn, face_facts, load_gender_cnn


def _faces() -> np.ndarray:
    base = [sample_face(name) for name in FACE_BOXES]
    return np.stack([np.roll(f[:, ::flip], shift, axis=axis) for f in base for flip in (1, -1)
                     for axis, shift in ((0, 0), (0, -1), (0, 1), (1, -1), (1, 1))]).astype(np.float32)


def test_bad_inputs_are_refused_clearly():
    for bits in (0, 9, 2.5):
        with pytest.raises((ValueError, TypeError), match="bits"):
            BitDepth(bits)
    for size in (0, -1):
        with pytest.raises(ValueError, match="median filter size"):
            MedianFilter(size)
    for fpr in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fpr"):
            threshold_for_fpr([0.1, 0.2], fpr)
    with pytest.raises(ValueError, match="finite"):
        threshold_for_fpr([], 0.05)
    with pytest.raises(ValueError, match="squeezers"):
        detector_scores(load_gender_cnn(), _faces()[:1], squeezers=())
    with pytest.raises(ValueError, match="epsilon"):
        adaptive_attack(load_gender_cnn(), _faces()[:1], 0, 0.0, 0.3)
    with pytest.raises(ValueError, match="threshold"):
        adaptive_attack(load_gender_cnn(), _faces()[:1], 0, 4.0, 3.0)


def test_bit_depth_exact_values():
    x = tf.constant([0.0, 10.0, 127.0, 128.0, 200.0, 255.0])[None, :, None, None]
    assert BitDepth(1)(x).numpy().ravel().tolist() == [0, 0, 0, 255, 255, 255]
    assert np.allclose(BitDepth(2)(x).numpy().ravel(), [0, 0, 85, 170, 170, 255])
    assert np.allclose(BitDepth(8)(x + 0.4).numpy().ravel(), [0, 10, 127, 128, 200, 255])


def test_median_filter_exact_values_and_scipy():
    x = np.zeros((1, 5, 5, 1), np.float32)
    x[0, 2, 2, 0] = 255.0  # one bright pixel: a 3x3 median removes it
    assert not np.any(MedianFilter(3)(x).numpy())
    assert np.array_equal(MedianFilter(1)(x).numpy(), x)
    small = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    # 3x3 median with mirrored edges, by hand: the corner (0, 0) sees 0,0,1,0,0,1,3,3,4 -> 1
    assert MedianFilter(3)(small).numpy()[0, 0, 0, 0] == 1.0
    assert MedianFilter(3)(small).numpy()[0, 1, 1, 0] == 4.0
    rng = np.random.default_rng(0)
    pic = rng.integers(0, 256, (2, 7, 6, 3)).astype(np.float32)
    for size in (2, 3, 4):
        want = np.stack([scipy.ndimage.median_filter(p, size=(size, size, 1), mode="reflect") for p in pic])
        assert np.array_equal(MedianFilter(size)(pic).numpy(), want), size


def test_threshold_gives_the_requested_false_positive_rate():
    scores = np.random.default_rng(1).permutation(np.arange(100, dtype=np.float64) / 100)
    for fpr in (0.05, 0.1, 0.2, 0.5):
        t = threshold_for_fpr(scores, fpr)
        assert detection_rate(scores, t) == pytest.approx(fpr)
    assert detection_rate(scores, threshold_for_fpr(scores, 0.051)) == pytest.approx(0.05)  # never above


def test_score_is_zero_for_a_model_squeezing_cannot_move():
    flat = lambda x, training=False: tf.zeros([tf.shape(x)[0], 2])  # noqa: E731
    assert np.allclose(_squeeze_score(flat, tf.constant(_faces()[:3]), default_squeezers()).numpy(), 0.0, atol=1e-6)


def test_adaptive_attack_lowers_the_detector_score():
    model = load_gender_cnn()
    faces = _faces()
    labels = np.asarray(model(faces)).argmax(-1)
    threshold = face_facts("distilled")["detector"]["threshold"]
    plain = pgd_attack(model, faces, labels, 8.0, steps=20, stop_at_success=True)
    plain_scores = detector_scores(model, plain.adversarial)
    adv = adaptive_attack(model, faces, labels, 8.0, threshold, steps=50)
    assert np.abs(adv - faces).max() <= 8.0 + 1e-3 and adv.min() >= 0 and adv.max() <= 255
    fooled = np.asarray(model(adv)).argmax(-1) != labels
    scores = detector_scores(model, adv)
    evaded = fooled & (scores <= threshold)
    plain_evaded = plain.success & (plain_scores <= threshold)
    assert scores.mean() < plain_scores.mean() - 0.1, (scores.mean(), plain_scores.mean())
    assert evaded.mean() >= plain_evaded.mean() + 0.3, (evaded.mean(), plain_evaded.mean())


def test_the_adaptive_step_prices_the_margin_and_the_score_and_stays_in_the_budget():
    model = load_gender_cnn()
    x0 = tf.constant(_faces()[:4])
    labels = np.asarray(model(x0)).argmax(-1).astype(np.int32)
    data = {"labels": tf.constant(labels), "threshold": tf.fill([4], 0.05), "epsilon": tf.fill([4], 3.0),
            "step_size": tf.fill([4], 1.0)}
    x_next, loss, tracked, success = _adaptive_step(model, x0, x0, tf.constant(0), tf.constant([0, 0]), data)
    logits = model(x0).numpy()
    gap = logits[np.arange(4), labels] - logits[np.arange(4), 1 - labels]  # two classes: the other one
    score = _squeeze_score(model, x0, default_squeezers()).numpy()
    np.testing.assert_allclose(tracked.numpy(), np.stack([score, gap], 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss.numpy(), np.maximum(gap, -2.0) + 20.0 * np.maximum(score - 0.05, 0.0), rtol=1e-5,
                               atol=1e-5)
    assert not success.numpy().any()  # the model still answers its own labels
    assert np.abs(x_next.numpy() - x0.numpy()).max() == pytest.approx(1.0, abs=1e-3)  # a signed step, inside the budget
    assert x_next.numpy().min() >= 0 and x_next.numpy().max() <= 255


def test_a_new_attack_on_the_same_model_shares_one_compiled_step():
    model, faces = build_gender_cnn(), _faces()[:2]
    adaptive_attack(model, faces, 0, 4.0, 0.3, steps=2)
    loop = compiled(_adaptive_step, model, stop_at_success=True)
    assert loop.traces["perturb"] == 1  # this is the loop that ran
    adaptive_attack(model, faces, 1, 6.0, 0.2, steps=3, seed=4)
    assert loop.traces["perturb"] == 1  # new labels, budget, threshold, seed: no new graph

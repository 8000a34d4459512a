"""The practice exercises of lessons 1-4 (course_utils.classroom.lesson1 ... lesson4): each accepts the
solution, says "not answered yet" for None and for the student copy's stub, and rejects at least two
plausible wrong answers with a hint (a WrongAnswer starting "Exercise"). The student copies turn a
coding exercise's solution into a stub that keeps its signature."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from course_utils.classroom import lesson1, lesson2, lesson3, lesson4
from course_utils.classroom.grading import NOT_ANSWERED, Exercise

REPO = Path(__file__).resolve().parents[1]


def _rejects(check, *args, match: str) -> str:
    with pytest.raises(Exercise.WrongAnswer) as info:
        check(*args)
    message = str(info.value)
    assert message.startswith("Exercise") and len(message) > 40, message
    assert match in message, message
    return message


def _blank(check, *args, capsys) -> None:
    capsys.readouterr()
    check(None, *args)
    assert NOT_ANSWERED in capsys.readouterr().out
    if check not in _PREDICTIONS:   # the student copy's stub: a function that still returns None
        check(lambda *a: None, *args)
        assert NOT_ANSWERED in capsys.readouterr().out


def _accepts(check, *args, capsys) -> None:
    capsys.readouterr()
    check(*args)
    assert "correct" in capsys.readouterr().out


_PREDICTIONS = (lesson1.lesson1_price_step, lesson2.lesson2_fgsm_l2)


# --------------------------------------------------------------------------- lesson 1


def away_step(model, x, true_class, learning_rate):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.keras.losses.sparse_categorical_crossentropy(
            tf.fill([x.shape[0]], true_class), model(x), from_logits=True)
    return tf.clip_by_value(x + learning_rate * tape.gradient(loss, x), 0.0, 255.0)


def test_lesson1_away_step(capsys):
    _accepts(lesson1.lesson1_away_step, away_step, capsys=capsys)
    _blank(lesson1.lesson1_away_step, capsys=capsys)
    _rejects(lesson1.lesson1_away_step, lambda m, x, c, lr: away_step(m, x, c, -lr), match="*down*")
    _rejects(lesson1.lesson1_away_step, lambda m, x, c, lr: away_step(m, x, c, lr) + 300.0 * (x > 250), match="0..255")
    _rejects(lesson1.lesson1_away_step, lambda m, x, c, lr: away_step(m, x, (c + 1) % 3, lr), match="differs")
    _rejects(lesson1.lesson1_away_step, 3.0, match="function")


def test_lesson1_price_step(capsys):
    _accepts(lesson1.lesson1_price_step, 30 * 3e-4 * 20, capsys=capsys)
    _blank(lesson1.lesson1_price_step, capsys=capsys)
    assert "0.18" not in _rejects(lesson1.lesson1_price_step, 3e-4 * 20, match="learning rate")
    _rejects(lesson1.lesson1_price_step, 2 * 30 * 3e-4 * 20, match="½")
    _rejects(lesson1.lesson1_price_step, 30 * 3e-4 * 0.5 * 400, match="½")
    _rejects(lesson1.lesson1_price_step, 5.0, match="derivative")
    _rejects(lesson1.lesson1_price_step, "0.18", match="number")


# --------------------------------------------------------------------------- lesson 2


def l2_step(x, x0, grad, step_size, epsilon):
    norm = np.sqrt(np.sum(grad ** 2, axis=(1, 2, 3), keepdims=True))
    delta = x - step_size * grad / norm - x0
    length = np.sqrt(np.sum(delta ** 2, axis=(1, 2, 3), keepdims=True))
    return np.clip(x0 + delta * np.minimum(1.0, epsilon / length), 0, 255)


def test_lesson2_l2_step(capsys):
    _accepts(lesson2.lesson2_l2_step, l2_step, capsys=capsys)
    _blank(lesson2.lesson2_l2_step, capsys=capsys)
    _rejects(lesson2.lesson2_l2_step, lambda x, x0, g, s, e: np.clip(np.clip(x - s * np.sign(g), x0 - e, x0 + e), 0, 255),
             match="L-inf step")
    _rejects(lesson2.lesson2_l2_step, lambda x, x0, g, s, e: l2_step(x, x0, -g, s, e), match="up")
    _rejects(lesson2.lesson2_l2_step, lambda x, x0, g, s, e: np.clip(x - s * g / np.sqrt(np.sum(g ** 2, axis=(1, 2, 3), keepdims=True)), 0, 255),
             match="leaves the budget")
    _rejects(lesson2.lesson2_l2_step, lambda x, x0, g, s, e: l2_step(x, x0, g, s, e) + 300.0 * (x0 > 250), match="0..255")
    _rejects(lesson2.lesson2_l2_step, lambda x, x0, g, s, e: 1 / 0, match="ZeroDivisionError")


def test_lesson2_fgsm_l2(imagenet_model, capsys):
    right = 2.0 * np.sqrt(224 * 224 * 3)
    _accepts(lesson2.lesson2_fgsm_l2, right, imagenet_model, capsys=capsys)
    _blank(lesson2.lesson2_fgsm_l2, imagenet_model, capsys=capsys)
    hint = _rejects(lesson2.lesson2_fgsm_l2, 2.0, imagenet_model, match="L-inf")
    assert f"{right:.0f}" not in hint   # a hint never gives the value away
    _rejects(lesson2.lesson2_fgsm_l2, 2.0 * 224 * 224 * 3, imagenet_model, match="L1")
    _rejects(lesson2.lesson2_fgsm_l2, 2.0 * 224, imagenet_model, match="How many values")


# --------------------------------------------------------------------------- lesson 3


def field_of(layers):
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


def _field_after(layers):   # wrong: the stride applied to the layer's own kernel
    field, jump = 1, 1
    for kernel, stride in layers:
        jump *= stride
        field += (kernel - 1) * jump
    return field


def test_lesson3_receptive_field_formula(capsys):
    _accepts(lesson3.lesson3_receptive_field_formula, field_of, capsys=capsys)
    _blank(lesson3.lesson3_receptive_field_formula, capsys=capsys)
    _rejects(lesson3.lesson3_receptive_field_formula, lambda ls: 1 + sum(k - 1 for k, _ in ls), match="ignores the strides")
    _rejects(lesson3.lesson3_receptive_field_formula, _field_after, match="*after* it")
    _rejects(lesson3.lesson3_receptive_field_formula, lambda ls: sum(k for k, _ in ls), match="")


def total_variation(x):
    dy = np.abs(x[:, 1:] - x[:, :-1]).mean(axis=(1, 2, 3))
    dx = np.abs(x[:, :, 1:] - x[:, :, :-1]).mean(axis=(1, 2, 3))
    return dy + dx


def test_lesson3_total_variation(capsys):
    _accepts(lesson3.lesson3_total_variation, total_variation, capsys=capsys)
    _blank(lesson3.lesson3_total_variation, capsys=capsys)
    _rejects(lesson3.lesson3_total_variation, lambda x: np.abs(x[:, 1:] - x[:, :-1]).mean(axis=(1, 2, 3)), match="both directions")
    _rejects(lesson3.lesson3_total_variation,
             lambda x: ((x[:, 1:] - x[:, :-1]) ** 2).mean(axis=(1, 2, 3)) + ((x[:, :, 1:] - x[:, :, :-1]) ** 2).mean(axis=(1, 2, 3)),
             match="squared")
    _rejects(lesson3.lesson3_total_variation,
             lambda x: np.abs(x[:, 1:] - x[:, :-1]).sum(axis=(1, 2, 3)) + np.abs(x[:, :, 1:] - x[:, :, :-1]).sum(axis=(1, 2, 3)),
             match="means")
    _rejects(lesson3.lesson3_total_variation,
             lambda x: np.abs(x - np.roll(x, 1, 1)).mean(axis=(1, 2, 3)) + np.abs(x - np.roll(x, 1, 2)).mean(axis=(1, 2, 3)),
             match="")


# --------------------------------------------------------------------------- lesson 4


def random_start(x, epsilon, seed):
    noise = np.random.default_rng(seed).uniform(-epsilon, epsilon, np.shape(x))
    return np.clip(x + noise, 0, 255)


def test_lesson4_random_start(capsys):
    _accepts(lesson4.lesson4_random_start, random_start, capsys=capsys)
    tf_start = lambda x, e, s: tf.clip_by_value(x + tf.random.stateless_uniform(x.shape, [s, 0], -e, e), 0.0, 255.0)
    _accepts(lesson4.lesson4_random_start, tf_start, capsys=capsys)
    _blank(lesson4.lesson4_random_start, capsys=capsys)
    rng = lambda s: np.random.default_rng(s)
    _rejects(lesson4.lesson4_random_start, lambda x, e, s: x + rng(s).uniform(-e, e, x.shape), match="0..255")
    _rejects(lesson4.lesson4_random_start, lambda x, e, s: np.clip(x + rng(s).uniform(0, e, x.shape), 0, 255), match="one side")
    _rejects(lesson4.lesson4_random_start, lambda x, e, s: np.clip(x + e * np.sign(rng(s).normal(size=x.shape)), 0, 255),
             match="corners")
    _rejects(lesson4.lesson4_random_start, lambda x, e, s: np.clip(x + np.random.uniform(-e, e, x.shape), 0, 255),
             match="same seed")
    _rejects(lesson4.lesson4_random_start, lambda x, e, s: np.clip(x + 2 * e * rng(s).uniform(-1, 1, x.shape), 0, 255),
             match="leaves the box")


def straight_through(x, transform):
    return x + tf.stop_gradient(transform(x) - x)


def test_lesson4_straight_through(capsys):
    _accepts(lesson4.lesson4_straight_through, straight_through, capsys=capsys)
    _blank(lesson4.lesson4_straight_through, capsys=capsys)
    _rejects(lesson4.lesson4_straight_through, lambda x, t: t(x), match="no gradient")
    _rejects(lesson4.lesson4_straight_through, lambda x, t: tf.identity(x), match="forwards")
    _rejects(lesson4.lesson4_straight_through, lambda x, t: x + (t(x) - x), match="no gradient")
    _rejects(lesson4.lesson4_straight_through, lambda x, t: t(x).numpy(), match="tensor")


def eot_gradient(loss_fn, x, transforms):
    grads = []
    for t in transforms:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(t(x))
        grads.append(tape.gradient(loss, x))
    return tf.add_n(grads) / len(grads)


def test_lesson4_eot_gradient(capsys):
    _accepts(lesson4.lesson4_eot_gradient, eot_gradient, capsys=capsys)
    _blank(lesson4.lesson4_eot_gradient, capsys=capsys)
    _rejects(lesson4.lesson4_eot_gradient, lambda f, x, ts: len(ts) * eot_gradient(f, x, ts), match="average, not a sum")
    _rejects(lesson4.lesson4_eot_gradient, lambda f, x, ts: eot_gradient(f, x, ts[:1]), match="one transform")
    _rejects(lesson4.lesson4_eot_gradient, lambda f, x, ts: eot_gradient(f, x, [lambda v: v]) * 0.9, match="differs")


# --------------------------------------------------------------------------- student copies of coding exercises


def _make_student():
    spec = importlib.util.spec_from_file_location("make_student", REPO / "tools" / "make_student.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_coding_solution_becomes_a_stub_with_its_signature():
    make_student = _make_student()
    solution = (
        "import numpy as np\n\n"
        "def random_start(x, epsilon, seed):  # your answer: a function\n"
        '    """PGD\'s random start."""\n'
        "    noise = np.random.default_rng(seed).uniform(-epsilon, epsilon, x.shape)\n"
        "    return np.clip(x + noise, 0, 255)\n"
        "steps = 3   # your answer: a number\n"
    )
    stub = make_student.placeholders(solution, "lesson, cell 9")
    assert stub == (
        "def random_start(x, epsilon, seed):  # your answer: a function\n"
        '    """PGD\'s random start."""\n'
        "    return None  # replace this line with your code\n"
        "steps = None  # your answer: a number"
    )
    namespace: dict = {}
    exec(stub, namespace)
    assert namespace["random_start"](np.zeros(3), 1.0, 0) is None and namespace["steps"] is None

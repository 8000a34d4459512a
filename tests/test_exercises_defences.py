"""Lesson 4's exercise checks: the right answer passes, None says "not answered yet", and plausible
wrong answers are refused with a WrongAnswer that gives a hint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from course_utils.classroom import lesson4
from course_utils.classroom.grading import NOT_ANSWERED, Exercise


def _rejects(check, *args, match: str | None = None) -> str:
    with pytest.raises(Exercise.WrongAnswer) as info:
        check(*args)
    message = str(info.value)
    assert message.startswith("Exercise") and len(message) > 40, f"a wrong answer needs a helpful message: {message!r}"
    if match:
        assert match in message, message
    return message


def _unanswered(check, *args, capsys) -> None:
    capsys.readouterr()
    check(*args)
    assert NOT_ANSWERED in capsys.readouterr().out


def _worst_case(table):
    return float(np.asarray(table, bool).all(axis=0).mean())


def test_worst_case_accuracy(capsys):
    lesson4.lesson4_worst_case_accuracy(_worst_case)
    lesson4.lesson4_worst_case_accuracy(lambda t: float(np.min(t, axis=0).mean()))   # another correct way
    _rejects(lesson4.lesson4_worst_case_accuracy, lambda t: float(np.mean(t)), match="not an average")
    _rejects(lesson4.lesson4_worst_case_accuracy, lambda t: float(np.mean(t, axis=1).min()), match="decide per picture")
    _rejects(lesson4.lesson4_worst_case_accuracy, lambda t: float(np.any(t, axis=0).mean()), match="survive all")
    _rejects(lesson4.lesson4_worst_case_accuracy, lambda t: np.all(t, axis=0), match="one number")
    _rejects(lesson4.lesson4_worst_case_accuracy, 0.5, match="a function")
    _unanswered(lesson4.lesson4_worst_case_accuracy, None, capsys=capsys)
    _unanswered(lesson4.lesson4_worst_case_accuracy, lambda t: None, capsys=capsys)   # the student copy's stub


def _project(delta, epsilon):
    norms = np.sqrt((np.reshape(delta, (len(delta), -1)) ** 2).sum(axis=1))
    return delta * np.minimum(1.0, epsilon / norms)[:, None, None, None]


def test_project_l2(capsys):
    import tensorflow as tf

    lesson4.lesson4_project_l2(_project)
    lesson4.lesson4_project_l2(lambda d, e: tf.clip_by_norm(tf.constant(d), e, axes=[1, 2, 3]))   # TensorFlow's way
    _rejects(lesson4.lesson4_project_l2, lambda d, e: d * min(1.0, e / np.sqrt((d ** 2).sum())), match="whole batch")
    _rejects(lesson4.lesson4_project_l2, lambda d, e: np.clip(d, -e, e), match="L-inf box")
    _rejects(lesson4.lesson4_project_l2,
             lambda d, e: d * (e / np.sqrt((d.reshape(len(d), -1) ** 2).sum(axis=1)))[:, None, None, None],
             match="leave those unchanged")
    _rejects(lesson4.lesson4_project_l2, lambda d, e: d, match="still has L2 norm")
    _rejects(lesson4.lesson4_project_l2, lambda d, e: 0.5 * _project(d, e), match="direction")
    _unanswered(lesson4.lesson4_project_l2, None, capsys=capsys)
    _unanswered(lesson4.lesson4_project_l2, lambda d, e: None, capsys=capsys)


class _Threshold:
    """A stand-in face model: says "man" once the mean change of the picture reaches ``needed`` grey levels."""

    output_shape = (None, 2)
    input_shape = (None, 48, 48, 1)
    name = "threshold"
    class_names = ("man", "woman")

    def __init__(self, needed: float) -> None:
        import tensorflow as tf

        self.tf, self.needed = tf, needed
        self.face = np.full((1, 48, 48, 1), 128.0, np.float32)

    def __call__(self, x, training=False):
        tf = self.tf
        darker = tf.reduce_mean(self.face - x, axis=[1, 2, 3])  # the man logit grows as the face darkens
        return tf.stack([darker - self.needed, tf.zeros_like(darker)], axis=1)


def test_smallest_epsilon_robust_runs_the_attack(capsys):
    model = _Threshold(needed=5.0)  # epsilon 6 works, 3 does not
    face = model.face[0]
    assert lesson4.LESSON4_EPSILONS[1:3] == (3.0, 6.0)
    lesson4.lesson4_smallest_epsilon_robust(6.0, model, face)
    _rejects(lesson4.lesson4_smallest_epsilon_robust, 3.0, model, face, match="Try a bigger budget")
    _rejects(lesson4.lesson4_smallest_epsilon_robust, 12.0, model, face, match="so does the smaller epsilon = 6")
    _rejects(lesson4.lesson4_smallest_epsilon_robust, 5.0, model, face, match="choose smallest_epsilon from")
    _unanswered(lesson4.lesson4_smallest_epsilon_robust, None, model, face, capsys=capsys)

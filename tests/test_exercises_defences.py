"""Lesson 4's exercise checks: the right answer passes, None says "not answered yet", and plausible
wrong answers are refused with a WrongAnswer that gives a hint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from course_utils.classroom import lesson4
from course_utils.classroom.grading import NOT_ANSWERED, WrongAnswer


def _rejects(check, *args, match: str | None = None) -> str:
    with pytest.raises(WrongAnswer) as info:
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


TABLE = pd.DataFrame({"standard": [0.905, 0.77, 0.57, 0.27, 0.02], "robust": [0.90, 0.86, 0.80, 0.70, 0.42]},
                     index=pd.Index([0.0, 1.0, 2.0, 4.0, 8.0], name="epsilon"))


def test_budget_below_half(capsys):
    lesson4.lesson4_budget_below_half(8.0, TABLE)
    lesson4.lesson4_budget_below_half(4.0, TABLE, "standard")
    _rejects(lesson4.lesson4_budget_below_half, 4.0, TABLE, match="still gets 0.70")  # one budget too small
    _rejects(lesson4.lesson4_budget_below_half, 8.0, TABLE, "standard", match="already is at a smaller budget")
    _rejects(lesson4.lesson4_budget_below_half, 3.0, TABLE, match="choose budget_below_half from")
    _rejects(lesson4.lesson4_budget_below_half, "8", TABLE, match="choose budget_below_half from")
    _unanswered(lesson4.lesson4_budget_below_half, None, TABLE, capsys=capsys)


RATES = pd.DataFrame({"epsilon": [1.0, 2.0, 4.0, 8.0], "Lite1": [0.12, 0.38, 0.75, 0.62], "Lite2": [0.25, 0.38, 0.38, 0.62]})


def test_transfer_half(capsys):
    lesson4.lesson4_transfer_half(8.0, RATES)
    lesson4.lesson4_transfer_half(4.0, RATES, "Lite1")
    _rejects(lesson4.lesson4_transfer_half, 4.0, RATES, match="only 38%")  # a budget too small
    _rejects(lesson4.lesson4_transfer_half, 8.0, RATES, "Lite1", match="already happens at a smaller budget")
    _rejects(lesson4.lesson4_transfer_half, 3.0, RATES, match="choose transfer_half from")
    never = RATES.assign(Lite2=[0.1, 0.2, 0.3, 0.4])
    _rejects(lesson4.lesson4_transfer_half, 8.0, never, match="no budget in the table")
    _unanswered(lesson4.lesson4_transfer_half, None, RATES, capsys=capsys)


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

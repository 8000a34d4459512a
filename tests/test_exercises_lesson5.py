"""Lesson 5's exercise 2 (HopSkipJump's direction estimate): the check accepts the notebook's
solution, says "not answered yet" for blank answers and the student copy's stub, and names each
mistake: a wrong prediction, a direction into the true class, one not of unit length, too many
queries, and one that ignores the answers. (Exercise 1's check is tested in test_query_attacks.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.classroom import lesson5
from course_utils.classroom.grading import NOT_ANSWERED, Exercise


def estimate_direction(is_adversarial, point, n, delta, rng):   # notebooks/05_black_box.ipynb, the solution
    u = rng.normal(size=(n, *point.shape))
    u /= np.sqrt((u ** 2).reshape(n, -1).sum(1)).reshape(n, *[1] * point.ndim)
    phi = np.where(is_adversarial(point + delta * u), 1.0, -1.0)
    weights = phi - phi.mean() if abs(phi.mean()) < 1 else phi
    v = np.tensordot(weights, u, axes=1) / n
    return v / np.linalg.norm(v)


def test_the_solution_is_correct_and_the_verdict_comes_first(capsys):
    lesson5.lesson5_direction_estimate(0.15, estimate_direction)
    out = capsys.readouterr().out
    assert out.startswith("Exercise 2: correct.")


def test_blank_answers_and_the_stub_are_not_answered_yet(capsys):
    for prediction, fn in [(None, None), (None, estimate_direction), (0.15, None), (0.15, lambda *a: None)]:
        lesson5.lesson5_direction_estimate(prediction, fn)
        assert NOT_ANSWERED in capsys.readouterr().out


def test_the_prediction_is_the_closest_choice_to_what_the_check_measures():
    assert 0.1 < lesson5._face_cosine() < 0.25   # about sqrt(2n / (pi d)) for n = 100, d = 2304
    for wrong in (0.5, 0.95, 0.02):
        with pytest.raises(Exercise.WrongAnswer, match="not"):
            lesson5.lesson5_direction_estimate(wrong, estimate_direction)
    with pytest.raises(Exercise.WrongAnswer, match="choose"):
        lesson5.lesson5_direction_estimate(0.2, estimate_direction)


def _one_by_one(is_adversarial, point, n, delta, rng):   # asks each picture twice
    u = rng.normal(size=(n, *point.shape))
    is_adversarial(point + delta * u)
    return estimate_direction(is_adversarial, point, n, delta, rng)


def _fixed(is_adversarial, point, n, delta, rng):   # one direction, asked n times: the answers carry nothing
    u = rng.normal(size=point.shape)
    phi = np.where(is_adversarial(np.repeat((point + delta * u / np.linalg.norm(u))[None], n, 0)), 1.0, -1.0)
    v = phi.mean() * u + 1e-12
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("wrong, match", [
    (lambda *a: -estimate_direction(*a), "into the true class"),
    (lambda *a: 3.0 * estimate_direction(*a), "unit vector"),
    (_one_by_one, "questions"),
    (_fixed, "only at cosine"),
    (lambda i, p, n, d, rng: np.ones(5), "shape"),
    (lambda i, p, n, d, rng: 1 / 0, "ZeroDivisionError"),
], ids=["flipped", "not_unit", "too_many_queries", "ignores_answers", "wrong_shape", "raises"])
def test_each_wrong_function_is_named(wrong, match):
    with pytest.raises(Exercise.WrongAnswer, match=match):
        lesson5.lesson5_direction_estimate(0.15, wrong)

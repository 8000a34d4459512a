"""Lesson 5's exercise checks (``05_black_box``), graded as :mod:`course_utils.classroom.grading` says."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from course_utils.classroom.grading import Exercise

__all__ = ["lesson5_binary_search", "lesson5_direction_estimate", "COSINE_CHOICES"]


def _bisection_queries(distance: float, tolerance: float) -> int:
    """Queries a binary search needs to shrink a segment of ``distance`` grey levels (L2) until
    its two ends are at most ``tolerance`` apart: each query halves it, so ``ceil(log2(distance / tolerance))``."""
    return max(0, math.ceil(math.log2(distance / tolerance)))


class _Line:
    """A hidden straight decision boundary crossing the segment from ``x`` to ``x_adv``; counts queries."""

    def __init__(self, x: np.ndarray, x_adv: np.ndarray, fraction: float, rng: np.random.Generator) -> None:
        self.crossing = x + fraction * (x_adv - x)
        d = (x_adv - x).ravel()
        w = rng.normal(size=d.size)
        w += (abs(w @ d) / (d @ d) + 0.5) * d  # leans along the segment, so the segment crosses it once
        self.w, self.queries = w.reshape(x.shape), 0

    def __call__(self, picture: Any) -> bool:
        self.queries += 1
        v = np.asarray(picture, dtype=np.float64)
        if v.shape != self.w.shape:
            raise ValueError(f"is_adversarial takes one picture of shape {self.w.shape}, got {v.shape}")
        return bool(np.sum(self.w * (v - self.crossing)) > 0)


@Exercise.graded
def lesson5_binary_search(predicted_queries: Any, to_boundary: Any) -> None:
    """Exercise 1 of lesson 5, as the lesson's exercise states it: ``predicted_queries`` (from 1000 grey levels
    to 1), then ``to_boundary(is_adversarial, x, x_adv, tolerance)``, checked on hidden straight boundaries."""
    ex = Exercise("Exercise 1")
    guess = ex.a_number("predicted_queries", predicted_queries)
    want = _bisection_queries(1000.0, 1.0)
    if guess != want:
        raise ex.wrong(f"not {guess:g}. Each query halves the gap between the two ends: after k "
                       f"queries it is 1000 / 2**k grey levels. How large must k be to reach 1?")
    ex.function(to_boundary)
    rng = Exercise.hidden_rng(55)
    cases = [((8, 8, 1), 0.3, 1.0), ((6, 6, 3), 0.75, 0.5), ((16, 16, 1), 0.55, 2.0), ((4, 4, 3), 0.9, 0.1)]
    for shape, fraction, tol in cases:
        x = rng.uniform(0, 255, shape)
        x_adv = np.clip(x + rng.normal(0, 120, shape), 0, 255)
        line = _Line(x, x_adv, fraction, rng)
        out = ex.run_answer(to_boundary, line, x.copy(), x_adv.copy(), tol)
        got = ex.answer_array(out, shape, "one picture like x")
        asked = line.queries
        seg = (x_adv - x).ravel()
        a = float((got - x).ravel() @ seg / (seg @ seg))
        if np.linalg.norm((got - x).ravel() - a * seg) > 1e-3 * np.linalg.norm(seg) or not -1e-6 <= a <= 1 + 1e-6:
            raise ex.wrong("your picture is not on the segment from x to x_adv: search among the "
                           "blends (1 - a) * x + a * x_adv, a in 0..1.")
        if not line(got):
            raise ex.wrong("the model gets your picture right: return the adversarial end of the "
                           "final interval (the one is_adversarial said True about), not the other.")
        past = float(np.linalg.norm(got - line.crossing))
        if past > tol + 1e-6:
            raise ex.wrong(f"your picture is {past:.3g} grey levels past the boundary, more than the "
                           f"tolerance {tol:g}: keep halving while the two ends are more than the "
                           "tolerance apart (distance measured in grey levels, L2).")
        most = _bisection_queries(float(np.linalg.norm(seg)), tol) + 1
        if asked > most:
            raise ex.wrong(f"you asked {asked} questions where a binary search needs at most {most}: "
                           "ask only about the midpoint, once per halving.")
    return ex.correct(f"{want} queries take a binary search from 1000 grey levels to 1, and your search stays\n"
                       "within the tolerance past the boundary, on the adversarial side, on four hidden boundaries.")


def _unit_rows(u: np.ndarray) -> np.ndarray:
    """Each row of ``u`` (``(n, ...)``) divided by its L2 length."""
    return u / np.sqrt((u.reshape(len(u), -1) ** 2).sum(1)).reshape(len(u), *[1] * (u.ndim - 1))


def _reference_direction(is_adversarial: Any, point: np.ndarray, n: int, delta: float,
                         rng: np.random.Generator) -> np.ndarray:
    """HopSkipJump's estimate (Chen et al., 2020): ``n`` random unit changes of length ``delta``,
    phi = +1 where the model is still fooled, -1 where not, the changes averaged with weights
    ``phi - mean(phi)`` (the plain mean of ``phi * u`` when every answer is the same); unit length."""
    u = _unit_rows(rng.normal(size=(n, *point.shape)))
    phi = np.where(is_adversarial(point + delta * u), 1.0, -1.0)
    weights = phi - phi.mean() if abs(phi.mean()) < 1 else phi
    v = np.tensordot(weights, u, axes=1) / n
    return v / np.linalg.norm(v)


class _Plane:
    """A hidden flat decision boundary through ``on`` with unit normal ``normal`` (the fooled side
    is where ``normal . (picture - on) > 0``); answers a batch of pictures, one query each."""

    def __init__(self, on: np.ndarray, normal: np.ndarray) -> None:
        self.on, self.normal, self.queries = on, normal, 0

    def __call__(self, pictures: Any) -> np.ndarray:
        v = np.asarray(pictures, dtype=np.float64)
        if v.shape == self.on.shape:
            v = v[None]
        if v.shape[1:] != self.on.shape:
            raise ValueError(f"is_adversarial takes pictures of shape (m, *{self.on.shape}) (or one picture of "
                             f"shape {self.on.shape}), got {v.shape}")
        self.queries += len(v)
        return (v - self.on).reshape(len(v), -1) @ self.normal.ravel() > 0


def _hidden_plane(rng: np.random.Generator, shape: tuple, past: float) -> tuple[_Plane, np.ndarray]:
    """A random boundary and a point ``past`` grey levels on its fooled side (as a binary search leaves it)."""
    normal = rng.normal(size=shape)
    normal /= np.linalg.norm(normal)
    on = rng.uniform(60, 195, shape)
    return _Plane(on, normal), on + past * normal


def _face_cosine(trials: int = 12, n: int = 100, shape: tuple = (48, 48, 1)) -> float:
    """Mean cosine between the reference estimate from ``n`` answers and the true normal, on
    hidden flat boundaries in a face's 48 x 48 = 2304 dimensions."""
    rng = Exercise.hidden_rng(57)
    cosines = []
    for _ in range(trials):
        plane, point = _hidden_plane(rng, shape, 0.0)
        cosines.append(float(np.sum(_reference_direction(plane, point, n, 1.0, rng) * plane.normal)))
    return float(np.mean(cosines))


COSINE_CHOICES = (0.02, 0.15, 0.5, 0.95)
"""The choices of exercise 2's prediction."""


@Exercise.graded
def lesson5_direction_estimate(predicted_cosine: Any, estimate_direction: Any) -> None:
    """Exercise 2 of lesson 5 (predict, then code): HopSkipJump's direction estimate, as the lesson's exercise
    states it. ``predicted_cosine`` is one of :data:`COSINE_CHOICES`; ``estimate_direction(is_adversarial,
    point, n, delta, rng)`` returns a unit vector of ``point``'s shape, asking about ``(m, *point.shape)``
    pictures at a time (m queries, ``(m,)`` bools), n at most. It runs on hidden flat boundaries."""
    ex = Exercise("Exercise 2")
    said = ex.one_of("predicted_cosine", predicted_cosine, COSINE_CHOICES)
    measured = _face_cosine()
    want = min(COSINE_CHOICES, key=lambda c: abs(c - measured))
    if said != want:
        raise ex.wrong(f"not {said:g}. In d dimensions a random unit change has a component along the "
                       "normal of about 1/sqrt(d) of its length, and 100 answers average away only part of the "
                       "other d - 1 directions. Work out roughly what that leaves for d = 2304.")
    ex.function(estimate_direction)
    rng = Exercise.hidden_rng(56)
    cases = [((8, 8, 1), 400, 2.0, 0.1), ((6, 6, 3), 400, 1.0, 0.05), ((12, 12, 1), 600, 3.0, 0.25)]
    for shape, n, delta, past in cases:
        plane, point = _hidden_plane(rng, shape, past)
        student_rng = np.random.default_rng(int(rng.integers(2**31)))
        out = ex.run_answer(estimate_direction, plane, point.copy(), n, delta, student_rng)
        got = ex.answer_array(out, shape, "one direction, of the point's shape")
        if plane.queries > n:
            raise ex.wrong(f"you asked {plane.queries} questions where the budget is n = {n}: "
                           "send n changed pictures, each once.")
        if not np.all(np.isfinite(got)) or not np.isclose(np.linalg.norm(got), 1.0, atol=1e-3):
            raise ex.wrong(f"your direction has L2 length {np.linalg.norm(got):.3g}: return a unit "
                           "vector (divide by its length), so that only its direction counts.")
        cosine = float(np.sum(got * plane.normal))
        if cosine < -0.5:
            raise ex.wrong(f"your direction points into the true class (cosine {cosine:.2f} with the "
                           "way out): weigh the changes that stay fooled +1 and the others -1.")
        if cosine < 0.5:
            raise ex.wrong(f"on a hidden flat boundary your direction is only at cosine {cosine:.2f} "
                           f"with the way out, from {n} answers in {point.size} dimensions (a good estimate "
                           "gets more than 0.5 there): are the random changes all in different directions, "
                           "of length delta, and are those that do not stay fooled counted against?")
    return ex.correct(f"On a face's 2304 dimensions, 100 answers give a cosine of about {measured:.2f} (mean of 12\n"
                       "hidden flat boundaries), and your estimate finds the way out on three hidden boundaries.\n"
                       "So rough a direction still helps: the step search keeps only steps that stay fooled, and\n"
                       "every iteration asks again, with more answers (100 sqrt(t) at iteration t).")

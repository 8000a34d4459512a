"""Lesson 6's exercise checks (``06_real_world``), graded as :mod:`course_utils.classroom.grading` says.

Each exercise is a prediction, then a small piece of code run on hidden cases against a
reference kept here: exercise 1 pastes a patch, exercise 2 is Carlini & Wagner's margin loss,
exercise 3 CERTIFY's radius.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

from course_utils.classroom.grading import (
    StubAnswer, WrongAnswer, a_number, answer_array, check_function, correct, hidden_rng, not_answered,
    not_yet, run_answer,
)

__all__ = ["lesson6_paste_corner", "lesson6_margin_loss", "lesson6_certified_radius"]


def _paste_reference(photo: np.ndarray, patch: np.ndarray, row: int, col: int) -> np.ndarray:
    """The patch's top-left pixel at ``(row, col)``; what falls off the photo is dropped."""
    out = photo.copy()
    h, w = photo.shape[:2]
    p = patch.shape[0]
    r0, c0, r1, c1 = max(row, 0), max(col, 0), min(row + p, h), min(col + p, w)
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1] = patch[r0 - row : r1 - row, c0 - col : c1 - col]
    return out


def lesson6_paste_corner(predicted_corner: Any, paste_at: Any) -> None:
    """Exercise 1 of lesson 6: first the prediction, ``predicted_corner``: the ``(row, column)`` of the photo
    pixel that gets the patch's *bottom-right* pixel when an 8-pixel patch is placed with its
    centre at row 13.5, column 23.5 (the course's placements name the centre); then
    ``paste_at(photo, patch, row, col)``: a copy of ``photo`` ``(H, W, 3)`` with ``patch``
    ``(P, P, 3)`` on it, the patch's top-left pixel at ``(row, col)``; what falls off the photo is
    dropped, the photo itself is not changed."""
    ex = "Exercise 1"
    if not_answered(ex, predicted_corner):
        return
    try:
        corner = tuple(int(v) for v in predicted_corner)
        if len(corner) != 2 or any(float(v) != int(v) for v in predicted_corner):
            raise ValueError
    except (TypeError, ValueError):
        raise WrongAnswer(f"{ex}: predicted_corner is a pair of whole numbers (row, column), got "
                          f"{predicted_corner!r}.") from None
    if corner != (17, 27):
        raise WrongAnswer(f"{ex}: the corner is not at {corner}. The centre of 8 pixels lies half-way between "
                          "the 4th and the 5th (3.5 pixels after the first): the top-left pixel is at "
                          "13.5 - 3.5 and 23.5 - 3.5, and the bottom-right 7 pixels further.")
    print(f"{ex}: your prediction {corner} is right; now the code.")
    if not check_function(ex, paste_at):
        return
    from course_utils.attacks.patch import apply_patch

    rng = hidden_rng(61)
    try:
        for row, col, p in [(5, 9, 8), (0, 0, 4), (30, 2, 6), (-3, 10, 8), (28, 38, 8), (-20, 0, 8)]:
            photo = rng.uniform(0, 255, (36, 44, 3)).astype(np.float32)
            patch = rng.uniform(0, 255, (p, p, 3)).astype(np.float32)
            kept = photo.copy()
            out = run_answer(ex, paste_at, photo, patch, row, col)
            got = answer_array(ex, out, photo.shape, "a photo of the same shape")
            if not np.array_equal(photo, kept):
                raise WrongAnswer(f"{ex}: your function changed the photo it was given: paste on a copy (photo.copy()).")
            want = _paste_reference(photo, patch, row, col)
            inside = 0 <= row and 0 <= col and row + p <= 36 and col + p <= 44
            if inside:  # the course's bilinear paste agrees exactly at whole pixels
                course = apply_patch(photo, patch, [row + (p - 1) / 2, col + (p - 1) / 2, p, 0])[0]
                assert np.allclose(course, want, atol=1e-3)
            if not np.allclose(got, want, atol=1e-3):
                where = np.argwhere(np.abs(got - want).max(axis=-1) > 1e-3)[0]
                raise WrongAnswer(f"{ex}: with the top-left at ({row}, {col}) and a {p}-pixel patch, pixel "
                                  f"{tuple(int(v) for v in where)} is wrong"
                                  + ("" if inside else " (the patch runs off the photo here: keep only the part "
                                     "that lands on it)") + ".")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, "Your patch lands where the course's placements put it, and off the edge it is cut.")


def _margin_reference(logits: np.ndarray, labels: np.ndarray, kappa: float) -> np.ndarray:
    z = logits.astype(np.float64)
    true = z[np.arange(len(z)), labels]
    other = np.where(np.eye(z.shape[1], dtype=bool)[labels], -np.inf, z).max(axis=1)
    return np.maximum(true - other, -kappa)


def lesson6_margin_loss(margin_loss: Any, predicted_ce_gradient: Any) -> None:
    """Exercise 2 of lesson 6: ``predicted_ce_gradient`` is the prediction (the float32 gradient of
    the cross-entropy with respect to the true logit, for the logits (900, -900) of a face of class 0)
    and ``margin_loss(logits, labels, kappa)`` is Carlini & Wagner's untargeted loss on the logits,
    ``max(Z_y - max_{j != y} Z_j, -kappa)``, one value per row, as a TensorFlow tensor that has a
    gradient even where the softmax is saturated."""
    import tensorflow as tf

    ex = "Exercise 2"
    if not_answered(ex, predicted_ce_gradient) or not check_function(ex, margin_loss):
        return
    if a_number(ex, "predicted_ce_gradient", predicted_ce_gradient) != 0.0:
        raise WrongAnswer(f"{ex}: look at your prediction again: in float32, what is softmax((900, -900))? The "
                          "gradient of the cross-entropy with respect to a logit is p - (1 if it is the label, else 0).")
    rng = hidden_rng(66)
    cases = [
        (rng.normal(0, 3, (5, 2)), rng.integers(0, 2, 5), 0.0),
        (rng.normal(0, 3, (6, 4)), rng.integers(0, 4, 6), 1.5),  # more classes: the best *other* logit
        (np.array([[900.0, -900.0], [-700.0, 650.0]]), np.array([0, 1]), 0.0),  # a distilled model's logits
    ]
    try:
        for logits, labels, kappa in cases:
            z = tf.constant(logits, tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(z)
                out = run_answer(ex, margin_loss, z, tf.constant(labels, tf.int32), kappa)
                if not isinstance(out, tf.Tensor):
                    raise WrongAnswer(f"{ex}: return a TensorFlow tensor (the attack differentiates it), got {type(out).__name__}.")
                total = tf.reduce_sum(out)
            got = answer_array(ex, out.numpy(), (len(labels),), "one loss per row of logits")
            want = _margin_reference(logits, labels, kappa)
            if np.allclose(got, -want, atol=1e-3):
                raise WrongAnswer(f"{ex}: your loss has the wrong sign: the attack minimises it, so it is the true "
                                  "logit minus the best other one.")
            close = np.isclose(got, want, atol=1e-3 * max(1.0, np.abs(want).max()))
            if not close.all() and np.allclose(got, _margin_reference(logits, labels, np.inf), atol=1e-3):
                raise WrongAnswer(f"{ex}: your loss is not floored at -kappa: take max(margin, -kappa).")
            if not close.all():
                i = int(np.flatnonzero(~close)[0])
                raise WrongAnswer(f"{ex}: your loss differs from max(Z_y - max_(j != y) Z_j, -kappa) on hidden logits "
                                  f"with {logits.shape[1]} classes (e.g. {got[i]:.3f} where {want[i]:.3f} was expected).")
            grad = tape.gradient(total, z)
            if logits is cases[2][0] and (grad is None or not np.any(grad.numpy())):
                raise WrongAnswer(f"{ex}: on saturated logits (900 and -900) your loss has no gradient: do not go "
                                  "through the softmax; subtract the logits themselves.")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, "Your margin is right on hidden logits, and it keeps its gradient where the softmax is saturated.")


def _radius_reference(p_lower: float, sigma: float) -> float:
    return sigma * statistics.NormalDist().inv_cdf(p_lower) if p_lower >= 0.5 else 0.0


def lesson6_certified_radius(certified_radius: Any, radius_in_sigmas: Any) -> None:
    """Exercise 3 of lesson 6: ``radius_in_sigmas`` is the prediction (the certified radius for
    ``p_lower = 0.99``, in units of sigma, to within 0.1) and ``certified_radius(p_lower, sigma)`` is
    CERTIFY's last line (Cohen et al., 2019): ``sigma * Phi^{-1}(p_lower)`` grey levels (L2) when
    ``p_lower >= 0.5``, and ``0.0`` (abstain) below one half."""
    ex = "Exercise 3"
    if not_answered(ex, radius_in_sigmas) or not check_function(ex, certified_radius):
        return
    if abs(a_number(ex, "radius_in_sigmas", radius_in_sigmas) - statistics.NormalDist().inv_cdf(0.99)) > 0.1:
        raise WrongAnswer(f"{ex}: look at your prediction again ({radius_in_sigmas!r} sigmas): the radius is sigma times "
                          "the number of standard deviations below which 99% of a normal distribution lies.")
    cases = [(0.99, 24.0), (0.9, 24.0), (0.75, 10.0), (0.999, 5.0), (0.6, 40.0), (0.5, 24.0), (0.3, 24.0), (0.02, 8.0)]
    try:
        for p, sigma in cases:
            out = run_answer(ex, certified_radius, p, sigma)
            try:
                got = float(out)
            except (TypeError, ValueError):
                raise WrongAnswer(f"{ex}: return one number (grey levels), got {type(out).__name__} {out!r}.") from None
            want = _radius_reference(p, sigma)
            if not math.isfinite(got):
                raise WrongAnswer(f"{ex}: your radius for p_lower = {p:g}, sigma = {sigma:g} is {got}: it must be a "
                                  "finite number of grey levels.")
            if p < 0.5:
                if got != 0.0:
                    raise WrongAnswer(f"{ex}: for p_lower = {p:g} (below one half) CERTIFY abstains: return 0.0, "
                                      f"not {got:.3g}. No class is certain enough to certify anything.")
                continue
            if abs(got - want) > 1e-6 * max(1.0, abs(want)):
                if abs(got - want / sigma) < 1e-6 * max(1.0, abs(want)):
                    raise WrongAnswer(f"{ex}: your radius does not grow with sigma: the noise's size sets the scale.")
                if abs(got - sigma * p) < 1e-6 * sigma:
                    raise WrongAnswer(f"{ex}: you multiplied sigma by the probability itself; the radius uses the "
                                      "normal quantile of it (statistics.NormalDist().inv_cdf).")
                raise WrongAnswer(f"{ex}: for p_lower = {p:g}, sigma = {sigma:g} your radius ({got:.4g}) is not "
                                  "sigma times the standard normal quantile of p_lower.")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, "Radius = sigma x Phi^-1(p_lower), and an abstention below one half, on eight hidden cases.")

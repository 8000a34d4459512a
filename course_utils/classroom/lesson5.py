"""Lesson 5's exercise checks (``05_black_box``), graded as :mod:`course_utils.classroom.grading` says.

Each exercise is a prediction, then a small piece of code run on hidden cases against a
reference kept here: exercise 1 the binary search to the boundary (HopSkipJump's first move),
exercise 2 Jacobian-based augmentation (the substitute), exercise 3 the evolution loop's
selection step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from course_utils.classroom.grading import (
    StubAnswer, WrongAnswer, a_number, answer_array, check_function, correct, hidden_rng, not_answered,
    not_yet, run_answer, true_or_false,
)

__all__ = ["lesson5_binary_search", "lesson5_jacobian_step", "lesson5_keep_better"]


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


def lesson5_binary_search(predicted_queries: Any, to_boundary: Any) -> None:
    """Exercise 1 of lesson 5: predict how many label-only queries a binary search needs to go from 1000 grey
    levels to 1, then write ``to_boundary(is_adversarial, x, x_adv, tolerance)``: a picture on the
    segment from ``x`` (classified right) to ``x_adv`` (adversarial) that the model still gets
    wrong, at most ``tolerance`` grey levels (L2) past the boundary, asking ``is_adversarial`` about
    one picture at a time and as few times as a binary search needs."""
    ex = "Exercise 1"
    if not_answered(ex, predicted_queries):
        return
    guess = a_number(ex, "predicted_queries", predicted_queries)
    want = _bisection_queries(1000.0, 1.0)
    if guess != want:
        raise WrongAnswer(f"{ex}: not {guess:g}. Each query halves the gap between the two ends: after k "
                          f"queries it is 1000 / 2**k grey levels. How large must k be to reach 1?")
    if not check_function(ex, to_boundary):
        return
    rng = hidden_rng(55)
    cases = [((8, 8, 1), 0.3, 1.0), ((6, 6, 3), 0.75, 0.5), ((16, 16, 1), 0.55, 2.0), ((4, 4, 3), 0.9, 0.1)]
    try:
        for shape, fraction, tol in cases:
            x = rng.uniform(0, 255, shape)
            x_adv = np.clip(x + rng.normal(0, 120, shape), 0, 255)
            line = _Line(x, x_adv, fraction, rng)
            out = run_answer(ex, to_boundary, line, x.copy(), x_adv.copy(), tol)
            got = answer_array(ex, out, shape, "one picture like x")
            asked = line.queries
            seg = (x_adv - x).ravel()
            a = float((got - x).ravel() @ seg / (seg @ seg))
            if np.linalg.norm((got - x).ravel() - a * seg) > 1e-3 * np.linalg.norm(seg) or not -1e-6 <= a <= 1 + 1e-6:
                raise WrongAnswer(f"{ex}: your picture is not on the segment from x to x_adv: search among the "
                                  "blends (1 - a) * x + a * x_adv, a in 0..1.")
            if not line(got):
                raise WrongAnswer(f"{ex}: the model gets your picture right: return the adversarial end of the "
                                  "final interval (the one is_adversarial said True about), not the other.")
            past = float(np.linalg.norm(got - line.crossing))
            if past > tol + 1e-6:
                raise WrongAnswer(f"{ex}: your picture is {past:.3g} grey levels past the boundary, more than the "
                                  f"tolerance {tol:g}: keep halving while the two ends are more than the "
                                  "tolerance apart (distance measured in grey levels, L2).")
            most = _bisection_queries(float(np.linalg.norm(seg)), tol) + 1
            if asked > most:
                raise WrongAnswer(f"{ex}: you asked {asked} questions where a binary search needs at most {most}: "
                                  "ask only about the midpoint, once per halving.")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, f"{want} queries take a binary search from 1000 grey levels to 1, and your search stays\n"
                       "within the tolerance past the boundary, on the adversarial side, on four hidden boundaries.")


def _tiny_model(seed: int):
    """A small random CNN, ``(N, 6, 6, 1)`` pixels 0..255 -> 3 logits: hidden from the student."""
    import keras

    rng = hidden_rng(seed)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(x)
    logits = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, logits)
    model.set_weights([rng.normal(0, 1.0, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _log_prob_step(model: Any, x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        chosen = tf.gather(tf.nn.log_softmax(model(xt)), y, batch_dims=1)
    return np.clip(x + lam * np.sign(tape.gradient(chosen, xt).numpy()), 0, 255)


def lesson5_jacobian_step(queries: Any, jacobian_step: Any, seed_faces: int = 150, rounds: int = 6) -> None:
    """Exercise 2 of lesson 5 (predict, then code).

    ``queries``: the prediction, how many oracle queries ``rounds`` rounds cost from ``seed_faces``
    faces when the set doubles after every round but the last and only new pictures are asked.
    ``jacobian_step(model, x, labels, lam)``: one Jacobian-based augmentation step, the new pictures
    ``clip(x + lam * sign(d model(x)[label] / dx), 0, 255)`` (the label's *logit*).
    """
    from course_utils.attacks.transfer import jacobian_augment

    ex = "Exercise 2"
    if not_answered(ex, queries):   # predict first: one "not answered yet", the code waits for the prediction
        return
    else:
        said = a_number(ex, "queries", queries)
        want = seed_faces * 2 ** (rounds - 1)   # every picture of the last set was asked about exactly once
        if said == want:
            print(f"{ex}, the prediction: correct. The last set holds {seed_faces} x 2^{rounds - 1} pictures, "
                  "each labelled by exactly one query.")
        elif said == seed_faces * (2 ** rounds - 1):
            raise WrongAnswer(f"{ex}: {said:g} counts every picture again in every round; the oracle is asked "
                              "only about the pictures it has not labelled yet.")
        elif said == seed_faces * 2 ** rounds:
            raise WrongAnswer(f"{ex}: {said:g} doubles the set once too often: there is no augmentation after "
                              "the last round.")
        else:
            raise WrongAnswer(f"{ex}: {said:g} queries is not it. Each round, how many pictures are new, and "
                              "how many rounds add pictures?")
    if not check_function(ex, jacobian_step):
        return
    import tensorflow as tf

    rng = hidden_rng(55)
    try:
        for k, (n, lam) in enumerate([(4, 25.0), (3, 8.0)]):
            model = _tiny_model(50 + k)
            x = np.clip(rng.choice([0.0, 3.0, 128.0, 250.0, 255.0], (n, 6, 6, 1)) + rng.uniform(0, 2, (n, 6, 6, 1)),
                        0, 255).astype(np.float32)
            y = rng.integers(0, 3, n).astype(np.int64)
            want = jacobian_augment(model, x, y, lam)
            out = run_answer(ex, jacobian_step, model, tf.constant(x), tf.constant(y), lam)
            got = answer_array(ex, out, x.shape, "the new pictures, x's shape")
            if np.allclose(got, want, atol=1e-3):
                continue
            if np.allclose(got, want - x, atol=1e-3):
                raise WrongAnswer(f"{ex}: you returned the step; return the new pictures, x plus the step.")
            if got.min() < -1e-3 or got.max() > 255 + 1e-3:
                raise WrongAnswer(f"{ex}: your new pictures have pixels outside 0..255: clip them.")
            if np.allclose(got, jacobian_augment(model, x, y, lam, sign=-1), atol=1e-3):
                raise WrongAnswer(f"{ex}: your step lowers the label's logit; the augmentation climbs it (+lam).")
            if np.allclose(got, _log_prob_step(model, x, y, lam), atol=1e-3):
                raise WrongAnswer(f"{ex}: your step follows the log-probability of the label; Papernot's step "
                                  "follows the label's *logit*, one row of the substitute's Jacobian.")
            inside = (x > lam) & (x < 255 - lam)
            moved = np.abs(got - x)[inside & (want != x)]
            if moved.size and not np.allclose(moved, lam, atol=1e-3):
                raise WrongAnswer(f"{ex}: away from 0 and 255 every pixel should move by exactly lam ({lam:g}); "
                                  f"yours move by {moved.min():.3g} to {moved.max():.3g}: take the sign.")
            raise WrongAnswer(f"{ex}: your new pictures differ from the augmentation step on a hidden model: take "
                              "the gradient of each picture's *own* label's logit with respect to x.")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, "Your step agrees with jacobian_augment on two hidden models.")


def _keep_better_reference(parent: np.ndarray, parent_p: float, children: np.ndarray, children_p: np.ndarray) -> tuple[np.ndarray, float]:
    i = int(np.argmax(children_p))
    return (children[i], float(children_p[i])) if children_p[i] > parent_p else (parent, float(parent_p))


def lesson5_keep_better(keep_better: Any, best_can_fall: Any) -> None:
    """Exercise 3 of lesson 5: ``best_can_fall`` is the prediction (can the best probability of a
    (1 + lambda) search fall from one generation to the next? True or False) and
    ``keep_better(parent, parent_p, children, children_p) -> (genome, p)`` is the selection step:
    the best child if it is strictly better than the parent, else the parent."""
    ex = "Exercise 3"
    if not_answered(ex, best_can_fall) or not check_function(ex, keep_better):
        return
    if true_or_false(ex, "best_can_fall", best_can_fall):
        raise WrongAnswer(f"{ex}: look at your prediction again: the parent is only ever replaced by a child "
                          "that is better, so what can the best probability do from one generation to the next?")
    rng = hidden_rng(55)
    parent = rng.uniform(0, 1, (4, 4, 3))
    children = rng.uniform(0, 1, (6, 4, 4, 3))
    cases = {
        "one child better than the parent": (0.5, np.array([0.1, 0.7, 0.2, 0.9, 0.3, 0.4])),
        "all children worse than the parent": (0.95, np.array([0.1, 0.7, 0.2, 0.9, 0.3, 0.4])),
        "the best child only as good as the parent": (0.9, np.array([0.1, 0.7, 0.2, 0.9, 0.3, 0.4])),
        "the best child last": (0.2, np.array([0.1, 0.15, 0.05, 0.12, 0.11, 0.6])),
    }
    try:
        for what, (parent_p, children_p) in cases.items():
            want_genome, want_p = _keep_better_reference(parent, parent_p, children, children_p)
            out = run_answer(ex, keep_better, parent.copy(), parent_p, children.copy(), children_p.copy())
            if not isinstance(out, tuple) or len(out) != 2:
                raise WrongAnswer(f"{ex}: return two things, (genome, probability), got {type(out).__name__}.")
            genome = answer_array(ex, out[0], parent.shape, "one genome, of the parent's shape")
            try:
                p = float(out[1])
            except (TypeError, ValueError):
                raise WrongAnswer(f"{ex}: the second thing returned is the kept genome's probability, a number.") from None
            if not np.isclose(p, want_p):
                if p < parent_p:
                    raise WrongAnswer(f"{ex}: with {what}, you kept a probability ({p:.2f}) below the parent's "
                                      f"({parent_p:.2f}): the parent must survive unless a child beats it.")
                raise WrongAnswer(f"{ex}: with {what}, you kept probability {p:.2f}; the best of the "
                                  "children and the parent has a different one.")
            if not np.allclose(genome, want_genome):
                if np.isclose(p, parent_p) and any(np.allclose(genome, c) for c in children):
                    raise WrongAnswer(f"{ex}: with {what}, you replaced the parent by a child that is only as good: "
                                      "keep the parent on a tie (a child must be strictly better).")
                raise WrongAnswer(f"{ex}: with {what}, the genome you return is not the one whose probability "
                                  "you return.")
    except StubAnswer:
        return not_yet(ex)
    return correct(ex, "The parent survives until a child is strictly better, so the best probability can only\n"
                       "rise or stay: that is elitism, and the curve above is a staircase.")

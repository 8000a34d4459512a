"""Practice exercises that test understanding: predict-then-run questions and small coding tasks.

Same conventions as :mod:`course_utils.classroom.exercises` (whose helpers this module reuses):

- the answer is ``None``, or a function whose body is still the student copy's ``return None``:
  the check prints "not answered yet";
- the answer is right: it prints "correct" and why;
- the answer is wrong: it raises :class:`~course_utils.classroom.exercises.WrongAnswer` with a hint that
  says which property failed, never the answer itself.

A *prediction* is compared with a value the check computes itself, out of sight, and never
printed when the prediction is wrong. A *coding task* is a function the student writes; the check
runs it on cases the student does not see (small random arrays, made-up transforms) and compares
it with a reference kept here. Each check is named after its lesson: ``lesson1_...``; lesson 4's
are in :mod:`course_utils.practice_defences`.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Callable, Sequence

import numpy as np

from course_utils.classroom.exercises import WrongAnswer, _right, _unanswered

__all__ = [
    "lesson1_l2_price",
    "lesson1_price_step",
    "lesson2_bim_step",
    "lesson2_fgsm_l2",
    "lesson3_receptive_field_formula",
    "lesson3_total_variation",
]


class _Stub(Exception):
    """The student's function still returns ``None`` (the student copy's placeholder body)."""


def _function(ex: str, fn: Any) -> bool:
    """Whether ``fn`` is an answer to check: ``None`` says "not answered yet", a non-function is wrong."""
    if _unanswered(ex, fn):
        return False
    if not callable(fn):
        raise WrongAnswer(f"{ex}: the answer is a function (def ...), got {type(fn).__name__} {fn!r}.")
    return True


def _run(ex: str, fn: Callable, *args: Any) -> Any:
    """``fn(*args)``; an exception in the student's code becomes a hint, ``None`` a :class:`_Stub`."""
    try:
        out = fn(*args)
    except Exception as err:  # the student's code: any error becomes a hint
        raise WrongAnswer(f"{ex}: your function raised {type(err).__name__}: {err}") from None
    if out is None:
        raise _Stub
    return out


def _not_yet(ex: str) -> None:
    _unanswered(ex, None)  # prints the "not answered yet" line


def _array(ex: str, out: Any, shape: tuple, what: str) -> np.ndarray:
    try:
        a = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise WrongAnswer(f"{ex}: your function should return {what}, got {type(out).__name__}.") from None
    if a.shape != tuple(shape):
        raise WrongAnswer(f"{ex}: your function returned shape {a.shape}, expected {tuple(shape)}: {what}.")
    return a


def _prediction(ex: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(float(value)):
        raise WrongAnswer(f"{ex}: {name} must be a number, got {value!r}.")
    return float(value)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)  # the hidden cases: fixed, not the course's COURSE_SEED


# --------------------------------------------------------------------------- lesson 1


def _price(delta: np.ndarray, beta: float) -> np.ndarray:
    return beta * 0.5 * np.sum(np.square(delta.astype(np.float64)), axis=tuple(range(1, delta.ndim)))


def lesson1_l2_price(l2_price: Any) -> None:
    """Exercise 1.4: ``l2_price(delta, beta)`` returns section 5's price, one number per image of
    the batch ``delta`` (shape ``(N, H, W, C)``, grey levels)."""
    ex = "Exercise 4"
    if not _function(ex, l2_price):
        return
    rng = _rng(14)
    cases = [(rng.normal(0, 3, (2, 48, 48, 1)), 3e-4), (rng.normal(0, 1, (3, 5, 7, 2)), 0.1),
             (rng.uniform(-4, 4, (1, 4, 4, 3)), 2.0)]
    try:
        for delta, beta in cases:
            want = _price(delta, beta)
            out = _run(ex, l2_price, delta.astype(np.float32), beta)
            if np.ndim(out) == 0:
                raise WrongAnswer(f"{ex}: your function returned one number for a batch of {len(delta)} images: "
                                  "the price is one number per image (sum over each image's own pixels).")
            got = _array(ex, out, want.shape, "one price per image")
            if np.allclose(got, want, rtol=1e-3, atol=1e-9):
                continue
            doubled = _array(ex, _run(ex, l2_price, 2 * delta.astype(np.float32), beta), want.shape, "one price per image")
            if not np.allclose(doubled, 4 * got, rtol=1e-3, atol=1e-9):
                raise WrongAnswer(f"{ex}: doubling DX should multiply the price by 4 (it is quadratic in DX); yours "
                                  f"multiplies it by {float(np.mean(doubled / got)):.2f}.")
            if np.allclose(got / want, np.mean(got / want), rtol=1e-3):
                raise WrongAnswer(f"{ex}: your price is quadratic, but off by a constant factor "
                                  f"({float(np.mean(got / want)):.3g} times the right one): check every factor "
                                  "of the formula in section 5.")
            raise WrongAnswer(f"{ex}: your price differs from the formula of section 5 on a hidden batch.")
    except _Stub:
        return _not_yet(ex)
    return _right(ex, f"Your price agrees with β·½·ΣDX² on {len(cases)} hidden batches.")


def lesson1_price_step(answer: Any, beta: float = 3e-4, dx: float = 20.0, learning_rate: float = 30.0) -> None:
    """Exercise 1.5 (predict, then check): by how many grey levels does one step of gradient descent
    on the price alone pull a pixel with ``DX = dx`` back towards the photo?"""
    import tensorflow as tf

    ex = "Exercise 5"
    if _unanswered(ex, answer):
        return
    said = _prediction(ex, "price_step", answer)
    d = tf.Variable([[dx, -3.0]], dtype=tf.float64)       # two pixels of a change; the first one is asked about
    with tf.GradientTape() as tape:
        price = beta * 0.5 * tf.reduce_sum(d ** 2)
    moved = float(learning_rate * tape.gradient(price, d)[0, 0])   # computed here, not shown
    if np.isclose(said, moved, rtol=0.02):
        return _right(ex, f"The price's gradient at that pixel is β·DX, so a step moves it back by "
                          f"{learning_rate:g} × {beta:g} × {dx:g} = {moved:.3g} grey levels.")
    if np.isclose(said, moved / learning_rate, rtol=0.02):
        raise WrongAnswer(f"{ex}: {said:g} is the gradient itself; a step of gradient descent multiplies it by "
                          "the learning rate.")
    if np.isclose(said, 2 * moved, rtol=0.02) or np.isclose(said, learning_rate * beta * 0.5 * dx ** 2, rtol=0.02):
        raise WrongAnswer(f"{ex}: {said:g} is not it. Differentiate β·½·DX_i² with respect to DX_i (the other "
                          "pixels' terms do not depend on it); what happens to the ½?")
    raise WrongAnswer(f"{ex}: {said:g} grey levels is not it. A step moves a pixel by learning_rate × ∂price/∂DX_i; "
                      "work out that derivative first.")


# --------------------------------------------------------------------------- lesson 2


def _bim(x: np.ndarray, x0: np.ndarray, grad: np.ndarray, step: float, eps: float) -> np.ndarray:
    return np.clip(np.clip(x - step * np.sign(grad), x0 - eps, x0 + eps), 0.0, 255.0)


def lesson2_bim_step(bim_step: Any) -> None:
    """Exercise 2.4: ``bim_step(x, x0, grad, step_size, epsilon)`` is one step of section 4's loop:
    down the sign of ``grad`` (the loss's gradient), back into the ±epsilon box around ``x0``, into
    0..255."""
    ex = "Exercise 4"
    if not _function(ex, bim_step):
        return
    rng = _rng(24)
    cases = []
    for shape, step, eps in [((1, 6, 6, 3), 0.5, 4.0), ((2, 5, 4, 3), 1.0, 1.5), ((1, 8, 8, 1), 3.0, 2.0)]:
        x0 = rng.choice([0.0, 1.0, 128.0, 254.5, 255.0], size=shape) + rng.uniform(0, 0.4, shape)
        x0 = np.clip(x0, 0, 255)
        x = np.clip(x0 + rng.uniform(-eps, eps, shape), 0, 255)
        grad = rng.normal(0, 1e-3, shape) * rng.choice([0.0, 1.0, 50.0], size=shape)
        cases.append((x.astype(np.float32), x0.astype(np.float32), grad.astype(np.float32), step, eps))
    try:
        for x, x0, grad, step, eps in cases:
            got = _array(ex, _run(ex, bim_step, x, x0, grad, step, eps), x.shape, "an image batch of x's shape")
            if np.allclose(got, _bim(x, x0, grad, step, eps), atol=1e-3):
                continue
            if got.min() < -1e-3 or got.max() > 255 + 1e-3:
                raise WrongAnswer(f"{ex}: your step gives pixels outside 0..255: not a valid picture.")
            if np.abs(got - x0).max() > eps + 1e-3:
                raise WrongAnswer(f"{ex}: your step leaves the budget: a pixel ends {np.abs(got - x0).max():.2f} "
                                  f"grey levels from the photo, with epsilon = {eps:g}.")
            if np.allclose(got, np.clip(np.clip(x + step * np.sign(grad), x0 - eps, x0 + eps), 0, 255), atol=1e-3):
                raise WrongAnswer(f"{ex}: your step goes *up* the gradient. grad is the gradient of the loss, "
                                  "which the attack minimises.")
            inside = (np.abs(_bim(x, x0, grad, step, eps) - x0) < eps - 1e-3) & (x > step) & (x < 255 - step)
            moved = np.abs(got - x)[inside & (grad != 0)]
            if moved.size and not np.allclose(moved, step, atol=1e-3):
                raise WrongAnswer(f"{ex}: where no clipping applies, every pixel should move by exactly step_size "
                                  f"({step:g}); yours move by {moved.min():.3g} to {moved.max():.3g}.")
            raise WrongAnswer(f"{ex}: your step differs from section 4's loop on a hidden case (look at where "
                              "the gradient is exactly 0, and at the order of the two clips).")
    except _Stub:
        return _not_yet(ex)
    return _right(ex, f"Your step agrees with the loop of section 4 on {len(cases)} hidden cases.")


def lesson2_fgsm_l2(answer: Any, model: Any, image: np.ndarray | None = None, epsilon: float = 2.0) -> None:
    """Exercise 2.5 (predict, then check): the L2 length (grey levels) of one targeted FGSM step of
    ``epsilon`` on a 224×224 colour photo (by default the coffee photo; the check runs it)."""
    from course_utils.attacks.gradient import fgsm
    from course_utils.io.images import load_image, sample_image

    ex = "Exercise 5"
    if _unanswered(ex, answer):
        return
    said = _prediction(ex, "fgsm_l2", answer)
    photo = load_image(sample_image("coffee"), size=224) if image is None else image
    l2 = float(fgsm(model, photo, "king penguin", epsilon=epsilon).l2[0])   # not shown unless right
    if np.isclose(said, l2, rtol=0.05):
        return _right(ex, f"The step's L2 length is {l2:.1f} grey levels: every one of the {np.size(photo):,} "
                          f"values moves by {epsilon:g} (a few less where 0..255 clips), so ε·√n.")
    if np.isclose(said, epsilon):
        raise WrongAnswer(f"{ex}: {said:g} is the L-inf size, the largest change of one value. The L2 length "
                          "adds up the squares of *all* the changes before the square root.")
    if said > 10 * l2:
        raise WrongAnswer(f"{ex}: {said:g} is far too large: that adds up the changes themselves (the L1 size). "
                          "L2 is the square root of the sum of their squares.")
    raise WrongAnswer(f"{ex}: {said:g} is not it. How many values does a 224×224 colour photo have, by how much "
                      "does FGSM move each one, and what is the length of a vector whose entries are all equal?")


# --------------------------------------------------------------------------- lesson 3


def _field(layers: Sequence[tuple[int, int]]) -> int:
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


def lesson3_receptive_field_formula(field_of: Any) -> None:
    """Exercise 3.4: ``field_of(layers)`` gives the receptive field (pixels along one side) of a unit
    of the last layer of a plain stack ``layers``, a list of ``(kernel_size, stride)`` pairs."""
    ex = "Exercise 4"
    if not _function(ex, field_of):
        return
    rng = _rng(34)
    stacks = [[(3, 1)], [(3, 1), (3, 1)], [(3, 2), (3, 1)], [(2, 2), (2, 2), (2, 2)], [(5, 1), (2, 2)] * 3,
              [(int(rng.integers(1, 8)), int(rng.integers(1, 3))) for _ in range(6)], []]
    try:
        for layers in stacks:
            got = _run(ex, field_of, list(layers))
            if isinstance(got, bool) or not isinstance(got, (Real, np.integer)):
                raise WrongAnswer(f"{ex}: your function should return a number of pixels, got {got!r}.")
            if got == _field(layers):
                continue
            if not layers:
                raise WrongAnswer(f"{ex}: with no layer at all, a 'unit' is one input pixel: what does it see?")
            if got == 1 + sum(k - 1 for k, _ in layers):
                raise WrongAnswer(f"{ex}: your field ignores the strides. After a stride-2 layer, neighbouring "
                                  "units of the next layer are 2 input pixels apart, and so on.")
            shifted = 1 + sum((k - 1) * int(np.prod([s for _, s in layers[:i + 1]])) for i, (k, _) in enumerate(layers))
            if got == shifted:
                raise WrongAnswer(f"{ex}: a layer's stride spaces out the units of the layers *after* it, not "
                                  "the windows of its own kernel.")
            raise WrongAnswer(f"{ex}: your field is wrong for a hidden stack of {len(layers)} layers; try it by hand "
                              "on [(3, 2), (3, 1)] by drawing the pixels one unit of the second layer sees.")
    except _Stub:
        return _not_yet(ex)
    return _right(ex, f"Your formula agrees on {len(stacks)} hidden stacks.")


def _tv(x: np.ndarray) -> np.ndarray:
    dy = np.abs(x[:, 1:] - x[:, :-1]).mean(axis=(1, 2, 3))
    dx = np.abs(x[:, :, 1:] - x[:, :, :-1]).mean(axis=(1, 2, 3))
    return dy + dx


def lesson3_total_variation(total_variation: Any) -> None:
    """Exercise 3.5: ``total_variation(x)`` is section 5's regulariser with weight 1 for a batch
    ``(N, H, W, C)``: per image, the mean absolute difference between vertical neighbours plus
    that between horizontal neighbours."""
    ex = "Exercise 5"
    if not _function(ex, total_variation):
        return
    rng = _rng(35)
    stripes = np.tile(np.array([0.0, 10.0] * 4)[None, :, None], (8, 1, 3))[None]    # changes along a row only
    cases = [stripes, np.transpose(stripes, (0, 2, 1, 3)), rng.uniform(0, 255, (2, 6, 5, 3)),
             np.full((1, 4, 4, 3), 128.0), rng.normal(128, 20, (3, 9, 7, 1))]
    try:
        for x in cases:
            want = _tv(x)
            got = _array(ex, _run(ex, total_variation, x.astype(np.float32)), want.shape, "one number per image")
            if np.allclose(got, want, rtol=1e-3, atol=1e-4):
                continue
            if want.max() > 0 and np.allclose(got, 0, atol=1e-6):
                raise WrongAnswer(f"{ex}: your total variation is 0 for stripes that change along one direction: "
                                  "count the differences in both directions.")
            twice = _array(ex, _run(ex, total_variation, 2 * x.astype(np.float32)), want.shape, "one number per image")
            if want.max() > 0 and not np.allclose(twice, 2 * got, rtol=1e-3):
                raise WrongAnswer(f"{ex}: doubling the picture should double its total variation (absolute "
                                  "differences); yours does not, so something is squared.")
            if want.max() == 0:
                raise WrongAnswer(f"{ex}: a flat picture has no variation, yours gives {got.tolist()} (wrapping "
                                  "around the edge? compare each pixel with its neighbour, not the last with the first).")
            raise WrongAnswer(f"{ex}: your total variation differs on a hidden batch. Use means, not sums, so a "
                              "bigger picture of the same pattern scores the same.")
    except _Stub:
        return _not_yet(ex)
    return _right(ex, f"Your total variation agrees on {len(cases)} hidden batches, stripes both ways included.")

"""Lesson 3's exercise checks (``03_feature_visualization``), graded as :mod:`course_utils.classroom.grading` says."""

from __future__ import annotations

from numbers import Real
from typing import Any, Sequence

import numpy as np

from course_utils.classroom.grading import Exercise

__all__ = [
    "lesson3_spectrum_slope", "lesson3_jitter_prevents_099", "lesson3_fewest_steps",
    "lesson3_receptive_field_formula", "lesson3_total_variation",
]


def _noise_with_slope(slope: float, side: int, rng: np.random.Generator) -> np.ndarray:
    """A grey picture ``(side, side)`` whose amplitude falls as ``f ** slope``: random phases."""
    f = np.sqrt(np.fft.fftfreq(side)[:, None] ** 2 + np.fft.rfftfreq(side)[None, :] ** 2)
    amp = np.where(f > 0, np.maximum(f, 1e-9) ** slope, 0.0)
    phase = rng.uniform(-np.pi, np.pi, amp.shape)
    return np.fft.irfft2(amp * np.exp(1j * phase), s=(side, side))


@Exercise.graded
def lesson3_spectrum_slope(amplitude_slope: Any) -> None:
    """Exercise 3.1: ``amplitude_slope(grey)`` is the slope of a grey picture's ``(H, W)`` amplitude
    spectrum on log-log axes (a photo about -1.4, pixel noise about 0). Checked on hidden pictures
    made with a known slope: within 0.2 of it."""
    ex = Exercise("Exercise 1")
    ex.function(amplitude_slope)
    rng = Exercise.hidden_rng(31)
    slopes = [0.0, -1.0, float(rng.uniform(-2.2, -1.6)), float(rng.uniform(-0.8, -0.3))]
    sides = [64, 96, 128, int(rng.choice([80, 112]))]
    got = []
    for slope, side in zip(slopes, sides):
        out = ex.run_answer(amplitude_slope, (128.0 + 40.0 * (g := _noise_with_slope(slope, side, rng)) / g.std()))
        value = float(ex.answer_array(out, (), "one number (the slope)"))
        got.append(value)
        if abs(value - slope) <= 0.2:
            continue
        if abs(value - 2 * slope) <= 0.3 and slope != 0:
            raise ex.wrong("your slope is about twice the true one on a hidden picture: that is the "
                           "*power* spectrum (amplitude squared). Take the absolute value of the FFT, not its square.")
        if value * slope < 0 or (slope == 0 and abs(value) > 0.2):
            raise ex.wrong(f"on a hidden picture of slope {slope:.1f} yours gives {value:.2f}. Fit log(amplitude) "
                           "against log(frequency), leaving out the zero frequency (its log is -infinity).")
        raise ex.wrong(f"on a hidden picture of slope {slope:.2f} yours gives {value:.2f}. Average the amplitude over "
                       "rings of equal frequency (or fit all coefficients at once), and fit a line on log-log axes.")
    pairs = ", ".join(f"{s:.2f} -> {g:.2f}" for s, g in zip(slopes, got))
    return ex.correct(f"Your slope is within 0.2 on {len(slopes)} hidden pictures (true -> yours: {pairs}).")


@Exercise.graded
def lesson3_jitter_prevents_099(answer: Any, jittered_probabilities: Sequence[float]) -> None:
    """Exercise 3.2: does jitter alone keep "sea snake" below 0.99 at every step of the run?

    ``jittered_probabilities`` is p(sea snake) at every step of the jittered run.
    """
    ex = Exercise("Exercise 2")
    said = ex.true_or_false("jitter_prevents_099", answer)
    p = np.asarray(jittered_probabilities, dtype=float)
    best = float(p.max())
    if said != (best < 0.99):
        raise ex.wrong(f"jitter_prevents_099 = {said} does not match the run. Look at the highest probability "
                       "the jittered run reached, not only at its last step.")
    first = f"first >= 0.99 at step {int(np.argmax(p >= 0.99))}" if best >= 0.99 else "never >= 0.99"
    return ex.correct(f"The jittered run's highest p(sea snake) is {best:.4f}, {first} (0 = the start).")


@Exercise.graded
def lesson3_fewest_steps(answer_class: Any, answer_steps: Any, model: Any, image: np.ndarray) -> None:
    """Exercise 3.3: the fewest steps of 1 grey level (RMS) that push ``answer_class`` to p >= 0.99
    in ``image``. Runs ``maximize_class`` for ``answer_steps`` steps once."""
    from course_utils.vis.visualize import maximize_class

    ex = Exercise("Exercise 3")
    ex.answered(answer_class, answer_steps)
    steps = ex.whole_number("coffee_steps", answer_steps)
    if steps < 1:
        raise ex.wrong(f"coffee_steps must be at least 1, got {steps}.")
    run = maximize_class(model, answer_class, image=image, steps=steps, step_size=1.0, progress=False)
    curve = run.curves().iloc[:, 0].to_numpy()
    name = run.what[0]
    if curve[-1] < 0.99:
        raise ex.wrong(f"after {steps} steps p({name}) is {curve[-1]:.3f}, not yet 0.99. Try more steps "
                       "(or another class).")
    first = int(np.argmax(curve >= 0.99))
    if first < steps:
        raise ex.wrong(f"{steps} steps work, but p({name}) already reached 0.99 earlier. Try fewer steps: "
                       "the run's curve shows where it crosses 0.99.")
    return ex.correct(f"'{name}' reaches p = {curve[-1]:.3f} at step {steps}, and not before.")


def _field(layers: Sequence[tuple[int, int]]) -> int:
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


@Exercise.graded
def lesson3_receptive_field_formula(field_of: Any) -> None:
    """Exercise 3.4: ``field_of(layers)`` gives the receptive field (pixels along one side) of a unit
    of the last layer of a plain stack ``layers``, a list of ``(kernel_size, stride)`` pairs."""
    ex = Exercise("Exercise 4")
    ex.function(field_of)
    rng = Exercise.hidden_rng(34)
    stacks = [[(3, 1)], [(3, 1), (3, 1)], [(3, 2), (3, 1)], [(2, 2), (2, 2), (2, 2)], [(5, 1), (2, 2)] * 3,
              [(int(rng.integers(1, 8)), int(rng.integers(1, 3))) for _ in range(6)], []]
    for layers in stacks:
        got = ex.run_answer(field_of, list(layers))
        if isinstance(got, bool) or not isinstance(got, (Real, np.integer)):
            raise ex.wrong(f"your function should return a number of pixels, got {got!r}.")
        if got == _field(layers):
            continue
        if not layers:
            raise ex.wrong("with no layer at all, a 'unit' is one input pixel: what does it see?")
        if got == 1 + sum(k - 1 for k, _ in layers):
            raise ex.wrong("your field ignores the strides. After a stride-2 layer, neighbouring "
                           "units of the next layer are 2 input pixels apart, and so on.")
        shifted = 1 + sum((k - 1) * int(np.prod([s for _, s in layers[:i + 1]])) for i, (k, _) in enumerate(layers))
        if got == shifted:
            raise ex.wrong("a layer's stride spaces out the units of the layers *after* it, not "
                           "the windows of its own kernel.")
        raise ex.wrong(f"your field is wrong for a hidden stack of {len(layers)} layers; try it by hand "
                       "on [(3, 2), (3, 1)] by drawing the pixels one unit of the second layer sees.")
    return ex.correct(f"Your formula agrees on {len(stacks)} hidden stacks.")


def _tv(x: np.ndarray) -> np.ndarray:
    dy = np.abs(x[:, 1:] - x[:, :-1]).mean(axis=(1, 2, 3))
    dx = np.abs(x[:, :, 1:] - x[:, :, :-1]).mean(axis=(1, 2, 3))
    return dy + dx


@Exercise.graded
def lesson3_total_variation(total_variation: Any) -> None:
    """Exercise 3.5: ``total_variation(x)`` is section 5's regulariser with weight 1 for a batch
    ``(N, H, W, C)``: per image, the mean absolute difference between vertical neighbours plus
    that between horizontal neighbours."""
    ex = Exercise("Exercise 5")
    ex.function(total_variation)
    rng = Exercise.hidden_rng(35)
    stripes = np.tile(np.array([0.0, 10.0] * 4)[None, :, None], (8, 1, 3))[None]    # changes along a row only
    cases = [stripes, np.transpose(stripes, (0, 2, 1, 3)), rng.uniform(0, 255, (2, 6, 5, 3)),
             np.full((1, 4, 4, 3), 128.0), rng.normal(128, 20, (3, 9, 7, 1))]
    for x in cases:
        want = _tv(x)
        out = ex.run_answer(total_variation, x.astype(np.float32))
        got = ex.answer_array(out, want.shape, "one number per image")
        if np.allclose(got, want, rtol=1e-3, atol=1e-4):
            continue
        if want.max() > 0 and np.allclose(got, 0, atol=1e-6):
            raise ex.wrong("your total variation is 0 for stripes that change along one direction: "
                           "count the differences in both directions.")
        twice = ex.answer_array(ex.run_answer(total_variation, 2 * x.astype(np.float32)), want.shape,
                             "one number per image")
        if want.max() > 0 and not np.allclose(twice, 2 * got, rtol=1e-3):
            raise ex.wrong("doubling the picture should double its total variation (absolute "
                           "differences); yours does not, so something is squared.")
        if want.max() == 0:
            raise ex.wrong(f"a flat picture has no variation, yours gives {got.tolist()} (wrapping "
                           "around the edge? compare each pixel with its neighbour, not the last with the first).")
        raise ex.wrong("your total variation differs on a hidden batch. Use means, not sums, so a "
                       "bigger picture of the same pattern scores the same.")
    return ex.correct(f"Your total variation agrees on {len(cases)} hidden batches, stripes both ways included.")

"""Lesson 6's exercise checks (``06_physical_world``), graded as :mod:`course_utils.classroom.grading` says."""

from __future__ import annotations

from typing import Any

import numpy as np

from course_utils.classroom.grading import Exercise

__all__ = ["lesson6_paste_corner", "lesson6_shift_eot"]


def _paste_reference(photo: np.ndarray, patch: np.ndarray, row: int, col: int) -> np.ndarray:
    """The patch's top-left pixel at ``(row, col)``; what falls off the photo is dropped."""
    out = photo.copy()
    h, w = photo.shape[:2]
    p = patch.shape[0]
    r0, c0, r1, c1 = max(row, 0), max(col, 0), min(row + p, h), min(col + p, w)
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1] = patch[r0 - row : r1 - row, c0 - col : c1 - col]
    return out


@Exercise.graded
def lesson6_paste_corner(predicted_corner: Any, paste_at: Any) -> None:
    """Exercise 1 of lesson 6, as the lesson's exercise states it: ``predicted_corner``, the ``(row, column)``
    the patch's bottom-right pixel lands on, then ``paste_at(photo, patch, row, col)``, checked on hidden
    photos, patches and places (some running off the edge)."""
    ex = Exercise("Exercise 1")
    ex.answered(predicted_corner)
    try:
        corner = tuple(int(v) for v in predicted_corner)
        if len(corner) != 2 or any(float(v) != int(v) for v in predicted_corner):
            raise ValueError
    except (TypeError, ValueError):
        raise ex.wrong("predicted_corner is a pair of whole numbers (row, column), got "
                       f"{predicted_corner!r}.") from None
    if corner != (17, 27):
        raise ex.wrong(f"the corner is not at {corner}. Where, in pixel coordinates, is the centre of "
                       "an 8-pixel row of pixels numbered 0 to 7? Start from there.")
    print(f"{ex}: your prediction {corner} is right; now the code.")
    ex.function(paste_at)
    rng = Exercise.hidden_rng(61)
    for row, col, p in [(5, 9, 8), (0, 0, 4), (30, 2, 6), (-3, 10, 8), (28, 38, 8), (-20, 0, 8)]:
        photo = rng.uniform(0, 255, (36, 44, 3)).astype(np.float32)
        patch = rng.uniform(0, 255, (p, p, 3)).astype(np.float32)
        kept = photo.copy()
        out = ex.run_answer(paste_at, photo, patch, row, col)
        got = ex.answer_array(out, photo.shape, "a photo of the same shape")
        if not np.array_equal(photo, kept):
            raise ex.wrong("your function changed the photo it was given: paste on a copy (photo.copy()).")
        want = _paste_reference(photo, patch, row, col)
        inside = 0 <= row and 0 <= col and row + p <= 36 and col + p <= 44
        if not np.allclose(got, want, atol=1e-3):
            where = np.argwhere(np.abs(got - want).max(axis=-1) > 1e-3)[0]
            raise ex.wrong(f"with the top-left at ({row}, {col}) and a {p}-pixel patch, pixel "
                           f"{tuple(int(v) for v in where)} is wrong"
                           + ("" if inside else " (the patch runs off the photo here: keep only the part "
                                                "that lands on it)") + ".")
    return ex.correct("Your patch lands where the course's placements put it, and off the edge it is cut.")


LENGTHS = ("smaller", "about the same", "larger")


def _tiny_model(seed: int) -> Any:
    """A small seeded CNN on (12, 12, 1) pictures, pixels 0..255, 4 logits: the check's hidden network."""
    import keras

    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential([
        keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 64.0),
        keras.layers.Conv2D(6, 3, activation="tanh", kernel_initializer=init),
        keras.layers.Flatten(), keras.layers.Dense(4, kernel_initializer=init),
    ])


def _shift_eot_reference(model: Any, x: Any, labels: Any) -> Any:
    import tensorflow as tf

    shifted = [tf.roll(x, s, axis) for axis in (1, 2) for s in (-1, 1)]
    return tf.reduce_mean(tf.stack([tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(v))
                                    for v in shifted]), axis=0)


@Exercise.graded
def lesson6_shift_eot(shift_eot_loss: Any, predicted_length: Any) -> None:
    """Exercise 2 of lesson 6, as the lesson's exercise states it: ``shift_eot_loss(model, x, labels)``, the
    cross-entropy ``(N,)`` averaged over four one-pixel shifts, and ``predicted_length``, one of :data:`LENGTHS`
    (its gradient's L2 length against the plain loss's). Checked on hidden networks."""
    import tensorflow as tf

    ex = Exercise("Exercise 2")
    ex.answered(predicted_length)
    ex.function(shift_eot_loss)
    if predicted_length not in LENGTHS:
        raise ex.wrong(f"predicted_length is one of {LENGTHS}, got {predicted_length!r}.")
    rng = Exercise.hidden_rng(67)
    ratios = []
    for seed in (3, 4):
        model = _tiny_model(seed)
        x = tf.constant(rng.uniform(0, 255, (5, 12, 12, 1)), tf.float32)
        labels = tf.constant(rng.integers(0, 4, 5), tf.int32)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            out = ex.run_answer(shift_eot_loss, model, x, labels)
            if not isinstance(out, tf.Tensor):
                raise ex.wrong(f"return a TensorFlow tensor (the attack differentiates it), got {type(out).__name__}.")
            total = tf.reduce_sum(out)
            plain = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(x)))
        got = ex.answer_array(out.numpy(), (5,), "one averaged loss per picture")
        want = _shift_eot_reference(model, x, labels).numpy()
        if np.allclose(got, tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(x)).numpy(), atol=1e-4):
            raise ex.wrong("your loss is the plain loss on the unshifted pictures: average over the "
                           "four shifted copies.")
        if np.allclose(got, 4 * want, atol=1e-3):
            raise ex.wrong("your loss is four times too large: average the four losses, do not add them.")
        if not np.allclose(got, want, atol=1e-4):
            raise ex.wrong("on hidden pictures your loss differs from the cross-entropy averaged over the "
                           "four one-pixel shifts (rows and columns, both ways; tf.roll along axes 1 and 2).")
        grad = tape.gradient(total, x)
        if grad is None:
            raise ex.wrong("your loss has no gradient with respect to x: keep it in TensorFlow.")
        ratios.append(float(tf.norm(grad) / tf.norm(tape.gradient(plain, x))))
    ratio = float(np.mean(ratios))
    truth = "smaller" if ratio < 0.85 else "larger" if ratio > 1.15 else "about the same"
    if predicted_length != truth:
        raise ex.wrong(f"your code is right, but not your prediction ({predicted_length!r}). Think of four "
                       "arrows of about the same length pointing in different directions: how long is their average?")
    ex.correct("Your averaged loss matches on hidden pictures and networks, and so does your prediction.")
    print(f"On the hidden pictures the averaged gradient's L2 length is {ratio:.2f} times the plain one's: four "
          "gradients that disagree partly cancel, so only the part that works for every shift is left; "
          "that is what EOT's step follows.")

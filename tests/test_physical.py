"""Print-and-photograph simulation, survival of attacks, and EOT on the one loop (lesson 6)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.physical import eot_attack, print_and_photograph, survival_rate
from course_utils.core import ops
from course_utils.attacks.physical import PrintPhoto

RNG = np.random.default_rng(0)


def _pictures(n: int = 2, size: int = 40) -> np.ndarray:
    base = RNG.uniform(20, 235, size=(n, size // 8, size // 8, 3))
    return np.repeat(np.repeat(base, 8, axis=1), 8, axis=2).astype(np.float32)


# --------------------------------------------------------------------------- the simulation


def test_print_and_photograph_keeps_shapes_and_valid_whole_pixels():
    x = _pictures(2)
    photos = print_and_photograph(x, seed=3, draws=5)
    assert photos.shape == (5, 2, 40, 40, 3) and photos.dtype == np.float32
    assert photos.min() >= 0 and photos.max() <= 255
    assert np.array_equal(photos, np.round(photos))


def test_print_and_photograph_is_seeded_and_changes_the_picture():
    x = _pictures(2)
    a, b = print_and_photograph(x, seed=3, draws=4), print_and_photograph(x, seed=3, draws=4)
    assert np.array_equal(a, b)
    c = print_and_photograph(x, seed=4, draws=4)
    assert not np.array_equal(a, c)
    assert np.abs(a - x[None]).mean() > 2.0  # a photo is not the file
    assert not np.array_equal(a[0], a[1])  # each draw its own photo


def test_print_photo_with_nothing_random_is_the_picture_up_to_jpeg():
    x = np.broadcast_to(np.asarray([90.0, 150.0, 210.0], np.float32), (1, 40, 40, 3))  # flat: JPEG keeps it
    calm = PrintPhoto(2, degrees=0, scale=0, shift=0, blur=0, contrast=0, brightness=0, noise=0, jpeg=(100, 100))
    assert np.abs(calm.transform(tf.constant(x), tf.constant(0), tf.constant(0)).numpy() - x).max() <= 3.0


def test_the_loop_transform_gives_draws_copies_differentiably():
    x = tf.constant(_pictures(3))
    t = PrintPhoto(4)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = t.transform(x, tf.constant(2), tf.constant(7))
        loss = tf.reduce_sum(y[:, 20, 20, :])
    assert y.shape == (12, 40, 40, 3)
    g = tape.gradient(loss, x)
    assert g is not None and float(tf.reduce_sum(tf.abs(g))) > 0
    again = t.transform(x, tf.constant(2), tf.constant(7))
    assert np.array_equal(y.numpy(), again.numpy())
    other_step = t.transform(x, tf.constant(3), tf.constant(7))
    assert not np.array_equal(y.numpy(), other_step.numpy())


def test_the_blur_blurs_each_picture_with_its_own_width():
    x = np.zeros((2, 21, 21, 1), np.float32)
    x[:, 10, 10] = 255.0
    y = ops.gaussian_blur(tf.constant(x), tf.constant([0.0, 2.0]), 6).numpy()
    assert y[0, 10, 10, 0] == pytest.approx(255.0, abs=1e-3)  # width ~0: unchanged
    assert y[1, 10, 10, 0] < 20.0 and y[1].sum() == pytest.approx(255.0, rel=1e-3)  # spread out, same light


def test_the_cross_entropy_averages_over_the_drawn_copies():
    logits = tf.constant([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 0.0]])  # copies 0 and 1 of 2 examples
    loss = ops.cross_entropy(tf.reshape(logits, [2, 2, 2]), tf.constant([0, 1]))  # (copies, N, classes)
    ce = -tf.nn.log_softmax(logits).numpy()
    assert np.allclose(loss.numpy(), [(ce[0, 0] + ce[2, 0]) / 2, (ce[1, 1] + ce[3, 1]) / 2], atol=1e-6)


@pytest.mark.parametrize("bad", [
    {"draws": 0}, {"blur": -1.0}, {"degrees": 90.0}, {"jpeg": (90, 50)}, {"jpeg": (0, 50)}, {"noise": "4"},
])
def test_bad_simulation_settings_are_refused_before_any_work(bad):
    with pytest.raises(ValueError):
        PrintPhoto(bad.pop("draws", 2), **bad)


def test_a_picture_too_small_to_blur_is_refused():
    with pytest.raises(ValueError, match="at least"):
        print_and_photograph(np.zeros((1, 4, 4, 3), np.float32), seed=0)
    with pytest.raises(ValueError, match="colour"):
        print_and_photograph(np.zeros((1, 40, 40, 1), np.float32), seed=0)


def test_bad_eot_arguments_are_refused(imagenet_model, cat_224):
    with pytest.raises(ValueError, match="epsilon"):
        eot_attack(imagenet_model, cat_224, "king penguin", 0.0)
    with pytest.raises(ValueError, match="draws"):
        eot_attack(imagenet_model, cat_224, "king penguin", 8.0, draws=0)
    with pytest.raises(ValueError):
        eot_attack(imagenet_model, cat_224, "no such class", 8.0)


# --------------------------------------------------------------------------- survival


def test_eot_survives_the_simulation_far_better_than_lesson_2s_attack(imagenet_model, cat_224):
    from course_utils.attacks.pgd import iterative_attack

    plain = iterative_attack(imagenet_model, cat_224, "king penguin", epsilon=4.0, steps=10, progress=False)
    robust = eot_attack(imagenet_model, cat_224, "king penguin", 16.0, steps=15, draws=4, seed=0, progress=False)
    assert plain.success[0] and robust.success[0]
    assert np.abs(robust.delta).max() <= 16.0 + 1e-3
    survive_plain = survival_rate(imagenet_model, plain.adversarial, "king penguin", draws=16, seed=11)[0]
    survive_eot = survival_rate(imagenet_model, robust.adversarial, "king penguin", draws=16, seed=11)[0]
    assert survive_eot > survive_plain + 0.4, (survive_plain, survive_eot)
    # the simulation does not destroy the photo itself: the cat stays the cat
    cat_class = int(plain.original_class[0])
    assert survival_rate(imagenet_model, cat_224, cat_class, draws=16, seed=11)[0] > 0.7


def test_eot_compiles_once_per_model_and_settings(imagenet_model, cat_224):
    """A new budget or target is per-call data: the second attack traces nothing."""
    eot_attack(imagenet_model, cat_224, "toaster", 4.0, steps=1, draws=2, progress=False)
    again = eot_attack(imagenet_model, cat_224, "king penguin", 8.0, steps=2, draws=2, progress=False)
    assert again.traces == 0


# --------------------------------------------------------------------------- the exercise


def _paste_at(photo, patch, row, col):
    out = photo.copy()
    p = patch.shape[0]
    r0, c0, r1, c1 = max(row, 0), max(col, 0), min(row + p, photo.shape[0]), min(col + p, photo.shape[1])
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0:c1] = patch[r0 - row : r1 - row, c0 - col : c1 - col]
    return out


def test_the_paste_exercise_accepts_the_solution_and_names_what_is_wrong(capsys):
    from course_utils.classroom.grading import Exercise
    from course_utils.classroom.lesson6 import lesson6_paste_corner

    lesson6_paste_corner(None, None)
    assert "not answered" in capsys.readouterr().out
    lesson6_paste_corner((17, 27), _paste_at)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(Exercise.WrongAnswer, match="corner"):
        lesson6_paste_corner((18, 28), _paste_at)

    def no_clipping(photo, patch, row, col):
        out = photo.copy()
        out[row : row + patch.shape[0], col : col + patch.shape[0]] = patch
        return out

    with pytest.raises(Exercise.WrongAnswer):
        lesson6_paste_corner((17, 27), no_clipping)

    def in_place(photo, patch, row, col):
        photo[row : row + 1, col : col + 1] = 0
        return _paste_at(photo, patch, row, col)

    with pytest.raises(Exercise.WrongAnswer, match="copy"):
        lesson6_paste_corner((17, 27), in_place)
    lesson6_paste_corner((17, 27), lambda *a: None)
    assert "not answered" in capsys.readouterr().out

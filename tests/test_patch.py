"""The adversarial patch (lesson 6): placement maths, bad inputs, its step and the optimisation."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.patch import (
    _Photos,
    apply_patch,
    _check_patch,
    load_patch,
    _patch_step,
    patch_success,
    _random_placements,
    train_patch,
)

RNG = np.random.default_rng(0)


def _photos(n: int = 2, size: int = 48) -> np.ndarray:
    return RNG.uniform(0, 255, size=(n, size, size, 3)).astype(np.float32)


def _patch(p: int = 8) -> np.ndarray:
    return RNG.uniform(0, 255, size=(p, p, 3)).astype(np.float32)


# --------------------------------------------------------------------------- placement maths


@pytest.mark.parametrize("row, col", [(0, 0), (5, 17), (40, 40), (13, 2)])
def test_a_patch_at_its_own_size_lands_exactly_where_asked(row, col):
    photos, patch = _photos(1), _patch(8)
    out = apply_patch(photos, patch, [row + 3.5, col + 3.5, 8, 0])[0]
    assert np.array_equal(out[row : row + 8, col : col + 8], patch)
    outside = np.ones((48, 48), bool)
    outside[row : row + 8, col : col + 8] = False
    assert np.array_equal(out[outside], photos[0][outside])


def test_a_patch_twice_its_size_covers_twice_the_side_and_a_half_turn_flips_it():
    photo = np.zeros((1, 48, 48, 3), np.float32)
    patch = np.full((8, 8, 3), 200.0, np.float32)
    big = apply_patch(photo, patch, [23.5, 23.5, 16, 0])[0, ..., 0]
    covered = big > 100
    rows, cols = np.nonzero(covered)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 31, 16, 31)
    ramp = np.repeat(np.linspace(0, 255, 8, dtype=np.float32)[None, :, None], 8, axis=0).repeat(3, axis=2)
    turned = apply_patch(np.zeros((1, 20, 20, 3), np.float32), ramp, [9.5, 9.5, 8, 180])[0]
    assert np.allclose(turned[6:14, 6:14], ramp[::-1, ::-1], atol=1e-2)


def test_random_placements_are_seeded_in_range_and_keep_the_patch_on_the_photo():
    a = _random_placements(200, 224, sides=(40, 80), degrees=30, seed=3)
    assert a.shape == (200, 4)
    assert np.array_equal(a, _random_placements(200, 224, sides=(40, 80), degrees=30, seed=3))
    assert not np.array_equal(a, _random_placements(200, 224, sides=(40, 80), degrees=30, seed=4))
    assert a[:, 2].min() >= 40 and a[:, 2].max() <= 80 and np.abs(a[:, 3]).max() <= 30
    reach = a[:, 2] * (np.abs(np.cos(np.radians(a[:, 3]))) + np.abs(np.sin(np.radians(a[:, 3])))) / 2
    assert np.all(a[:, 0] - reach >= -0.5 - 1e-3) and np.all(a[:, 0] + reach <= 223.5 + 1e-3)
    assert np.all(a[:, 1] - reach >= -0.5 - 1e-3) and np.all(a[:, 1] + reach <= 223.5 + 1e-3)


def test_the_patch_step_cycles_photos_draws_per_step_and_moves_the_patch():
    photos = _photos(3)
    seen = []

    def model(pictures, training=False):  # records what it sees; its logits depend on every pixel
        seen.append(pictures.numpy())
        mean = tf.reduce_mean(pictures, axis=[1, 2, 3])
        return tf.stack([mean / 100.0, -mean / 100.0], axis=1)

    x = tf.constant(_patch(8)[None])
    data = {"labels": tf.constant([0]), "step_size": tf.constant([2.0])}
    settings = dict(photos=_Photos(photos), placements=6, sides=(10.0, 16.0), degrees=10.0)
    x_next, loss, tracked, success = _patch_step(model, x, x, tf.constant(0), tf.constant([1, 0]), data, **settings)
    out = seen[0]
    assert out.shape == (6, 48, 48, 3) and loss.shape == (1,) and tracked.shape == (1, 2) and success is None
    changed = np.abs(out - photos[[0, 1, 2, 0, 1, 2]]).max(axis=(1, 2, 3)) > 0
    assert changed.all()  # every row is its photo with the patch on it
    unchanged = np.isclose(out, photos[[0, 1, 2, 0, 1, 2]]).mean(axis=(1, 2, 3))
    assert np.all(unchanged > 0.7)  # ... and elsewhere the photo itself
    moved = np.abs(x_next.numpy() - x.numpy())
    assert moved.max() == pytest.approx(2.0, abs=1e-3) and x_next.numpy().min() >= 0 and x_next.numpy().max() <= 255  # signed step
    _patch_step(model, x, x, tf.constant(1), tf.constant([1, 0]), data, **settings)
    assert not np.array_equal(out, seen[1])  # new placements every step
    _patch_step(model, x, x, tf.constant(0), tf.constant([1, 0]), data, **settings)
    assert np.array_equal(out, seen[2])  # ... drawn from the seed and the step


def test_equal_photos_are_one_setting_of_the_compiled_step():
    photos = _photos(2)
    assert _Photos(photos) == _Photos(photos.copy()) and hash(_Photos(photos)) == hash(_Photos(photos.copy()))
    assert _Photos(photos) != _Photos(photos[:1])
    with pytest.raises(ValueError, match="colour"):
        _Photos(np.zeros((1, 8, 8, 1), np.float32))


# --------------------------------------------------------------------------- bad inputs


def test_bad_patches_and_sizes_are_refused_before_any_work(imagenet_model):
    photos = np.zeros((1, 224, 224, 3), np.float32)
    with pytest.raises(ValueError, match="larger than the photo"):
        apply_patch(photos, np.zeros((300, 300, 3), np.float32), [112, 112, 300, 0])
    with pytest.raises(ValueError, match="larger than the photo"):
        train_patch(imagenet_model, photos, "toaster", size=300)
    with pytest.raises(ValueError, match="size"):
        train_patch(imagenet_model, photos, "toaster", size=0)
    with pytest.raises(ValueError, match="size"):
        train_patch(imagenet_model, photos, "toaster", size=-5)
    with pytest.raises(ValueError, match="toster|class"):
        train_patch(imagenet_model, photos, "toster", size=16)
    with pytest.raises(ValueError, match="square"):
        _check_patch(np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="0..255"):
        _check_patch(np.full((8, 8, 3), 300.0))
    with pytest.raises(ValueError, match="larger than the photos"):
        _random_placements(4, 224, sides=(40, 260))
    with pytest.raises(ValueError, match="count"):
        _random_placements(0, 224)


# --------------------------------------------------------------------------- the optimisation


def test_a_short_patch_optimisation_raises_the_targets_probability(imagenet_model, cat_224):
    from course_utils.io.images import load_image, sample_image

    photos = np.stack([cat_224, load_image(sample_image("coffee"), size=224)])
    result = train_patch(imagenet_model, photos, "toaster", size=80, steps=8, step_size=16.0, placements=4, seed=0,
                         progress=False)
    assert result.patch.shape == (80, 80, 3) and result.patch.min() >= 0 and result.patch.max() <= 255
    p = result.probability  # first and last: the patch in the middle of both photos (measured 3.3x to 11x)
    assert p[-1] > 2 * p[0], p


def test_the_shipped_patch_beats_noise_on_held_out_photos_and_placements(imagenet_model):
    from course_utils.attacks.transfer import photo_variants

    patch = load_patch()
    held_out, _ = photo_variants(["grace_hopper"], extra=1, seed=7)
    shipped = patch_success(imagenet_model, patch, held_out, "toaster", 4, seed=123)
    noise = patch_success(imagenet_model, RNG.uniform(0, 255, patch.shape), held_out, "toaster", 4, seed=123)
    assert shipped.rate >= noise.rate + 0.5, (shipped, noise)
    assert shipped.images.shape == (2, 4, 224, 224, 3)

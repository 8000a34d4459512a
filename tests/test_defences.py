"""Input-transformation defences, their adaptive attacks (BPDA, EOT), adversarial training inside a
compiled train_step, and the transfer helpers (resized and ensembled models, transfer rates)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.defences import (
    AdversarialTraining,
    JpegRecompress,
    RandomBlur,
    RoundPixels,
    StraightThrough,
    defend,
)
from course_utils.attacks.pgd import pgd_attack, pgd_perturb

RNG = np.random.default_rng(0)


def _photo(n: int = 3, size: int = 32, channels: int = 3) -> np.ndarray:
    """Smooth random pictures (JPEG keeps them close), float pixels with fractions."""
    base = RNG.uniform(30, 225, size=(n, size // 8, size // 8, channels))
    smooth = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)
    return (smooth + RNG.uniform(-0.49, 0.49, size=smooth.shape)).astype(np.float32)


def _tiny_classifier(size: int = 32, channels: int = 3, classes: int = 3) -> keras.Model:
    keras.utils.set_random_seed(0)
    pixels = keras.Input((size, size, channels), name="pixels")
    x = keras.layers.Rescaling(1 / 255)(pixels)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(pixels, keras.layers.Dense(classes)(x), name="tiny_cnn")


# --------------------------------------------------------------------------- transforms


def test_rounding_gives_whole_grey_levels_and_no_gradient():
    x = tf.constant([[[[0.4], [0.6], [254.7], [-3.0], [300.0]]]], tf.float32)
    np.testing.assert_array_equal(RoundPixels()(x), [[[[0.0], [1.0], [255.0], [0.0], [255.0]]]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(RoundPixels()(x))
    assert tape.gradient(y, x) is None, "rounding hides the gradient: this is what BPDA works around"


def test_bpda_gradient_is_the_identity_through_rounding_and_jpeg():
    x = tf.constant(_photo(2), tf.float32)
    w = tf.constant(RNG.normal(size=x.shape), tf.float32)
    for transform in (RoundPixels(), JpegRecompress(75)):
        st = StraightThrough(transform)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(st(x) * w)
        np.testing.assert_allclose(tape.gradient(y, x), w, rtol=1e-6)
        np.testing.assert_allclose(st(x), transform(x), atol=1e-4)  # same forward pass


def test_jpeg_keeps_a_smooth_picture_and_removes_fine_noise():
    x = _photo(2)
    noise = RNG.choice([-4.0, 4.0], size=x.shape).astype(np.float32)  # checkerboard-like, the finest detail
    out = np.asarray(JpegRecompress(75)(tf.constant(x)))
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.abs(out - x).mean() < 2.0, "a smooth picture should survive JPEG almost unchanged"
    noisy = np.asarray(JpegRecompress(75)(tf.constant(np.clip(x + noise, 0, 255))))
    assert np.abs(noisy - out).mean() < 0.5 * np.abs(noise).mean(), "JPEG should remove most of a fine +-4 pattern"
    gray = np.asarray(JpegRecompress(90)(tf.constant(_photo(1, channels=1))))
    assert gray.shape == (1, 32, 32, 1)
    with pytest.raises(ValueError, match="quality"):
        JpegRecompress(0)


def test_blur_keeps_a_flat_picture_and_averages_noise():
    flat = tf.fill([2, 16, 16, 1], 100.0)
    np.testing.assert_allclose(RandomBlur(1.0, 1.0)(flat), 100.0, rtol=1e-5)  # mirrored edges: no dark border
    noise = tf.constant(RNG.normal(128, 20, size=(2, 16, 16, 3)), tf.float32)
    blurred = np.asarray(RandomBlur(1.5, 1.5)(noise))
    assert blurred.std() < 0.5 * np.asarray(noise).std()
    a = RandomBlur(0.5, 1.5, seed=3)
    one, two = np.asarray(a(noise)), np.asarray(a(noise))
    assert not np.allclose(one, two), "each call draws new widths"
    again = np.asarray(RandomBlur(0.5, 1.5, seed=3)(noise))
    np.testing.assert_allclose(again, one, rtol=1e-6, err_msg="the same seed, the same draws")


def test_defended_model_is_transform_then_model():
    model = _tiny_classifier()
    x = tf.constant(_photo(3), tf.float32)
    for transform in (RoundPixels(), JpegRecompress(75), RandomBlur(1.0, 1.0)):
        defended = defend(model, transform)
        np.testing.assert_allclose(defended(x), model(transform(x)), rtol=1e-5, atol=1e-5)
        assert defended.input_shape == model.input_shape and defended.output_shape == model.output_shape
    bpda = defend(model, StraightThrough(JpegRecompress(75)))
    np.testing.assert_allclose(bpda(x), model(JpegRecompress(75)(x)), rtol=1e-5, atol=1e-5)


def test_naive_attack_through_rounding_is_stuck_and_bpda_is_not():
    model = _tiny_classifier()
    x = np.round(_photo(3))
    y = np.asarray(model(x, training=False)).argmax(-1)
    common = dict(steps=5, random_start=False, seed=0)
    stuck = pgd_perturb(defend(model, RoundPixels()), x, y, 4.0, **common).numpy()
    np.testing.assert_array_equal(stuck, x)  # zero gradient: not one step
    moved = pgd_perturb(defend(model, StraightThrough(RoundPixels())), x, y, 4.0, **common).numpy()
    assert np.abs(moved - x).max() == pytest.approx(4.0, abs=1e-3)


def test_eot_averages_over_random_draws():
    model = _tiny_classifier()
    x = _photo(2)
    y = np.asarray(model(x, training=False)).argmax(-1)
    random = defend(model, RandomBlur(0.5, 1.5, seed=0))
    adv = pgd_attack(random, x, y, 4.0, steps=3, samples=4, seed=1).adversarial
    assert adv.shape == x.shape and np.abs(adv - x).max() <= 4.0 + 1e-3


# --------------------------------------------------------------------------- adversarial training


def test_adversarial_training_step_runs_compiled_and_trains_on_attacked_batches():
    model = _tiny_classifier(size=16, channels=1, classes=2)
    x = RNG.uniform(0, 255, size=(32, 16, 16, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 127.5).astype(np.int64)
    trainer = AdversarialTraining(model, 4.0, steps=3, clean_weight=0.25, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    history = trainer.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert trainer.train_function is not None, "fit must have built the compiled train function"
    assert set(history.history) >= {"loss", "accuracy"} and np.isfinite(history.history["loss"]).all()
    assert int(trainer.optimizer.iterations.numpy()) == 4
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights())), "the wrapped model is what trains"
    trainer.set_epsilon(2.0)
    assert float(trainer.epsilon.numpy()) == 2.0
    adv = trainer.perturb(tf.constant(x[:4]), tf.constant(y[:4])).numpy()
    assert np.abs(adv - x[:4]).max() <= 2.0 + 1e-3


def test_adversarial_training_refuses_bad_settings():
    model = _tiny_classifier(size=16, channels=1, classes=2)
    with pytest.raises(ValueError, match="epsilon"):
        AdversarialTraining(model, -1.0)
    with pytest.raises(ValueError, match="steps"):
        AdversarialTraining(model, 4.0, steps=0)
    with pytest.raises(ValueError, match="clean_weight"):
        AdversarialTraining(model, 4.0, clean_weight=2.0)


# --------------------------------------------------------------------------- transfer helpers


def test_resized_and_ensemble_models():
    from course_utils.attacks.transfer import ensemble, resized, top1

    small, big = _tiny_classifier(size=16), _tiny_classifier(size=24)
    x = tf.constant(_photo(2, size=16), tf.float32)
    wrapped = resized(big, 16)
    assert wrapped.input_shape == (None, 16, 16, 3)
    np.testing.assert_allclose(wrapped(x), big(tf.image.resize(x, (24, 24))), rtol=1e-5, atol=1e-5)
    assert resized(small, 16).get_layer(index=1) is small, "no resize when the size already fits"
    both = ensemble([small, big])
    np.testing.assert_allclose(both(x), (small(x) + wrapped(x)) / 2, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(top1(both, x.numpy()), np.asarray(both(x)).argmax(-1))
    with pytest.raises(ValueError, match="at least two"):
        ensemble([small])


def test_photo_variants_are_seeded_and_transfer_table_counts_changes():
    from course_utils.attacks.transfer import photo_variants, transfer_table

    a, names = photo_variants(["chelsea", "coffee"], extra=2, size=32, seed=3)
    b, _ = photo_variants(["chelsea", "coffee"], extra=2, size=32, seed=3)
    assert a.shape == (6, 32, 32, 3) and names[0] == "chelsea" and names[3] == "coffee"
    np.testing.assert_array_equal(a, b)
    model = _tiny_classifier()
    clean = a
    flipped = 255.0 - a  # a change big enough to move some answers
    table = transfer_table(clean, np.concatenate([clean, flipped]), [0.0, 1.0], {"tiny": model})
    assert table.tiny[0] == 0.0, "unchanged pictures change no answer"
    before, after = (np.asarray(model(v)).argmax(-1) for v in (clean, flipped))
    assert table.tiny[1] == pytest.approx(np.mean(before != after))

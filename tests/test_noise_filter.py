"""Lesson 1's noise filter on the face model: it does what the lesson says, relative claims only."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.attacks.gradient import noise_filter
from course_utils.models.faces import load_gender_cnn
from course_utils.io.images import ImageLoadError, sample_face

MAN, WOMAN = 0, 1


@pytest.fixture(scope="module")
def model():
    return load_gender_cnn()


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return sample_face("astronaut")  # the model reads her as "woman"


def test_the_filter_raises_p_man_and_a_price_on_change_keeps_it_smaller(model, face):
    plain = noise_filter(model, face, "man", steps=200, learning_rate=30.0, progress=False)
    priced = noise_filter(model, face, "man", beta=3e-3, steps=200, learning_rate=30.0, progress=False)
    assert plain.original_class[0] == WOMAN
    p_start = plain.probabilities[0, 0, MAN]
    assert plain.final_probability()[0] > p_start and priced.final_probability()[0] > p_start
    assert priced.l2[0] < plain.l2[0]  # the L2 price makes the filter fainter
    assert np.all(np.diff(plain.losses[:, 0])[:20] < 0)  # gradient descent: the loss falls at first
    assert plain.adversarial.min() >= 0 and plain.adversarial.max() <= 255  # clip=True keeps valid pixels
    assert plain.history.step.max() == 200 and set(plain.history.class_index) == {MAN, WOMAN}


def test_betas_side_by_side_equal_separate_runs(model, face):
    betas = [0.0, 1e-3, 1e-2]
    together = noise_filter(model, face, "man", beta=betas, steps=30, learning_rate=30.0, progress=False)
    for i, beta in enumerate(betas):
        alone = noise_filter(model, face, "man", beta=beta, steps=30, learning_rate=30.0, progress=False)
        np.testing.assert_allclose(together.adversarial[i], alone.adversarial[0], atol=1e-3)
    assert np.all(np.diff(together.l2) < 0)  # a higher price, a smaller filter


def test_the_filtered_face_stays_within_valid_pixels(model, face):
    bright = np.full_like(face, 254.0)
    clipped = noise_filter(model, bright, "man", steps=20, learning_rate=3000.0, progress=False)
    assert clipped.adversarial.max() <= 255.0


def test_bad_settings_are_refused_before_anything_runs(model, face):
    with pytest.raises(ValueError, match="must stay below 2"):
        noise_filter(model, face, "man", beta=0.1, learning_rate=30.0)
    with pytest.raises(ValueError, match="got 2 betas for 3 images"):
        noise_filter(model, np.stack([face] * 3), "man", beta=[0.0, 0.1])
    with pytest.raises(ImageLoadError, match="48x48 grayscale"):
        noise_filter(model, np.zeros((32, 32, 1)), "man")

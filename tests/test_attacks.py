"""Attacks do what the lessons promise, within their budgets, and refuse bad input clearly."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.attacks.gradient import input_gradient
from course_utils.attacks.pgd import fgsm, iterative_attack
from course_utils.io.images import ImageLoadError

PENGUIN, MOUSE = 145, 673


def test_iterative_attack_turns_the_cat_into_a_king_penguin(imagenet_model, cat_224):
    result = iterative_attack(imagenet_model, cat_224, "king penguin", epsilon=4.0, steps=20, progress=False)
    assert result.success[0]
    assert result.final_probability()[0] >= 0.95
    assert 0 <= result.steps_to_success[0] <= 20
    assert result.linf[0] <= 4.0 + 1e-3, "the perturbation left its L-inf budget"
    assert result.adversarial.min() >= 0 and result.adversarial.max() <= 255
    np.testing.assert_allclose(result.delta, result.adversarial - cat_224[None])
    # The history has one row per step and tracked class, and the probabilities match it.
    h = result.history
    assert set(h.columns) >= {"step", "image", "class_index", "label", "probability", "loss"}
    assert h.step.max() == 20 and set(h.class_index) == {PENGUIN, int(result.original_class[0])}
    last = h[(h.step == 20) & (h.class_index == PENGUIN)].probability.item()
    assert last == pytest.approx(result.final_probability()[0])


def test_budget_is_respected_at_every_epsilon(imagenet_model, cat_224):
    for eps in (0.0, 0.5, 2.0):
        r = iterative_attack(imagenet_model, cat_224, "mouse", epsilon=eps, steps=3, progress=False)
        assert r.linf[0] <= eps + 1e-3
    assert r.history.step.max() == 3


def test_batch_of_images_and_targets(imagenet_model, cat_224):
    r = iterative_attack(imagenet_model, np.stack([cat_224, cat_224]), ["king penguin", "tabby"], epsilon=4.0, steps=10, progress=False)
    assert list(r.labels) == [PENGUIN, 281]
    assert r.success.all() and r.adversarial.shape == (2, 224, 224, 3)
    assert r.final_probability()[1] >= 0.9  # the confidence push of lesson 2 (measured 0.999 on both numeric paths)
    assert len(r.summary()) == 2


def test_untargeted_leaves_the_original_class(imagenet_model, cat_224):
    r = iterative_attack(imagenet_model, cat_224, None, epsilon=2.0, steps=5, targeted=False, progress=False)
    assert r.labels[0] == r.original_class[0]
    assert r.success[0] and r.predicted[0] != r.original_class[0]


def test_fgsm_moves_every_pixel_by_epsilon(imagenet_model, cat_224):
    r = fgsm(imagenet_model, cat_224, "king penguin", epsilon=2.0)
    moved = np.abs(r.delta)
    inside = (cat_224[None] >= 2) & (cat_224[None] <= 253)  # pixels that clipping cannot touch
    assert np.allclose(moved[inside], 2.0, atol=1e-3)
    assert r.steps == 1
    assert r.final_probability()[0] > r.probabilities[0, 0, PENGUIN]


def test_input_gradient_has_the_photo_shape_and_points_uphill(imagenet_model, cat_224):
    g = input_gradient(imagenet_model, cat_224, "king penguin")
    assert g.shape == (1, 224, 224, 3) and np.isfinite(g).all() and np.abs(g).max() > 0
    r = fgsm(imagenet_model, cat_224, PENGUIN, epsilon=0.5)
    assert r.final_probability()[0] > r.probabilities[0, 0, PENGUIN]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epsilon": -1.0}, ValueError, "epsilon must be"),
        ({"epsilon": float("nan")}, ValueError, "epsilon must be"),
        ({"steps": 0}, ValueError, "steps must be"),
        ({"steps": 2.5}, ValueError, "steps must be"),
        ({"target": 1000}, ValueError, "outside 0..999"),
        ({"target": "king pinguin"}, KeyError, "Did you mean"),
        ({"target": ["mouse", "tabby"]}, ValueError, "2 targets for 1 images"),
        ({"step_size": 0.0}, ValueError, "step_size must be"),
    ],
)
def test_bad_arguments(imagenet_model, cat_224, kwargs, error, message):
    args = {"target": "mouse", "epsilon": 4.0, "steps": 2, **kwargs}
    with pytest.raises(error, match=message):
        iterative_attack(imagenet_model, cat_224, progress=False, **args)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((100, 100, 3)), "size=224"),
        (np.full((224, 224, 3), 2.0) * 255, "0..255"),
        (np.full((224, 224, 3), np.inf), "NaN or infinite"),
        (np.zeros((224, 224)), r"expected an image \(H, W, C\)"),
    ],
)
def test_bad_images(imagenet_model, image, message):
    with pytest.raises(ImageLoadError, match=message):
        iterative_attack(imagenet_model, image, "mouse", epsilon=1.0, steps=1, progress=False)

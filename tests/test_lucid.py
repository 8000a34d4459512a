"""Lucid-style feature visualisation (course_utils.lucid): objectives, diversity, and class
pictures judged by a second network (EfficientNet-Lite2, 260 px) that never saw the optimisation.

Few steps and small pictures; margins hold on any CPU (oneDNN on or off): every asserted
probability is far (>= 0.5 in log-odds) from its threshold."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.layers import feature_model
from course_utils.lucid import center_activation, diversity, judge_classes, render_class, render_filters
from course_utils.param import Fourier
from course_utils.visualize import maximize_class


def _log_odds(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


@pytest.fixture(scope="module")
def lite2():
    from course_utils.models import load_imagenet_model

    return load_imagenet_model("efficientnet_lite2", verbose=False)


def test_diversity_is_high_for_alike_pictures_and_zero_for_one():
    acts = tf.random.stateless_uniform((1, 5, 5, 4), seed=[0, 1])
    assert diversity(acts).numpy() == pytest.approx([0.0], abs=1e-6)
    same = tf.tile(acts, [3, 1, 1, 1])
    assert np.allclose(diversity(same).numpy(), 2.0, atol=1e-5)  # N - 1 others, each identical
    a = np.zeros((2, 2, 2, 2), np.float32)
    a[0, ..., 0], a[1, ..., 1] = 1.0, 1.0  # different channels: orthogonal Gram matrices
    assert np.allclose(diversity(tf.constant(a)).numpy(), 0.0)


def test_center_activation_reads_the_centre_position():
    acts = np.zeros((2, 5, 6, 3), np.float32)
    acts[0, 2, 3, 1], acts[1, 2, 3, 2] = 7.0, 9.0
    assert center_activation(tf.constant(acts), tf.constant([1, 2])).numpy().tolist() == [7.0, 9.0]


def test_diversity_makes_pictures_of_one_filter_differ(imagenet_model):
    layer = "block4_expand_bn"
    kwargs = dict(steps=20, size=48, seed=0, progress=False)
    alike = render_filters(imagenet_model, layer, [3, 3, 3], **kwargs)
    apart = render_filters(imagenet_model, layer, [3, 3, 3], diversity_weight=1.0, **kwargs)
    extractor = feature_model(imagenet_model, imagenet_model.get_layer(layer))
    sim = [float(diversity(extractor(v.pixels)).numpy().mean()) for v in (alike, apart)]
    assert sim[1] < 0.8 * sim[0], sim  # measured 1.0 vs 1.9
    assert apart.lift_final.min() > 0.5 * alike.lift_final.min()  # still pictures of the filter (2.1 vs 2.8)


def test_render_filters_refuses_bad_input(imagenet_model):
    with pytest.raises(ValueError, match="unknown objective 'max'.*'mean', 'center'"):
        render_filters(imagenet_model, "block4_expand_bn", [0], steps=1, objective="max")
    with pytest.raises(ValueError, match="unknown param 'fft'.*'pixels', 'fourier'"):
        render_filters(imagenet_model, "block4_expand_bn", [0], steps=1, param="fft")
    with pytest.raises(ValueError, match="param is 64x64 but the model takes 224x224"):
        render_class(imagenet_model, "sea snake", steps=1, param=Fourier(64))


def test_lucid_class_pictures_convince_a_second_network(imagenet_model, lite2):
    targets = ["sea snake", "goldfish"]
    lucid = render_class(imagenet_model, targets, steps=30, progress=False)
    assert lucid.pixels.shape == (2, 224, 224, 3) and lucid.pixels.min() >= 0 and lucid.pixels.max() <= 255
    plain = maximize_class(imagenet_model, targets, steps=40, step_size=2.0, progress=False)
    table = judge_classes(imagenet_model, lite2, targets, {"plain": plain, "lucid": lucid})
    for name in targets:
        row, base = table.loc[(name, "lucid")], table.loc[(name, "plain")]
        assert _log_odds(row.p_model) > _log_odds(0.99) + 0.5, row  # >= 0.99 on the model it was made on
        assert row.judge_rank <= 2, row  # top-5 on Lite2 (asserted: top-2)
        assert _log_odds(row.p_judge) > _log_odds(base.p_judge) + 3.0, (row, base)  # far above the plain picture

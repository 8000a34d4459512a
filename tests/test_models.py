"""The ImageNet model: the EfficientNet-Lite0 port is checked three independent ways."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from course_utils.images import SAMPLE_IMAGES, load_image, sample_image
from course_utils.models import (
    WeightsUnavailableError,
    default_lite0_weights_path,
    load_efficientnet_lite0,
    load_imagenet_model,
    load_vgg16,
    predict_top_k,
)
from course_utils.pth import CorruptWeightsError, load_pth_state_dict

REFERENCE = Path(__file__).parent / "data" / "efficientnet_lite0_reference_logits.npz"
CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _reference_inputs() -> np.ndarray:
    photos = [load_image(sample_image(n), size=224) for n in ("astronaut", "chelsea", "coffee")]
    noise = np.random.default_rng(0).uniform(0, 255, (224, 224, 3)).astype(np.float32)
    return np.stack([*photos, noise])


def test_port_reproduces_recorded_logits(imagenet_model):
    """Logits recorded once from this port (tests/data): any change to layout, padding,
    epsilon or preprocessing moves them far more than the tolerance."""
    ref = np.load(REFERENCE)["logits"]
    got = np.asarray(imagenet_model(_reference_inputs()))
    np.testing.assert_allclose(got, ref, atol=2e-3, rtol=1e-3)


def test_batchnorm_statistics_match_the_activations_they_normalise(imagenet_model):
    """Each BN layer's running variance was measured on the activations of the conv before it.
    If kernels were transposed wrongly, or the preprocessing were off, the activations of our
    conv layers would no longer have those variances."""
    x = np.stack([load_image(sample_image(n), size=224) for n in SAMPLE_IMAGES])
    for conv, bn in [("stem_conv", "stem_bn"), ("block2_expand_conv", "block2_expand_bn"), ("block8_project_conv", "block8_project_bn")]:
        act = np.asarray(keras.Model(imagenet_model.input, imagenet_model.get_layer(conv).output)(x))
        running_var = np.asarray(imagenet_model.get_layer(bn).moving_variance)
        r = np.corrcoef(np.log(act.var(axis=(0, 1, 2)) + 1e-3), np.log(running_var + 1e-3))[0, 1]
        assert r > 0.9, f"{conv}: activation variances do not match {bn}'s statistics (r={r:.2f})"


def test_batchnorm_settings_and_weights_are_the_files(imagenet_model):
    state = load_pth_state_dict(default_lite0_weights_path())
    bn = imagenet_model.get_layer("block5_dw_bn")
    assert bn.epsilon == pytest.approx(1e-3)
    np.testing.assert_array_equal(np.asarray(bn.moving_variance), state["_blocks.5._bn1.running_var"])
    np.testing.assert_array_equal(np.asarray(bn.gamma), state["_blocks.5._bn1.weight"])
    assert imagenet_model.count_params() == 4_694_024  # every number in the file has a place, BN statistics included
    assert imagenet_model.input_shape == (None, 224, 224, 3) and imagenet_model.output_shape == (None, 1000)


def test_cat_is_a_cat_and_coffee_is_espresso(imagenet_model):
    cat = predict_top_k(imagenet_model, load_image(sample_image("chelsea"), size=224), k=5)
    assert cat.class_index[0] in CAT_CLASSES
    assert set(cat.class_index[:3]) <= CAT_CLASSES
    coffee = predict_top_k(imagenet_model, load_image(sample_image("coffee"), size=224), k=1)
    assert coffee.label[0] == "espresso" and coffee.probability[0] > 0.8


def test_top_k_table(imagenet_model, cat_224):
    table = predict_top_k(imagenet_model, np.stack([cat_224, cat_224]), k=3)
    assert list(table.columns) == ["image", "rank", "class_index", "label", "probability"]
    assert len(table) == 6 and list(table.image) == [0, 0, 0, 1, 1, 1] and list(table['rank']) == [1, 2, 3] * 2
    assert (table.groupby('image').probability.diff().dropna() <= 0).all()  # sorted within each image
    assert (table.groupby("image").probability.sum() <= 1).all()
    with pytest.raises(ValueError, match="k must be"):
        predict_top_k(imagenet_model, cat_224, k=0)


def test_default_model_is_lite0_and_touches_no_network(monkeypatch, tmp_path, no_network, capsys):
    """Neither the default nor "auto" (with VGG16 not cached) may look anything up on the network."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty cache
    monkeypatch.delenv("COURSE_IMAGENET_MODEL", raising=False)
    assert load_imagenet_model().name == "efficientnet_lite0"
    assert "ImageNet model: efficientnet_lite0" in capsys.readouterr().out
    assert load_imagenet_model("auto").name == "efficientnet_lite0"
    assert no_network == [], f"the default load touched the network: {no_network}"
    assert not any(tmp_path.rglob("*")), "nothing may be written to the cache"


def test_vgg16_offline_is_a_clear_error_and_leaves_no_file(monkeypatch, tmp_path, no_network):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="(?s)VGG16.*connection failed.*make fetch-vgg16"):
        load_imagenet_model("vgg16")  # an explicit choice may try to download
    assert no_network, "the explicit choice did try the network"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "no half-written file may be left in the cache"
    with pytest.raises(WeightsUnavailableError, match="not in the Keras cache"):
        load_vgg16(download=False)


def test_the_environment_variable_chooses(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr("course_utils.models.load_vgg16", lambda: keras.Sequential(name="vgg16"))
    monkeypatch.setenv("COURSE_IMAGENET_MODEL", "vgg16")
    assert load_imagenet_model(verbose=False).name == "vgg16"
    assert load_imagenet_model("auto", verbose=False).name == "vgg16"  # the reader's choice wins over the cache
    monkeypatch.setenv("COURSE_IMAGENET_MODEL", "resnet50")
    with pytest.raises(ValueError, match="COURSE_IMAGENET_MODEL.*'resnet50'.*efficientnet_lite0, vgg16"):
        load_imagenet_model()
    with pytest.raises(ValueError, match="unknown ImageNet model 'resnet'"):
        load_imagenet_model("resnet")


def test_corrupt_weights_file_is_reported(tmp_path):
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(default_lite0_weights_path().read_bytes()[:100_000])
    with pytest.raises(CorruptWeightsError, match="truncated"):
        load_efficientnet_lite0(bad)

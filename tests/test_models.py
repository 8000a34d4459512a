"""The ImageNet models. Each EfficientNet-Lite port (Lite0, Lite1, Lite2) is checked three
independent ways: against logits recorded from the PyTorch reference implementation, against the
BatchNorm statistics stored in its weights file, and by its parameter count. Then choosing and
loading models."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from course_utils.io.images import SAMPLE_IMAGES, ImageLoadError, load_image, sample_image
from course_utils.io.images import WeightsUnavailableError
from course_utils.models.efficientnet_lite import LITE_VARIANTS, load_efficientnet_lite
from course_utils.models.efficientnet_lite import _lite_variant as lite_variant, _weights_path as default_lite_weights_path
from course_utils.models.imagenet import (
    input_size,
    load_imagenet_model,
    _load_vgg16 as load_vgg16,
    predict_top_k,
)
from course_utils.io.pth import _CorruptWeightsError as CorruptWeightsError, load_pth_state_dict

DATA = Path(__file__).parent / "data"
CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
PARAMETERS = {"efficientnet_lite0": 4_694_024, "efficientnet_lite1": 5_470_344, "efficientnet_lite2": 6_150_168}
LAYER_NAME = re.compile(
    r"pixels|preprocess|avg_pool|logits|(stem|top)_(conv|bn|relu6)"
    r"|block\d+_(expand_conv|expand_bn|expand_relu6|dwconv|dw_bn|dw_relu6|project_conv|project_bn|add)"
)


@pytest.fixture(scope="module", params=list(LITE_VARIANTS))
def lite(request) -> keras.Model:
    """Each EfficientNet-Lite variant with its ImageNet weights, loaded once for this module."""
    if request.param == "efficientnet_lite0":
        return request.getfixturevalue("imagenet_model")  # the session's Lite0
    return load_imagenet_model(request.param)


def test_port_matches_the_pytorch_reference(lite):
    """Logits recorded once from the PyTorch reference implementation (efficientnet-lite-pytorch,
    tools/record_lite_reference.py) for the very same uint8 inputs. The port differs by ~2e-5;
    a wrong padding (symmetric instead of TF "same"), BatchNorm epsilon or preprocessing moves
    the logits by 1.7 to 4.8, far beyond the tolerance."""
    ref = np.load(DATA / f"{lite.name}_reference.npz")
    inputs = ref["inputs"]
    assert inputs.dtype == np.uint8 and inputs.shape[1:] == (SIZES[lite.name],) * 2 + (3,)
    got = np.asarray(lite(inputs.astype(np.float32), training=False))
    np.testing.assert_allclose(got, ref["logits"], atol=2e-3, rtol=1e-3)
    np.testing.assert_array_equal(got.argmax(-1), ref["logits"].argmax(-1))


def test_batchnorm_statistics_match_the_activations_they_normalise(lite):
    """Each BN layer's running variance was measured on the activations of the conv before it.
    If kernels were transposed wrongly, or the preprocessing were off, the activations of our
    conv layers would no longer have those variances: their pattern over channels (correlation)
    and, for the stem, their scale (the ImageNet mean/std instead of 127/128 gives ~3.5x)."""
    size = input_size(lite)
    x = np.stack([load_image(sample_image(n), size=size) for n in SAMPLE_IMAGES])
    pairs = [("stem_conv", "stem_bn"), ("block2_expand_conv", "block2_expand_bn"), ("block4_project_conv", "block4_project_bn")]
    acts = keras.Model(lite.input, [lite.get_layer(conv).output for conv, _ in pairs])(x)
    for (conv, bn), act in zip(pairs, acts):
        variance = np.asarray(act).var(axis=(0, 1, 2))
        running_var = np.asarray(lite.get_layer(bn).moving_variance)
        r = np.corrcoef(np.log(variance + 1e-3), np.log(running_var + 1e-3))[0, 1]
        assert r > 0.85, f"{lite.name} {conv}: activation variances do not match {bn}'s statistics (r={r:.2f})"
        if conv == "stem_conv":
            ratio = float(np.median(variance / (running_var + 1e-3)))
            assert 0.4 < ratio < 2.5, f"{lite.name}: stem activations have {ratio:.2f}x the variance stem_bn expects"


def test_structure_and_weights_are_the_files(lite):
    """Every number in the file has a place (BN statistics included), the layer names follow the
    one scheme, and the input size is the variant's."""
    size = SIZES[lite.name]
    state = load_pth_state_dict(default_lite_weights_path(lite.name))
    in_file = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert lite.count_params() == in_file == PARAMETERS[lite.name]
    assert lite.input_shape == (None, size, size, 3) and lite.output_shape == (None, 1000)
    assert input_size(lite) == size == lite_variant(lite.name).resolution
    assert [n for n in (layer.name for layer in lite.layers) if not LAYER_NAME.fullmatch(n)] == []
    bn = lite.get_layer("block5_dw_bn")
    assert bn.epsilon == pytest.approx(1e-3)
    np.testing.assert_array_equal(np.asarray(bn.moving_variance), state["_blocks.5._bn1.running_var"])
    np.testing.assert_array_equal(np.asarray(bn.gamma), state["_blocks.5._bn1.weight"])


def test_chelsea_is_a_cat(lite):
    table = predict_top_k(lite, load_image(sample_image("chelsea"), size=input_size(lite)), k=1)
    assert table.class_index[0] in CAT_CLASSES, f"{lite.name} calls the cat {table.label[0]!r}"


def test_images_of_another_size_are_refused_with_the_size_to_use(lite, cat_224):
    if input_size(lite) == 224:
        assert len(predict_top_k(lite, cat_224, k=1)) == 1
    else:
        with pytest.raises(ImageLoadError, match=rf"{lite.name} takes images of shape.*size={input_size(lite)}"):
            predict_top_k(lite, cat_224)


def test_variants_are_named_and_unknown_ones_list_the_choices():
    assert [(v.width, v.depth, v.resolution) for v in LITE_VARIANTS.values()] == [(1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260)]
    with pytest.raises(ValueError, match="'efficientnet_lite3'.*efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
        load_efficientnet_lite("efficientnet_lite3")
    with pytest.raises(ValueError, match="unknown ImageNet model 'efficientnet_lite4'.*efficientnet_lite2, vgg16"):
        load_imagenet_model("efficientnet_lite4")


def test_weights_of_another_variant_are_refused():
    with pytest.raises(ValueError, match="not an EfficientNet-Lite1 state dict"):
        load_efficientnet_lite("efficientnet_lite1", default_lite_weights_path("efficientnet_lite0"))


def test_lite0_sees_cats_and_espresso(imagenet_model):
    """Lite0, the lessons' model: the cat photo's top three are all cats, the coffee is espresso."""
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
    monkeypatch.setattr("course_utils.models.imagenet._load_vgg16", lambda: keras.Sequential(name="vgg16"))
    monkeypatch.setenv("COURSE_IMAGENET_MODEL", "vgg16")
    assert load_imagenet_model(verbose=False).name == "vgg16"
    assert load_imagenet_model("auto", verbose=False).name == "vgg16"  # the reader's choice wins over the cache
    monkeypatch.setattr("course_utils.models.imagenet.load_efficientnet_lite", lambda name: keras.Sequential(name=name))
    for name in ("efficientnet_lite1", "efficientnet_lite2"):
        monkeypatch.setenv("COURSE_IMAGENET_MODEL", name)
        assert load_imagenet_model(verbose=False).name == name
    monkeypatch.setenv("COURSE_IMAGENET_MODEL", "resnet50")
    with pytest.raises(ValueError, match="COURSE_IMAGENET_MODEL.*'resnet50'.*efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, vgg16"):
        load_imagenet_model()
    with pytest.raises(ValueError, match="unknown ImageNet model 'resnet'"):
        load_imagenet_model("resnet")


def test_corrupt_weights_file_is_reported(tmp_path):
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(default_lite_weights_path("efficientnet_lite0").read_bytes()[:100_000])
    with pytest.raises(CorruptWeightsError, match="truncated"):
        load_efficientnet_lite("efficientnet_lite0", bad)

"""VGG16 as a student gets it: loaded through the real loader (``load_imagenet_model("vgg16")``) from the Keras cache.

The cache file is written once per session in Keras' legacy HDF5 layout (the layout of the real
``vgg16_weights_tf_dim_ordering_tf_kernels.h5``) with random weights, so nothing is downloaded.
Then every lesson API runs on that model with few steps and one small batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import h5py
import keras
import numpy as np
import pytest

from course_utils.attacks.gradient import input_gradient
from course_utils.attacks.pgd import fgsm, iterative_attack
from course_utils.io.images import KNOWN_FILES
from course_utils.io.images import WeightsUnavailableError
from course_utils.models.imagenet import _load_vgg16 as load_vgg16, load_imagenet_model, predict_top_k
from course_utils.models.forward import _feature_layers as feature_layers, conv_layers, layer_summary, receptive_field
from course_utils.vis.visualize import maximize_class, maximize_filters

VGG16_FILE = KNOWN_FILES["vgg16"].filename
BLOG_LAYERS = [f"block{i}_conv1" for i in range(1, 6)]


def write_legacy_vgg16_weights(path: Path) -> None:
    """Random VGG16 weights in the legacy Keras HDF5 layout that ``model.load_weights(".h5")``
    reads: attribute ``layer_names`` on the file, one group per layer with attribute
    ``weight_names``, one dataset per weight (weightless layers have an empty list). Seeded: with
    unseeded random weights the filters a test looks at were sometimes dead (no gradient at all)."""
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, classifier_activation=None)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        for layer in model.layers:
            group = f.create_group(layer.name)
            values = layer.get_weights()
            names = [f"{layer.name}_{kind}_1:0" for kind in ("W", "b")][: len(values)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, values):
                group.create_dataset(name, data=value)


@pytest.fixture(scope="session")
def vgg16_keras_home(tmp_path_factory) -> Iterator[Path]:
    """A KERAS_HOME whose cache holds a random-weight VGG16 file (528 MiB, written once, deleted
    after the session: pytest keeps old temporary folders)."""
    home = tmp_path_factory.mktemp("keras_home")
    (home / "models").mkdir()
    write_legacy_vgg16_weights(home / "models" / VGG16_FILE)
    yield home
    (home / "models" / VGG16_FILE).unlink()


@pytest.fixture(scope="module")
def vgg16(vgg16_keras_home) -> keras.Model:
    """VGG16 loaded by the course's loader from that cache, no network allowed to matter."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_HOME", str(vgg16_keras_home))
        return load_vgg16(download=False)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from course_utils.io.images import load_image, sample_image

    return load_image(sample_image("chelsea"), size=224)[None]  # (1, 224, 224, 3) pixels 0..255


# --------------------------------------------------------------------------- the model


def test_loader_gives_one_flat_vgg16_with_the_files_weights(vgg16, vgg16_keras_home, photo):
    assert vgg16.name == "vgg16"
    assert vgg16.input_shape == (None, 224, 224, 3) and vgg16.output_shape == (None, 1000)
    assert [l.name for l in vgg16.layers[:3]] == ["pixels", "preprocess", "block1_conv1"]
    with h5py.File(vgg16_keras_home / "models" / VGG16_FILE, "r") as f:
        np.testing.assert_array_equal(vgg16.get_layer("block3_conv2").get_weights()[0], f["block3_conv2"]["block3_conv2_W_1:0"][()])
        np.testing.assert_array_equal(vgg16.get_layer("predictions").get_weights()[1], f["predictions"]["predictions_b_1:0"][()])
    # Caffe preprocessing inside: the first conv sees what Keras' preprocess_input makes of the pixels.
    seen = keras.Model(vgg16.input, vgg16.get_layer("preprocess").output)(photo)
    np.testing.assert_allclose(seen, keras.applications.vgg16.preprocess_input(photo.copy()), atol=1e-4)
    # Logits, not probabilities.
    assert vgg16.get_layer("predictions").activation is keras.activations.linear


def test_layer_apis(vgg16):
    assert conv_layers(vgg16, n=5) == BLOG_LAYERS
    assert len(feature_layers(vgg16)) == 13
    assert receptive_field(vgg16, "block5_conv3") == 196  # the textbook value
    table = layer_summary(vgg16, mark=BLOG_LAYERS)
    assert list(table.layer[table.shown]) == BLOG_LAYERS
    first, last = table.iloc[0], table.iloc[-1]
    assert (first.layer, first["size"], first.filters, first.receptive_field) == ("block1_conv1", "224x224", 64, 3)
    assert (last.layer, last["size"], last.filters, last.receptive_field) == ("block5_conv3", "14x14", 512, 196)


def test_maximize_filters(vgg16):
    vis = maximize_filters(vgg16, "block2_conv1", [0, 5], steps=2, size=(32, 32), progress=False)
    assert vis.pixels.shape == (2, 32, 32, 3) and vis.images.dtype == np.uint8
    assert np.isfinite(vis.pixels).all() and vis.pixels.min() >= 0 and vis.pixels.max() <= 255
    assert np.abs(vis.pixels - vis.initial).max() > 0.5  # the gradient reached the input
    assert list(vis.history.step.unique()) == [0, 1, 2]


def test_maximize_class(vgg16):
    vis = maximize_class(vgg16, "sea snake", steps=2, progress=False)
    assert vis.what == ["sea snake"] and vis.pixels.shape == (1, 224, 224, 3)
    assert np.abs(vis.pixels - vis.initial).max() > 0.5
    logits = vis.history.logit.to_numpy()
    assert logits[-1] > logits[0]  # two steps up the logit's gradient raise it


def test_attacks_and_gradient(vgg16, photo):
    one = fgsm(vgg16, photo, "king penguin", epsilon=4.0)
    assert one.adversarial.shape == (1, 224, 224, 3)
    assert one.linf[0] == pytest.approx(4.0, abs=1e-3)
    assert one.final_probability() > one.probabilities[0, 0, one.labels[0]]  # the step helped the target
    many = iterative_attack(vgg16, photo, None, epsilon=2.0, steps=2, targeted=False, progress=False)
    assert many.steps == 2 and many.linf[0] <= 2.0 + 1e-3
    grad = input_gradient(vgg16, photo, "king penguin")
    assert grad.shape == (1, 224, 224, 3) and np.isfinite(grad).all() and np.abs(grad).max() > 0


def test_predict_top_k(vgg16, photo):
    table = predict_top_k(vgg16, photo, k=3)
    assert len(table) == 3 and list(table["rank"]) == [1, 2, 3]
    assert table.probability.is_monotonic_decreasing and table.probability.sum() <= 1 + 1e-6


# --------------------------------------------------------------------------- choosing it


def test_auto_takes_cached_vgg16_without_touching_the_network(vgg16_keras_home, monkeypatch, no_network, capsys):
    monkeypatch.setenv("KERAS_HOME", str(vgg16_keras_home))
    monkeypatch.delenv("COURSE_IMAGENET_MODEL", raising=False)
    model = load_imagenet_model("auto")
    assert model.name == "vgg16" and model.get_layer("block1_conv1").output is not None
    assert "ImageNet model: vgg16" in capsys.readouterr().out
    assert no_network == []


def test_a_damaged_cache_file_is_a_clear_error(tmp_path, monkeypatch, no_network, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / VGG16_FILE).write_bytes(b"<html>not weights</html>")
    with pytest.raises(WeightsUnavailableError, match="not a usable VGG16 weights file.*--force"):
        load_vgg16()
    monkeypatch.delenv("COURSE_IMAGENET_MODEL", raising=False)
    assert load_imagenet_model("auto").name == "efficientnet_lite0"  # "auto" still gives a model
    out = capsys.readouterr().out
    assert "not a usable VGG16 weights file" in out and "Using EfficientNet-Lite0 instead" in out
    assert no_network == []


def test_lucid_pictures_run_on_vgg16(vgg16, imagenet_model):
    """Lesson 3's Lucid section on the VGG16 graph load_vgg16 builds: class and filter pictures,
    the parameterisation switch of maximize_class, and the judge (here Lite0 judging VGG16)."""
    from course_utils.vis.result import judge_classes

    targets = ["sea snake", "goldfish"]
    lucid = maximize_class(vgg16, targets, steps=2, style="lucid", progress=False)
    assert lucid.pixels.shape == (2, 224, 224, 3) and np.isfinite(lucid.final).all()
    fourier = maximize_class(vgg16, targets, steps=2, param="fourier", progress=False)
    assert fourier.pixels.min() >= 0 and fourier.pixels.max() <= 255
    filters = maximize_filters(vgg16, "block3_conv1", [0, 1], steps=2, size=64, style="lucid", progress=False)
    assert filters.pixels.shape == (2, 64, 64, 3) and np.isfinite(filters.final).all()
    table = judge_classes(vgg16, imagenet_model, targets, {"lucid": lucid, "fourier": fourier})
    assert len(table) == 4 and table["judge_rank"].between(1, 1000).all()

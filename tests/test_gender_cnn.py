"""Tests of the lesson-1 gender CNN: shipped weights, architecture, a short training run, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import course_utils  # noqa: F401  (first: quiets TensorFlow's start-up)
import keras
import numpy as np
import pytest

from course_utils.models.faces import (
    DEFAULT_WEIGHTS,
    GENDER_CLASSES,
    build_gender_cnn,
    load_gender_cnn,
)
from course_utils.models.imagenet import ClassNames

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces48.npz"


@pytest.fixture(scope="module")
def shipped_model() -> keras.Model:
    return load_gender_cnn()


def astronaut_face() -> np.ndarray:
    """The lessons' well-framed face of skimage's astronaut (``sample_face``): (48, 48) float32
    pixels 0..255, the same face the model card's smoke test uses."""
    from course_utils.io.images import sample_face

    return sample_face("astronaut")[..., 0]


# (a) shipped weights and architecture ------------------------------------------------------


def test_shipped_weights_exist_in_repo_data_folder():
    assert DEFAULT_WEIGHTS == REPO_ROOT / "data" / "gender_cnn.weights.h5"
    assert DEFAULT_WEIGHTS.is_file()
    assert 10_000 < DEFAULT_WEIGHTS.stat().st_size < 100_000


def test_architecture_and_parameter_count(shipped_model):
    model = shipped_model
    assert model.count_params() == 3212
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, 2)
    names = [layer.name for layer in model.layers]
    assert names == [
        "pixels", "rescale", "conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "flatten",
        "logits",
    ]
    assert isinstance(model.get_layer("rescale"), keras.layers.Rescaling)
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)
    for name, filters in (("conv1", 3), ("conv2", 6), ("conv3", 12)):
        conv = model.get_layer(name)
        assert conv.filters == filters
        assert tuple(conv.kernel_size) == (5, 5)
        assert conv.padding == "same"
        assert conv.activation is keras.activations.relu
    assert model.get_layer("logits").activation is keras.activations.linear
    # the trained weights differ from a fresh initialisation
    fresh = build_gender_cnn()
    assert not np.allclose(fresh.get_layer("conv1").kernel, model.get_layer("conv1").kernel)


def test_classes_and_index():
    assert GENDER_CLASSES == ("man", "woman")
    classes = ClassNames.of(build_gender_cnn())  # the model names its classes
    assert classes.names == GENDER_CLASSES
    assert classes.index(0) == 0
    assert classes.index(1) == 1
    assert classes.index(np.int64(1)) == 1
    assert classes.index("Woman") == 1
    assert classes.index(" MAN ") == 0


# (b) predictions of the shipped model ------------------------------------------------------


def test_output_shape_and_logits(shipped_model):
    batch = np.random.default_rng(0).uniform(0, 255, size=(3, 48, 48, 1)).astype(np.float32)
    logits = np.asarray(shipped_model(batch))
    assert logits.shape == (3, 2)
    assert np.isfinite(logits).all()


def test_astronaut_crop_is_classified_woman(shipped_model):
    face = astronaut_face()
    assert face.shape == (48, 48) and 0 <= face.min() and face.max() <= 255
    logits = np.asarray(shipped_model(face[None, :, :, None]))
    probabilities = np.asarray(keras.ops.softmax(logits, axis=-1))[0]
    assert int(np.argmax(logits)) == ClassNames.of(shipped_model).index("woman"), probabilities
    # Measured 0.698 on both numeric paths; 0.55 keeps a margin of 0.6 in log-odds (issue: checks that hold on any CPU).
    assert probabilities[1] > 0.55, probabilities


# (c) a short training run on the shared data -----------------------------------------------


@pytest.mark.skipif(
    not SHARED_FACES.is_file(),
    reason=f"the shared face set ../shared/data/faces48.npz is absent ({SHARED_FACES}); "
    "only retraining needs it",
)
def test_short_training_beats_chance():
    from tools.facetrain.training import evaluate, load_faces, split_faces, train_gender_cnn

    images, labels = load_faces(SHARED_FACES)
    assert images.shape == (4915, 48, 48, 1) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 1
    rng = np.random.default_rng(0)
    subset = rng.choice(len(labels), size=1200, replace=False)
    x, y = images[subset], labels[subset]
    train_idx, test_idx = split_faces(y, test_fraction=0.25, seed=0)
    assert len(np.intersect1d(train_idx, test_idx)) == 0
    assert len(train_idx) + len(test_idx) == 1200
    # A few fast epochs: a higher step size and smaller batches than the shipped model, no
    # augmentation (seeds 0..2 reach 0.79..0.88 in about 8 s on two cores).
    model, history = train_gender_cnn(
        x[train_idx], y[train_idx], epochs=5, batch_size=16, learning_rate=3e-3, seed=0,
        augment=False,
    )
    assert len(history["loss"]) == 5
    accuracy = evaluate(model, x[test_idx], y[test_idx])
    # seeds 0..2 reach 0.79..0.88; always guessing "woman" scores 0.57
    assert accuracy >= 0.65, f"a short training run should beat always guessing the larger class (0.57); got {accuracy:.3f}"


def test_split_is_stratified_and_seeded():
    from tools.facetrain.training import split_faces

    labels = np.array([0] * 40 + [1] * 60)
    train_idx, test_idx = split_faces(labels, test_fraction=0.2, seed=3)
    assert len(test_idx) == 20 and np.sum(labels[test_idx] == 0) == 8
    assert np.array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(100))
    again = split_faces(labels, test_fraction=0.2, seed=3)
    assert np.array_equal(again[1], test_idx)


# (d) bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [2, -1, "girl", "", None, 1.0, True, "0"])
def test_face_class_index_rejects(bad):
    with pytest.raises(ValueError, match="allowed"):
        ClassNames.of(GENDER_CLASSES).index(bad)


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_face_model.py --variant gender"):
        load_gender_cnn(tmp_path / "nothing.weights.h5")


def test_truncated_weights_file(tmp_path):
    damaged = tmp_path / "damaged.weights.h5"
    data = DEFAULT_WEIGHTS.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged") as info:
        load_gender_cnn(damaged)
    assert "git checkout" in str(info.value)


def test_load_faces_errors(tmp_path):
    from tools.facetrain.training import load_faces

    with pytest.raises(FileNotFoundError, match="shared/data"):
        load_faces(tmp_path / "absent.npz")
    np.savez(tmp_path / "wrong.npz", pictures=np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(ValueError, match="images"):
        load_faces(tmp_path / "wrong.npz")


def test_weights_are_saved_atomically(tmp_path, shipped_model):
    from tools.facetrain.training import save_weights_atomically

    target = tmp_path / "copy.weights.h5"
    shutil.copy(DEFAULT_WEIGHTS, target)
    save_weights_atomically(shipped_model, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.weights.h5"]
    reloaded = load_gender_cnn(target)
    face = astronaut_face()[None, :, :, None]
    np.testing.assert_allclose(np.asarray(reloaded(face)), np.asarray(shipped_model(face)))

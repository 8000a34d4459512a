"""Lesson 5's evolutionary fooling images: a gradient-free search that keeps the better pictures."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.evolution import (
    GridEncoding,
    evolve_fooling_images,
    fooling_probabilities,
    load_fooling_genomes,
)
from course_utils.models.faces import load_gender_cnn

FACE = GridEncoding(grid=6, tiles=2, size=48, channels=1)


@pytest.fixture(scope="module")
def face_cnn():
    return load_gender_cnn()


class CountingModel:
    """A tiny classifier of 16 x 16 colour pictures that counts the pictures it is shown."""

    def __init__(self) -> None:
        self.seen = 0
        rng = np.random.default_rng(0)
        self.w = tf.constant(rng.normal(0, 0.02, (16 * 16 * 3, 5)), tf.float32)
        self.input_shape = (None, 16, 16, 3)
        self.output_shape = (None, 5)

    def _count(self, n: np.ndarray) -> np.int64:
        self.seen += int(n)
        return np.int64(0)

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        tick = tf.numpy_function(self._count, [tf.shape(x)[0]], tf.int64)
        with tf.control_dependencies([tick]):
            return tf.reshape(x, (-1, 16 * 16 * 3)) / 255.0 @ self.w


def test_rendering_is_smooth_tiled_and_in_pixel_range():
    enc = GridEncoding(grid=4, tiles=2, size=16, channels=3)
    g = np.random.default_rng(0).uniform(0, 1, (3, 4, 4, 3))
    x = enc.render(g)
    assert x.shape == (3, 16, 16, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 255.0
    assert np.array_equal(x[:, :8, :8], x[:, 8:, 8:]), "the tile is repeated"
    assert np.allclose(enc.render(np.full((4, 4, 3), 0.5)), 127.5, atol=1e-3)
    assert np.abs(np.diff(x, axis=1)).max() < 255 * 0.6, "neighbouring pixels are interpolated, not jumps"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"population": 0}, "population"),
        ({"generations": 0}, "generations"),
        ({"sigma": 0.0}, "sigma"),
        ({"rate": 1.5}, "rate"),
        ({"target": "giraffe"}, "giraffe"),
        ({"target": 7}, "target"),
        ({"encoding": GridEncoding(size=224, tiles=4)}, "224"),
        ({"start": np.zeros((2, 3, 3, 1))}, "start"),
        ({"population": 2.5}, "population"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(face_cnn, kwargs, words):
    with pytest.raises(ValueError, match=words):
        evolve_fooling_images(face_cnn, **{"encoding": FACE, "generations": 1, **kwargs})


def test_bad_encodings_are_refused():
    with pytest.raises(ValueError, match="multiple"):
        GridEncoding(grid=4, tiles=5, size=48, channels=1)
    with pytest.raises(ValueError, match="channels"):
        GridEncoding(channels=2)
    with pytest.raises(ValueError, match="shape"):
        FACE.render(np.zeros((1, 5, 5, 1)))


@pytest.mark.parametrize("target", [None, "woman"])
def test_the_same_seed_gives_the_same_pictures(face_cnn, target):
    run = lambda seed: evolve_fooling_images(face_cnn, target=target, encoding=FACE, population=4, generations=3, seed=seed)
    a, b, c = run(3), run(3), run(4)
    assert np.array_equal(a.genomes, b.genomes) and a.history.equals(b.history)
    assert not np.array_equal(a.genomes, c.genomes)


def test_the_query_count_is_the_number_of_pictures_shown():
    model = CountingModel()
    for target, start in [(None, None), (2, None), (None, np.full((3, 4, 4, 3), 0.5))]:
        model.seen = 0
        r = evolve_fooling_images(model, target=target, encoding=GridEncoding(4, 2, 16, 3), population=5,
                                  generations=4, start=start, seed=1)
        assert r.queries == model.seen
        assert r.queries == (5 if start is None else 3) + 5 * 4
        assert list(r.history.queries)[-1] == r.queries


@pytest.mark.parametrize("target", [None, "man"])
def test_elitism_the_best_probability_never_falls_and_is_true(face_cnn, target):
    r = evolve_fooling_images(face_cnn, target=target, encoding=FACE, population=6, generations=8, sigma=0.3, seed=2)
    best = r.history.best_probability.to_numpy()
    assert np.all(np.diff(best) >= 0.0), "an elite was replaced by a worse picture"
    again = fooling_probabilities(face_cnn, r.genomes, FACE)[np.arange(len(r.classes)), r.classes]
    assert np.allclose(again, r.probabilities, atol=1e-5), "the reported probability is the picture's own"
    assert np.all(np.diff(r.probabilities) <= 0.0), "best first"


def test_on_a_cheap_model_the_search_gets_sure_of_the_unlikely_class_quickly(face_cnn):
    randoms = np.random.default_rng(0).uniform(0, 1, (64, *FACE.shape)).astype(np.float32)
    p = fooling_probabilities(face_cnn, randoms, FACE)
    rare = int(np.argmin(p.mean(axis=0)))  # the class random patterns are less often called
    start = randoms[np.argmin(p[:, rare])][None]  # the random pattern surest it is the other class
    assert p[:, rare].min() < 0.2
    r = evolve_fooling_images(face_cnn, target=rare, encoding=FACE, population=16, generations=25, start=start, seed=0)
    assert r.history.best_probability.iloc[0] < 0.2
    assert r.probabilities[0] >= 0.99
    assert r.queries == 1 + 16 * 25


def test_map_elites_keeps_one_elite_per_class(face_cnn):
    r = evolve_fooling_images(face_cnn, encoding=FACE, population=8, generations=3, keep=5, seed=0)
    assert sorted(r.all_elites) == [0, 1] and len(r.classes) == 2
    assert {r.all_elites[c][1] for c in r.all_elites} == set(r.probabilities)


def test_the_shipped_genomes_fool_lite0():
    from course_utils.models.imagenet import load_imagenet_model

    genomes, classes, enc = load_fooling_genomes()
    assert genomes.ndim == 4 and genomes.shape[1:] == enc.shape and len(classes) == len(genomes) >= 4
    assert 0.0 <= genomes.min() and genomes.max() <= 1.0 and enc.size == 224
    model = load_imagenet_model("efficientnet_lite0", verbose=False)
    p = fooling_probabilities(model, genomes, enc)
    assert np.all(p.argmax(axis=1) == classes)
    assert p[np.arange(len(classes)), classes].min() >= 0.99


@pytest.mark.parametrize("target", [None, "man"])
def test_progress_ticks_once_per_generation_and_changes_nothing(face_cnn, target, capsys):
    quiet = evolve_fooling_images(face_cnn, target=target, encoding=FACE, population=4, generations=3, seed=0)
    assert capsys.readouterr().out == ""
    shown = evolve_fooling_images(face_cnn, target=target, encoding=FACE, population=4, generations=3, seed=0,
                                  progress=True)
    assert "3/3" in capsys.readouterr().out
    np.testing.assert_array_equal(quiet.genomes, shown.genomes)
    with pytest.raises(Exception, match="progress"):
        evolve_fooling_images(face_cnn, target=target, encoding=FACE, generations=1, progress="yes")

"""Careless input at every public door of lessons 4-6: a clear course error, before any TensorFlow work.

Each case feeds one public function (from the faces ``course_utils.attacks``, ``.vis``, ``.models``,
``.io``, and the smoothing, black-box, patch and substitute helpers) one classic careless input:
a number written as text or as a bool, a negative or fractional seed, a flag written as text, a
zero step, a NaN picture, a picture of the wrong size, a count that would fill the memory. The
call must raise a ``ValueError`` (every course error is one; a wrong type is also a
``TypeError``) whose message quotes the argument and the value, and it must raise it *before*
TensorFlow works: the :func:`tripwire` fixture makes every Keras layer call and every compiled
``tf.function`` call raise :class:`TensorFlowReached` (a ``BaseException``, so no ``except
Exception`` inside the package can swallow it) while the case runs.

The Stop tests send SIGINT (what Kernel -> Interrupt does) 1.5 s into every long computation of the
course and time it from the moment the signal is sent: the ``KeyboardInterrupt`` must reach the
caller within 2 s, and the same call must then run again and give the same answer.

The last tests check what a refused call must not do (charge a query budget) and the answers that
used to be silently wrong (class names compared with indices, a patch pasted off the photo).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorflow.python.eager.polymorphic_function import polymorphic_function

from course_utils.attacks import (
    AdversarialTraining, BlackBox, adaptive_attack, certify, eot_attack, evolve_fooling_images, fooling_probabilities, hop_skip_jump,
    fgsm, iterative_attack, jacobian_augment, noise_filter, pgd_attack, print_and_photograph, robust_accuracy,
    smoothed_predict, square_attack, survival_rate, top1, train_patch,
)
from course_utils.attacks.evolution import GridEncoding
from course_utils.checks import check_gradient_memory
from course_utils.attacks.defences import detector_scores
from course_utils.attacks.patch import apply_patch
from course_utils.attacks.smoothing import _SmoothingResult, certified_accuracy
from course_utils.attacks.transfer import oracle_labels, train_substitute
from course_utils.io.images import sample_face
from course_utils.models import load_face_model, load_gender_cnn, predict_top_k
from course_utils.models.faces import build_gender_cnn
from course_utils.vis import maximize_class, maximize_filters

from test_pth_hostile import _state_dict, _tensor, legacy_file


class TensorFlowReached(BaseException):
    """Raised by the tripwire: the call reached a Keras layer or a compiled TensorFlow function."""


@pytest.fixture
def tripwire(monkeypatch):
    """While the test runs, any Keras layer call or compiled ``tf.function`` call raises :class:`TensorFlowReached`."""

    def refuse(self, *args, **kwargs):
        raise TensorFlowReached(f"TensorFlow was reached ({type(self).__name__}) before the argument was refused")

    monkeypatch.setattr(keras.layers.Layer, "__call__", refuse)
    monkeypatch.setattr(polymorphic_function.Function, "__call__", refuse)


@pytest.fixture(scope="module")
def g() -> keras.Model:
    return load_gender_cnn()


@pytest.fixture(scope="module")
def noisy() -> keras.Model:
    return load_face_model("noisy")


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return np.stack([sample_face("astronaut"), sample_face("grace_hopper")])


def _nan(shape) -> np.ndarray:
    x = np.full(shape, 128.0, np.float32)
    x.flat[3] = np.nan
    return x


def _build():
    return build_gender_cnn((6, 12, 24))


def _photo() -> np.ndarray:
    return np.full((64, 64, 3), 100.0, np.float32)


def _patch() -> np.ndarray:
    return np.full((16, 16, 3), 200.0, np.float32)


def _many(shape, n: int) -> np.ndarray:
    """``n`` grey pictures of ``shape`` as one read-only view: a huge batch that takes no memory."""
    return np.broadcast_to(np.full(shape, 100.0, np.float32), (n, *shape))


def _genome(g, start, **kwargs):
    return evolve_fooling_images(g, target="woman", population=4, generations=1, start=start, **kwargs)


# (id, call(g, noisy, lite0, faces), the words the message must contain)
CASES = [
    # ---- numbers written as text or as a bool; zero steps
    ("pgd epsilon '4'", lambda g, n, l, f: pgd_attack(g, f, None, "4"), ["epsilon", "'4'"]),
    ("pgd epsilon True", lambda g, n, l, f: pgd_attack(g, f, None, True), ["epsilon", "True"]),
    ("pgd step_size 0", lambda g, n, l, f: pgd_attack(g, f, None, 4.0, step_size=0), ["step_size", "0"]),
    ("pgd step_size '1'", lambda g, n, l, f: pgd_attack(g, f, None, 4.0, step_size="1"), ["step_size", "'1'"]),
    ("robust epsilons text", lambda g, n, l, f: robust_accuracy(g, f, ["woman", "man"], ["0", "4"]), ["epsilons", "'0'"]),
    ("robust step_size 0", lambda g, n, l, f: robust_accuracy(g, f, ["woman", "man"], [4.0], step_size=0), ["step_size", "0"]),
    ("predict_top_k k True", lambda g, n, l, f: predict_top_k(g, f, k=True), ["k", "True"]),
    ("predict_top_k k 2.0", lambda g, n, l, f: predict_top_k(g, f, k=2.0), ["k", "2.0"]),
    ("certify sigma '12'", lambda g, n, l, f: certify(n, f, "12"), ["sigma", "'12'"]),
    ("square epsilon '8'", lambda g, n, l, f: square_attack(g, f, None, "8"), ["epsilon", "'8'"]),
    ("evolution population True", lambda g, n, l, f: evolve_fooling_images(g, target="woman", population=True), ["population", "True"]),
    ("substitute lam '25'", lambda g, n, l, f: train_substitute(g, _build, f, lam="25"), ["lam", "'25'"]),
    ("adaptive epsilon '4'", lambda g, n, l, f: adaptive_attack(g, f, [1, 1], "4", 0.01), ["epsilon", "'4'"]),
    ("BlackBox budget 2.0", lambda g, n, l, f: BlackBox(g, 2, budget=2.0), ["budget", "2.0"]),
    # ---- seeds: non-negative whole numbers
    ("pgd seed -1", lambda g, n, l, f: pgd_attack(g, f, None, 4.0, seed=-1), ["seed", "-1"]),
    ("pgd seed 1.5", lambda g, n, l, f: pgd_attack(g, f, None, 4.0, seed=1.5), ["seed", "1.5"]),
    ("robust seed 1.5", lambda g, n, l, f: robust_accuracy(g, f, ["woman", "man"], [4.0], seed=1.5), ["seed", "1.5"]),
    ("adaptive seed 1.5", lambda g, n, l, f: adaptive_attack(g, f, [1, 1], 4.0, 0.01, seed=1.5), ["seed", "1.5"]),
    ("certify seed -1", lambda g, n, l, f: certify(n, f, 12.0, seed=-1), ["seed", "-1"]),
    ("smoothed_predict seed 1.5", lambda g, n, l, f: smoothed_predict(n, f, 12.0, seed=1.5), ["seed", "1.5"]),
    ("square seed -1", lambda g, n, l, f: square_attack(g, f, seed=-1), ["seed", "-1"]),
    ("hop_skip_jump seed 1.5", lambda g, n, l, f: hop_skip_jump(g, f, seed=1.5), ["seed", "1.5"]),
    ("evolution seed -1", lambda g, n, l, f: evolve_fooling_images(g, target="woman", seed=-1), ["seed", "-1"]),
    ("substitute seed 1.5", lambda g, n, l, f: train_substitute(g, _build, f, seed=1.5), ["seed", "1.5"]),
    ("print_and_photograph seed -1", lambda g, n, l, f: print_and_photograph(_photo(), seed=-1), ["seed", "-1"]),
    ("maximize_filters seed 1.5", lambda g, n, l, f: maximize_filters(g, "conv1", [0], seed=1.5), ["seed", "1.5"]),
    # ---- flags: real bools
    ("pgd targeted 'False'", lambda g, n, l, f: pgd_attack(g, f, [1, 1], 4.0, targeted="False"), ["targeted", "'False'"]),
    ("pgd random_start 'False'", lambda g, n, l, f: pgd_attack(g, f, [1, 1], 4.0, random_start="False"), ["random_start", "'False'"]),
    ("pgd stop_at_success 'False'", lambda g, n, l, f: pgd_attack(g, f, [1, 1], 4.0, stop_at_success="False"), ["stop_at_success", "'False'"]),
    ("robust random_start 'False'", lambda g, n, l, f: robust_accuracy(g, f, [1, 1], [4.0], random_start="False"), ["random_start", "'False'"]),
    ("robust progress 'False'", lambda g, n, l, f: robust_accuracy(g, f, [1, 1], [4.0], progress="False"), ["progress", "'False'"]),
    ("square keep_clean 'False'", lambda g, n, l, f: square_attack(g, f, [1, 1], keep_clean="False"), ["keep_clean", "'False'"]),
    ("substitute verbose 'False'", lambda g, n, l, f: train_substitute(g, _build, f, verbose="False"), ["verbose", "'False'"]),
    # ---- NaN or inf pictures
    ("BlackBox NaN picture", lambda g, n, l, f: BlackBox(g, 1).probabilities(_nan((1, 48, 48, 1)), [0]), ["NaN"]),
    ("BlackBox label inf picture", lambda g, n, l, f: BlackBox(g, 1, output="label").label(np.full((1, 48, 48, 1), np.inf), [0]), ["NaN or inf"]),
    ("top1 NaN", lambda g, n, l, f: top1(g, _nan((2, 48, 48, 1))), ["NaN"]),
    ("fooling_probabilities NaN", lambda g, n, l, f: fooling_probabilities(g, _nan((2, 48, 48, 1))), ["NaN"]),
    ("fooling_probabilities NaN genomes", lambda g, n, l, f: fooling_probabilities(g, _nan((1, 8, 8, 1)), GridEncoding(8, 4, 48, 1)), ["NaN"]),
    ("evolution NaN start", lambda g, n, l, f: _genome(g, _nan((2, 8, 8, 1)) / 255), ["start", "NaN"]),
    ("apply_patch NaN centre", lambda g, n, l, f: apply_patch(_photo(), _patch(), [np.nan, 30, 16, 0]), ["placements", "nan"]),
    ("oracle_labels NaN", lambda g, n, l, f: oracle_labels(g, _nan((2, 48, 48, 1))), ["NaN"]),
    ("jacobian_augment NaN", lambda g, n, l, f: jacobian_augment(g, _nan((2, 48, 48, 1)), [0, 1], 25.0), ["NaN"]),
    # ---- wrong sizes and units
    ("BlackBox wrong size", lambda g, n, l, f: BlackBox(g, 1).probabilities(np.full((1, 32, 32, 1), 9.0), [0]), ["(48, 48, 1)", "(32, 32, 1)"]),
    ("certify wrong size", lambda g, n, l, f: certify(n, np.full((32, 32, 1), 9.0), 12.0), ["(48, 48, 1)", "(32, 32, 1)"]),
    ("top1 wrong size", lambda g, n, l, f: top1(g, np.full((1, 32, 32, 1), 9.0)), ["(48, 48, 1)", "(32, 32, 1)"]),
    ("evolution start 0..255", lambda g, n, l, f: _genome(g, np.full((2, 8, 8, 1), 200.0)), ["start", "0..1", "200"]),
    ("apply_patch centre off the photo", lambda g, n, l, f: apply_patch(_photo(), _patch(), [500, 30, 16, 0]), ["placements", "500"]),
    # ---- unclear before
    ("square huge budget", lambda g, n, l, f: square_attack(g, f, queries=10**30), ["queries", str(10**30)]),
    ("hop_skip_jump huge budget", lambda g, n, l, f: hop_skip_jump(g, f, queries=10**30), ["queries", str(10**30)]),
    ("BlackBox huge budget", lambda g, n, l, f: BlackBox(g, 2, budget=10**30), ["budget", str(10**30)]),
    ("load_face_model list", lambda g, n, l, f: load_face_model(["noisy"]), ["name", "['noisy']"]),
    ("detector plain function squeezer", lambda g, n, l, f: detector_scores(g, f, [lambda x: x]), ["squeezers", "lambda"]),
    ("substitute build returns the target", lambda g, n, l, f: train_substitute(g, lambda: g, f), ["build", "oracle"]),
    # ---- memory: refused up front with the largest value that fits
    ("maximize_filters size 30000", lambda g, n, l, f: maximize_filters(g, "conv1", [0], size=(30000, 30000)), ["size", "30000", "at most"]),
    ("certify n 2**31", lambda g, n, l, f: certify(n, f[0], 12.0, n=2**31), ["n", "2147483648", "2147483647"]),
    ("evolution population 3000", lambda g, n, l, f: evolve_fooling_images(l, target="toaster", population=3000, generations=1), ["population", "3,000", "at most"]),
    ("substitute rounds 40", lambda g, n, l, f: train_substitute(g, _build, f, rounds=40, epochs=1), ["rounds", "40", "at most"]),
    ("pgd a million faces", lambda g, n, l, f: pgd_attack(g, _many((48, 48, 1), 10**6), None, 4.0), ["len(images)", "1,000,000", "at most"]),
    ("pgd Lite0 batch_size 64", lambda g, n, l, f: pgd_attack(l, _many((224, 224, 3), 64), None, 1.0), ["batch_size", "64", "at most"]),
    ("robust Lite0 batch_size 256", lambda g, n, l, f: robust_accuracy(l, _many((224, 224, 3), 300), 1, [1.0]), ["batch_size", "256", "at most"]),
    ("iterative a million faces", lambda g, n, l, f: iterative_attack(g, _many((48, 48, 1), 10**6), "woman", 4.0), ["len(images)", "1,000,000", "at most"]),
    ("fgsm 100 Lite0 pictures", lambda g, n, l, f: fgsm(l, _many((224, 224, 3), 100), "toaster", 4.0), ["len(images)", "100", "at most"]),
    ("adaptive Lite0 batch_size 256", lambda g, n, l, f: adaptive_attack(l, _many((224, 224, 3), 40), 1, 4.0, 0.01), ["batch_size", "256", "at most"]),
    ("eot 16 Lite0 pictures x 8 draws", lambda g, n, l, f: eot_attack(l, _many((224, 224, 3), 16), "toaster", 4.0, draws=8), ["len(images)", "16", "at most"]),
]


@pytest.mark.parametrize("case", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_careless_input_gets_a_clear_error_before_tensorflow(case, g, noisy, imagenet_model, faces, tripwire):
    call, words = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a units warning is not the answer under test
        with pytest.raises(ValueError) as caught:
            call(g, noisy, imagenet_model, faces)
    message = str(caught.value)
    kind = type(caught.value)
    assert kind.__module__ == "builtins" or kind.__module__.startswith("course_utils"), f"{kind.__name__}: {message}"
    assert "in user code" not in message and "Traceback" not in message, message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def test_the_lessons_gradient_batches_fit(g, imagenet_model, faces):
    """The memory check passes the batches the lessons run: faces at once, 16 Lite0 pictures per call."""
    check_gradient_memory(g, faces)
    check_gradient_memory(g, _many((48, 48, 1), 1000), batch_size=256)
    check_gradient_memory(imagenet_model, _many((224, 224, 3), 48), batch_size=16, copies=2)
    check_gradient_memory(imagenet_model, _many((224, 224, 3), 8), batch_size=256)


# --------------------------------------------------------------------------- a refused call changes nothing


def test_a_refused_query_is_not_charged(g):
    box = BlackBox(g, 2, budget=5)
    with pytest.raises(ValueError, match=r"\(48, 48, 1\)"):
        box.probabilities(np.full((2, 32, 32, 1), 9.0, np.float32), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        box.probabilities(_nan((2, 48, 48, 1)), [0, 1])
    assert box.queries.tolist() == [0, 0]
    box.probabilities(np.full((2, 48, 48, 1), 9.0, np.float32), [0, 1])
    assert box.queries.tolist() == [1, 1]


def test_certify_warns_for_a_picture_in_0_to_1(noisy, faces):
    with pytest.warns(UserWarning, match="0..255"):
        certify(noisy, faces[0] / 255.0, 12.0, n0=2, n=2)


# --------------------------------------------------------------------------- silently wrong before


def test_certified_accuracy_resolves_class_names(noisy, faces):
    result = certify(noisy, faces, 12.0, n0=20, n=50)
    by_index = certified_accuracy(result, result.predicted.clip(0), 0.0)
    names = [("man", "woman")[c] for c in result.predicted.clip(0)]
    np.testing.assert_array_equal(certified_accuracy(result, names, 0.0), by_index)
    bare = _SmoothingResult(*(getattr(result, k) for k in ("predicted", "p_lower", "radius", "abstained", "counts",
                                                          "selection", "sigma", "n0", "n", "alpha")))
    with pytest.raises(ValueError, match="labels"):  # no model, no names: said, not compared with indices
        certified_accuracy(bare, names, 0.0)


def test_the_pth_reader_counts_every_view(tmp_path):
    # 1,900 tensors, each a full view of one 1 MiB storage: 1.2 MB on disk would be 2 GB of arrays.
    numel = 2**18
    entries = {f"t{i}": _tensor("0", numel, 0, (numel,), (1,)) for i in range(1900)}
    path = tmp_path / "views.pth"
    path.write_bytes(legacy_file(_state_dict(entries), {"0": np.zeros(numel, np.float32)}))
    from course_utils.io.pth import _CorruptWeightsError as CorruptWeightsError, load_pth_state_dict

    assert path.stat().st_size < 2_000_000
    with pytest.raises(CorruptWeightsError, match="more memory than the file holds"):
        load_pth_state_dict(path)


# --------------------------------------------------------------------------- Stop: Kernel -> Interrupt


def _interrupt_after(seconds: float, call) -> float:
    """Run ``call`` and send SIGINT (what Kernel -> Interrupt does) ``seconds`` in; returns how long
    after the signal was *sent* the ``KeyboardInterrupt`` reached the caller (the handler itself only
    runs once the main thread is back in Python, so timing from it would hide a blocked thread)."""
    import os
    import signal
    import threading
    import time

    sent: list[float] = []
    fired: list[float] = []

    def stop(signum, frame):
        fired.append(time.perf_counter())
        raise KeyboardInterrupt

    def send():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(seconds, send)
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            call()
        landed = time.perf_counter()
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert fired, "the call ended before the interrupt"
    return landed - sent[0]


LONG_RUNS = {
    "pgd_attack": (lambda g, n, f: pgd_attack(g, f, None, 4.0, steps=10**9),
                   lambda g, n, f: pgd_attack(g, f, None, 4.0, steps=5)),
    "robust_accuracy": (lambda g, n, f: robust_accuracy(g, f, ["woman", "man"], [4.0], steps=10**6),
                        lambda g, n, f: robust_accuracy(g, f, ["woman", "man"], [4.0], steps=5)),
    "adaptive_attack": (lambda g, n, f: adaptive_attack(g, f, [1, 0], 4.0, 0.01, steps=10**7),
                        lambda g, n, f: adaptive_attack(g, f, [1, 0], 4.0, 0.01, steps=5)),
    "certify": (lambda g, n, f: certify(n, f[0], 12.0, n0=10, n=10**8),
                lambda g, n, f: certify(n, f[0], 12.0, n0=10, n=100)),
}


def _adversarial_fit(epochs: int) -> keras.Model:
    """A fresh small face CNN (seeded), adversarially trained ``epochs`` passes over the two faces."""
    keras.utils.set_random_seed(0)
    faces = np.stack([sample_face("astronaut"), sample_face("grace_hopper")])
    model = _build()
    trainer = AdversarialTraining(model, 4.0, steps=3)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainer.fit(faces, np.array([1, 0]), batch_size=1, epochs=epochs, shuffle=False, verbose=0)
    return model


@functools.cache
def _colour_cnn() -> keras.Model:
    """A seeded colour CNN, 64x64x3 pixels -> 2 logits (the face CNN is grey; a patch is colour)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name="colour_cnn")


COLOUR_PHOTOS = np.random.default_rng(0).uniform(0.0, 255.0, (2, 64, 64, 3)).astype(np.float32)


def _patch_run(steps: int):
    return train_patch(_colour_cnn(), COLOUR_PHOTOS, 1, size=16, steps=steps, placements=2, sides=(24.0, 40.0),
                       progress=False)


LONG_RUNS.update({
    "iterative_attack": (lambda g, n, f: iterative_attack(g, f, 0, 4.0, steps=10**5, progress=False),
                         lambda g, n, f: iterative_attack(g, f, 0, 4.0, steps=5, progress=False)),
    "noise_filter": (lambda g, n, f: noise_filter(g, f[0], "man", steps=10**5, progress=False),
                     lambda g, n, f: noise_filter(g, f[0], "man", steps=5, progress=False)),
    "AdversarialTraining.fit": (lambda g, n, f: _adversarial_fit(10**5), lambda g, n, f: _adversarial_fit(2)),
    "maximize_class": (lambda g, n, f: maximize_class(g, "woman", steps=10**5, progress=False),
                       lambda g, n, f: maximize_class(g, "woman", steps=5, progress=False)),
    "square_attack": (lambda g, n, f: square_attack(g, f, epsilon=0.5, queries=10**6),
                      lambda g, n, f: square_attack(g, f, epsilon=0.5, queries=20)),
    "hop_skip_jump": (lambda g, n, f: hop_skip_jump(g, f, queries=10**6),
                      lambda g, n, f: hop_skip_jump(g, f, queries=300)),
    "evolve_fooling_images": (lambda g, n, f: evolve_fooling_images(g, target="woman", population=4, generations=10**6),
                              lambda g, n, f: evolve_fooling_images(g, target="woman", population=4, generations=5)),
    "train_substitute": (lambda g, n, f: train_substitute(g, _build, f, rounds=2, epochs=10**5),
                         lambda g, n, f: train_substitute(g, _build, f, rounds=2, epochs=2)),
    "train_patch": (lambda g, n, f: _patch_run(10**6), lambda g, n, f: _patch_run(5)),
    "eot_attack": (lambda g, n, f: eot_attack(g, f, 0, 4.0, steps=10**5, draws=2, progress=False),
                   lambda g, n, f: eot_attack(g, f, 0, 4.0, steps=5, draws=2, progress=False)),
})


def _assert_same(again, expected) -> None:
    """The answers of two runs of the same call are the same (pictures, counts, weights, tables)."""
    if isinstance(expected, tuple):  # train_substitute: (model, history)
        for a, b in zip(again, expected):
            _assert_same(a, b)
    elif isinstance(expected, keras.Model):
        for a, b in zip(again.get_weights(), expected.get_weights()):
            np.testing.assert_array_equal(a, b)
    elif isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(again, expected)
    elif hasattr(expected, "adversarial"):
        np.testing.assert_array_equal(again.adversarial, expected.adversarial)
    elif hasattr(expected, "counts"):
        np.testing.assert_array_equal(again.counts, expected.counts)
    elif hasattr(expected, "genomes"):
        np.testing.assert_array_equal(again.genomes, expected.genomes)
    elif hasattr(expected, "patch"):
        np.testing.assert_array_equal(again.patch, expected.patch)
    elif hasattr(expected, "pixels"):
        np.testing.assert_array_equal(again.pixels, expected.pixels)
    else:
        assert again.equals(expected)


@pytest.mark.parametrize("name", list(LONG_RUNS))
def test_a_long_run_stops_within_2_s_and_runs_again(name, g, noisy, faces):
    long, short = LONG_RUNS[name]
    expected = short(g, noisy, faces)  # compiled: what follows only runs graphs
    seconds = _interrupt_after(1.5, lambda: long(g, noisy, faces))
    print(f"{name}: stopped {seconds:.2f} s after the interrupt")
    assert seconds < 2.0, f"{name} took {seconds:.1f} s to stop"
    _assert_same(short(g, noisy, faces), expected)


def test_chunks_do_not_change_the_answers(g, noisy, faces, monkeypatch):
    from course_utils.attacks import smoothing
    from course_utils.attacks.pgd import pgd_perturb
    from course_utils.core.loop import Loop

    rate = np.full(2, 0.5, np.float32)
    for stop in (False, True):  # one graph call, or chunks of one step each: the same pictures
        whole = pgd_perturb(g, faces, [1, 0], 4.0, steps=30, step_size=rate, seed=(0, 0), stop_at_success=stop).numpy()
        with monkeypatch.context() as m:
            m.setattr(Loop, "chunk_seconds", 0.0)
            chunked = pgd_attack(g, faces, [1, 0], 4.0, steps=30, step_size=0.5, stop_at_success=stop).adversarial
        np.testing.assert_array_equal(chunked, whole)
    once = smoothing._noise_counts(noisy, faces, 100.0, 3000, batch_size=100)  # noise loud enough to split the votes
    assert (once.min(axis=1) > 0).all()
    monkeypatch.setattr(smoothing, "_CHUNK_SAMPLES", 1)  # one step of 100 copies per compiled call
    np.testing.assert_array_equal(smoothing._noise_counts(noisy, faces, 100.0, 3000, batch_size=100), once)


def test_a_weights_file_with_a_nan_weight_is_refused(monkeypatch):
    from course_utils.models import efficientnet_lite

    real = efficientnet_lite.load_pth_state_dict

    def one_nan(path):
        state = real(path)
        name = next(k for k, v in state.items() if v.dtype.kind == "f" and v.size > 1)
        state[name] = state[name].copy()
        state[name].flat[0] = np.nan
        return state

    monkeypatch.setattr(efficientnet_lite, "load_pth_state_dict", one_nan)
    with pytest.raises(ValueError, match="NaN or infinite"):
        efficientnet_lite.load_efficientnet_lite("efficientnet_lite0")

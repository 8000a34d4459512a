"""The compiled loops are kept by structure only: new per-call values never trace again, the memo is
bounded, and a model the notebook lets go is freed with its loops.

Traces are counted inside the traced Python functions (``GradientLoop.traces``, summed per call in
``result.traces``), so these tests do not depend on timings; ``compile_seconds`` is checked to be
small, not fast. Runs on the face model of lesson 1 (3,212 weights).
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from course_utils.core import cache as optimize
from course_utils.attacks.gradient import noise_filter
from course_utils.attacks.pgd import fgsm, iterative_attack
from course_utils.models.faces import load_gender_cnn
from course_utils.io.images import sample_face
from course_utils.core.objectives import CrossEntropy, weak
from course_utils.core.gradient_loop import GradientLoop
from course_utils.core.cache import cached_keys, cached_loop, loop_for
from course_utils.core.transforms import Jitter
from course_utils.core.steps import PixelRange
from course_utils.core.steps import LinfBall
from course_utils.vis.filters import maximize_class, maximize_filters


@pytest.fixture()
def face_model():
    """A fresh face model per test, so that every test starts with an empty memo."""
    return load_gender_cnn()


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    one = sample_face("astronaut")
    return np.stack([one, one[::-1], one[:, ::-1]])


def test_a_new_epsilon_target_or_step_size_does_not_trace_again(face_model, faces):
    first = iterative_attack(face_model, faces[0], "man", epsilon=2.0, steps=3, progress=False)
    assert first.traces >= 1 and first.compile_seconds > 0
    for kwargs in [dict(epsilon=4.0), dict(target="woman"), dict(step_size=0.25), dict(targeted=True, epsilon=0.5, steps=7)]:
        again = iterative_attack(face_model, faces[0], **{"target": "man", "epsilon": 2.0, "steps": 3, **kwargs},
                                 progress=False)
        assert again.traces == 0, kwargs
        assert again.compile_seconds < 0.05 * first.compile_seconds + 0.02, kwargs
    # FGSM is the same structure (one sign step in an L-inf ball): it shares the compiled loop.
    assert fgsm(face_model, faces[0], "woman", epsilon=1.5).traces == 0
    # Untargeted is another structure: one more loop, traced once, then reused too.
    assert iterative_attack(face_model, faces[0], None, 2.0, steps=2, targeted=False, progress=False).traces >= 1
    assert iterative_attack(face_model, faces[0], None, 3.0, steps=2, targeted=False, progress=False).traces == 0


def test_an_epsilon_sweep_costs_one_trace(face_model, faces):
    traces = [iterative_attack(face_model, faces[0], "man", epsilon=e, steps=4, step_size=2.5 * e / 4 or 1e-3,
                               progress=False).traces for e in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert traces[0] >= 1 and traces[1:] == [0, 0, 0, 0]
    assert len(cached_keys(face_model)) == 1, cached_keys(face_model)


def test_a_new_beta_or_learning_rate_does_not_trace_again(face_model, faces):
    first = noise_filter(face_model, faces[0], "man", beta=1e-3, steps=3, learning_rate=30.0, progress=False)
    assert first.traces >= 1
    assert noise_filter(face_model, faces[0], "woman", beta=5e-3, steps=3, learning_rate=10.0, progress=False).traces == 0
    # A batch of another size traces once (each batch size gets a graph for its own shapes), then reuses it.
    sweep = noise_filter(face_model, faces[0], "man", beta=[1e-4, 2e-4, 3e-4], steps=2, learning_rate=30.0, progress=False)
    assert sweep.traces >= 1 and sweep.adversarial.shape == (3, 48, 48, 1)
    assert noise_filter(face_model, faces, "woman", beta=[1e-3, 2e-3, 0.0], steps=4, progress=False).traces == 0


def test_another_filter_or_class_does_not_trace_again(face_model):
    kwargs = dict(steps=2, size=(16, 16), progress=False)
    assert maximize_filters(face_model, "conv2", [0, 1], **kwargs).traces >= 1
    assert maximize_filters(face_model, "conv2", [4, 5], step_size=1.0, seed=3, **kwargs).traces == 0
    assert maximize_filters(face_model, "conv3", [4, 5], **kwargs).traces >= 1  # another layer: another structure
    assert maximize_class(face_model, "man", steps=2, progress=False).traces >= 1
    assert maximize_class(face_model, "woman", steps=3, step_size=0.5, progress=False).traces == 0
    assert maximize_class(face_model, "woman", steps=2, regularizers=(Jitter(2),), progress=False).traces >= 1


def test_the_feature_extractor_is_built_once_per_model_and_layer(face_model):
    kwargs = dict(steps=1, size=(16, 16), progress=False)
    maximize_filters(face_model, "conv2", [0], **kwargs)
    (loop,) = [optimize._LOOPS[face_model][k] for k in cached_keys(face_model)]
    extractor = loop.objective.extractor
    maximize_filters(face_model, "conv2", [3], **kwargs)
    assert loop.objective.extractor is extractor


def test_the_memo_is_bounded_least_recently_used_first(face_model, monkeypatch):
    monkeypatch.setattr(optimize, "MAX_LOOPS_PER_MODEL", 4)
    built: list[int] = []

    def build(i):
        built.append(i)
        return GradientLoop(lambda x: (x[:, 0, 0, 0], x[:, 0, 0, :]))

    for i in range(4):
        cached_loop(face_model, ("probe", i), lambda i=i: build(i))
    cached_loop(face_model, ("probe", 0), lambda: build(99))  # a hit: 0 becomes the most recent
    cached_loop(face_model, ("probe", 4), lambda: build(4))  # one too many: 1, the least recent, goes
    assert built == [0, 1, 2, 3, 4]
    assert cached_keys(face_model) == [("probe", 2), ("probe", 3), ("probe", 0), ("probe", 4)]
    cached_loop(face_model, ("probe", 1), lambda: build(1))  # it was dropped: built again
    assert built[-1] == 1 and len(cached_keys(face_model)) == 4


def test_the_default_bound_holds_for_many_structures(face_model, faces):
    for i in range(optimize.MAX_LOOPS_PER_MODEL + 3):
        loop_for(face_model, CrossEntropy(weak(face_model)), step_rule="sign", regularizers=(Jitter(i), PixelRange()))
    assert len(cached_keys(face_model)) == optimize.MAX_LOOPS_PER_MODEL


def test_a_model_that_is_let_go_is_freed_with_its_loops(faces):
    def use_and_let_go():   # the model lives only in this frame, never in an assertion's
        model = load_gender_cnn()
        noise_filter(model, faces[0], "man", steps=2, progress=False)
        noise_filter(model, faces[0], "man", beta=0.01, steps=2, progress=False)
        iterative_attack(model, faces[0], "man", epsilon=2.0, steps=2, progress=False)
        maximize_filters(model, "conv2", [0], steps=2, size=(16, 16), progress=False)
        maximize_class(model, "woman", steps=2, progress=False)
        return weakref.ref(model), len(cached_keys(model))

    gone, loops = use_and_let_go()
    gc.collect()
    assert loops == 5
    assert gone() is None, "the memo of compiled loops kept the model alive"


def test_a_loop_kept_in_the_memo_holds_its_model_weakly(face_model, faces):
    loop = loop_for(face_model, CrossEntropy(weak(face_model)), step_rule="sign", regularizers=(LinfBall(), PixelRange()))
    assert isinstance(loop.objective.model, weakref.ProxyTypes)
    result = loop.run(faces[:1], {"labels": [0], "epsilon": 2.0}, steps=2, step_size=1.0, progress=False)
    assert np.abs(result.x - faces[:1]).max() <= 2.0 + 1e-4

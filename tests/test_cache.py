"""The compiled functions are kept per model by their settings only: new per-call values never trace
again, the cache (:func:`course_utils.models.forward.cached`) is bounded, and a model the notebook
lets go is freed with everything compiled for it.

Traces are counted inside the traced Python functions (``Loop.traces``, summed per call in
``result.traces``), so these tests do not depend on timings; ``compile_seconds`` is checked to be
small, not fast. Runs on the face model of lesson 1 (3,212 weights).
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.gradient import noise_filter
from course_utils.attacks.pgd import fgsm, iterative_attack, pgd_attack, pgd_step, robust_accuracy
from course_utils.core.loop import Loop, compiled
from course_utils.io.images import sample_face
from course_utils.models import forward
from course_utils.models.faces import load_gender_cnn
from course_utils.models.forward import cached, compiled_forward
from course_utils.vis import Jitter, maximize_class, maximize_filters
from course_utils.vis.objectives import Objective, TotalVariation
from course_utils.vis.visualize import _ascent_measure, ascent_step


@pytest.fixture()
def face_model():
    """A fresh face model per test, so that every test starts with an empty cache."""
    return load_gender_cnn()


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    one = sample_face("astronaut")
    return np.stack([one, one[::-1], one[:, ::-1]])


def test_a_new_epsilon_target_or_step_size_does_not_trace_again(face_model, faces):
    first = iterative_attack(face_model, faces[0], "man", epsilon=2.0, steps=3, progress=False)
    assert first.traces >= 1 and first.compile_seconds > 0
    for kwargs in [dict(epsilon=4.0), dict(target="woman"), dict(step_size=0.25), dict(epsilon=0.5, steps=7)]:
        again = iterative_attack(face_model, faces[0], **{"target": "man", "epsilon": 2.0, "steps": 3, **kwargs},
                                 progress=False)
        assert again.traces == 0, kwargs
        assert again.compile_seconds < 0.05 * first.compile_seconds + 0.02, kwargs
    # FGSM is the same step (one sign step in an L-inf ball): it shares the compiled loop.
    assert fgsm(face_model, faces[0], "woman", epsilon=1.5).traces == 0
    # Untargeted is another graph: one more loop, traced once, then reused too.
    assert iterative_attack(face_model, faces[0], None, 2.0, steps=2, targeted=False, progress=False).traces >= 1
    assert iterative_attack(face_model, faces[0], None, 3.0, steps=2, targeted=False, progress=False).traces == 0


def test_an_epsilon_sweep_costs_one_trace(face_model, faces):
    traces = [iterative_attack(face_model, faces[0], "man", epsilon=e, steps=4, step_size=2.5 * e / 4 or 1e-3,
                               progress=False).traces for e in (0.5, 1.0, 2.0, 4.0, 8.0)]
    assert traces[0] >= 1 and traces[1:] == [0, 0, 0, 0]
    loop = compiled(pgd_step, face_model, norm="linf", targeted=True, loss="ce", samples=1)  # the one it used
    assert loop.traces == {"chunk": 1, "final": 1, "perturb": 0}


def test_a_pgd_sweep_over_epsilons_and_seeds_costs_one_trace(face_model, faces):
    robust_accuracy(face_model, faces, "man", epsilons=(0.0, 1.0, 2.0, 4.0), steps=3, batch_size=3)
    pgd_attack(face_model, faces, "man", 3.0, steps=5, seed=4, batch_size=3)
    pgd_attack(face_model, faces, "woman", [1.0, 2.0, 3.0], steps=2, step_size=0.5, seed=9, batch_size=3)
    loop = compiled(pgd_step, face_model, norm="linf", targeted=False, loss="ce", samples=1)
    assert loop.traces == {"chunk": 0, "final": 0, "perturb": 1}


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
    assert maximize_filters(face_model, "conv3", [4, 5], **kwargs).traces >= 1  # another layer: another graph
    assert maximize_class(face_model, "man", steps=2, progress=False).traces >= 1
    assert maximize_class(face_model, "woman", steps=3, step_size=0.5, progress=False).traces == 0
    assert maximize_class(face_model, "woman", steps=2, regularizers=(Jitter(2),), progress=False).traces >= 1


def test_the_feature_extractor_is_built_once_per_model_and_layer(face_model):
    kwargs = dict(steps=1, size=(16, 16), progress=False)
    maximize_filters(face_model, "conv2", [0], **kwargs)
    # the compiled step of these settings, as maximize_filters asks for it: found, not built again
    loop = compiled(ascent_step, face_model, measure=_ascent_measure, objective=Objective("conv2"),
                    param=None, transforms=(), penalties=(), priors=())
    traces = dict(loop.traces)
    extractor = Objective("conv2").features(face_model)
    maximize_filters(face_model, "conv2", [3], **kwargs)
    assert Objective("conv2").features(face_model) is extractor and loop.traces == traces


def test_the_cache_is_bounded_least_recently_used_first(face_model, monkeypatch):
    monkeypatch.setattr(forward, "MAX_PER_MODEL", 4)
    built: list[int] = []

    def ask(i):  # what the cache gives for key i; `built` says whether it had to build it
        return cached(face_model, ("probe", i), lambda: built.append(i) or f"made {i}")

    assert [ask(i) for i in range(4)] == ["made 0", "made 1", "made 2", "made 3"]
    ask(0)  # a hit: 0 becomes the most recent
    ask(4)  # one too many: 1, the least recent, goes
    assert built == [0, 1, 2, 3, 4]
    for i in (2, 3, 0, 4):  # still kept: hits, nothing built
        ask(i)
    assert built == [0, 1, 2, 3, 4]
    ask(1)  # it was dropped: built again (and 2, now the least recent, goes)
    ask(3)
    assert built == [0, 1, 2, 3, 4, 1]
    ask(2)
    assert built[-1] == 2


def test_the_default_bound_holds_for_compiled_loops(face_model):
    def step(model, x, x0, i, seed, data, *, k):
        return x, x[:, 0, 0, 0], x[:, 0, 0, :], None

    bound = forward.MAX_PER_MODEL
    loops = [compiled(step, face_model, k=k) for k in range(bound + 3)]
    assert all(isinstance(loop, Loop) for loop in loops) and len({id(loop) for loop in loops}) == bound + 3
    assert all(compiled(step, face_model, k=k) is loops[k] for k in range(3, bound + 3))  # the last `bound` kept
    assert compiled(step, face_model, k=0) is not loops[0]  # the first ones were dropped: built anew


def test_a_model_that_is_let_go_is_freed_with_its_compiled_functions(faces):
    def use_and_let_go():   # the model lives only in this frame, never in an assertion's
        model = load_gender_cnn()
        noise_filter(model, faces[0], "man", steps=2, progress=False)
        noise_filter(model, faces[0], "man", beta=0.01, steps=2, progress=False)
        iterative_attack(model, faces[0], "man", epsilon=2.0, steps=2, progress=False)
        pgd_attack(model, faces, "man", 2.0, steps=2)
        compiled_forward(model, "label")(faces)
        maximize_filters(model, "conv2", [0], steps=2, size=(16, 16), progress=False)
        maximize_class(model, "woman", steps=2, progress=False)
        kept = compiled(pgd_step, model, norm="linf", targeted=True, loss="ce", samples=1)  # iterative_attack's
        return weakref.ref(model), weakref.ref(kept), kept.traces["chunk"]

    gone, loop, traced = use_and_let_go()
    gc.collect()  # frees the model (and drops its cache entry) ...
    gc.collect()  # ... then what was compiled for it
    assert traced == 1  # it was the cached loop the attack had run
    assert gone() is None, "the cache of compiled functions kept the model alive"
    assert loop() is None, "the model's compiled loops outlived it"


def _loop_on_a_fresh_model(faces):
    """A compiled loop run on a model made here; returns the loop and a weak reference to the model
    (a model in the test's own frame would be kept alive by the stability harness's assertion recorder)."""
    model = load_gender_cnn()
    loop = compiled(pgd_step, model, norm="linf", targeted=True, loss="ce", samples=1)
    data = {"labels": np.zeros(1, np.int32), "epsilon": np.full(1, 2.0, np.float32), "step_size": np.ones(1, np.float32)}
    result = loop.run(faces[:1], data, steps=2, progress=False)
    if np.abs(result.x - faces[:1]).max() > 2.0 + 1e-4:
        raise AssertionError("the loop left the budget")
    return loop, weakref.ref(model)


def test_a_loop_holds_its_model_weakly(faces):
    loop, gone = _loop_on_a_fresh_model(faces)
    gc.collect()
    assert gone() is None, "a loop the notebook still holds kept its model alive"
    assert loop is not None  # the loop itself is still held here


def test_every_picture_recipe_shares_one_trace_of_the_network(face_model):
    """Feature visualisation runs many loops on one network (a recipe, a class, a layer at a time): its
    objectives call the network through :func:`compiled_forward`, so a new loop traces only its own
    step; the network, and each cut network, is traced once."""
    network = compiled_forward(face_model)
    maximize_class(face_model, "woman", steps=2, progress=False)
    assert network.experimental_get_tracing_count() == 1
    maximize_class(face_model, "woman", steps=2, regularizers=(Jitter(2),), progress=False)   # another loop
    maximize_class(face_model, "man", steps=2, regularizers=(TotalVariation(0.5),), progress=False)  # and another
    assert network.experimental_get_tracing_count() == 1
    maximize_filters(face_model, "conv2", [0, 1], steps=2, size=(32, 32), progress=False)
    maximize_filters(face_model, "conv2", [0, 1], steps=2, size=(32, 32), regularizers=(Jitter(2),), progress=False)
    assert compiled_forward(Objective("conv2").features(face_model)).experimental_get_tracing_count() == 1


def test_the_compiled_forward_pass_gives_the_networks_own_gradient(face_model, faces):
    """Inside a compiled step the gradient through :func:`compiled_forward` is the network's own."""
    x = tf.constant(faces)

    @tf.function
    def gradients(x):
        out = []
        for call in (lambda z: face_model(z, training=False), compiled_forward(face_model)):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(call(x)[:, 0])
            out.append(tape.gradient(loss, x))
        return out

    direct, through = (g.numpy() for g in gradients(x))
    assert np.abs(direct).max() > 0
    np.testing.assert_allclose(through, direct, rtol=1e-4, atol=1e-5 * np.abs(direct).max())

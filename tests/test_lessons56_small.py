"""Small checks for lessons 5 to 7 not covered elsewhere: the face-variant loader's contract
(course_utils.models.faces), the practice checks no other test drives (lesson 6's shifted EOT loss,
lesson 7's samples for a radius, blank answers), and the compiled loop's promise that many models
never set off TensorFlow's retracing warning.

Already tested elsewhere, not repeated here: the binary-search check (test_query_attacks.py), the
direction-estimate check (test_exercises_lesson5.py), the paste check (test_physical.py) and the
targeted margin check (test_distillation.py)."""

from __future__ import annotations

import logging
import statistics

import numpy as np
import pytest
import tensorflow as tf

from course_utils.classroom import lesson5, lesson6, lesson7
from course_utils.classroom.grading import NOT_ANSWERED, Exercise
from course_utils.io.images import sample_face
from course_utils.models.faces import FACE_VARIANTS, build_gender_cnn, face_card, face_facts, load_face_model

NAMES = ("substitute", "distilled", "noisy")


# --------------------------------------------------------------------------- the face variants


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    face = sample_face("astronaut")
    assert face.shape == (48, 48, 1) and face.dtype == np.float32
    return face[None]


@pytest.mark.parametrize("name", NAMES)
def test_each_variant_loads_its_trained_weights_and_gives_two_finite_logits(name, astronaut):
    model = load_face_model(name)
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 2)
    assert [model.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == list(FACE_VARIANTS[name].filters)
    logits = np.asarray(model(astronaut, training=False))
    assert logits.shape == (1, 2) and np.isfinite(logits).all(), logits
    untrained = np.asarray(build_gender_cnn(FACE_VARIANTS[name].filters)(astronaut, training=False))
    assert not np.allclose(logits, untrained, atol=1e-3), "the shipped weights were not loaded"


def test_an_unknown_name_is_refused_with_the_choices():
    for call in (load_face_model, face_facts, face_card):
        with pytest.raises(ValueError) as info:
            call("robust")
        message = str(info.value)
        assert "'robust'" in message and all(repr(name) in message for name in NAMES), message


@pytest.mark.parametrize("name", ["substitute", "noisy"])
def test_missing_weights_say_how_to_restore_them(name, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_face_model(name, tmp_path / "gone.weights.h5")
    message = str(info.value)
    assert "gone.weights.h5" in message and "git checkout" in message, message
    assert FACE_VARIANTS[name].retrain in message, message   # the tool that retrains this model


def test_facts_hold_what_the_lessons_read():
    facts = {name: face_facts(name) for name in NAMES}
    for name in NAMES:
        assert isinstance(facts[name], dict)
        assert facts[name]["filters"] == list(FACE_VARIANTS[name].filters), name
    assert facts["distilled"]["temperature"] == pytest.approx(100.0)
    assert facts["noisy"]["sigma"] == pytest.approx(24.0)
    assert facts["substitute"]["queries"] == facts["substitute"]["rounds"][-1]["set_size"]
    assert 0.5 < facts["substitute"]["agreement"] <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_each_variant_has_its_own_card(name):
    card = face_card(name)
    assert card.is_file() and card.suffix == ".md" and card.stem == FACE_VARIANTS[name].stem
    assert card.read_text(encoding="utf-8").strip()


# --------------------------------------------------------------------------- the practice checks: helpers


def _accepts(check, *args, capsys) -> None:
    capsys.readouterr()
    check(*args)
    assert "correct" in capsys.readouterr().out


def _blank(check, *args, capsys) -> None:
    capsys.readouterr()
    check(*args)   # must not raise
    assert NOT_ANSWERED in capsys.readouterr().out


# --------------------------------------------------------------------------- lesson 6, exercise 2


def shift_eot_loss(model, x, labels):   # notebooks/06_physical_world.ipynb, the solution
    shifted = [tf.roll(x, shift, axis) for axis in (1, 2) for shift in (-1, 1)]
    losses = [tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=model(s)) for s in shifted]
    return tf.reduce_mean(tf.stack(losses), axis=0)


def test_shift_eot_check(capsys):
    _accepts(lesson6.lesson6_shift_eot, shift_eot_loss, "smaller", capsys=capsys)
    _blank(lesson6.lesson6_shift_eot, None, "smaller", capsys=capsys)
    _blank(lesson6.lesson6_shift_eot, lambda m, x, y: None, "smaller", capsys=capsys)
    _blank(lesson6.lesson6_shift_eot, shift_eot_loss, None, capsys=capsys)
    with pytest.raises(Exercise.WrongAnswer, match="prediction"):
        lesson6.lesson6_shift_eot(shift_eot_loss, "larger")

    def plain(model, x, labels):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(x))

    def summed(model, x, labels):
        return 4 * shift_eot_loss(model, x, labels)

    def batch_axis(model, x, labels):   # rolls the batch instead of the picture
        shifted = [tf.roll(x, s, 0) for s in (-1, 1, -2, 2)]
        return tf.reduce_mean(tf.stack([plain(model, v, labels) for v in shifted]), axis=0)

    for wrong, match in [(plain, "plain loss"), (summed, "four times"), (batch_axis, "differs"),
                         (lambda m, x, y: shift_eot_loss(m, x, y).numpy(), "tensor"), ("loss", "function")]:
        with pytest.raises(Exercise.WrongAnswer, match=match):
            lesson6.lesson6_shift_eot(wrong, "smaller")


# --------------------------------------------------------------------------- lesson 7, exercise 2


def samples_needed(radius, sigma, alpha):   # notebooks/07_hidden_gradients.ipynb, the solution
    import math
    p_needed = statistics.NormalDist().cdf(radius / sigma)
    return math.ceil(math.log(alpha) / math.log(p_needed))


def test_samples_needed_check(capsys):
    _accepts(lesson7.lesson7_samples_needed, samples_needed, False, capsys=capsys)
    _blank(lesson7.lesson7_samples_needed, None, False, capsys=capsys)
    _blank(lesson7.lesson7_samples_needed, lambda r, s, a: None, False, capsys=capsys)
    _blank(lesson7.lesson7_samples_needed, samples_needed, None, capsys=capsys)
    with pytest.raises(Exercise.WrongAnswer, match="prediction"):
        lesson7.lesson7_samples_needed(samples_needed, True)
    with pytest.raises(Exercise.WrongAnswer, match="True or False"):
        lesson7.lesson7_samples_needed(samples_needed, "no")
    import math
    for wrong, match in [
        (lambda r, s, a: samples_needed(r, s, a) - 1, "round up"),
        (lambda r, s, a: math.log(a) / math.log(statistics.NormalDist().cdf(r / s)), "whole number"),
        (lambda r, s, a: math.ceil(math.log(a) / math.log(r / s / 10)) if r < 10 * s else 1, "smallest n"),
        (lambda r, s, a: "many", "one whole number"),
        (1000, "function"),
    ]:
        with pytest.raises(Exercise.WrongAnswer, match=match):
            lesson7.lesson7_samples_needed(wrong, False)


def test_the_paste_check_puts_the_patch_where_the_course_does():
    """At whole pixels, the check's reference paste agrees with the course's bilinear one."""
    from course_utils.attacks.patch import apply_patch
    from course_utils.classroom.lesson6 import _paste_reference

    rng = np.random.default_rng(0)
    photo = rng.uniform(0, 255, (36, 44, 3)).astype(np.float32)
    for row, col, p in [(5, 9, 8), (0, 0, 4), (28, 36, 8)]:
        patch = rng.uniform(0, 255, (p, p, 3)).astype(np.float32)
        course = apply_patch(photo, patch, [row + (p - 1) / 2, col + (p - 1) / 2, p, 0])[0]
        assert np.allclose(course, _paste_reference(photo, patch, row, col), atol=1e-3)


# --------------------------------------------------------------------------- blank code after a right prediction


@pytest.mark.parametrize("check, prediction", [
    (lesson5.lesson5_binary_search, 10),
    (lesson5.lesson5_direction_estimate, 0.15),
    (lesson6.lesson6_paste_corner, (17, 27)),
], ids=["binary_search", "direction_estimate", "paste_corner"])
def test_a_right_prediction_with_no_code_yet_is_not_answered(check, prediction, capsys):
    _blank(check, prediction, None, capsys=capsys)
    with pytest.raises(Exercise.WrongAnswer):   # and a wrong prediction is still caught before the code
        check(-1, None)


# --------------------------------------------------------------------------- the compiled loop


def test_many_models_do_not_set_off_the_retracing_warning(monkeypatch):
    from course_utils.attacks.pgd import pgd_attack
    from tensorflow.python.eager.polymorphic_function import polymorphic_function as pf

    # TensorFlow warns at most twice per traced function per process: start from a clean count so an
    # earlier test cannot have used those warnings up.
    monkeypatch.setattr(pf, "_frequent_tracing_detector_manager", pf._FrequentTracingDetectorManager())
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger, handler = logging.getLogger("tensorflow"), Keep(logging.WARNING)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        x = sample_face("astronaut")[None]
        for _ in range(6):
            result = pgd_attack(build_gender_cnn(), x, [0], 4.0, steps=2)
            assert result.adversarial.shape == x.shape
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    retracing = [r.getMessage() for r in records if "retracing" in r.getMessage()]
    assert not retracing, retracing[0]


# --------------------------------------------------------------------------- the one compiled forward pass


def _compiled_forward_on_a_fresh_model():
    """Checks the three outputs on a model made here; returns only a weak reference to it (a model
    in the test's own frame would be kept alive by the assertion recorder of the stability harness)."""
    import weakref

    from course_utils.models.forward import compiled_forward

    model = build_gender_cnn()
    x = np.stack([sample_face("astronaut"), sample_face("grace_hopper")]).astype(np.float32)
    logits = compiled_forward(model)(x).numpy()
    np.testing.assert_allclose(logits, model(x).numpy(), atol=1e-4)
    p = compiled_forward(model, "probabilities")(x).numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    labels = compiled_forward(model, "label")(x).numpy()
    if not (labels.dtype == np.int64 and np.array_equal(labels, logits.argmax(axis=1))):
        raise AssertionError(f"labels {labels} ({labels.dtype}) are not the logits' argmax")
    if compiled_forward(model, "label") is not compiled_forward(model, "label"):
        raise AssertionError("the compiled forward pass was made twice")
    with pytest.raises(ValueError, match="'logits', 'probabilities', 'label'"):
        compiled_forward(model, "scores")
    return weakref.ref(model)


def test_compiled_forward_gives_logits_probabilities_and_labels_and_lets_the_model_go():
    import gc

    gone = _compiled_forward_on_a_fresh_model()
    gc.collect()
    assert gone() is None, "the compiled functions must not keep the model alive"

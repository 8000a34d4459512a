"""No silent wrong result, no raw error: careless input gets a clear course error, before tracing.

One parametrised test per kind of bad input; each checks the error type and that the message
quotes the value. Runs on the face model of lesson 1 (3,212 weights) so it stays fast.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.gradient import input_gradient, noise_filter
from course_utils.attacks.pgd import fgsm, iterative_attack
from course_utils.checks import WrongTypeError
from course_utils.models.faces import GENDER_CLASSES, load_gender_cnn
from course_utils.io.images import sample_face
from course_utils.models.imagenet import ClassNames, _UnknownClassError as UnknownClassError, imagenet_label
from course_utils.vis.objectives import Blur, Jitter, TotalVariation
from course_utils.models.forward import conv_layers
from course_utils.vis.visualize import maximize_class, maximize_filters


@pytest.fixture(scope="module")
def face_model():
    return load_gender_cnn()


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return sample_face("astronaut")


def _attack(model, face, **kwargs):
    args = {"target": "man", "epsilon": 2.0, "steps": 1, "progress": False, **kwargs}
    return iterative_attack(model, face, **args)


def _noise(model, face, **kwargs):
    args = {"target": "man", "steps": 1, "learning_rate": 30.0, "progress": False, **kwargs}
    return noise_filter(model, face, **args)


def _filters(model, face, **kwargs):
    args = {"layer": "conv1", "filters": [0], "steps": 1, "size": (16, 16), "progress": False, **kwargs}
    return maximize_filters(model, **args)


def _class(model, face, **kwargs):
    args = {"target": "woman", "steps": 1, "progress": False, **kwargs}
    return maximize_class(model, **args)


def _gradient(model, face, **kwargs):
    return input_gradient(model, face, **{"target": "man", **kwargs})


CALLS = {"attack": _attack, "noise": _noise, "filters": _filters, "class": _class, "gradient": _gradient}


def _refused(call, error: type[Exception], quoted: str | None) -> str:
    """Run ``call``; it must raise ``error`` with ``quoted`` in the message and no graph traceback."""
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert not isinstance(caught.value, tf.errors.OpError) and "in user code" not in message, message
    if quoted is not None:
        assert quoted in message, message
    return message


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "call, kwargs, bad",
    [
        ("attack", {"epsilon": "4"}, "4"),
        ("attack", {"epsilon": True}, True),
        ("attack", {"epsilon": None}, None),
        ("attack", {"epsilon": [4.0]}, [4.0]),
        ("attack", {"step_size": "1"}, "1"),
        ("attack", {"step_size": True}, True),
        ("noise", {"beta": "0.1"}, "0.1"),
        ("noise", {"beta": [0.0, True]}, True),
        ("noise", {"learning_rate": "30"}, "30"),
        ("filters", {"step_size": "3"}, "3"),
        ("filters", {"noise": "2"}, "2"),
    ],
)
def test_a_number_of_the_wrong_type_is_refused(face_model, face, call, kwargs, bad):
    message = _refused(lambda: CALLS[call](face_model, face, **kwargs), WrongTypeError, repr(bad))
    assert "must be a number" in message
    if isinstance(bad, str):
        assert "without quotes" in message


def test_wrong_types_are_type_errors_and_value_errors():
    assert issubclass(WrongTypeError, TypeError) and issubclass(WrongTypeError, ValueError)


@pytest.mark.parametrize(
    "call, kwargs, bad",
    [
        ("attack", {"epsilon": -1.0}, "-1.0"),
        ("attack", {"epsilon": float("nan")}, "nan"),
        ("attack", {"step_size": 0.0}, "0.0"),
        ("noise", {"beta": -0.5}, "-0.5"),
        ("filters", {"noise": 300.0}, "300.0"),
    ],
)
def test_a_number_out_of_range_is_refused(face_model, face, call, kwargs, bad):
    with pytest.raises(ValueError) as caught:
        CALLS[call](face_model, face, **kwargs)
    assert not isinstance(caught.value, WrongTypeError) and bad in str(caught.value)


# --------------------------------------------------------------------------- whole numbers


@pytest.mark.parametrize(
    "make, bad",
    [
        (lambda m, f, b: _filters(m, f, filters=[0, b]), 1.7),
        (lambda m, f, b: _filters(m, f, filters=[0, b]), "2"),
        (lambda m, f, b: _filters(m, f, filters=[0, b]), True),
        (lambda m, f, b: _filters(m, f, filters=b), np.float64(2.0)),
        (lambda m, f, b: _filters(m, f, size=b), (2.7, 3.9)),
        (lambda m, f, b: _filters(m, f, size=b), ("64", 64)),
        (lambda m, f, b: _filters(m, f, size=b), 64.0),
        (lambda m, f, b: _filters(m, f, size=b), "64"),
        (lambda m, f, b: _attack(m, f, steps=b), 2.5),
        (lambda m, f, b: _attack(m, f, steps=b), "10"),
        (lambda m, f, b: imagenet_label(b), 2.7),
        (lambda m, f, b: imagenet_label(b), True),
        (lambda m, f, b: conv_layers(m, n=b), 2.0),
        (lambda m, f, b: Jitter(b), 1.5),
        (lambda m, f, b: Blur(1.0, every=b), 2.5),
    ],
)
def test_a_fraction_or_text_where_a_whole_number_belongs_is_refused(face_model, face, make, bad):
    message = _refused(lambda: make(face_model, face, bad), WrongTypeError, repr(bad))
    if isinstance(bad, (float, np.floating)) and float(bad).is_integer():
        assert f"write {int(bad)}" in message


# --------------------------------------------------------------------------- classes


@pytest.mark.parametrize(
    "call, bad, hint",
    [
        ("attack", 1.0, "write 1"),
        ("attack", [0, 1.0], "write 1"),
        ("attack", {"man"}, "list of classes"),
        ("noise", 1.0, "write 1"),
        ("gradient", 0.0, "write 0"),
        ("class", 1.0, "write 1"),
    ],
)
def test_a_class_that_is_not_an_index_or_a_name_is_refused(face_model, face, call, bad, hint):
    quoted = repr(bad[-1]) if isinstance(bad, list) else repr(bad)
    message = _refused(lambda: CALLS[call](face_model, face, target=bad), WrongTypeError, quoted)
    assert hint in message


def test_a_float_imagenet_class_is_refused_with_the_index_to_write():
    message = _refused(lambda: ClassNames.of().index(145.0), WrongTypeError, "145.0")
    assert "write 145" in message and "ImageNet class name" in message


@pytest.mark.parametrize(
    "call, kwargs, error, message",
    [
        ("gradient", {}, WrongTypeError, "input_gradient needs a target class"),
        ("attack", {}, ValueError, "target=None needs targeted=False"),
        ("class", {}, WrongTypeError, "maximize_class needs a class to draw"),
        ("noise", {}, WrongTypeError, "got None"),
    ],
)
def test_target_none_is_refused_where_there_is_no_default(face_model, face, call, kwargs, error, message):
    assert message in _refused(lambda: CALLS[call](face_model, face, target=None, **kwargs), error, None)


def test_fgsm_without_a_target_says_how_to_go_untargeted(face_model, face):
    _refused(lambda: fgsm(face_model, face, None, 2.0), ValueError, "target=None needs targeted=False")


def test_untargeted_none_still_leaves_the_models_own_answer(face_model, face):
    r = _attack(face_model, face, target=None, targeted=False, steps=2)
    assert r.labels[0] == r.original_class[0] == 1  # the astronaut's face is read "woman"


@pytest.mark.parametrize("call", ["attack", "noise", "gradient", "class"])
def test_face_classes_are_named_the_same_way_everywhere(face_model, face, call):
    by_name = CALLS[call](face_model, face, target="Woman")
    by_index = CALLS[call](face_model, face, target=1)
    if call == "gradient":
        np.testing.assert_array_equal(by_name, by_index)
    elif call == "class":
        assert by_name.what == by_index.what == ["woman"]
    else:
        assert by_name.labels.tolist() == by_index.labels.tolist() == [1]
    message = _refused(lambda: CALLS[call](face_model, face, target="wman"), UnknownClassError, "'wman'")
    assert "did you mean 'woman'" in message and "allowed: 0 or 1, or 'man' or 'woman'" in message
    message = _refused(lambda: CALLS[call](face_model, face, target="king penguin"), UnknownClassError, "'king penguin'")
    assert "needs an ImageNet model" in message


def test_face_class_names_follow_the_same_rules(face_model):
    assert ClassNames.of(GENDER_CLASSES).index("woman") == ClassNames.of(face_model).index("woman") == 1
    assert "did you mean 'man'" in _refused(lambda: ClassNames.of(face_model).index("mann"), ValueError, "'mann'")


def test_results_name_face_classes_too(face_model, face):
    r = _attack(face_model, face, target="man", track=["woman"])
    assert r.final_probability("man")[0] == pytest.approx(r.final_probability()[0])


# --------------------------------------------------------------------------- regularisers


@pytest.mark.parametrize(
    "bad, quoted",
    [
        (["jitter"], "'jitter'"),
        ("jitter", "'jitter'"),
        ((Blur,), "write Blur()"),
        (Blur, "write Blur()"),
        ((Jitter(2), TotalVariation), "write TotalVariation()"),
        (5, "5"),
    ],
)
@pytest.mark.parametrize("call", ["filters", "class"])
def test_regularisers_of_the_wrong_type_are_refused(face_model, face, call, bad, quoted):
    _refused(lambda: CALLS[call](face_model, face, regularizers=bad), WrongTypeError, quoted)


# --------------------------------------------------------------------------- sizes and batches


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": (4, 4), "regularizers": (Blur(3.0),)}, "needs images at least 7x7 pixels (its kernel reaches 6"),
        ({"size": (1, 8), "regularizers": (TotalVariation(),)}, "needs images at least 2x2 pixels"),
        ({"size": (2, 2), "layer": "conv3"}, "size 2x2 is too small for layer 'conv3'"),
        ({"size": (8, 1), "layer": "conv2"}, "the smallest square size that works is 2x2"),
        ({"size": (0, 16)}, "(0, 16)"),
    ],
)
def test_a_picture_too_small_for_the_model_or_a_regulariser_is_refused(face_model, face, kwargs, message):
    _refused(lambda: _filters(face_model, face, **kwargs), ValueError, message)


@pytest.mark.parametrize("call", ["attack", "noise", "gradient"])
def test_an_empty_batch_is_refused(face_model, face, call):
    no_faces = np.zeros((0, 48, 48, 1), np.float32)
    assert "(0, 48, 48, 1)" in _refused(lambda: CALLS[call](face_model, no_faces), ValueError, "empty batch")


# --------------------------------------------------------------------------- seeds and flags


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**40, ValueError), (2.5, WrongTypeError),
                                        ("0", WrongTypeError), (True, WrongTypeError)])
@pytest.mark.parametrize("call", ["filters", "class"])
def test_a_bad_seed_is_refused(face_model, face, call, bad, error):
    message = _refused(lambda: CALLS[call](face_model, face, seed=bad), error, repr(bad))
    assert "seed must be a whole number in 0..2147483647" in message


@pytest.mark.parametrize("call, kwargs, bad", [("attack", {"targeted": "False"}, "False"),
                                                ("attack", {"progress": "no"}, "no")])
def test_a_flag_written_as_text_is_refused(face_model, face, call, kwargs, bad):
    assert "must be True" in _refused(lambda: CALLS[call](face_model, face, **kwargs), WrongTypeError, repr(bad))


# --------------------------------------------------------------------------- valid input still works


def test_numpy_scalars_work_like_python_numbers(face_model, face):
    numpy_args = dict(target=np.int64(0), epsilon=np.float32(2.0), steps=np.int64(2), step_size=np.float64(0.5))
    python_args = dict(target=0, epsilon=2.0, steps=2, step_size=0.5)
    np.testing.assert_array_equal(_attack(face_model, face, **numpy_args).adversarial,
                                  _attack(face_model, face, **python_args).adversarial)
    a = _filters(face_model, face, filters=np.array([0, 1]), size=(np.int64(8), np.int64(8)), seed=np.int32(3),
                 steps=np.int64(2), step_size=np.float32(3.0))
    b = _filters(face_model, face, filters=[0, 1], size=(8, 8), seed=3, steps=2, step_size=3.0)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert _filters(face_model, face, filters=np.int64(2), size=8).pixels.shape == (1, 8, 8, 1)
    assert imagenet_label(np.int64(145)) == "king penguin" and ClassNames.of(2).index(np.int32(1)) == 1
    assert Jitter(np.int64(3)).pixels == 3 and Blur(np.float32(0.5)).sigma == 0.5


def test_the_step_size_of_the_iterative_attack_is_explicit(face_model, face):
    doc = iterative_attack.__doc__
    assert "2.5 * epsilon / steps" in doc and "Madry" in doc and "Kurakin" in doc
    r = _attack(face_model, face, epsilon=3.0, steps=2, step_size=1.0)  # Kurakin et al.: 1 grey level a step
    assert r.linf[0] <= 2.0 + 1e-4

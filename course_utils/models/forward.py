"""Running a model and looking inside it: :func:`cached`, the course's one cache of compiled
functions (the driver's steps, :func:`compiled_forward`'s forward passes), and the layers to look
at, found from the model's structure (never hard-coded names), so lesson 3 works with VGG16,
EfficientNet-Lite0 and the face model: :func:`conv_layers`, :func:`receptive_field`,
:func:`layer_summary`, :func:`feature_model`, and the checks that give clear errors for them.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable, Sequence

import course_utils  # noqa: F401  (quiets TensorFlow's start-up)
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import MAX_WORKING_BYTES, check_int, check_memory

__all__ = ["MAX_PER_MODEL", "cached", "compiled_forward", "conv_layers", "receptive_field", "layer_summary",
           "check_layer", "feature_model", "check_picture_size"]

MAX_PER_MODEL = 32
"""How many compiled functions :func:`cached` keeps per model (least recently used dropped first)."""

_CACHE: "weakref.WeakKeyDictionary[Any, OrderedDict[Hashable, Any]]" = weakref.WeakKeyDictionary()


def cached(model: Any, key: Hashable, build: Callable[[], Any]) -> Any:
    """What ``build()`` made for ``(model, key)``, built the first time and kept while ``model`` lives
    (a weak dictionary; at most :data:`MAX_PER_MODEL` per model, least recently used dropped first).

    ``model`` is what the compiled function belongs to (a model, or for a function that needs none,
    the class that defines it); ``key`` names what is compiled and its static settings only (never
    per-call values, which are arguments of the graph). ``build`` must hold the model weakly (a
    ``weakref.ref``), or the model would keep itself alive. A model that cannot be weakly referenced
    gets a fresh build each time, kept nowhere.
    """
    try:
        per_model = _CACHE.get(model)
        if per_model is None:
            per_model = _CACHE[model] = OrderedDict()
    except TypeError:
        return build()
    if key in per_model:
        per_model.move_to_end(key)
        return per_model[key]
    made = per_model[key] = build()
    while len(per_model) > MAX_PER_MODEL:
        per_model.popitem(last=False)
    return made

#: What a forward pass can return: the logits, the softmax probabilities, or the top-1 class.
_OUTPUTS: tuple[str, ...] = ("logits", "probabilities", "label")


def compiled_forward(model: Any, output: str = "logits") -> Callable[[tf.Tensor], tf.Tensor]:
    """``model``'s forward pass as one compiled function (``training=False``), made once per model
    and ``output``.

    Args:
        model: a Keras model (or any callable taking ``training=``): float32 ``(N, H, W, C)``
            pixels 0..255 in, ``(N, K)`` logits out.
        output: ``"logits"`` (float32 ``(N, K)``), ``"probabilities"`` (softmax, float32
            ``(N, K)``, 0..1) or ``"label"`` (the top-1 class, int64 ``(N,)``).

    Raises:
        ValueError: an unknown ``output``.
    """
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(map(repr, _OUTPUTS))}, got {output!r}")
    try:
        ref = weakref.ref(model)
    except TypeError:  # not weak-referenceable: compile without caching
        ref = lambda m=model: m  # noqa: E731
    return cached(model, ("forward", output), lambda: _compile_forward(ref, getattr(model, "input_shape", None), output))


def _compile_forward(ref: Callable[[], Any], shape: Any, output: str) -> Callable[[tf.Tensor], tf.Tensor]:
    spec = [tf.TensorSpec((None, *shape[1:]), tf.float32)] if shape is not None else None

    def forward(x: tf.Tensor) -> tf.Tensor:
        logits = tf.cast(ref()(x, training=False), tf.float32)
        if output == "probabilities":
            return tf.nn.softmax(logits, axis=-1)
        if output == "label":
            return tf.argmax(logits, axis=-1)
        return logits

    fn = tf.function(forward, input_signature=spec, reduce_retracing=spec is None)
    fn._omit_frequent_tracing_warning = True  # one trace per model by design
    return fn


# ------------------------------------------------------------------ layers

def _producer(tensor) -> keras.Operation:
    return tensor._keras_history.operation


def _inbound(layer: keras.layers.Layer) -> list[keras.Operation]:
    """The layers whose outputs feed ``layer`` in the model it was built in (its first call)."""
    inputs = layer.input
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return [_producer(t) for t in inputs]


def _is_activation(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.ReLU) or (
        isinstance(layer, keras.layers.Activation) and layer.activation is not keras.activations.linear
    )


def _feature_layers(model: keras.Model) -> list[str]:
    """Names of the layers that hold a convolution's response, one per convolution, in order.

    For VGG16 these are the ``Conv2D`` layers (ReLU built in). For EfficientNet-Lite0 they are
    the batch norms right before each ``ReLU6`` of a full convolution (``stem_bn``,
    ``block1_expand_bn``, ..., ``top_bn``): ReLU6 caps at 6, so an activation that is already high
    could not rise any further after it, and its gradient is zero wherever it is capped; the
    response just before the cap has no such limit. Depthwise convolutions are left out: each of
    their filters sees one channel only, so it is a poor picture of what the layer has learned.
    """
    names = []
    for layer in model.layers:
        out = getattr(layer, "output", None)
        if out is None or len(out.shape) != 4:
            continue
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            if layer.activation is not keras.activations.linear:
                names.append(layer.name)
        elif _is_activation(layer):
            source = _inbound(layer)[0]
            if not isinstance(source, keras.layers.BatchNormalization):
                if isinstance(source, keras.layers.Conv2D) and not isinstance(source, keras.layers.DepthwiseConv2D):
                    names.append(layer.name)  # conv -> activation, no batch norm in between
                continue
            conv = _inbound(source)[0]
            if isinstance(conv, keras.layers.Conv2D) and not isinstance(conv, keras.layers.DepthwiseConv2D):
                names.append(source.name)
    return names


def conv_layers(model: keras.Model, n: int = 5) -> list[str]:
    """``n`` convolutional feature layers from the first to the deepest resolution.

    Takes the first feature layer (see :func:`_feature_layers`) at each spatial resolution (one per
    stage: for VGG16, ``block1_conv1`` .. ``block5_conv1``) and, if there are more stages than
    ``n``, ``n`` evenly spaced ones; if fewer, fills in evenly spaced layers in between.
    """
    names = _feature_layers(model)
    if not names:
        raise ValueError(f"{model.name} has no convolutional feature layers")
    n = check_int("n", n, minimum=1, maximum=len(names))
    stage_first: list[str] = []
    seen: set[tuple] = set()
    for name in names:
        hw = tuple(model.get_layer(name).output.shape[1:3])
        if hw not in seen:
            seen.add(hw)
            stage_first.append(name)
    if len(stage_first) >= n:
        picks = np.linspace(0, len(stage_first) - 1, n).round().astype(int)
        return [stage_first[i] for i in picks]
    chosen = {names.index(s) for s in stage_first}
    for i in np.linspace(0, len(names) - 1, n + 2).round().astype(int):
        if len(chosen) >= n:
            break
        chosen.add(int(i))
    for i in range(len(names)):  # linspace can repeat picks for small models: fill in order
        if len(chosen) >= n:
            break
        chosen.add(i)
    return [names[i] for i in sorted(chosen)]


def _receptive_fields(model: keras.Model) -> dict[str, tuple[int, int]]:
    """``layer name -> (receptive field, jump)`` in input pixels, along the height axis."""
    fields: dict[str, tuple[int, int]] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            fields[layer.name] = (1, 1)
            continue
        try:
            sources = [fields[s.name] for s in _inbound(layer)]
        except (KeyError, AttributeError, ValueError):
            continue
        rf, jump = max(s[0] for s in sources), max(s[1] for s in sources)
        kernel = stride = dilation = 1
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
            kernel, stride, dilation = layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            kernel, stride = layer.pool_size[0], layer.strides[0]
        fields[layer.name] = (rf + (kernel - 1) * dilation * jump, jump * stride)
    return fields


def receptive_field(model: keras.Model, layer: str) -> int:
    """How many input pixels (along one side) one unit of ``layer`` can see.

    Computed from the kernel sizes and strides on the way from the input (through skip
    connections, the larger path counts). It can exceed the picture: then every unit sees it all.
    """
    fields = _receptive_fields(model)
    if layer not in fields:
        model.get_layer(layer)  # a clear Keras error for an unknown name
        raise ValueError(f"cannot work out the receptive field of {layer!r}")
    return int(fields[layer][0])


def layer_summary(model: keras.Model, mark: Sequence[str] = ()) -> pd.DataFrame:
    """The model's convolutional feature layers, one row each: ``layer``, ``kind`` (the layer
    type, and the convolution it reads for a batch norm), ``size`` (output height x width for the
    model's input), ``filters``, ``receptive_field`` (input pixels per side) and ``shown``
    (whether it is in ``mark``, e.g. the layers :func:`conv_layers` picked)."""
    fields = _receptive_fields(model)
    rows = []
    for name in _feature_layers(model):
        layer = model.get_layer(name)
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.BatchNormalization):
            kind += f" of {_inbound(layer)[0].name}"
        h, w, c = layer.output.shape[1:]
        rows.append(
            {"layer": name, "kind": kind, "size": f"{h}x{w}", "filters": int(c),
             "receptive_field": int(fields[name][0]), "shown": name in mark}
        )
    return pd.DataFrame(rows)


def check_layer(model: keras.Model, layer: str) -> tuple[keras.layers.Layer, int]:
    """``(the layer, its number of filters)`` for a conv feature layer's name, or a clear error
    listing the feature layers (and, for a near miss such as a convolution read through its batch
    norm, the name to use instead)."""
    if not isinstance(layer, str):
        from course_utils.checks import WrongTypeError, describe

        raise WrongTypeError(f"layer must be a layer name (a str), got {describe(layer)}; conv_layers(model, n) picks some")
    names = _feature_layers(model)
    listing = ", ".join(names)
    try:
        target = model.get_layer(layer)
    except ValueError:
        raise ValueError(f"{model.name} has no layer {layer!r}; its conv feature layers are: {listing}") from None
    if layer not in names:
        hint = ""
        users = [n for n in names if any(s is target for s in _inbound(model.get_layer(n)))]
        if users:
            hint = f" (its response is read after its batch norm: use {users[0]!r})"
        elif _is_activation(target) and _inbound(target)[0].name in names:
            hint = f" (use {_inbound(target)[0].name!r}, the response before the activation's cap)"
        raise ValueError(
            f"{layer!r} is a {type(target).__name__}, not a convolutional feature layer{hint}; "
            f"choose one of: {listing}"
        )
    return target, int(target.output.shape[-1])


def feature_model(model: keras.Model, target: keras.layers.Layer) -> keras.Model:
    """``model`` cut at ``target``: pixels of any height and width in, ``target``'s response out."""
    sub = keras.Model(model.input, target.output)
    # Same layers (shared weights) on an input of any height and width.
    return keras.models.clone_model(
        sub, input_tensors=keras.Input((None, None, model.input_shape[-1])), clone_function=lambda l: l
    )


def check_picture_size(model: Any, layer: Any, n: int, hw: tuple[int, int], size: Any,
                       features: Callable[[], keras.Model]) -> keras.Model:
    """Refuse a picture size (``size`` as given, ``hw`` its ``(height, width)``) for ``n`` pictures
    maximising ``layer`` at once, before any work, and return ``features()`` (``model`` cut at
    ``layer``, built only once the size fits):

    - too large: the batch (the pictures, their gradient, the parameterisation and the transforms'
      copies: about 8 float32 copies, and the layer's activations) would not fit in
      :data:`~course_utils.checks.MAX_WORKING_BYTES`: the message names the largest square size that fits;
    - too small to reach the layer (each pooling or strided step shrinks the picture; the face
      model halves 48 -> 24 -> 12 -> 6): the message gives the smallest square size that works.
    """
    c = int(model.input_shape[-1])
    ratio = 0.0
    try:
        out, own = tuple(layer.output.shape)[1:3], tuple(model.input_shape)[1:3]
        if None not in out and None not in own:
            ratio = (out[0] * out[1]) / (own[0] * own[1])
    except (AttributeError, TypeError, ValueError):
        pass
    per_pixel = 4 * (8 * c + 2 * int(layer.output.shape[-1]) * ratio) * n
    side = int(math.isqrt(int(MAX_WORKING_BYTES // per_pixel)))
    check_memory("size", size, per_pixel * hw[0] * hw[1], f"({side}, {side})",
                 f"{n} picture(s) of {hw[0]} x {hw[1]} x {c} optimised at once, with their gradients and copies")
    extractor = features()

    def reaches(side_h: int, side_w: int) -> bool:
        try:
            try:
                shape = extractor.compute_output_shape((1, side_h, side_w, c))
            except NotImplementedError:  # Keras < 3.4: a Functional model has no compute_output_shape
                shape = extractor.compute_output_spec(keras.KerasTensor((1, side_h, side_w, c))).shape
        except ValueError:
            return False
        return all(d is None or d > 0 for d in shape[1:3])

    if not reaches(*hw):
        smallest = next((s for s in range(1, 1025) if reaches(s, s)), None)
        fix = f"the smallest square size that works is {smallest}x{smallest}" if smallest else "choose a larger size"
        raise ValueError(f"size {hw[0]}x{hw[1]} is too small for layer {layer.name!r}: the layers before it "
                         f"(pooling, strides) would shrink the picture to nothing; {fix}")
    return extractor

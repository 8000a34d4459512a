"""The course's one cache of compiled functions, kept per model while the model lives.

- :func:`cached` what every compiled function of the course is kept in: the gradient loops
  (:func:`course_utils.core.loop.compiled`) and the forward passes below. Per model, in a weak
  dictionary keyed by the model, so a model the notebook lets go is freed with them; at most
  :data:`MAX_PER_MODEL` per model, the least recently used dropped first.
- :func:`compiled_forward` one compiled forward pass per model and kind of answer. Attacks that only
  *ask* a model (query attacks, evolution, transfer rates) call it many times on batches: compiled, a
  large network runs about twice as fast as called eagerly, layer by layer.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable

import course_utils  # noqa: F401  (quiets TensorFlow's start-up)
import tensorflow as tf

__all__ = ["MAX_PER_MODEL", "cached", "compiled_forward"]

MAX_PER_MODEL = 32
"""How many compiled functions :func:`cached` keeps per model (least recently used dropped first)."""

_CACHE: "weakref.WeakKeyDictionary[Any, OrderedDict[Hashable, Any]]" = weakref.WeakKeyDictionary()


def cached(model: Any, key: Hashable, build: Callable[[], Any]) -> Any:
    """What ``build()`` made for ``(model, key)``, built the first time and kept while ``model`` lives.

    ``model`` is whatever the compiled function belongs to: a model, or, for a function that needs
    none (the print-and-photo simulation), the class that defines it.

    ``key`` names what is compiled and its static settings only (never per-call values, which are
    arguments of the compiled graph). ``build`` must hold the model weakly (a ``weakref.ref``), or
    the model would keep itself alive through its own cache. A model that cannot be weakly
    referenced gets a fresh build each time, kept nowhere.
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

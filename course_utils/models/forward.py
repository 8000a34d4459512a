"""One compiled forward pass per model and kind of answer, kept while the model lives.

Attacks that only *ask* a model (query attacks, evolution, transfer rates) call it many times on
batches: compiled, a large network runs about twice as fast as called eagerly, layer by layer.
The compiled functions are held in a weak dictionary keyed by the model, so a model the notebook
lets go is freed with them.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import course_utils  # noqa: F401  (quiets TensorFlow's start-up)
import tensorflow as tf

__all__ = ["OUTPUTS", "compiled_forward"]

#: What a forward pass can return: the logits, the softmax probabilities, or the top-1 class.
OUTPUTS: tuple[str, ...] = ("logits", "probabilities", "label")

_CACHE: "weakref.WeakKeyDictionary[Any, dict[str, Callable]]" = weakref.WeakKeyDictionary()


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
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(map(repr, OUTPUTS))}, got {output!r}")
    try:
        per_model = _CACHE.setdefault(model, {})
        ref = weakref.ref(model)
    except TypeError:  # not weak-referenceable: compile without caching
        per_model, ref = {}, (lambda m=model: m)
    if output not in per_model:
        shape = getattr(model, "input_shape", None)
        spec = [tf.TensorSpec((None, *shape[1:]), tf.float32)] if shape is not None else None

        def forward(x: tf.Tensor) -> tf.Tensor:
            logits = tf.cast(ref()(x, training=False), tf.float32)
            if output == "probabilities":
                return tf.nn.softmax(logits, axis=-1)
            if output == "label":
                return tf.argmax(logits, axis=-1)
            return logits

        fn = tf.function(forward, input_signature=spec, reduce_retracing=spec is None)
        fn._omit_frequent_tracing_warning = True  # one trace per model by design, as the loop's
        per_model[output] = fn
    return per_model[output]

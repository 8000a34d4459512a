"""What the pieces of the gradient loop have in common, and the three roles they play.

The loop (:mod:`course_utils.core.gradient_loop`) runs, every step::

    x_in        = transforms(x)                 # Transform: what the model sees (jitter, scale, rotate)
    loss, track = objective(x_in, data)         # what is minimised (course_utils.core.objectives)
    loss       += penalties(x, x0, data)        # Penalty: a price on the picture (total variation, L2)
    x           = x - step_size * step_rule(d loss / d x)
    x           = after_steps(x, x0, data)      # AfterStep: budgets, valid pixels, decay, blur

as Lucid/Lucent split feature visualisation into objectives, transforms and regularisers, and
Foolbox splits a gradient attack into a loss, a step normalisation and a projection. Each role
has its module: :mod:`course_utils.core.transforms`, :mod:`course_utils.core.penalties`,
:mod:`course_utils.core.steps`; :mod:`course_utils.regularizers` imports them all under their old names.

**Per-call values.** What changes from call to call (an epsilon, a beta, per example or one for
the batch) is not part of a piece: it reaches the hooks in ``data``, a dict of ``(N,)`` tensors
that the compiled loop takes as an argument, so a new value never traces the loop again. A piece
lists what it reads in :attr:`Regularizer.per_call` (name -> dtype); a value given when the piece
is made (``LinfBall(4.0)``) is only the default for its name. Everything else a piece holds
(a jitter of 8 pixels, a blur every 4 steps) is *structure*, part of :meth:`Regularizer.key`.

All tensors are float32 batches in pixel units, ``(N, H, W, C)``; ``step`` is the global step
number and ``seed`` the run's seed (int32 scalar tensors, for stateless randomness).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Hashable, Mapping

import numpy as np
import tensorflow as tf

from course_utils.checks import WrongTypeError, describe

__all__ = [
    "Regularizer", "Transform", "Penalty", "AfterStep", "freeze",
    "hook", "check_regularizers",
]


def freeze(value: Any) -> Hashable:
    """``value`` as something hashable for a cache key (arrays and lists become tuples)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, tuple(value.ravel().tolist()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


class Regularizer:
    """A composable piece of the loop. Override any of the hooks; the defaults do nothing.

    - :meth:`transform` changes the input the model sees (differentiable; random jitter).
    - :meth:`penalty` adds a per-example term to the loss (total variation, L2 of the change).
    - :meth:`after_step` changes ``x`` after each step, outside the gradient (clipping to a
      budget or to valid pixels, decay, blur).
    - :meth:`check_input` refuses, before anything is traced, a batch shape the piece cannot
      work on (a blur wider than the picture).

    ``penalty`` and ``after_step`` may take a last argument ``data`` (the per-call values, see
    the module's notes); hooks written without it still work.

    Attributes:
        per_call: the per-call values this piece reads from ``data``: name -> dtype.
    """

    per_call: Mapping[str, tf.DType] = {}

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return x

    def penalty(self, x: tf.Tensor, x0: tf.Tensor, data: Mapping[str, tf.Tensor] | None = None) -> tf.Tensor | None:
        return None

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor, data: Mapping[str, tf.Tensor] | None = None) -> tf.Tensor:
        return x

    def check_input(self, shape: tuple) -> None:
        """Raise ``ValueError`` if this piece cannot work on batches of ``shape`` ``(N, H, W, C)``."""

    def defaults(self) -> dict[str, Any]:
        """Per-call values given when the piece was made (``LinfBall(4.0)``: epsilon 4); a
        call's own ``data`` overrides them."""
        return {name: getattr(self, name) for name in self.per_call if getattr(self, name, None) is not None}

    def key(self) -> Hashable:
        """What this piece bakes into a compiled loop: its type and its settings, without the
        per-call values. Two pieces with the same key can share a compiled loop."""
        settings = {k: v for k, v in vars(self).items() if k not in self.per_call and not k.startswith("_")}
        return (type(self).__module__, type(self).__qualname__, freeze(settings))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Transform(Regularizer):
    """A piece that changes what the model sees, before the model (override :meth:`transform`)."""


class Penalty(Regularizer):
    """A piece that adds a per-example term to the loss (override :meth:`penalty`)."""


class AfterStep(Regularizer):
    """A piece that changes ``x`` after every step, outside the gradient (override :meth:`after_step`)."""


def hook(piece: Regularizer, name: str) -> Callable | None:
    """``piece``'s hook ``name`` as a function that takes ``data`` last, or ``None`` when the
    piece does not override it (so the loop skips it). Hooks written without ``data`` get a
    wrapper that drops it."""
    method = getattr(piece, name)
    if getattr(type(piece), name, None) is getattr(Regularizer, name):
        return None
    if name == "transform":
        return method
    try:
        takes_data = "data" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes_data = False
    if takes_data:
        return method
    return lambda *args: method(*args[:-1])


def check_regularizers(regularizers: Any, name: str = "regularizers") -> tuple:
    """The regularisers as a tuple of :class:`course_utils.core.pieces.Regularizer` objects.

    Accepts a tuple or list of them, one on its own, or ``None`` (none). Refuses names
    (``"jitter"``), classes that were not made into objects (``Blur`` instead of ``Blur()``) and
    anything else, before any graph is traced.
    """
    example = "such as (Jitter(8), Blur(1.0))"
    if regularizers is None:
        return ()
    if isinstance(regularizers, Regularizer):
        return (regularizers,)
    if isinstance(regularizers, type) and issubclass(regularizers, Regularizer):
        raise WrongTypeError(
            f"{name} got the class {regularizers.__name__}, not a regulariser: write "
            f"{regularizers.__name__}() (with brackets) to make one"
        )
    if isinstance(regularizers, (str, bytes)) or not isinstance(regularizers, (list, tuple)):
        raise WrongTypeError(f"{name} must be a tuple of regulariser objects {example}, got {describe(regularizers)}")
    for i, r in enumerate(regularizers):
        if isinstance(r, type) and issubclass(r, Regularizer):
            raise WrongTypeError(
                f"{name}[{i}] is the class {r.__name__}, not a regulariser: write {r.__name__}() "
                "(with brackets) to make one"
            )
        if not isinstance(r, Regularizer):
            raise WrongTypeError(f"{name}[{i}] must be a regulariser object such as Jitter(8) or Blur(1.0), got {describe(r)}")
    return tuple(regularizers)

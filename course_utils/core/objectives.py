"""Objectives of feature visualisation: what lesson 3's step minimises, one small object per role
(as Lucent's objectives; the attacks write their losses inline with :mod:`course_utils.core.ops`).

An objective is called as ``objective(x_in, data) -> (loss, tracked)``: ``x_in`` the batch the
model sees (pixels, after the transforms), ``data`` the per-call tensors (one per example: the
labels of this call...), ``loss`` shape ``(N,)`` to *minimise* and ``tracked`` shape ``(N, K)``,
recorded every step for the history. What an objective needs per call it lists in
:attr:`Objective.per_call`; the labels therefore enter the compiled loop as tensors, and a new
target never traces the loop again.

- :class:`ClassLogit` maximise the logit of per-call ``labels``. Tracks probability and logit.
- :class:`FilterMean` maximise a layer's channel (per-call ``filters``) averaged over positions;
  :class:`FilterCenter` the same channel at the centre position. Track that value.
- :class:`Diversity` how alike each picture's feature *style* is to the others' (Olah et al.
  2017): minimised, it pushes the pictures of one batch apart.

The last three read one layer's response (:class:`LayerObjective`); in a sum, terms that read the
same layer of the same model share one pass through the network.

They combine like numbers: ``a + 0.5 * b`` minimises the weighted sum and tracks both, side by
side (:class:`Sum`). Plain functions ``x -> (loss, tracked)`` work wherever an objective does.

An objective holds its model. The compiled steps the course keeps for a model (see
:func:`course_utils.core.loop.compiled`) hold it through :func:`weak`, so that they never keep a
model alive that the notebook has let go; objectives of one kind are equal (:meth:`Objective.key`),
so one compiled step serves them all.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable, Hashable, Mapping

import tensorflow as tf

from course_utils.checks import check_number, describe

__all__ = [
    "Objective", "ClassLogit", "LayerObjective", "FilterMean", "FilterCenter", "Diversity", "diversity",
    "Sum", "weak",
]


def weak(model: Any) -> Any:
    """A stand-in for ``model`` that calls and reads like it but does not keep it alive (a
    ``weakref.proxy``), for objectives kept in the cache of compiled loops."""
    if isinstance(model, weakref.ProxyTypes):
        return model
    try:
        return weakref.proxy(model)
    except TypeError:  # not weak-referenceable: keep it
        return model


def _merge_specs(*specs: Mapping[str, tf.DType]) -> dict[str, tf.DType]:
    """The per-call values several pieces read, name -> dtype; one name must mean one dtype."""
    merged: dict[str, tf.DType] = {}
    for spec in specs:
        for name, dtype in spec.items():
            if merged.setdefault(name, dtype) != dtype:
                raise ValueError(f"the per-call value {name!r} is read as {merged[name].name} and as {dtype.name}")
    return merged


class Objective:
    """Base of the objectives: override :meth:`__call__`, :attr:`per_call` and :meth:`key`."""

    per_call: Mapping[str, tf.DType] = {}

    def __call__(self, x: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        raise NotImplementedError

    def key(self) -> Hashable:
        """What this objective bakes into a compiled loop (never the per-call values nor the model)."""
        return (type(self).__qualname__, id(self))

    def __eq__(self, other: Any) -> bool:
        """Equal when of one kind (:meth:`key`): a compiled step made for one serves the other."""
        return isinstance(other, Objective) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __add__(self, other: Any) -> "Objective":
        if isinstance(other, (int, float)) and other == 0:
            return self
        return Sum([(1.0, self), (1.0, _as_objective(other))])

    def __radd__(self, other: Any) -> "Objective":
        return self.__add__(other)  # sum([a, b]) starts from 0

    def __mul__(self, weight: Any) -> "Objective":
        return Sum([(check_number("objective weight", weight), self)])

    __rmul__ = __mul__

    def __truediv__(self, weight: Any) -> "Objective":
        return self * (1.0 / check_number("objective divisor", weight, minimum=0.0, above=True))

    def __neg__(self) -> "Objective":
        return -1.0 * self

    def __sub__(self, other: Any) -> "Objective":
        return self + (-1.0) * _as_objective(other)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "model")
        return f"{type(self).__name__}({fields})"


class Sum(Objective):
    """``sum(weight * objective)``: the weighted sum of the losses; the tracked values of every
    term side by side (the first term's columns first)."""

    def __init__(self, terms: list[tuple[float, Objective]]) -> None:
        flat: list[tuple[float, Objective]] = []
        for weight, objective in terms:
            if isinstance(objective, Sum):
                flat += [(weight * w, o) for w, o in objective.terms]
            else:
                flat.append((float(weight), _as_objective(objective)))
        self.terms = tuple(flat)
        self.per_call = _merge_specs(*(o.per_call for _, o in self.terms))
        # for each term, the first term reading the same layer of the same model (itself if none)
        self._reads = [next(j for j, (_, b) in enumerate(self.terms[: i + 1]) if _same_layer(a, b))
                       for i, (_, a) in enumerate(self.terms)]

    def __call__(self, x: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        losses, tracked = [], []
        acts: dict[int, tf.Tensor] = {}  # one pass per layer read, by the first term that reads it
        for i, (weight, objective) in enumerate(self.terms):
            if isinstance(objective, LayerObjective):
                first = self._reads[i]
                if first not in acts:
                    acts[first] = objective.activations(x)
                loss, track = objective.on_acts(acts[first], data)
            else:
                loss, track = objective(x, data)
            losses.append(loss if weight == 1.0 else weight * loss)
            tracked.append(track)
        return tf.add_n(losses) if len(losses) > 1 else losses[0], tf.concat(tracked, axis=1)

    def key(self) -> Hashable:
        return ("sum", tuple((w, o.key()) for w, o in self.terms))

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {o!r}" for w, o in self.terms)


class _Function(Objective):
    """A plain function ``x -> (loss, tracked)`` or ``(x, data) -> (loss, tracked)`` as an
    objective; ``per_call`` names the values it reads from ``data`` (name -> dtype)."""

    def __init__(self, function: Callable, per_call: Mapping[str, tf.DType] | None = None) -> None:
        self.function = function
        self.per_call = dict(per_call or {})
        try:
            self._takes_data = len(inspect.signature(function).parameters) >= 2
        except (TypeError, ValueError):
            self._takes_data = False

    def __call__(self, x: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        return self.function(x, data) if self._takes_data else self.function(x)

    def key(self) -> Hashable:
        return ("function", self.function, tuple(sorted((k, v.name) for k, v in self.per_call.items())))


def _as_objective(objective: Any, per_call: Mapping[str, tf.DType] | None = None) -> Objective:
    """An :class:`Objective` as it is; a plain function wrapped as one (``per_call``: the
    per-call values a function ``(x, data) -> (loss, tracked)`` reads); anything else refused."""
    if isinstance(objective, Objective):
        return objective
    if callable(objective):
        return _Function(objective, per_call)
    raise TypeError(f"objective must be an Objective or a function x -> (loss, tracked), got {describe(objective)}")


class ClassLogit(Objective):
    """Maximise the logit of the per-call ``labels`` (one class per example; the loss is minus
    the logit). Tracks ``(N, 2)``: the class's probability, then its logit."""

    per_call = {"labels": tf.int32}

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, x: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        logits = self.model(x, training=False)
        chosen = tf.gather(logits, data["labels"], batch_dims=1)
        prob = tf.gather(tf.nn.softmax(logits), data["labels"], batch_dims=1)
        return -chosen, tf.stack([prob, chosen], axis=1)

    def key(self) -> Hashable:
        return ("class-logit",)


def _same_layer(a: Objective, b: Objective) -> bool:
    """Whether ``a`` and ``b`` read the same layer of the same model (so one pass serves both)."""
    if a is b:
        return True
    return (isinstance(a, LayerObjective) and isinstance(b, LayerObjective) and a.layer == b.layer
            and a.model == b.model)  # a weakref.proxy compares its model: identity


class LayerObjective(Objective):
    """An objective on the response of one conv feature ``layer`` of ``model``: subclasses give
    :meth:`on_acts`. The network is cut at ``layer`` once (:attr:`extractor`, on pictures of any
    size) and the cut is kept with the objective."""

    name = "layer"

    def __init__(self, model: Any, layer: str) -> None:
        self.model = model
        self.layer = layer
        self._extractor = None

    @property
    def extractor(self) -> Any:
        """The network up to ``layer``, taking pixels of any height and width (weights shared)."""
        if self._extractor is None:
            from course_utils.models.forward import check_layer, feature_model

            target, _ = check_layer(self.model, self.layer)
            self._extractor = feature_model(self.model, target)
        return self._extractor

    def activations(self, x: tf.Tensor) -> tf.Tensor:
        """``(N, h, w, C)``: the layer's response to pixels ``x`` ``(N, H, W, 3)``, 0..255."""
        return self.extractor(x, training=False)

    def on_acts(self, acts: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """``(loss (N,), tracked (N, K))`` from the layer's response ``acts`` ``(N, h, w, C)``."""
        raise NotImplementedError

    def __call__(self, x: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        return self.on_acts(self.activations(x), data)

    def key(self) -> Hashable:
        return (self.name, self.layer)


class FilterMean(LayerObjective):
    """Maximise the mean activation of one channel of ``layer`` over all positions: image ``i``
    its own channel ``data["filters"][i]``. Tracks that mean, ``(N, 1)``."""

    name = "filter-mean"
    per_call = {"filters": tf.int32}

    def mean_activations(self, x: tf.Tensor) -> tf.Tensor:
        """``(N, channels)``: every channel of ``layer`` averaged over positions."""
        return tf.reduce_mean(self.activations(x), axis=[1, 2])

    def on_acts(self, acts: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        mean = tf.gather(tf.reduce_mean(acts, axis=[1, 2]), data["filters"], batch_dims=1)  # image i -> its filter i
        return -mean, mean[:, None]


class FilterCenter(LayerObjective):
    """Maximise one channel of ``layer`` at the centre position ``(h // 2, w // 2)`` (Lucid's
    "neuron"): image ``i`` its own channel ``data["filters"][i]``. Tracks that value, ``(N, 1)``."""

    name = "filter-center"
    per_call = {"filters": tf.int32}

    def on_acts(self, acts: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        shape = tf.shape(acts)
        centre = tf.gather(acts[:, shape[1] // 2, shape[2] // 2, :], data["filters"], batch_dims=1)
        return -centre, centre[:, None]


def diversity(acts: tf.Tensor) -> tf.Tensor:
    """``(N,)`` how alike picture ``i``'s feature *style* is to the others' (Olah et al. 2017), 0..N-1.

    Each picture's Gram matrix of ``acts`` ``(N, h, w, C)`` (channel co-occurrences, summed over
    positions) is normalised to length 1; the value for picture ``i`` is the sum of its dot
    products with the other pictures' (0 for one picture, ``N - 1`` for ``N`` alike pictures).
    The mean over ``i`` is minus Lucid's ``diversity`` objective.
    """
    shape = tf.shape(acts)
    flat = tf.reshape(acts, [shape[0], -1, shape[3]])
    grams = tf.reshape(tf.matmul(flat, flat, transpose_a=True), [shape[0], -1])  # (N, C * C)
    grams = tf.math.l2_normalize(grams, axis=1, epsilon=1e-10)
    sims = tf.matmul(grams, grams, transpose_b=True)  # (N, N)
    return tf.reduce_sum(sims, axis=1) - tf.linalg.diag_part(sims)


class Diversity(LayerObjective):
    """Minimise :func:`diversity` of ``layer``'s response: the pictures of one batch are pushed
    apart in style. Add it to a filter objective with a weight (``FilterMean(m, l) + 2.0 *
    Diversity(m, l)``: one pass through the network serves both). Tracks the value, ``(N, 1)``."""

    name = "diversity"

    def on_acts(self, acts: tf.Tensor, data: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        value = diversity(acts)
        return value, value[:, None]

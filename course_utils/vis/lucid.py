"""Lucid-style feature visualisation: pictures a person recognises.

Lesson 3's loop, with the two ingredients of Lucid (Olah, Mordvintsev & Schubert, "Feature
Visualization", Distill 2017) that make the difference:

- a better **parameterisation** (:mod:`course_utils.core.param`: Fourier basis with a 1/f spectrum,
  decorrelated colour, sigmoid range), and
- strong **transformation robustness** (:mod:`course_utils.core.transforms`: pad, jitter, random scale,
  random rotate).

:func:`render_class` and :func:`render_filters` return the same
:class:`course_utils.vis.result.Visualization` as ``maximize_class`` / ``maximize_filters``. The
loop is the course's one :class:`course_utils.core.loop.GradientLoop` (``"rms"`` steps, so
``step_size`` is in parameter units): the parameterisation is its first regulariser, so the loop
changes the *parameters* and the model sees pixels 0..255. The parameters are kept flat,
``(N, P)``, so the objective can tell them from pixels (rank 4) when the loop evaluates the final
parameters without transforms. Pixel penalties (total variation) go through :class:`PixelPenalty`
and price the picture; after-step operations (decay, blur) would act on the parameters and are
refused. ``maximize_class`` / ``maximize_filters`` with ``param=`` run these functions.

Objectives besides a filter's mean: the filter at the centre position (:func:`center_activation`)
and a *diversity* term across the batch (:func:`diversity`), so several pictures of one filter
differ. :func:`judge_classes` scores class pictures with a second network that never saw the
optimisation.

How ``start`` and ``final`` are measured: the loop records the objective every step on the picture
*after* the random transforms (padded, moved, scaled, rotated: another size, other borders), but
measures the start and the final parameters without them (:class:`course_utils.core.history.LoopResult`),
so ``start`` and ``final`` (and a filter's rise over its rest on flat grey) compare like with like.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_number, check_seed, check_steps
from course_utils.core.pieces import check_regularizers
from course_utils.models.labels import resolve_classes
from course_utils.models.layers import check_feature_size, check_layer, feature_model
from course_utils.models.imagenet import class_name
from course_utils.core.loop import GradientLoop
from course_utils.core.pieces import Regularizer
from course_utils.core.cache import cached_loop
from course_utils.core.param import ImageParam, image_param
from course_utils.core.pieces import hook
from course_utils.core.pieces import GRAY
from course_utils.core.transforms import standard_transforms
from course_utils.vis.result import Visualization
from course_utils.vis.result import history as _history
from course_utils.vis.filters import _filter_indices, _photo_batch, _start_noise, class_objective

__all__ = [
    "OBJECTIVES",
    "center_activation",
    "mean_activation",
    "diversity",
    "render_class",
    "render_filters",
    "judge_classes",
    "JUDGED_CLASSES",
    "FILTER_START_SD",
    "PixelPenalty",
]

JUDGED_CLASSES = ("sea snake", "goldfish", "flamingo", "teapot", "pizza")
"""The classes :func:`judge_classes` scores by default: three animals and two objects."""

FILTER_START_SD = 0.001
"""The start parameters' standard deviation in :func:`render_filters` (``param`` given by name):
a tenth of Lucid's 0.01, so the start picture is within half a grey level of mid-grey. Lucid's
start is a smooth colour field of +-3 grey levels, which alone lifts some colour filters by a tenth
of their maximum; from an almost blank start, a filter's rise measures what the loop did."""

OBJECTIVES = ("mean", "center")
"""What :func:`render_filters` maximises for a filter: its mean over positions, or its value at
the centre position (Lucid's ``channel`` and a "neuron" at the centre)."""


def mean_activation(acts: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """``(N,)`` picture ``i``'s mean of channel ``index[i]`` of ``acts`` ``(N, h, w, C)``."""
    return tf.gather(tf.reduce_mean(acts, axis=[1, 2]), index, batch_dims=1)


def center_activation(acts: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """``(N,)`` picture ``i``'s channel ``index[i]`` at the centre position ``(h // 2, w // 2)``."""
    shape = tf.shape(acts)
    centre = acts[:, shape[1] // 2, shape[2] // 2, :]  # (N, C)
    return tf.gather(centre, index, batch_dims=1)


def diversity(acts: tf.Tensor) -> tf.Tensor:
    """``(N,)`` how alike picture ``i``'s feature *style* is to the others' (Olah et al. 2017).

    Each picture's Gram matrix of ``acts`` ``(N, h, w, C)`` (channel co-occurrences, summed over
    positions) is normalised to length 1; the term for picture ``i`` is the sum of its dot products
    with the other pictures' (0 for one picture). Adding ``weight * diversity`` to the loss pushes
    the pictures of one batch apart. The mean over ``i`` is Lucid's ``-diversity`` objective.
    """
    shape = tf.shape(acts)
    flat = tf.reshape(acts, [shape[0], -1, shape[3]])
    grams = tf.matmul(flat, flat, transpose_a=True)  # (N, C, C)
    grams = tf.reshape(grams, [shape[0], -1])
    grams = tf.math.l2_normalize(grams, axis=1, epsilon=1e-10)
    sims = tf.matmul(grams, grams, transpose_b=True)  # (N, N)
    return tf.reduce_sum(sims, axis=1) - tf.linalg.diag_part(sims)


def _on_pixels(param: ImageParam, objective: Callable) -> Callable:
    """The objective, given pixels; flat parameters (rank 2: the loop's final evaluation, without
    transforms) are turned into pixels first."""

    def wrapped(x_in: tf.Tensor):
        if x_in.shape.rank == 2:
            x_in = param.to_pixels(x_in)
        return objective(x_in)

    return wrapped


class PixelPenalty(Regularizer):
    """A pixel penalty (e.g. :class:`course_utils.core.penalties.TotalVariation`) through a
    parameterisation: the loop changes the parameters, the penalty prices the picture they make
    (``param.to_pixels``), as Lucid adds total variation to its objectives. Per-call values
    (``beta``) reach the inner penalty unchanged."""

    def __init__(self, inner: Regularizer, param: ImageParam) -> None:
        self.inner = inner
        self.param = param
        self.per_call = inner.per_call
        self._penalty = hook(inner, "penalty")

    def defaults(self) -> dict:
        return self.inner.defaults()

    def penalty(self, x: tf.Tensor, x0: tf.Tensor, data=None) -> tf.Tensor:
        return self._penalty(self.param.to_pixels(x), self.param.to_pixels(x0), data)

    def check_input(self, shape: tuple) -> None:
        self.inner.check_input((shape[0], *self.param.size, self.param.channels))

    def key(self):
        return ("pixel-penalty", self.inner.key(), repr(self.param))

    def __repr__(self) -> str:
        return f"PixelPenalty({self.inner!r})"


def _transforms(transforms: Sequence[Regularizer] | None, size: tuple[int, int] | None,
                param: ImageParam, name: str = "transforms") -> tuple[Regularizer, ...]:
    """The pieces after the parameterisation (default :func:`standard_transforms`): transforms as
    they are, pixel penalties wrapped in :class:`PixelPenalty`; after-step operations are refused,
    since they would act on the parameters, not on the pixels."""
    if transforms is None:
        return standard_transforms(size)
    pieces = []
    for i, r in enumerate(check_regularizers(transforms, name)):
        if hook(r, "after_step") is not None:
            raise ValueError(
                f"{name}[{i}] = {r!r} is an after-step operation on the pixels, but with param={param.name!r} the "
                "loop changes the parameters, not the pixels; pass transforms (Jitter, RandomScale, RandomRotate, "
                "course_utils.core.transforms.standard_transforms()) and penalties (TotalVariation), or use "
                "maximize_class / maximize_filters with param='pixels' for after-step operations"
            )
        pieces.append(PixelPenalty(r, param) if hook(r, "penalty") is not None else r)
    return tuple(pieces)


def render_class(
    model: keras.Model,
    target: int | str | Sequence[int | str],
    steps: int = 60,
    step_size: float = 0.05,
    *,
    param: str | ImageParam = "fourier",
    transforms: Sequence[Regularizer] | None = None,
    image: np.ndarray | str | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> Visualization:
    """Draw a class the Lucid way: maximise its logit through ``param`` and ``transforms``.

    Args:
        model: an ImageNet classifier taking pixels 0..255 of a fixed size (e.g. 224x224).
        target: a class index or name (or several: one picture each).
        steps: gradient steps (>= 1).
        step_size: RMS change of the parameters per step (parameter units; 0.05 as Lucid's
            Adam learning rate for ``"fourier"``; pixels for ``"pixels"``).
        param: ``"fourier"`` (default), ``"pixels"`` or an :class:`ImageParam` of the model's size.
        transforms: default :func:`course_utils.core.transforms.standard_transforms` ending in a resize
            to the model's input; ``()`` for none. Penalties (``TotalVariation``) price the
            picture (:class:`PixelPenalty`); after-step operations are refused (the loop changes
            parameters, not pixels).
        image: ``None`` starts from small random parameters; else a photo (array, path or URL),
            centre-cropped and resized to the model's input, whose parameters
            (:meth:`ImageParam.from_pixels`) are the start: a class pushed into the photo. Take
            smaller steps then: in the Fourier basis 0.05 moves a photo by tens of grey levels a
            step, 0.005 by a few.
        seed: for the start parameters (picture ``i`` by ``(seed, class_i)``) and the transforms.
        progress: show a progress bar (``None``: for 50 steps or more).

    Returns:
        A class :class:`Visualization`; ``pixels`` ``(N, H, W, 3)`` 0..255 are the picture
        itself, and ``images`` the same as ``uint8`` (no contrast stretch: the range is real).
    """
    steps = check_steps(steps)
    step_size = check_number("step_size", step_size, minimum=0.0, above=True)
    if target is None:
        raise WrongTypeError("render_class needs a class to draw: name one, e.g. target='sea snake' or target=65")
    idx = resolve_classes(target, model)
    seed = check_seed(seed)
    h, w, c = model.input_shape[1:]
    p = image_param(param, (h, w), c)
    if p.size != (h, w):
        raise ValueError(f"param is {p.size[0]}x{p.size[1]} but the model takes {h}x{w}")
    regs = (p, *_transforms(transforms, (h, w), p))
    objective = class_objective(model, idx)
    what = [class_name(i, model) for i in idx]
    x0 = p.init(idx, seed) if image is None else p.from_pixels(_photo_batch(image, model, len(idx)))
    loop = cached_loop(
        model, ("lucid-class", tuple(idx), repr(regs)),
        lambda: GradientLoop(_on_pixels(p, objective), step_rule="rms", regularizers=regs),
    ).run(x0, steps=steps, step_size=step_size, seed=seed, progress=progress, description="class " + ", ".join(what))
    pixels = p.to_pixels(loop.x).numpy()
    probs, logits = loop.tracked[..., 0], loop.tracked[..., 1]
    return Visualization(
        "class", what, p.to_pixels(x0).numpy(), pixels, np.clip(np.round(pixels), 0, 255).astype(np.uint8),
        probs[0], probs[-1], _history(probs, what, logit=logits), None, loop.seconds, loop.compile_seconds,
    )


def render_filters(
    model: keras.Model,
    layer: str,
    filters: Sequence[int],
    steps: int = 100,
    step_size: float = 0.05,
    size: int | tuple[int, int] = (128, 128),
    *,
    param: str | ImageParam = "fourier",
    objective: Literal["mean", "center"] = "mean",
    diversity_weight: float = 0.0,
    transforms: Sequence[Regularizer] | None = None,
    noise: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> Visualization:
    """Draw filters the Lucid way: one picture per entry of ``filters``, all in one batch.

    Args:
        model: a model taking pixels 0..255; ``layer`` one of its conv feature layers.
        filters: channel indices; repeat one (``[5, 5, 5, 5]``) with ``diversity_weight > 0`` for
            several different pictures of it.
        steps, step_size: as :func:`render_class`.
        size: ``(height, width)`` of the pictures in pixels (the network is convolutional).
        param: ``"fourier"`` (default), ``"pixels"`` or an :class:`ImageParam` of ``size``; by
            name, its start is fainter than Lucid's (:data:`FILTER_START_SD`).
        objective: ``"mean"`` (the filter's mean over positions) or ``"center"`` (its value at the
            centre position): see :data:`OBJECTIVES`.
        diversity_weight: weight of :func:`diversity` in the loss (0: off). Lucid uses ~1e2 with
            its summed objectives; with the mean objective here, values of order 1..10.
        transforms: default :func:`course_utils.core.transforms.standard_transforms` (no resize).
        noise: ``None``: small random parameters, a smooth colour field close to mid-grey (within
            half a grey level with ``param`` by name); a number: lesson 3's start, mid-grey plus
            uniform noise of +-``noise`` pixels, the very pictures
            :func:`course_utils.vis.filters.maximize_filters` starts from, so the two loops can be
            compared from one start.
        seed: start parameters (picture ``i`` by ``(seed, i)``) and transforms.
        progress: show a progress bar (``None``: for 50 steps or more).

    Returns:
        A filter :class:`Visualization`: ``start``/``final``/``history`` are the objective (mean or
        centre activation), ``rest`` the same on flat mid-grey, so ``rose``/``dead`` work as for
        ``maximize_filters``; ``images`` are the pixels as ``uint8`` (no contrast stretch).
    """
    steps = check_steps(steps)
    step_size = check_number("step_size", step_size, minimum=0.0, above=True)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(map(repr, OBJECTIVES))}")
    weight = check_number("diversity_weight", diversity_weight, minimum=0.0)
    target, channels = check_layer(model, layer)
    filters = _filter_indices(filters, layer, channels)
    seed = check_seed(seed)
    c = model.input_shape[-1]
    p = image_param(param, size, c, sd=FILTER_START_SD) if isinstance(param, str) else image_param(param, size, c)
    extractor = feature_model(model, target)
    check_feature_size(extractor, layer, p.size)
    regs = (p, *_transforms(transforms, None, p))
    index = tf.constant(filters, tf.int32)
    measure = center_activation if objective == "center" else mean_activation

    def loss_fn(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        acts = extractor(x, training=False)
        value = measure(acts, index)
        loss = -value + (weight * diversity(acts) if weight > 0 else 0.0)
        return loss, value[:, None]

    if noise is None:
        x0 = p.init(len(filters), seed)
    else:
        noise = check_number("noise (pixels)", noise, minimum=0.0, maximum=GRAY)
        x0 = p.from_pixels(_start_noise(filters, (*p.size, c), seed, noise))
    loop = cached_loop(
        model, ("lucid-filters", layer, tuple(filters), objective, weight, repr(regs)),
        lambda: GradientLoop(_on_pixels(p, loss_fn), step_rule="rms", regularizers=regs),
    ).run(x0, steps=steps, step_size=step_size, seed=seed, progress=progress, description=f"filters of {layer}")
    grey = tf.fill((len(filters), *p.size, c), GRAY)
    rest = measure(extractor(grey, training=False), index).numpy()
    pixels = p.to_pixels(loop.x).numpy()
    what = [f"{layer}:{f}" for f in filters]
    values = loop.tracked[..., 0]
    return Visualization(
        "filter", what, p.to_pixels(x0).numpy(), pixels, np.clip(np.round(pixels), 0, 255).astype(np.uint8),
        values[0], values[-1], _history(values, what), rest, loop.seconds, loop.compile_seconds,
    )


def _probabilities(model: keras.Model, pixels: np.ndarray, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` the probability of class ``idx[i]`` for picture ``i``, resized to the model's input
    (bilinear), and its rank (1 = top)."""
    h, w = model.input_shape[1:3]
    x = tf.image.resize(tf.convert_to_tensor(pixels, tf.float32), (h, w), method="bilinear")
    probs = tf.nn.softmax(model(x, training=False)).numpy()
    chosen = probs[np.arange(len(idx)), list(idx)]
    ranks = (probs > chosen[:, None]).sum(axis=1) + 1
    return chosen, ranks


def judge_classes(
    model: keras.Model,
    judge: keras.Model,
    targets: Sequence[int | str] = JUDGED_CLASSES,
    pictures: dict[str, Visualization] | None = None,
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """Score class pictures made on ``model`` with a second network ``judge`` that never saw them
    (e.g. EfficientNet-Lite2 judging pictures made on Lite0); ``targets`` default :data:`JUDGED_CLASSES`.

    ``pictures`` maps a method name to a class :class:`Visualization` of ``targets`` in order;
    default: ``"plain"`` (lesson 3's 40 steps of 2 pixels), ``"regularised"`` (the same with
    :func:`course_utils.regularizers.default_regularizers`) and ``"lucid"`` (:func:`render_class`
    with its defaults). Each picture is resized (bilinear) to the judge's input.

    Returns a DataFrame, one row per (class, method): ``p_model`` (probability on ``model``),
    ``p_judge``, ``judge_rank`` (1 = the judge's top class) and ``judge_top5``.
    """
    from course_utils.vis.filters import default_regularizers
    from course_utils.vis.filters import maximize_class

    idx = resolve_classes(list(targets), model)
    if pictures is None:
        pictures = {
            "plain": maximize_class(model, idx, steps=40, step_size=2.0, seed=seed, progress=False),
            "regularised": maximize_class(model, idx, steps=40, step_size=2.0, regularizers=default_regularizers(),
                                          seed=seed, progress=False),
            "lucid": render_class(model, idx, seed=seed, progress=False),
        }
    scores = {}
    for method, vis in pictures.items():
        if len(vis.what) != len(idx):
            raise ValueError(f"pictures[{method!r}] has {len(vis.what)} pictures for {len(idx)} targets")
        scores[method] = (*_probabilities(model, vis.pixels, idx), *_probabilities(judge, vis.pixels, idx))
    rows = [
        {"class": class_name(k, model), "method": method, "p_model": float(p_model[i]),
         "p_judge": float(p_judge[i]), "judge_rank": int(rank[i]), "judge_top5": bool(rank[i] <= 5)}
        for i, k in enumerate(idx) for method, (p_model, _, p_judge, rank) in scores.items()
    ]
    return pd.DataFrame(rows).set_index(["class", "method"])



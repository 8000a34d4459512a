"""Lesson 3's feature visualisation, Lucent's ``render``: the picture a filter or a class likes most.

The algorithm is :func:`ascent_step`, gradient ascent in Lucent's shape (``render_vis``): parameters
-> picture inside the tape (:mod:`~course_utils.vis.param`), random transforms, the
:class:`~course_utils.vis.objectives.Objective` on the moved picture, penalties on the
picture, a step of ``step_size`` over the gradient's root-mean-square, then (on the pixels) the
after-step priors and valid pixels. :func:`course_utils.core.loop.compiled` compiles it once per model
and settings; the filters or classes and the step size enter each call as data, so another filter
or class never traces it again. :func:`maximize_filters` and :func:`maximize_class` run it in either
style (:data:`_STYLES`); :func:`visualize_layers` and :func:`compare_batched_serial` run many filters.
Pixels: float32 0..255.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_int, check_number, check_seed, check_size, check_steps
from course_utils.core import ops
from course_utils.core.loop import compiled
from course_utils.io.images import as_batch, load_image, to_uint8
from course_utils.models.forward import check_layer, check_picture_size
from course_utils.models.imagenet import ClassNames
from course_utils.vis.objectives import (
    GRAY, Blur, Jitter, L2Decay, Objective, TotalVariation, split_regularizers, standard_transforms,
)
from course_utils.vis.param import ImageParam, image_param, start_noise
from course_utils.vis.result import Visualization, deprocess, history as _history

__all__ = ["ascent_step", "default_regularizers", "maximize_filters", "maximize_class", "visualize_layers",
           "compare_batched_serial"]

_STYLES = ("plain", "lucid")
"""``"plain"`` (``param="pixels"``, no regularisers) and ``"lucid"`` (Lucid's transforms with
``param="fourier"`` for filters, whose rise is measured from an almost blank start, and
``param="lucid"``, standardised before the sigmoid so nothing saturates, for classes)."""

_PARAM_STEP = 0.05
"""The default ``step_size`` with a parameterisation: RMS change of the parameters per step (Lucid's Adam rate)."""

_OBJECTIVES = ("mean", "center")
"""What :func:`maximize_filters` maximises for a filter: its mean over positions, or its value at
the centre position (Lucid's ``channel`` and a "neuron" at the centre)."""

_FILTER_START_SD = 0.001
"""The start parameters' standard deviation in :func:`maximize_filters` with ``param`` by name: a
tenth of Lucid's 0.01, within half a grey level of mid-grey (Lucid's +-3 levels alone lift some colour
filters by a tenth of their maximum; from an almost blank start, a rise measures what the loop did)."""


def ascent_step(model, x, x0, i, seed, data, *, objective: Objective, param: ImageParam | None = None,
                transforms: tuple = (), penalties: tuple = (), priors: tuple = ()):
    """One step of feature visualisation: lesson 3's hand-written loop (Lucent's ``render_vis``), compiled.

    ``x``: the pixels ``(N, H, W, C)`` (``param=None``) or ``param``'s parameters ``(N, P)``;
    ``data``: the objective's per-call values and ``step_size`` (one per picture). Minimises ``objective``
    (an :class:`Objective`, or any function ``(model, x, data) -> (loss (N,), tracked (N, K))``).
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        img = x if param is None else param.to_pixels(x)          # parameters -> picture, pixels 0..255
        seen = img
        for t in transforms:                                       # jitter, scale, rotate: new every step
            seen = t.transform(seen, i, seed[0])
        loss, tracked = objective(model, seen, data)               # e.g. minus the class logit, (N,)
        for penalty in penalties:                                  # total variation of the picture itself
            loss += penalty.penalty(img)
    grad = tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    x_next = x - ops.per_example(data["step_size"], x) * ops.direction(grad, "rms")  # downhill, step_size RMS
    for prior in priors:                                           # L2 decay, blur every few steps (pixels only)
        x_next = prior.after_step(x_next, i)
    if param is None or param.clipped:                             # valid pixels
        x_next = tf.clip_by_value(x_next, 0.0, 255.0)
    return x_next, loss, tracked, None


def _ascent_measure(model, x, x0, i, seed, data, *, objective: Objective, param: ImageParam | None = None,
                   penalties: tuple = (), **_: Any):
    """``(loss (N,), tracked (N, K))`` of :func:`ascent_step` on the picture itself, untransformed:
    what the history's first and last rows record."""
    img = x if param is None else param.to_pixels(x)
    loss, tracked = objective(model, img, data)
    for penalty in penalties:
        loss += penalty.penalty(img)
    return loss, tracked


def _style_defaults(style: str, param: "str | ImageParam | None", regularizers: Any,
                    resize: tuple[int, int] | None = None) -> tuple["str | ImageParam", Any]:
    """``param`` and ``regularizers``, each the ``style``'s default where ``None``: ``"plain"``
    gives ``"pixels"`` and none, ``"lucid"`` gives ``"fourier"`` (``"lucid"`` with ``resize``: class
    pictures) and :func:`~course_utils.vis.objectives.standard_transforms` (ending in a resize to
    ``resize``, ``(height, width)`` in pixels, for a model with a fixed input size)."""
    if not isinstance(style, str) or style not in _STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(map(repr, _STYLES))}")
    lucid = style == "lucid"
    if param is None:
        param = ("lucid" if resize else "fourier") if lucid else "pixels"  # classes: never saturated
    if regularizers is None:
        regularizers = standard_transforms(resize) if lucid else ()
    return param, regularizers


def _is_pixels(param: object) -> bool:
    return isinstance(param, str) and param == "pixels"


def default_regularizers() -> tuple:
    """The set lesson 3 compares with the plain loop: jitter, total variation, L2 decay and blur."""
    return (Jitter(8), TotalVariation(0.5), L2Decay(0.02), Blur(1.0, every=4))


def _settings(model: keras.Model, objective: Objective, param: Any, regularizers: Any, size: tuple[int, int],
              start: np.ndarray | None, keys: Sequence[int], seed: int, sd: float | None) -> tuple[dict, np.ndarray]:
    """:func:`ascent_step`'s settings and its start ``x0`` (pixels, or ``param``'s parameters: its own
    start, picture ``i`` seeded by ``(seed, keys[i])``, or ``start`` made into parameters)."""
    transforms, penalties, priors = split_regularizers(regularizers)
    c = model.input_shape[-1]
    if _is_pixels(param):
        p, x0 = None, start
    else:
        p = image_param(param, size, c, **({"sd": sd} if isinstance(param, str) and sd is not None else {}))
        if p.size != tuple(size):
            raise ValueError(f"param is {p.size[0]}x{p.size[1]} but the pictures are {size[0]}x{size[1]}; "
                             "make the parameterisation that size")
        if priors:
            items = list(regularizers) if isinstance(regularizers, (list, tuple)) else [regularizers]
            raise ValueError(
                f"regularizers[{items.index(priors[0])}] = {priors[0]!r} is an after-step operation on the pixels, but "
                f"with param={p.name!r} the loop changes the parameters, not the pixels; pass transforms (Jitter, "
                "standard_transforms()) and penalties (TotalVariation), or optimise the pixels themselves "
                "(param='pixels') for after-step operations")
        x0 = p.init(list(keys), seed) if start is None else p.from_pixels(start)
    for r in (*transforms, *penalties, *priors):
        r.check_input((len(x0), *size, c))
    return dict(objective=objective, param=p, transforms=transforms, penalties=penalties, priors=priors), x0


def _step_sizes(step_size: float | None, param: ImageParam | None, pixel_step: float, n: int) -> np.ndarray:
    """``(n,)`` float32: ``step_size``, or ``pixel_step`` on the pixels, :data:`_PARAM_STEP` with a parameterisation."""
    step_size = (pixel_step if param is None else _PARAM_STEP) if step_size is None else step_size
    return np.full(n, check_number("step_size", step_size, minimum=0.0, above=True), np.float32)


def _pictures(param: ImageParam | None, x0: np.ndarray, x: np.ndarray, stretch: bool) -> tuple:
    """``(initial, pixels, images)``: the start and the end as pixels, and the end ready to show."""
    to_pixels = np.asarray if param is None else (lambda p: param.to_pixels(p).numpy())
    pixels = to_pixels(x)
    return to_pixels(x0), pixels, deprocess(pixels) if stretch and param is None else to_uint8(pixels)


def _filter_indices(filters: int | Sequence[int], layer: str, channels: int) -> list[int]:
    """The filter indices as ints in ``0..channels-1``, or a clear error (no silent ``int(1.7)``)."""
    if isinstance(filters, np.ndarray):
        filters = filters.tolist()
    items = list(filters) if isinstance(filters, (list, tuple, range)) else [filters]
    if not items:
        raise ValueError("give at least one filter index")
    indices = [check_int("filter index", f) for f in items]
    bad = [f for f in indices if not 0 <= f < channels]
    if bad:
        raise ValueError(f"filter index {bad[0]} is out of range: layer {layer!r} has {channels} filters (0..{channels - 1})")
    return indices


def maximize_filters(
    model: keras.Model,
    layer: str,
    filters: int | Sequence[int],
    steps: int = 30,
    step_size: float | None = None,
    size: int | tuple[int, int] | None = None,
    regularizers: Any = None,
    seed: int = 0,
    *,
    style: Literal["plain", "lucid"] = "plain",
    param: "str | ImageParam | None" = None,
    objective: Literal["mean", "center"] = "mean",
    diversity_weight: float = 0.0,
    noise: float | None = None,
    progress: bool | None = None,
) -> Visualization:
    """Gradient ascent on each filter of ``layer``: one picture per entry of ``filters``, one batch.

    Args:
        model: a model taking pixels 0..255 (see :func:`course_utils.models.imagenet.load_imagenet_model`).
        layer: a conv feature layer name (see :func:`course_utils.models.forward.conv_layers`).
        filters: channel indices of that layer; repeat one (``[5, 5, 5, 5]``) with
            ``diversity_weight > 0`` for several different pictures of it.
        steps: gradient steps (>= 1). step_size: RMS change per step; ``None``: 3.0 pixels on the
            pixels, :data:`_PARAM_STEP` in parameter units with a parameterisation.
        size: ``(height, width)`` in pixels (an int for a square); ``None``: the size of an
            :class:`ImageParam` given as ``param``, else 128x128 (the network is convolutional).
        regularizers: e.g. :func:`default_regularizers`; ``None``: the style's. seed: for the
            start and the transforms.
        style: ``"plain"`` or ``"lucid"`` (:data:`_STYLES`): the defaults of ``param`` and ``regularizers``.
        param: ``"pixels"``, ``"fourier"`` or an :class:`~course_utils.vis.param.ImageParam` of
            ``size``; ``None``: the style's. By name it starts faint (:data:`_FILTER_START_SD`).
        objective: ``"mean"`` (the filter's mean over positions) or ``"center"`` (its value at the
            centre position): see :data:`_OBJECTIVES`.
        diversity_weight: weight of :func:`diversity` in the loss (0: off; of order 1..10 with
            these objectives). Part of the compiled loop's structure.
        noise: ``None``: the parameterisation's own start (on the pixels: mid-grey plus uniform
            noise of +-2 pixels; Fourier: small random parameters, picture ``i`` seeded by
            ``(seed, i)``); a number: mid-grey plus uniform noise of +-``noise`` pixels, the same
            start pictures whatever the parameterisation. Noise is seeded by ``(seed, filter)``,
            so a filter's picture does not depend on which others share the batch.
        progress: show a progress bar (``None``: for 50 steps or more).

    Returns:
        A filter :class:`Visualization`: ``start``/``final``/``history`` the objective (mean or
        centre activation), ``rest`` the same on flat mid-grey (so ``rose``/``dead`` work);
        ``images`` contrast stretched (:func:`deprocess`) when the pixels were optimised from noise.

    Raises:
        ValueError: ``steps < 1``; an unknown layer, style, param or objective, or one that is not
            a conv feature layer; a filter out of range or none; a size too small for the layer or
            a regulariser; a seed outside ``0..2**31-1``; an after-step operation with a
            parameterisation. Wrong types (``1.7`` as a filter, ``"jitter"`` as a regulariser):
            :class:`course_utils.checks.WrongTypeError`, a ``ValueError`` too.
    """
    param, regularizers = _style_defaults(style, param, regularizers)
    if size is None:
        size = param.size if isinstance(param, ImageParam) else (128, 128)
    h, w = check_size(size)
    if objective not in _OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(map(repr, _OBJECTIVES))}")
    weight = check_number("diversity_weight", diversity_weight, minimum=0.0)
    target_layer, channels = check_layer(model, layer)
    filters = _filter_indices(filters, layer, channels)
    seed = check_seed(seed)
    c = model.input_shape[-1]
    goal = Objective(layer, objective, weight)
    extractor = check_picture_size(model, target_layer, len(filters), (h, w), size, lambda: goal.features(model))
    if noise is None and _is_pixels(param):
        noise = 2.0
    if noise is not None:
        noise = check_number("noise (pixels)", noise, minimum=0.0, maximum=GRAY)
    start = None if noise is None else start_noise(filters, (h, w, c), seed, noise)
    steps = check_steps(steps)
    settings, x0 = _settings(model, goal, param, regularizers, (h, w), start, range(len(filters)), seed, _FILTER_START_SD)
    data = {"filters": np.asarray(filters, np.int32), "step_size": _step_sizes(step_size, settings["param"], 3.0, len(filters))}
    run = compiled(ascent_step, model, measure=_ascent_measure, **settings).run(
        x0, data, steps=steps, seed=seed, progress=progress, description=f"filters of {layer}")
    initial, pixels, images = _pictures(settings["param"], x0, run.x, stretch=True)
    grey = extractor(tf.fill((1, h, w, c), GRAY), training=False)  # the resting level, on flat grey
    rest = goal.value(tf.repeat(grey, len(filters), axis=0), tf.constant(filters, tf.int32))
    what = [f"{layer}:{f}" for f in filters]
    values = run.tracked[..., 0]  # (steps + 1, N)
    return Visualization("filter", what, initial, pixels, images, values[0], values[-1], _history(values, what),
                         rest.numpy(), run.seconds, run.compile_seconds, run.traces)


def maximize_class(
    model: keras.Model,
    target: int | str | Sequence[int | str],
    image: np.ndarray | str | None = None,
    steps: int = 40,
    step_size: float | None = None,
    regularizers: Any = None,
    seed: int = 0,
    *,
    style: Literal["plain", "lucid"] = "plain",
    param: "str | ImageParam | None" = None,
    noise: float | None = None,
    progress: bool | None = None,
) -> Visualization:
    """Gradient ascent on a class logit: draw the class from noise, or push it into a photo.

    Args:
        model: a classifier taking pixels 0..255 of a fixed size (e.g. 224x224 for ImageNet).
        target: a class index or one of the model's class names (or several: one picture each).
        image: ``None`` starts from noise; else a photo (array, path or URL), centre-cropped and
            resized to the model's input (through the parameterisation: its parameters
            :meth:`~course_utils.vis.param.ImageParam.from_pixels`). In the Fourier basis take
            smaller steps then: 0.05 moves a photo by tens of grey levels a step, 0.005 by a few.
        steps: gradient steps (>= 1). step_size: RMS change per step; ``None``: 2.0 pixels on the
            pixels, :data:`_PARAM_STEP` in parameter units with a parameterisation.
        regularizers: e.g. :func:`default_regularizers`; ``None``: the style's (``"lucid"``: Lucid's
            transforms ending in a resize to the model's input). seed: for the start and the transforms.
        style: ``"plain"`` or ``"lucid"`` (:data:`_STYLES`): the defaults of ``param`` and ``regularizers``.
        param: ``"pixels"``, ``"fourier"`` or an :class:`~course_utils.vis.param.ImageParam` of
            the model's input size; ``None``: the style's.
        noise: ``None``: the parameterisation's own start (on the pixels: mid-grey plus uniform
            noise of +-2 pixels; Fourier: small random parameters); a number: mid-grey plus
            uniform noise of +-``noise`` pixels whatever the parameterisation. Picture ``i`` is
            seeded by ``(seed, class_i)``. Not with ``image``.
        progress: show a progress bar (``None``: for 50 steps or more).

    Returns:
        A class :class:`Visualization`: ``start``/``final``/``history["value"]`` the class
        probability (0..1), ``history["logit"]`` the logit maximised; ``images`` contrast
        stretched when the pixels were optimised from noise.

    Raises:
        ValueError: an unknown class, style or param, ``steps < 1``, ``noise`` with ``image``, a
            parameterisation of another size than the model's input, an after-step operation
            with a parameterisation; no target: :class:`course_utils.checks.WrongTypeError`.
    """
    h, w, c = model.input_shape[1:]
    param, regularizers = _style_defaults(style, param, regularizers, (h, w))
    if target is None:
        raise WrongTypeError("maximize_class needs a class to draw: name one, e.g. target='sea snake' or target=65")
    classes = ClassNames.of(model)
    idx = classes.indices(target)
    seed = check_seed(seed)
    if image is not None and noise is not None:
        raise ValueError(f"noise sets a start from noise (got noise={noise!r}) but image= gives a photo to start "
                         "from; give one of them")
    if image is not None:  # a photo (array, path or URL), centre-cropped and resized to the input
        photo = image if isinstance(image, np.ndarray) and image.shape == (h, w, c) else load_image(image, size=(h, w))
        start = np.repeat(as_batch(photo, model), len(idx), axis=0)
    elif noise is not None or _is_pixels(param):
        amplitude = 2.0 if noise is None else check_number("noise (pixels)", noise, minimum=0.0, maximum=GRAY)
        start = start_noise(idx, (h, w, c), seed, amplitude)
    else:
        start = None
    what = [classes.label(i) for i in idx]
    if isinstance(param, ImageParam) and param.size != (h, w):
        raise ValueError(f"param is {param.size[0]}x{param.size[1]} but the model takes {h}x{w}")
    steps = check_steps(steps)
    settings, x0 = _settings(model, Objective(), param, regularizers, (h, w), start, idx, seed, None)
    data = {"labels": np.asarray(idx, np.int32), "step_size": _step_sizes(step_size, settings["param"], 2.0, len(idx))}
    run = compiled(ascent_step, model, measure=_ascent_measure, **settings).run(
        x0, data, steps=steps, seed=seed, progress=progress, description="class " + ", ".join(what))
    initial, pixels, images = _pictures(settings["param"], x0, run.x, stretch=image is None)
    probs, logits = run.tracked[..., 0], run.tracked[..., 1]
    return Visualization("class", what, initial, pixels, images, probs[0], probs[-1],
                         _history(probs, what, logit=logits), None, run.seconds, run.compile_seconds, run.traces)


def visualize_layers(model: keras.Model, layers: Sequence[str], filters: Sequence[int],
                     **kwargs: Any) -> dict[str, Visualization]:
    """:func:`maximize_filters` for the same ``filters`` of each of ``layers`` (one batch per
    layer); keyword arguments go to it. Returns ``{layer: Visualization}`` in order."""
    return {layer: maximize_filters(model, layer, filters, **kwargs) for layer in layers}


def compare_batched_serial(model: keras.Model, layer: str, n: int = 16, steps: int = 10,
                           size: tuple[int, int] = (64, 64), step_size: float = 3.0) -> pd.DataFrame:
    """Time filters ``0..n-1`` of ``layer`` optimised as one batch vs one :func:`maximize_filters`
    call per filter (what a plain Python loop over filters would do).

    Returns a table with a row ``batched``, a row ``serial`` and a row ``ratio`` (serial / batched);
    columns ``total_s`` (wall time of the calls, tracing included) and ``loop_s`` (the compiled
    steps only). Also checks that the two give the same pictures (the same start noise per
    filter): column ``max_pixel_diff``.
    """
    n = check_int("n", n, minimum=1)
    size = check_size(size)
    kwargs = dict(steps=steps, step_size=step_size, size=size, progress=False)
    t0 = time.perf_counter()
    batched = maximize_filters(model, layer, range(n), **kwargs)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    singles = [maximize_filters(model, layer, [f], **kwargs) for f in range(n)]
    t_serial = time.perf_counter() - t0
    loop_b = batched.seconds - batched.compile_seconds
    loop_s = sum(s.seconds - s.compile_seconds for s in singles)
    diff = float(max(np.abs(s.pixels[0] - batched.pixels[i]).max() for i, s in enumerate(singles)))
    return pd.DataFrame(
        {"total_s": [t_batched, t_serial, t_serial / t_batched], "loop_s": [loop_b, loop_s, loop_s / loop_b],
         "max_pixel_diff": [diff, diff, np.nan]},
        index=pd.Index(["batched", "serial", "ratio"], name=f"{n} filters of {layer}, {steps} steps, {size[0]}x{size[1]}"),
    )

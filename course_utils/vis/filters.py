"""Lesson 3's feature visualisation: the picture a filter or a class likes most.

:func:`maximize_filters` (a filter's mean or centre activation, optionally pictures pushed apart by
a diversity term) and :func:`maximize_class` (a class logit, from noise or in a photo) both run the
one runner, :func:`course_utils.vis.run.visualize`, in either style: ``style="plain"``, the loop on
the pixels with lesson 3's regularisers (:func:`default_regularizers`), or ``style="lucid"``, the
Fourier parameterisation and Lucid's transforms; ``param=`` and ``regularizers=`` mix them. The
objectives are those of :mod:`course_utils.core.objectives`; which filters or classes enter each
call as data, so another filter or class never compiles the loop again (``Visualization.traces``).

``start`` and ``final`` are measured on the picture itself, never through the random transforms
(:class:`course_utils.core.history.LoopResult`), so they compare like with like.

Units: pixels are float32 0..255 (``uint8`` in ``Visualization.images``).
"""

from __future__ import annotations

from typing import Literal, Sequence

import keras
import numpy as np
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_int, check_number, check_seed, check_size
from course_utils.core.objectives import ClassLogit, Diversity, FilterCenter, FilterMean, weak
from course_utils.core.param import ImageParam
from course_utils.core.penalties import TotalVariation
from course_utils.core.pieces import GRAY, Regularizer
from course_utils.core.steps import Blur, L2Decay
from course_utils.core.transforms import Jitter
from course_utils.io.images import as_batch, load_image
from course_utils.models.labels import ClassNames
from course_utils.models.layers import check_layer
from course_utils.seeds import effective_seed
from course_utils.vis.result import Visualization
from course_utils.vis.result import history as _history
from course_utils.vis.run import is_pixels, style_defaults, visualize

__all__ = ["OBJECTIVES", "FILTER_START_SD", "default_regularizers", "maximize_filters", "maximize_class", "gray_noise"]

OBJECTIVES = ("mean", "center")
"""What :func:`maximize_filters` maximises for a filter: its mean over positions, or its value at
the centre position (Lucid's ``channel`` and a "neuron" at the centre)."""

FILTER_START_SD = 0.001
"""The start parameters' standard deviation in :func:`maximize_filters` with ``param`` given by
name: a tenth of Lucid's 0.01, so the start picture is within half a grey level of mid-grey.
Lucid's start is a smooth colour field of +-3 grey levels, which alone lifts some colour filters by
a tenth of their maximum; from an almost blank start, a filter's rise measures what the loop did."""


def gray_noise(shape: Sequence[int], seed: int | Sequence[int] = 0, amplitude: float = 2.0) -> np.ndarray:
    """Mid-grey plus uniform noise of +-``amplitude`` pixels: float32, the given shape.

    ``seed`` is an int or a sequence of ints (NumPy's ``default_rng``; the first moved by the
    course-wide ``COURSE_SEED``, see :mod:`course_utils.seeds`); the same seed, the same noise.
    """
    amplitude = check_number("noise amplitude (pixels)", amplitude, minimum=0.0, maximum=GRAY)
    first, *rest = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    rng = np.random.default_rng([effective_seed(first), *rest])  # plus COURSE_SEED (course_utils.seeds)
    return (GRAY + rng.uniform(-amplitude, amplitude, size=tuple(shape))).astype(np.float32)


def _start_noise(keys: Sequence[int], shape: Sequence[int], seed: int, amplitude: float) -> np.ndarray:
    """One noise image per key, seeded by ``(seed, key)``: filter 7's start picture is the same
    whether it is optimised alone or with others. A key's ``j``-th repeat (``j >= 1``) is seeded by
    ``(seed, key, j)``, so several pictures of one filter start apart."""
    seen: dict[int, int] = {}
    seeds = []
    for k in keys:
        j = seen[int(k)] = seen.get(int(k), -1) + 1
        seeds.append([int(seed), int(k)] + ([j] if j else []))
    return np.stack([gray_noise(shape, seed=s, amplitude=amplitude) for s in seeds])


def default_regularizers() -> tuple[Regularizer, ...]:
    """The set lesson 3 compares with the plain loop: jitter, total variation, L2 decay and blur."""
    return (Jitter(8), TotalVariation(0.5), L2Decay(0.02), Blur(1.0, every=4))


# --------------------------------------------------------------------------- filters


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
    regularizers: Sequence[Regularizer] | None = None,
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
        layer: a conv feature layer name (see :func:`course_utils.models.layers.conv_layers`).
        filters: channel indices of that layer; repeat one (``[5, 5, 5, 5]``) with
            ``diversity_weight > 0`` for several different pictures of it.
        steps: gradient steps (>= 1).
        step_size: RMS change per step; ``None``: 3.0 pixels on the pixels,
            :data:`~course_utils.vis.run.PARAM_STEP` in parameter units with a parameterisation.
        size: ``(height, width)`` of the pictures in pixels (an int for a square); ``None``: the
            size of an :class:`ImageParam` given as ``param``, else 128x128. Any size works, the
            network is convolutional.
        regularizers: pieces of the loop (e.g. :func:`default_regularizers`); ``None``: the style's.
        seed: for the start and the regularisers' randomness.
        style: ``"plain"`` or ``"lucid"`` (see :data:`course_utils.vis.run.STYLES`): the
            defaults of ``param`` and ``regularizers``.
        param: ``"pixels"``, ``"fourier"`` or an :class:`course_utils.core.param.ImageParam` of
            ``size``; ``None``: the style's. By name, a parameterisation starts fainter than
            Lucid's (:data:`FILTER_START_SD`).
        objective: ``"mean"`` (the filter's mean over positions) or ``"center"`` (its value at the
            centre position): see :data:`OBJECTIVES`.
        diversity_weight: weight of :class:`course_utils.core.objectives.Diversity` in the loss
            (0: off; of order 1..10 with these objectives). Part of the compiled loop's structure.
        noise: ``None``: the parameterisation's own start (on the pixels: mid-grey plus uniform
            noise of +-2 pixels; Fourier: small random parameters, picture ``i`` seeded by
            ``(seed, i)``); a number: mid-grey plus uniform noise of +-``noise`` pixels, the same
            start pictures whatever the parameterisation. Noise is seeded by ``(seed, filter)``,
            so a filter's picture does not depend on which others share the batch.
        progress: show a progress bar (``None``: for 50 steps or more).

    Returns:
        A filter :class:`Visualization`: ``start``/``final``/``history`` are the objective (mean
        or centre activation), ``rest`` the same on flat mid-grey, so ``rose``/``dead`` work;
        ``images`` contrast stretched (:func:`course_utils.vis.run.deprocess`) when the pixels
        themselves were optimised from noise, else the pixels as ``uint8``.

    Raises:
        ValueError: ``steps < 1``, an unknown layer (the message lists the conv feature layers),
            a layer that is not a conv feature layer, a filter index out of range (the message
            gives the layer's filter count), no filters, a size too small to reach the layer or
            for a regulariser, an unknown style, param or objective, a seed outside
            ``0..2**31-1``, an after-step operation with a parameterisation. Values of the wrong
            type (``1.7`` or ``"2"`` as a filter, ``(2.7, 3.9)`` as a size, ``"jitter"`` as a
            regulariser) raise :class:`course_utils.checks.WrongTypeError`, a ``ValueError`` too.
    """
    param, regularizers = style_defaults(style, param, regularizers)
    if size is None:
        size = param.size if isinstance(param, ImageParam) else (128, 128)
    h, w = check_size(size)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(map(repr, OBJECTIVES))}")
    weight = check_number("diversity_weight", diversity_weight, minimum=0.0)
    _, channels = check_layer(model, layer)
    filters = _filter_indices(filters, layer, channels)
    seed = check_seed(seed)
    c = model.input_shape[-1]
    if noise is None and is_pixels(param):
        noise = 2.0
    if noise is not None:
        noise = check_number("noise (pixels)", noise, minimum=0.0, maximum=GRAY)
    start = None if noise is None else _start_noise(filters, (h, w, c), seed, noise)
    measure = (FilterCenter if objective == "center" else FilterMean)(weak(model), layer)
    goal = measure + weight * Diversity(weak(model), layer) if weight > 0 else measure
    out = visualize(model, goal, {"filters": filters}, param=param, regularizers=regularizers, start=start,
                    keys=range(len(filters)), size=(h, w), steps=steps, step_size=step_size, pixel_step=3.0, seed=seed,
                    sd=FILTER_START_SD, progress=progress, description=f"filters of {layer}")
    grey = out.objective.activations(tf.fill((1, h, w, c), GRAY))  # the cached loop's: its cut network is kept
    rest = out.objective.on_acts(tf.repeat(grey, len(filters), axis=0), {"filters": tf.constant(filters, tf.int32)})
    what = [f"{layer}:{f}" for f in filters]
    run = out.result
    values = run.tracked[..., 0]  # (steps + 1, N)
    return Visualization(
        "filter", what, out.initial, out.pixels, out.images, values[0], values[-1],
        _history(values, what), rest[1][:, 0].numpy(), run.seconds, run.compile_seconds, run.traces,
    )


# --------------------------------------------------------------------------- classes


def _photo_batch(image: np.ndarray | str, model: keras.Model, n: int) -> np.ndarray:
    """``(n, H, W, C)`` float32 copies of a photo (array, path or URL), centre-cropped and resized
    to the model's input size."""
    h, w, c = model.input_shape[1:]
    photo = image if isinstance(image, np.ndarray) and image.shape == (h, w, c) else load_image(image, size=(h, w))
    return np.repeat(as_batch(photo, model), n, axis=0)


def maximize_class(
    model: keras.Model,
    target: int | str | Sequence[int | str],
    image: np.ndarray | str | None = None,
    steps: int = 40,
    step_size: float | None = None,
    regularizers: Sequence[Regularizer] | None = None,
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
            :meth:`~course_utils.core.param.ImageParam.from_pixels`). In the Fourier basis take
            smaller steps then: 0.05 moves a photo by tens of grey levels a step, 0.005 by a few.
        steps: gradient steps (>= 1).
        step_size: RMS change per step; ``None``: 2.0 pixels on the pixels,
            :data:`~course_utils.vis.run.PARAM_STEP` in parameter units with a parameterisation.
        regularizers: pieces of the loop (e.g. :func:`default_regularizers`); ``None``: the
            style's (``"lucid"``: :func:`~course_utils.core.transforms.standard_transforms`
            ending in a resize to the model's input).
        seed: for the start and the regularisers' randomness.
        style: ``"plain"`` or ``"lucid"`` (see :data:`course_utils.vis.run.STYLES`): the
            defaults of ``param`` and ``regularizers``.
        param: ``"pixels"``, ``"fourier"`` or an :class:`course_utils.core.param.ImageParam` of
            the model's input size; ``None``: the style's.
        noise: ``None``: the parameterisation's own start (on the pixels: mid-grey plus uniform
            noise of +-2 pixels; Fourier: small random parameters); a number: mid-grey plus
            uniform noise of +-``noise`` pixels whatever the parameterisation. Picture ``i`` is
            seeded by ``(seed, class_i)``. Not with ``image``.
        progress: show a progress bar (``None``: for 50 steps or more).

    Returns:
        A class :class:`Visualization` whose ``start``/``final`` and ``history["value"]`` are the
        class probability (softmax, 0..1); ``history["logit"]`` the logit that was maximised;
        ``images`` contrast stretched when the pixels themselves were optimised from noise, else
        the pixels as ``uint8``.

    Raises:
        ValueError: an unknown class, style or param, ``steps < 1``, ``noise`` with ``image``, a
            parameterisation of another size than the model's input, an after-step operation
            with a parameterisation; no target: :class:`course_utils.checks.WrongTypeError`.
    """
    h, w, c = model.input_shape[1:]
    param, regularizers = style_defaults(style, param, regularizers, (h, w))
    if target is None:
        raise WrongTypeError("maximize_class needs a class to draw: name one, e.g. target='sea snake' or target=65")
    classes = ClassNames.of(model)
    idx = classes.indices(target)
    seed = check_seed(seed)
    if image is not None and noise is not None:
        raise ValueError(f"noise sets a start from noise (got noise={noise!r}) but image= gives a photo to start "
                         "from; give one of them")
    if image is not None:
        start = _photo_batch(image, model, len(idx))
    elif noise is not None or is_pixels(param):
        amplitude = 2.0 if noise is None else check_number("noise (pixels)", noise, minimum=0.0, maximum=GRAY)
        start = _start_noise(idx, (h, w, c), seed, amplitude)
    else:
        start = None
    what = [classes.label(i) for i in idx]
    if isinstance(param, ImageParam) and param.size != (h, w):
        raise ValueError(f"param is {param.size[0]}x{param.size[1]} but the model takes {h}x{w}")
    out = visualize(model, ClassLogit(weak(model)), {"labels": idx}, param=param, regularizers=regularizers,
                    start=start, keys=idx, size=(h, w), steps=steps, step_size=step_size, pixel_step=2.0,
                    stretch=image is None, seed=seed, progress=progress, description="class " + ", ".join(what))
    run = out.result
    probs, logits = run.tracked[..., 0], run.tracked[..., 1]
    return Visualization(
        "class", what, out.initial, out.pixels, out.images, probs[0], probs[-1],
        _history(probs, what, logit=logits), None, run.seconds, run.compile_seconds, run.traces,
    )

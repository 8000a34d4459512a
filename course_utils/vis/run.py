"""The one feature-visualisation runner: an objective maximised through any parameterisation.

:func:`visualize` runs the course's one compiled loop (:class:`course_utils.core.gradient_loop.GradientLoop`,
``"rms"`` steps: the gradient divided by its root-mean-square) on the pictures, described by

- their pixels (``param="pixels"``, lesson 3's loop): ``step_size`` in pixels, the pixels kept in
  0..255 after every step; regularisers of every role work: transforms
  (:class:`~course_utils.core.transforms.Jitter`), penalties
  (:class:`~course_utils.core.penalties.TotalVariation`), after-step operations
  (:class:`~course_utils.core.steps.L2Decay`, :class:`~course_utils.core.steps.Blur`);
- or any :class:`~course_utils.core.param.ImageParam` (``"fourier"``: Lucid's 1/f Fourier basis
  with decorrelated colour): ``step_size`` in parameter units (:data:`PARAM_STEP`); the objective
  and pixel penalties price the picture the parameters make, after-step operations are refused
  (:func:`course_utils.core.param.param_loop_parts`).

Two *styles* name the usual choices (:func:`style_defaults`): ``"plain"`` (the pixels, no
regularisers) and ``"lucid"`` (Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017:
the Fourier basis and Lucid's :func:`~course_utils.core.transforms.standard_transforms`).

The loop is compiled once per model and *structure* (objective kind, parameterisation, pieces;
:func:`course_utils.core.cache.loop_for`); which filters or classes enter every call as data
(``{"filters": ...}``, ``{"labels": ...}``), so another filter or class traces nothing again.
:func:`course_utils.vis.filters.maximize_filters` and :func:`~course_utils.vis.filters.maximize_class`
are the lesson's two uses of it.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from course_utils.core.pieces import check_regularizers
from course_utils.checks import check_steps
from course_utils.core.cache import loop_for
from course_utils.core.history import LoopResult
from course_utils.core.gradient_loop import GradientLoop
from course_utils.core.objectives import LayerObjective, Objective, Sum
from course_utils.core.param import ImageParam, OnPixels, image_param, param_loop_parts
from course_utils.core.pieces import Regularizer
from course_utils.core.steps import PixelRange
from course_utils.core.transforms import standard_transforms
from course_utils.io.images import to_uint8
from course_utils.models.layers import check_feature_size

__all__ = ["STYLES", "PARAM_STEP", "PictureRun", "style_defaults", "visualize", "deprocess"]

STYLES = ("plain", "lucid")
"""The styles of :func:`style_defaults`: ``"plain"`` (``param="pixels"``, no regularisers) and
``"lucid"`` (``param="fourier"``, Lucid's standard transforms)."""

PARAM_STEP = 0.05
"""The default ``step_size`` with a parameterisation other than the pixels: RMS change of the
parameters per step (Lucid's Adam learning rate)."""


def style_defaults(style: str, param: "str | ImageParam | None", regularizers: Sequence[Regularizer] | None,
                   resize: tuple[int, int] | None = None) -> tuple["str | ImageParam", Sequence[Regularizer]]:
    """``param`` and ``regularizers``, each the ``style``'s default where ``None``: ``"plain"``
    gives ``"pixels"`` and none, ``"lucid"`` gives ``"fourier"`` and
    :func:`~course_utils.core.transforms.standard_transforms` (ending in a resize to ``resize``,
    ``(height, width)`` in pixels, for a model with a fixed input size)."""
    if not isinstance(style, str) or style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(map(repr, STYLES))}")
    lucid = style == "lucid"
    if param is None:
        param = "fourier" if lucid else "pixels"
    if regularizers is None:
        regularizers = standard_transforms(resize) if lucid else ()
    return param, regularizers


def is_pixels(param: object) -> bool:
    """Whether ``param`` asks for the loop on the pixels themselves (the string ``"pixels"``)."""
    return isinstance(param, str) and param == "pixels"


class PictureRun(NamedTuple):
    """What :func:`visualize` returns."""

    initial: np.ndarray
    """``(N, H, W, C)`` float32 pixels 0..255 where the loop started."""
    pixels: np.ndarray
    """``(N, H, W, C)`` float32 pixels 0..255 at the end."""
    images: np.ndarray
    """``(N, H, W, C)`` ``uint8``: contrast stretched (:func:`deprocess`) when the pixels themselves
    were optimised from noise (their changes are faint), else the pixels."""
    result: LoopResult
    """The loop's history: ``tracked`` ``(steps + 1, N, K)``, timings, traces."""
    objective: LayerObjective | None
    """The cached loop's own layer objective (its cut network built once), if it reads a layer."""


def visualize(
    model: keras.Model,
    objective: Objective,
    data: dict,
    *,
    size: tuple[int, int],
    steps: int,
    step_size: float | None,
    pixel_step: float,
    param: "str | ImageParam" = "pixels",
    regularizers: Sequence[Regularizer] = (),
    start: np.ndarray | None = None,
    keys: Sequence[int] = (0,),
    stretch: bool = True,
    seed: int = 0,
    sd: float | None = None,
    progress: bool | None = None,
    description: str = "optimising",
) -> PictureRun:
    """Maximise ``objective`` (holding ``model`` weakly) over pictures of ``size`` through ``param``.

    Args:
        model: the network (pixels 0..255 in); its loops are cached with it.
        objective: minimised, e.g. ``-activation``; ``data`` its per-call values, one per picture
            (``{"filters": [...]}``, ``{"labels": [...]}``).
        size: ``(height, width)`` of the pictures in pixels.
        steps: gradient steps (>= 1).
        step_size: RMS change per step; ``None``: ``pixel_step`` pixels on the pixels,
            :data:`PARAM_STEP` in parameter units with a parameterisation.
        param: ``"pixels"``, a name for :func:`course_utils.core.param.image_param` (``"fourier"``)
            or an :class:`~course_utils.core.param.ImageParam` of ``size``.
        regularizers: the pieces of the loop (after the parameterisation).
        start: ``(N, H, W, C)`` pixels 0..255 to start from (needed on the pixels); ``None``: the
            parameterisation's own start, picture ``i`` seeded by ``(seed, keys[i])``.
        stretch: show pictures optimised on the pixels from noise contrast stretched.
        seed: the start's and the transforms' seed.
        sd: the start parameters' standard deviation with a parameterisation by name.
        progress, description: the progress bar (``None``: for 50 steps or more).

    Raises:
        ValueError: a parameterisation of another size, an after-step operation with one, a size
            too small for the layer the objective reads or for a regulariser.
    """
    steps = check_steps(steps)
    regularizers = check_regularizers(regularizers)
    c = model.input_shape[-1]
    if is_pixels(param):
        if start is None:
            raise ValueError("param='pixels' needs start pictures (N, H, W, C) in pixels")
        loop = loop_for(model, objective, step_rule="rms", regularizers=(*regularizers, PixelRange()))
        x0, to_pixels = start, np.asarray
        step_size = pixel_step if step_size is None else step_size
    else:
        p = image_param(param, size, c, **({"sd": sd} if isinstance(param, str) and sd is not None else {}))
        if p.size != tuple(size):
            raise ValueError(f"param is {p.size[0]}x{p.size[1]} but the pictures are {size[0]}x{size[1]}; "
                             "make the parameterisation that size")
        wrapped, pieces = param_loop_parts(p, objective, regularizers)
        loop = loop_for(model, wrapped, step_rule="rms", regularizers=pieces)
        x0 = p.init(list(keys), seed) if start is None else p.from_pixels(start)
        to_pixels = lambda x: p.to_pixels(x).numpy()  # noqa: E731
        step_size = PARAM_STEP if step_size is None else step_size
    layer = _layer_objective(loop)
    if layer is not None:
        check_feature_size(layer.extractor, layer.layer, tuple(size))
    run = loop.run(x0, data, steps=steps, step_size=step_size, seed=seed, progress=progress, description=description)
    pixels = to_pixels(run.x)
    images = deprocess(pixels) if stretch and is_pixels(param) else to_uint8(pixels)
    return PictureRun(to_pixels(x0), pixels, images, run, layer)


def _layer_objective(loop: GradientLoop) -> LayerObjective | None:
    """The first :class:`LayerObjective` of a loop's objective (inside :class:`OnPixels`, :class:`Sum`)."""
    objective = loop.objective
    if isinstance(objective, OnPixels):
        objective = objective.objective
    if isinstance(objective, Sum):
        objective = objective.terms[0][1]
    return objective if isinstance(objective, LayerObjective) else None


def deprocess(x: np.ndarray | tf.Tensor, contrast: float = 0.15) -> np.ndarray:
    """Make an optimised input viewable: centre each image, scale so its standard deviation is
    ``contrast`` of the range, shift to mid-grey, clip, and convert to ``uint8``.

    ``x``: ``(H, W, C)`` or ``(N, H, W, C)`` float pixels (any range). Returns ``uint8`` of the
    same shape. A flat image becomes flat mid-grey.
    """
    a = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)
    if a.ndim not in (3, 4):
        raise ValueError(f"deprocess takes an image (H, W, C) or a batch (N, H, W, C), got shape {a.shape}")
    axes = tuple(range(a.ndim - 3, a.ndim))
    centred = a - a.mean(axis=axes, keepdims=True)
    scaled = centred / (centred.std(axis=axes, keepdims=True) + 1e-5) * contrast
    return to_uint8((scaled + 0.5) * 255)

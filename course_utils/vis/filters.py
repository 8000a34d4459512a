"""Feature visualisation: make the input that a filter or a class likes most.

Like Lucid/Lucent, the pieces are separate and small:

- *objectives* (:mod:`course_utils.core.objectives`): a filter's mean activation
  (:class:`~course_utils.core.objectives.FilterMean`, :func:`maximize_filters`), a class logit
  (:class:`~course_utils.core.objectives.ClassLogit`, :func:`maximize_class`);
- *regularisers*, objects with one job each, passed as a tuple and usable by both: transforms
  before the model (:class:`Jitter`, :class:`RandomScale`, :class:`RandomRotate`), penalties
  (:class:`TotalVariation`), after-step operations (:class:`L2Decay`, :class:`Blur`);
- the loop itself is :class:`course_utils.core.loop.GradientLoop` (the same one the attacks
  use) with the ``"rms"`` step rule: the gradient divided by its root-mean-square, so
  ``step_size`` is in pixels. It is compiled once per model, layer and set of regularisers; the
  filters or classes enter per call, so another filter or class traces nothing again.

Which layers to look at comes from :func:`feature_layers` / :func:`conv_layers` (in
:mod:`course_utils.models.layers`), never from hard-coded names, so the lesson works with VGG16 and with
the offline EfficientNet-Lite0. Both modules' names are importable from here too.

Units: images are float32 pixels 0..255 while optimising; :func:`deprocess` turns them into
``uint8`` pictures with the contrast stretched for viewing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Mapping, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_int, check_number, check_seed, check_size, check_steps
from course_utils.core.pieces import check_regularizers
from course_utils.io.images import as_batch, load_image, to_uint8
from course_utils.models.labels import ClassNames
from course_utils.models.layers import check_feature_size, check_layer, conv_layers, feature_layers, layer_summary, receptive_field
from course_utils.core.objectives import ClassLogit, FilterMean, weak
from course_utils.core.cache import loop_for
from course_utils.core.penalties import TotalVariation
from course_utils.core.pieces import GRAY, Regularizer
from course_utils.seeds import effective_seed
from course_utils.core.steps import Blur, L2Decay, PixelRange
from course_utils.core.transforms import Jitter, RandomRotate, RandomScale
from course_utils.vis.result import NOISE_FLOOR, Visualization
from course_utils.vis.result import history as _history

if TYPE_CHECKING:
    from course_utils.core.param import ImageParam

__all__ = [
    "GRAY",
    "Jitter",
    "RandomScale",
    "RandomRotate",
    "TotalVariation",
    "L2Decay",
    "Blur",
    "default_regularizers",
    "Visualization",
    "NOISE_FLOOR",
    "feature_layers",
    "conv_layers",
    "receptive_field",
    "layer_summary",
    "maximize_filters",
    "visualize_layers",
    "filter_report",
    "plot_filter_grid",
    "compare_batched_serial",
    "maximize_class",
    "deprocess",
    "gray_noise",
]

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
    """One noise image per key, each seeded by ``(seed, key)``: filter 7's start picture is the
    same whether it is optimised alone or in a batch with others."""
    return np.stack([gray_noise(shape, seed=[int(seed), int(k)], amplitude=amplitude) for k in keys])


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


PARAM_STEP = 0.05
"""The default ``step_size`` of :func:`maximize_filters` and :func:`maximize_class` with a ``param``
other than ``"pixels"``: RMS change of the parameters per step (Lucid's Adam learning rate)."""


def _is_pixels(param: object) -> bool:
    """Whether ``param`` asks for this module's own pixel loop (the string ``"pixels"``)."""
    return isinstance(param, str) and param == "pixels"


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


# --------------------------------------------------------------------------- filters


def maximize_filters(
    model: keras.Model,
    layer: str,
    filters: Sequence[int],
    steps: int = 30,
    step_size: float | None = None,
    size: tuple[int, int] = (128, 128),
    regularizers: Sequence[Regularizer] = (),
    seed: int = 0,
    *,
    noise: float = 2.0,
    param: "str | ImageParam" = "pixels",
    progress: bool | None = None,
) -> Visualization:
    """Gradient ascent on the mean activation of each filter, all filters at once.

    One image per filter, optimised together as one batch in one compiled loop, each starting
    from its own grey noise (seeded by ``(seed, filter)``, so a filter's result does not depend
    on which others share the batch). Pixels stay in 0..255 after every step.

    Args:
        model: a model taking pixels 0..255 (see :func:`course_utils.models.load_imagenet_model`).
        layer: a conv feature layer name (see :func:`feature_layers`, :func:`conv_layers`).
        filters: channel indices of that layer.
        steps: gradient steps (>= 1).
        step_size: pixels (RMS) per step; ``None``: 3.0 (with another ``param``: 0.05 in its units).
        size: ``(height, width)`` of the images; any size works, the network is convolutional.
        regularizers: e.g. :func:`default_regularizers`.
        seed: for the start noise and the regularisers' randomness.
        noise: amplitude of the start noise, +- pixels around mid-grey (with any ``param``: the
            same start pictures).
        param: what the loop changes: ``"pixels"`` (this lesson's loop), ``"fourier"`` or an
            :class:`course_utils.core.param.ImageParam` of ``size``; anything but ``"pixels"`` runs
            :func:`course_utils.vis.lucid.render_filters` with ``regularizers`` as its transforms and
            penalties (no after-step operations: the loop changes parameters, not pixels).
        progress: show a progress bar (``None``: for 50 steps or more).

    Raises:
        ValueError: ``steps < 1``, an unknown layer (the message lists the conv feature layers),
            a layer that is not a conv feature layer, a filter index out of range (the message
            gives the layer's filter count), no filters, a size too small to reach the layer or
            for a regulariser, a seed outside ``0..2**31-1``. Values of the wrong type (``1.7``
            or ``"2"`` as a filter, ``(2.7, 3.9)`` as a size, ``"jitter"`` as a regulariser)
            raise :class:`course_utils.checks.WrongTypeError`, which is a ``ValueError`` too.
    """
    if not _is_pixels(param):
        from course_utils.vis.lucid import render_filters  # lucid builds on this module

        return render_filters(model, layer, filters, steps, PARAM_STEP if step_size is None else step_size, size,
                              param=param, transforms=regularizers, noise=noise, seed=seed, progress=progress)
    step_size = 3.0 if step_size is None else step_size
    steps = check_steps(steps)
    _, channels = check_layer(model, layer)
    filters = _filter_indices(filters, layer, channels)
    h, w = check_size(size)
    seed = check_seed(seed)
    regularizers = check_regularizers(regularizers)
    loop = loop_for(model, FilterMean(weak(model), layer), step_rule="rms", regularizers=(*regularizers, PixelRange()))
    objective = loop.objective  # the cut network is built once per model and layer, and kept
    check_feature_size(objective.extractor, layer, (h, w))
    x0 = _start_noise(filters, (h, w, model.input_shape[-1]), seed, noise)
    run = loop.run(x0, {"filters": filters}, steps=steps, step_size=step_size, seed=seed, progress=progress,
                   description=f"filters of {layer}")
    grey = tf.fill((1, h, w, x0.shape[-1]), GRAY)
    rest = tf.gather(objective.mean_activations(grey)[0], tf.constant(filters, tf.int32)).numpy()
    what = [f"{layer}:{f}" for f in filters]
    values = run.tracked[..., 0]  # (steps + 1, N)
    return Visualization(
        "filter", what, x0, run.x, deprocess(run.x), values[0], values[-1],
        _history(values, what), rest, run.seconds, run.compile_seconds, run.traces,
    )


def visualize_layers(
    model: keras.Model, layers: Sequence[str], filters: Sequence[int], **kwargs
) -> dict[str, Visualization]:
    """:func:`maximize_filters` for the same ``filters`` of each of ``layers`` (one batch per
    layer); keyword arguments go to it. Returns ``{layer: Visualization}`` in order."""
    return {layer: maximize_filters(model, layer, filters, **kwargs) for layer in layers}


def filter_report(results: Mapping[str, Visualization] | Visualization) -> pd.DataFrame:
    """One row per layer: how many filters rose >= 10x, were weak or dead, the median lift ratio,
    and every filter that did not rise 10x as ``index:ratio`` (``index:dead`` for dead ones).
    Nothing is left out."""
    if isinstance(results, Visualization):
        results = {results.what[0].rsplit(":", 1)[0]: results}
    rows = []
    for layer, vis in results.items():
        status, ratio = vis.status, vis.lift_ratio
        missing = [
            f"{f}:dead" if s == "dead" else f"{f}:{np.floor(r * 10) / 10:.1f}x"
            for f, s, r in zip(vis.indices(), status, ratio) if s != "rose"
        ]
        rows.append(
            {"layer": layer, "filters": len(status), "rose_10x": int((status == "rose").sum()),
             "weak": int((status == "weak").sum()), "dead": int((status == "dead").sum()),
             "median_ratio": round(float(np.median(ratio)), 1), "not_10x": " ".join(missing) or "-"}
        )
    return pd.DataFrame(rows).set_index("layer")


def plot_filter_grid(results: Mapping[str, Visualization], *, size: float = 1.5, title: str | None = None):
    """One row per layer, one column per filter; a filter that did not rise 10x gets its status
    and lift ratio written under it in red, so weak and dead filters are shown, not hidden."""
    from course_utils.classroom.plotting import image_grid

    layers = list(results)
    first = results[layers[0]]
    fig = image_grid(
        [list(results[l].images) for l in layers],
        row_labels=layers,
        col_labels=[f"filter {w.split(':')[-1]}" for w in first.what],
        size=size,
        suptitle=title,
    )
    ncols = max(len(results[l].what) for l in layers)
    for r, layer in enumerate(layers):
        vis = results[layer]
        for c, (status, ratio) in enumerate(zip(vis.status, vis.lift_ratio)):
            if status != "rose":
                fig.axes[r * ncols + c].set_xlabel(f"{status} {np.floor(ratio * 10) / 10:.1f}x", color="red", fontsize=8, labelpad=1)
    fig.tight_layout()
    return fig


def compare_batched_serial(
    model: keras.Model,
    layer: str,
    n: int = 16,
    steps: int = 10,
    size: tuple[int, int] = (64, 64),
    step_size: float = 3.0,
) -> pd.DataFrame:
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


# --------------------------------------------------------------------------- classes


def class_objective(model: keras.Model, idx: Sequence[int]):
    """The class objective: pixels ``(N, H, W, C)`` -> (minus the logit of class ``idx[i]`` for
    picture ``i``, ``(N,)``; tracked ``(N, 2)``: its probability and its logit)."""
    t = tf.constant(list(idx), tf.int32)

    def objective(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = model(x, training=False)
        chosen = tf.gather(logits, t, batch_dims=1)
        prob = tf.gather(tf.nn.softmax(logits), t, batch_dims=1)
        return -chosen, tf.stack([prob, chosen], axis=1)

    return objective


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
    regularizers: Sequence[Regularizer] = (),
    seed: int = 0,
    *,
    noise: float = 2.0,
    param: "str | ImageParam" = "pixels",
    progress: bool | None = None,
) -> Visualization:
    """Gradient ascent on a class logit: draw the class from noise, or push it into a photo.

    Args:
        model: an ImageNet classifier taking pixels 0..255 (its own input size, e.g. 224x224).
        target: a class index or one of the model's class names (or several: one image each).
        image: ``None`` starts from grey noise; else a photo (array, path or URL), centre-cropped
            and resized to the model's input.
        steps: gradient steps (>= 1).
        step_size: pixels (RMS) per step; ``None``: 2.0 (with another ``param``: 0.05 in its units).
        regularizers: e.g. :func:`default_regularizers`.
        seed: for the start noise and the regularisers' randomness.
        noise: amplitude of the start noise (+- pixels around mid-grey) when ``image`` is None
            (``param="pixels"`` only).
        param: what the loop changes: ``"pixels"`` (this lesson's loop), ``"fourier"`` or an
            :class:`course_utils.core.param.ImageParam` of the model's input size; anything but
            ``"pixels"`` runs :func:`course_utils.vis.lucid.render_class` with ``regularizers`` as its
            transforms and penalties (no after-step operations) and ``image`` as the start.
        progress: show a progress bar (``None``: for 50 steps or more).

    Returns:
        A :class:`Visualization` whose ``start``/``final`` and ``history["value"]`` are the
        class probability (softmax, 0..1); ``history["logit"]`` the logit that was maximised.
    """
    if not _is_pixels(param):
        from course_utils.vis.lucid import render_class  # lucid builds on this module

        if noise != 2.0:
            raise ValueError(f"noise sets the start of param='pixels' (got noise={noise!r} with param={param!r}); a "
                             "parameterisation starts from its own small random parameters, or from a photo: image=...")

        return render_class(model, target, steps, PARAM_STEP if step_size is None else step_size, param=param,
                            transforms=regularizers, image=image, seed=seed, progress=progress)
    step_size = 2.0 if step_size is None else step_size
    steps = check_steps(steps)
    classes = ClassNames.of(model)
    if target is None:
        raise WrongTypeError("maximize_class needs a class to draw: name one, e.g. target='sea snake' or target=65")
    idx = classes.indices(target)
    seed = check_seed(seed)
    regularizers = check_regularizers(regularizers)
    h, w, c = model.input_shape[1:]
    x0 = _start_noise(idx, (h, w, c), seed, noise) if image is None else _photo_batch(image, model, len(idx))
    what = [classes.label(i) for i in idx]
    loop = loop_for(model, ClassLogit(weak(model)), step_rule="rms", regularizers=(*regularizers, PixelRange()))
    run = loop.run(x0, {"labels": idx}, steps=steps, step_size=step_size, seed=seed, progress=progress,
                   description="class " + ", ".join(what))
    probs, logits = run.tracked[..., 0], run.tracked[..., 1]
    images = deprocess(run.x) if image is None else to_uint8(run.x)
    return Visualization(
        "class", what, x0, run.x, images, probs[0], probs[-1],
        _history(probs, what, logit=logits), None, run.seconds, run.compile_seconds, run.traces,
    )


def default_regularizers() -> tuple[Regularizer, ...]:
    """The set lesson 3 compares with the plain loop: jitter, total variation, L2 decay and blur."""
    return (Jitter(8), TotalVariation(0.5), L2Decay(0.02), Blur(1.0, every=4))

"""Feature visualisation: make the input that a filter or a class likes most.

Like Lucid/Lucent, the pieces are separate and small:

- *objectives* (:mod:`course_utils.objectives`): a filter's mean activation
  (:class:`~course_utils.objectives.FilterMean`, :func:`maximize_filters`), a class logit
  (:class:`~course_utils.objectives.ClassLogit`, :func:`maximize_class`);
- *regularisers*, objects with one job each, passed as a tuple and usable by both: transforms
  before the model (:class:`Jitter`, :class:`RandomScale`, :class:`RandomRotate`), penalties
  (:class:`TotalVariation`), after-step operations (:class:`L2Decay`, :class:`Blur`);
- the loop itself is :class:`course_utils.optimize.GradientLoop` (the same one the attacks
  use) with the ``"rms"`` step rule: the gradient divided by its root-mean-square, so
  ``step_size`` is in pixels. It is compiled once per model, layer and set of regularisers; the
  filters or classes enter per call, so another filter or class traces nothing again.

Which layers to look at comes from :func:`feature_layers` / :func:`conv_layers` (in
:mod:`course_utils.layers`), never from hard-coded names, so the lesson works with VGG16 and with
the offline EfficientNet-Lite0. Both modules' names are importable from here too.

Units: images are float32 pixels 0..255 while optimising; :func:`deprocess` turns them into
``uint8`` pictures with the contrast stretched for viewing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_int, check_number, check_regularizers, check_seed, check_size, check_steps
from course_utils.history import history_frame
from course_utils.images import as_batch, load_image, to_uint8
from course_utils.labels import ClassNames
from course_utils.layers import check_feature_size, check_layer, conv_layers, feature_layers, layer_summary, receptive_field
from course_utils.objectives import ClassLogit, FilterMean, weak
from course_utils.optimize import loop_for
from course_utils.penalties import TotalVariation
from course_utils.pieces import GRAY, Regularizer
from course_utils.regularizers import default_regularizers
from course_utils.steps import Blur, L2Decay, PixelRange
from course_utils.transforms import Jitter, RandomRotate, RandomScale

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

NOISE_FLOOR = 0.1
"""A filter's lift above rest (see :class:`Visualization`) at or below this is "not clearly
positive"; "clearly positive" means at least ``10 * NOISE_FLOOR``."""


# --------------------------------------------------------------------------- results


@dataclass
class Visualization:
    """The outcome of :func:`maximize_filters` or :func:`maximize_class`.

    Attributes:
        kind: ``"filter"`` or ``"class"``.
        what: a label per image (``"block3_conv1:12"`` or ``"sea snake"``).
        initial: ``(N, H, W, C)`` float32 pixels, where the loop started (noise or the photo).
        pixels: ``(N, H, W, C)`` float32 pixels 0..255, the optimised inputs.
        images: ``(N, H, W, C)`` ``uint8`` ready to show: contrast stretched by :func:`deprocess`
            when the loop started from noise (the changes are faint), the pixels themselves when
            it started from a photo.
        start, final: ``(N,)`` the objective at the start and at the end: mean activation of the
            filter, or probability of the class.
        rest: ``(N,)`` for filters, the mean activation on a flat mid-grey picture: the filter's
            resting level (batch norm adds an offset, so it need not be 0). ``None`` for classes.
        history: tidy DataFrame, one row per step and image: ``step``, ``image``, ``what``,
            ``value`` (activation or probability) and, for classes, ``logit``.
        seconds, compile_seconds: wall time of the loop, and of tracing it into a graph.
        traces: how many graphs the call traced (0 when it reused a compiled loop).

    How much did a filter rise? Batch norm gives many filters a large offset (a flat grey picture
    already gives 1..3), so a ratio of raw activations says little. Instead the *lift above rest*
    (``value - rest``) is compared: a filter **rose** when its final lift is at least 10x its
    start lift, counting a start lift below :data:`NOISE_FLOOR` as that floor (so "from <= 0"
    has to reach at least ``10 * NOISE_FLOOR``); it is **dead** when the final lift is still at
    or below the floor; anything in between is **weak**.
    """

    kind: str
    what: list[str]
    initial: np.ndarray
    pixels: np.ndarray
    images: np.ndarray
    start: np.ndarray
    final: np.ndarray
    history: pd.DataFrame = field(repr=False)
    rest: np.ndarray | None = None
    seconds: float = 0.0
    compile_seconds: float = 0.0
    traces: int = 0

    def __repr__(self) -> str:
        counts = ""
        if self.kind == "filter":
            s = self.status
            counts = f", rose={int((s == 'rose').sum())}, weak={int((s == 'weak').sum())}, dead={int((s == 'dead').sum())}"
        return (f"Visualization({self.kind}, {len(self.what)} image(s) {self.pixels.shape[1]}x{self.pixels.shape[2]}, "
                f"steps={self.steps}{counts}, {self.seconds:.1f}s)")

    @property
    def steps(self) -> int:
        return int(self.history["step"].max())

    @property
    def lift_start(self) -> np.ndarray:
        """``(N,)`` the objective at the start above its resting level (``start - rest``; classes: ``start``)."""
        return self.start - (0.0 if self.rest is None else self.rest)

    @property
    def lift_final(self) -> np.ndarray:
        """``(N,)`` the objective at the end above its resting level."""
        return self.final - (0.0 if self.rest is None else self.rest)

    @property
    def lift_ratio(self) -> np.ndarray:
        """``(N,)`` final lift / start lift, the start lift counted as at least :data:`NOISE_FLOOR`."""
        return self.lift_final / np.maximum(self.lift_start, NOISE_FLOOR)

    @property
    def rose(self) -> np.ndarray:
        """``(N,)`` bool: the lift grew at least 10x (from <= the floor: to >= 10x the floor)."""
        return self.lift_ratio >= 10.0

    @property
    def dead(self) -> np.ndarray:
        """``(N,)`` bool: the optimisation could not lift the filter clearly above rest."""
        return self.lift_final <= NOISE_FLOOR

    @property
    def status(self) -> np.ndarray:
        """``(N,)`` ``"rose"``, ``"weak"`` (rose, but less than 10x) or ``"dead"``."""
        return np.where(self.rose, "rose", np.where(self.dead, "dead", "weak"))

    def indices(self, status: str | None = None) -> list[int]:
        """Filters only: the filter index of each image, or of those with ``status`` (``"rose"``,
        ``"weak"`` or ``"dead"``), e.g. to look again at the weak ones with more steps."""
        if self.kind != "filter":
            raise ValueError("indices() lists filters; this is a class visualisation")
        if status not in (None, "rose", "weak", "dead"):
            raise ValueError(f"status must be 'rose', 'weak' or 'dead', got {status!r}")
        keep = np.ones(len(self.what), bool) if status is None else self.status == status
        return [int(w.rsplit(":", 1)[1]) for w, k in zip(self.what, keep) if k]

    def table(self) -> pd.DataFrame:
        """One row per image. Filters: what, rest, start, final, lift_start, lift_final, lift_ratio,
        status. Classes: what, start and final probability, first step at >= 0.99."""
        if self.kind == "class":
            return pd.DataFrame({"what": self.what, "start": self.start, "final": self.final,
                                 "step_to_0.99": self.first_step(0.99)})
        return pd.DataFrame(
            {"what": self.what, "rest": self.rest, "start": self.start, "final": self.final,
             "lift_start": self.lift_start, "lift_final": self.lift_final,
             "lift_ratio": self.lift_ratio, "status": self.status}
        )

    def curves(self) -> pd.DataFrame:
        """The objective per step, one column per image (index ``step``)."""
        wide = self.history.pivot(index="step", columns="image", values="value")
        wide.columns = self.what
        return wide

    def first_step(self, threshold: float) -> np.ndarray:
        """``(N,)`` the first step at which the objective was >= ``threshold`` (0 = at the start),
        -1 if it never was."""
        values = self.curves().to_numpy()
        hit = values >= threshold
        return np.where(hit.any(0), hit.argmax(0), -1)


def gray_noise(shape: Sequence[int], seed: int | Sequence[int] = 0, amplitude: float = 2.0) -> np.ndarray:
    """Mid-grey plus uniform noise of +-``amplitude`` pixels: float32, the given shape.

    ``seed`` is an int or a sequence of ints (NumPy's ``default_rng``); the same seed, the same noise.
    """
    amplitude = check_number("noise amplitude (pixels)", amplitude, minimum=0.0, maximum=GRAY)
    rng = np.random.default_rng(seed)
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


def _history(values: np.ndarray, what: list[str], **extra: np.ndarray) -> pd.DataFrame:
    """One row per step and image: ``step``, ``image``, ``what``, ``value`` and ``extra``."""
    return history_frame(len(values), image=np.arange(values.shape[1]), what=np.asarray(what, dtype=object),
                         value=values, **extra)


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
    step_size: float = 3.0,
    size: tuple[int, int] = (128, 128),
    regularizers: Sequence[Regularizer] = (),
    seed: int = 0,
    *,
    noise: float = 2.0,
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
        step_size: pixels (RMS) per step.
        size: ``(height, width)`` of the images; any size works, the network is convolutional.
        regularizers: e.g. :func:`default_regularizers`.
        seed: for the start noise and the regularisers' randomness.
        noise: amplitude of the start noise, +- pixels around mid-grey.
        progress: show a progress bar (``None``: for 50 steps or more).

    Raises:
        ValueError: ``steps < 1``, an unknown layer (the message lists the conv feature layers),
            a layer that is not a conv feature layer, a filter index out of range (the message
            gives the layer's filter count), no filters, a size too small to reach the layer or
            for a regulariser, a seed outside ``0..2**31-1``. Values of the wrong type (``1.7``
            or ``"2"`` as a filter, ``(2.7, 3.9)`` as a size, ``"jitter"`` as a regulariser)
            raise :class:`course_utils.checks.WrongTypeError`, which is a ``ValueError`` too.
    """
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
    from course_utils.plotting import image_grid

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


def maximize_class(
    model: keras.Model,
    target: int | str | Sequence[int | str],
    image: np.ndarray | str | None = None,
    steps: int = 40,
    step_size: float = 2.0,
    regularizers: Sequence[Regularizer] = (),
    seed: int = 0,
    *,
    noise: float = 2.0,
    progress: bool | None = None,
) -> Visualization:
    """Gradient ascent on a class logit: draw the class from noise, or push it into a photo.

    Args:
        model: an ImageNet classifier taking pixels 0..255 (its own input size, e.g. 224x224).
        target: a class index or one of the model's class names (or several: one image each).
        image: ``None`` starts from grey noise; else a photo (array, path or URL), centre-cropped
            and resized to the model's input.
        steps: gradient steps (>= 1).
        step_size: pixels (RMS) per step.
        regularizers: e.g. :func:`default_regularizers`.
        seed: for the start noise and the regularisers' randomness.
        noise: amplitude of the start noise (+- pixels around mid-grey) when ``image`` is None.
        progress: show a progress bar (``None``: for 50 steps or more).

    Returns:
        A :class:`Visualization` whose ``start``/``final`` and ``history["value"]`` are the
        class probability (softmax, 0..1); ``history["logit"]`` the logit that was maximised.
    """
    steps = check_steps(steps)
    classes = ClassNames.of(model)
    if target is None:
        raise WrongTypeError("maximize_class needs a class to draw: name one, e.g. target='sea snake' or target=65")
    idx = classes.indices(target)
    seed = check_seed(seed)
    regularizers = check_regularizers(regularizers)
    h, w, c = model.input_shape[1:]
    if image is None:
        x0 = _start_noise(idx, (h, w, c), seed, noise)
    else:
        photo = image if isinstance(image, np.ndarray) and image.shape == (h, w, c) else load_image(image, size=(h, w))
        x0 = np.repeat(as_batch(photo, model), len(idx), axis=0)
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

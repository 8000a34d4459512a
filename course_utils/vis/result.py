"""What feature visualisation gives back, and how it is read; nothing here runs the step.

- :class:`Visualization`, what :mod:`~course_utils.vis.visualize` and :mod:`~course_utils.vis.maco`
  return, whatever the style or parameterisation, and how a filter's rise is judged; :func:`deprocess`;
- filters: :func:`filter_report`, a table of how far each filter rose (drawn by
  :func:`course_utils.classroom.plotting.plot_filter_grid`);
- classes: :func:`judge_classes` (a second network scores the pictures) and :func:`picture_stats`,
  two measures of "looks like a photo" (the share of clipped values and the slope of the amplitude
  spectrum); :func:`shipped_class_pictures`, lesson 3's pictures too slow to make live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import WrongTypeError, describe
from course_utils.core.loop import history_frame
from course_utils.io.images import to_uint8
from course_utils.models.imagenet import ClassNames

__all__ = ["JUDGED_CLASSES", "Visualization", "deprocess", "history", "filter_report", "judge_classes", "picture_stats",
           "shipped_class_pictures"]

JUDGED_CLASSES = ("sea snake", "goldfish", "flamingo", "teapot", "pizza")
"""Lesson 3's five classes (:func:`shipped_class_pictures`): three animals and two objects."""

_NOISE_FLOOR = 0.1
"""A filter's lift above rest (see :class:`Visualization`) at or below this is "not clearly
positive"; "clearly positive" means at least ``10 * _NOISE_FLOOR``."""


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


@dataclass
class Visualization:
    """The outcome of :func:`course_utils.vis.visualize.maximize_filters` or ``maximize_class``, in
    any style or parameterisation.

    Attributes:
        kind: ``"filter"`` or ``"class"``.
        what: a label per image (``"block3_conv1:12"`` or ``"sea snake"``).
        initial: ``(N, H, W, C)`` float32 pixels, where the loop started (noise or the photo).
        pixels: ``(N, H, W, C)`` float32 pixels 0..255, the optimised inputs.
        images: ``(N, H, W, C)`` ``uint8`` ready to show: contrast stretched by
            :func:`deprocess` when the loop changed the pixels from noise (the
            changes are faint), else the pixels themselves (a photo, a parameterisation).
        start, final: ``(N,)`` the objective at the start and at the end: activation of the
            filter (mean or centre), or probability of the class.
        rest: ``(N,)`` for filters, the same activation on a flat mid-grey picture: the filter's
            resting level (batch norm adds an offset, so it need not be 0). ``None`` for classes.
        history: tidy DataFrame, one row per step and image: ``step``, ``image``, ``what``,
            ``value`` (activation or probability) and, for classes, ``logit``.
        seconds, compile_seconds: wall time of the loop, and of tracing it into a graph.
        traces: how many graphs the call traced (0 when it reused a compiled loop).
        alpha: ``(N, H, W)`` 0..1, MaCo's transparency map (where the gradient was), else ``None``.

    How much did a filter rise? Batch norm gives many filters a large offset (a flat grey picture
    already gives 1..3), so a ratio of raw activations says little. Instead the *lift above rest*
    (``value - rest``) is compared: a filter **rose** when its final lift is at least 10x its
    start lift, counting a start lift below :data:`_NOISE_FLOOR` as that floor (so "from <= 0"
    has to reach at least ``10 * _NOISE_FLOOR``); it is **dead** when the final lift is still at
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
    alpha: np.ndarray | None = None

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
        """``(N,)`` final lift / start lift, the start lift counted as at least :data:`_NOISE_FLOOR`."""
        return self.lift_final / np.maximum(self.lift_start, _NOISE_FLOOR)

    @property
    def rose(self) -> np.ndarray:
        """``(N,)`` bool: the lift grew at least 10x (from <= the floor: to >= 10x the floor)."""
        return self.lift_ratio >= 10.0

    @property
    def dead(self) -> np.ndarray:
        """``(N,)`` bool: the optimisation could not lift the filter clearly above rest."""
        return self.lift_final <= _NOISE_FLOOR

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


def history(values: np.ndarray, what: list[str], **extra: np.ndarray) -> pd.DataFrame:
    """One row per step and image: ``step``, ``image``, ``what``, ``value`` and ``extra``."""
    return history_frame(len(values), image=np.arange(values.shape[1]), what=np.asarray(what, dtype=object),
                         value=values, **extra)


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


def _class_probabilities(model: keras.Model, pixels: np.ndarray, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` the probability of class ``idx[i]`` for picture ``i`` (pixels ``(N, H, W, C)``
    0..255, resized bilinearly to the model's input), and its rank (1 = top)."""
    h, w = model.input_shape[1:3]
    x = tf.image.resize(tf.convert_to_tensor(pixels, tf.float32), (h, w), method="bilinear")
    probs = tf.nn.softmax(model(x, training=False)).numpy()
    chosen = probs[np.arange(len(idx)), list(idx)]
    ranks = (probs > chosen[:, None]).sum(axis=1) + 1
    return chosen, ranks


def judge_classes(model: keras.Model, judge: keras.Model, targets: Sequence[int | str],
                  pictures: dict[str, Visualization]) -> pd.DataFrame:
    """Score class pictures made on ``model`` with a second network ``judge`` that never saw them
    (e.g. EfficientNet-Lite2 judging pictures made on Lite0).

    Args:
        model: the classifier the pictures were made on; judge: another of the same classes (any
            input size: each picture is resized bilinearly to it). targets: one class per picture.
        pictures: a method name -> a class :class:`Visualization` of ``targets`` in order.

    Returns:
        A DataFrame, one row per (class, method): ``p_model`` (probability on ``model``, 0..1),
        ``p_judge``, ``judge_rank`` (1 = the judge's top class) and ``judge_top5``.

    Raises:
        ValueError: an unknown class; a :class:`Visualization` with another number of pictures
            than ``targets``, or one that is not a class visualisation.
    """
    classes = ClassNames.of(model)
    idx = classes.indices(list(targets))
    if not isinstance(pictures, dict):
        raise WrongTypeError(f"pictures must be a dict of method name -> Visualization, got {describe(pictures)}")
    scores = {}
    for method, vis in pictures.items():
        if not isinstance(vis, Visualization) or vis.kind != "class":
            raise ValueError(f"pictures[{method!r}] must be a class Visualization (maximize_class), got {vis!r}")
        if len(vis.what) != len(idx):
            raise ValueError(f"pictures[{method!r}] has {len(vis.what)} pictures for {len(idx)} targets")
        scores[method] = (*_class_probabilities(model, vis.pixels, idx), *_class_probabilities(judge, vis.pixels, idx))
    rows = [
        {"class": classes.label(k), "method": method, "p_model": float(p_model[i]),
         "p_judge": float(p_judge[i]), "judge_rank": int(rank[i]), "judge_top5": bool(rank[i] <= 5)}
        for i, k in enumerate(idx) for method, (p_model, _, p_judge, rank) in scores.items()
    ]
    return pd.DataFrame(rows).set_index(["class", "method"])


def _spectrum_slope(pixels: np.ndarray) -> np.ndarray:
    """``(N,)`` the slope of each picture's amplitude spectrum on log-log axes: the grey picture's
    2-D FFT amplitude, averaged over rings of equal frequency, fitted by a line against frequency
    from 4 cycles per picture to a quarter cycle per pixel. Photos give about -1 (amplitude ~ 1/f);
    pixel noise 0, smooth pictures below -1. ``pixels``: ``(N, H, W, C)`` or ``(H, W, C)``, 0..255."""
    x = np.asarray(pixels, np.float64)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or min(x.shape[1:3]) < 16:
        raise ValueError(f"picture_stats takes pictures (N, H, W, C) of at least 16x16, got shape {x.shape}")
    grey = x.mean(axis=-1)
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    h, w = grey.shape[1:]
    amp = np.abs(np.fft.rfft2(grey))
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    edges = np.geomspace(4.0 / min(h, w), 0.25, 13)
    ring = np.digitize(f, edges)
    keep = [k for k in range(1, len(edges)) if (ring == k).any()]
    centres = np.log([f[ring == k].mean() for k in keep])
    levels = np.log(np.stack([amp[:, ring == k].mean(axis=1) for k in keep], axis=1) + 1e-12)
    return np.asarray([np.polyfit(centres, row, 1)[0] for row in levels])


def picture_stats(pixels: np.ndarray, model: keras.Model | None = None, judge: keras.Model | None = None,
                  targets: Sequence[int | str] | None = None) -> pd.DataFrame:
    """One row per picture: ``clipped`` (share of colour values at 0 or 255 once shown as ``uint8``,
    0..1) and ``slope`` (:func:`_spectrum_slope`); with ``targets`` (one class per picture) and
    ``model`` also ``p_model`` (the class's probability, 0..1), with ``judge`` also ``judge_rank``
    (1 = the judge's top class); then indexed by class. ``pixels``: ``(N, H, W, C)`` 0..255, each
    resized for a model."""
    shown = to_uint8(np.asarray(pixels, np.float32))
    shown = shown[None] if shown.ndim == 3 else shown
    table = pd.DataFrame({"clipped": ((shown == 0) | (shown == 255)).mean(axis=(1, 2, 3)), "slope": _spectrum_slope(shown)})
    if targets is not None:
        names = ClassNames.of(model if model is not None else judge)
        idx = names.indices(list(targets))
        if len(idx) != len(shown):
            raise ValueError(f"picture_stats got {len(shown)} pictures for {len(idx)} targets")
        table.index = pd.Index([names.label(k) for k in idx], name="class")
        if model is not None:
            table["p_model"] = _class_probabilities(model, shown.astype(np.float32), idx)[0]
        if judge is not None:
            table["judge_rank"] = _class_probabilities(judge, shown.astype(np.float32), idx)[1]
    return table


def shipped_class_pictures() -> dict[str, np.ndarray]:
    """Lesson 3's five classes (:data:`JUDGED_CLASSES`) three ways on
    EfficientNet-Lite0, too slow to make live: ``uint8`` pictures ``plain`` and ``lucid``
    ``(5, 224, 224, 3)``, ``maco`` ``(5, S, S, 3)``, ``maco_alpha`` ``(5, S, S)`` (0..255),
    ``classes`` and ``seconds`` (per picture: plain, lucid, maco). Made by
    ``tools/make_class_pictures.py``; the recipe and measures are in ``data/class_pictures.md``."""
    from course_utils.io.images import DATA_DIR

    with np.load(DATA_DIR / "class_pictures.npz") as shipped:
        return {key: shipped[key] for key in shipped.files}

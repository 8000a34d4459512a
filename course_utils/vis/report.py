"""Filter pictures by the layer, and class pictures a person may recognise.

Filters: many layers at once, a table of how far each filter rose (drawn by
:func:`course_utils.classroom.plotting.plot_filter_grid`), and what batching the filters saves.
Classes: the sample photos' amplitude spectrum MaCo keeps (:func:`natural_magnitude`; MaCo itself is
:mod:`course_utils.vis.maco`), and two measures of "looks like a photo": the share of clipped values
and the slope of the amplitude spectrum (:func:`picture_stats`).

:func:`visualize_layers` and :func:`compare_batched_serial` run
:func:`course_utils.vis.visualize.maximize_filters` (keyword arguments pass through: any style or
parameterisation); :func:`filter_report` reads its :class:`course_utils.vis.result.Visualization`.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import keras
import numpy as np
import pandas as pd

import tensorflow as tf

from course_utils.checks import check_int, check_size
from course_utils.core.param import COLOR_MIX
from course_utils.io.images import load_image, sample_image, to_uint8
from course_utils.models.imagenet import ClassNames
from course_utils.vis.result import Visualization
from course_utils.vis.visualize import class_probabilities, maximize_filters

__all__ = ["visualize_layers", "filter_report", "compare_batched_serial", "natural_magnitude", "picture_stats",
           "shipped_class_pictures"]


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


_PHOTOS = ("astronaut", "chelsea", "coffee", "grace_hopper")
"""The sample photos whose spectra stand for natural images (:func:`natural_magnitude`, :func:`picture_stats`)."""


def natural_magnitude(size: int | tuple[int, int]) -> np.ndarray:
    """The mean amplitude spectrum of the sample photos (:data:`_PHOTOS`, each centre-cropped and
    resized to ``size``), per decorrelated colour channel (brightness and two colour-opponent axes,
    :data:`~course_utils.core.param.COLOR_CORRELATION_SVD_SQRT`): float32 ``(3, H, W // 2 + 1)``,
    pixels scaled to 0..1, orthonormal real FFT, the mean (zero frequency) set to 0. MaCo keeps it fixed."""
    h, w = check_size(size)
    photos = np.stack([load_image(sample_image(name), size=(h, w)) for name in _PHOTOS]) / 255.0  # (4, H, W, 3)
    photos = photos @ np.linalg.inv(COLOR_MIX.T)                                  # RGB -> decorrelated axes
    spectra = np.abs(np.fft.rfft2(np.moveaxis(photos, -1, 1), norm="ortho")).mean(axis=0)   # (3, H, W//2+1)
    spectra[:, 0, 0] = 0.0
    return spectra.astype(np.float32)


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
            table["p_model"] = class_probabilities(model, shown.astype(np.float32), idx)[0]
        if judge is not None:
            table["judge_rank"] = class_probabilities(judge, shown.astype(np.float32), idx)[1]
    return table


def shipped_class_pictures() -> dict[str, np.ndarray]:
    """Lesson 3's five classes (:data:`~course_utils.vis.visualize.JUDGED_CLASSES`) three ways on
    EfficientNet-Lite0, too slow to make live: ``uint8`` pictures ``plain`` and ``lucid``
    ``(5, 224, 224, 3)``, ``maco`` ``(5, S, S, 3)``, ``maco_alpha`` ``(5, S, S)`` (0..255),
    ``classes`` and ``seconds`` (per picture: plain, lucid, maco). Made by
    ``tools/make_class_pictures.py``; the recipe and measures are in ``data/class_pictures.md``."""
    from course_utils.io.images import DATA_DIR

    with np.load(DATA_DIR / "class_pictures.npz") as shipped:
        return {key: shipped[key] for key in shipped.files}

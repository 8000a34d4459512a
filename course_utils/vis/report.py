"""Filter pictures by the layer: many layers at once, a table of how far each filter rose (drawn
by :func:`course_utils.classroom.plotting.plot_filter_grid`), and what batching the filters saves.

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

from course_utils.checks import check_int, check_size
from course_utils.vis.visualize import maximize_filters
from course_utils.vis.result import Visualization

__all__ = ["visualize_layers", "filter_report", "compare_batched_serial"]


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


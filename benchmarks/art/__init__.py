"""Comparisons with IBM's Adversarial Robustness Toolbox (ART), run by ``python -m benchmarks.art``.

Each module here (other than ``__main__``) exposes ``rows(quick: bool) -> list[dict]``: one dict
per (tool, setting, metric), with the keys ``comparison``, ``tool`` (``"course_utils"`` or
``"ART"``), ``setting``, ``metric``, ``value``, ``queries`` and ``wall_s``; both tools get the same
model and the same images. ART is a benchmark dependency only: ``course_utils`` never imports it.
A comparison whose time is mostly the model's own may add a row with the metric :data:`FLOOR`: the
time :func:`forward_floor` measures, below which neither tool can go.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOOR = "wall time of the base model's forward passes alone"
"""The start of the metric of a comparison's floor row (its ``wall_s``: :func:`forward_floor`'s seconds)."""


def forward_floor(model: Any, batch: np.ndarray, pictures: int, slice_size: int) -> float:
    """Seconds ``model`` alone takes on ``pictures`` pictures: the fixed ``batch`` (pixels 0..255) sent
    again and again, compiled, in slices of ``slice_size``, nothing drawn, nothing counted, no Python
    between slices (whole batches are timed, the seconds scaled to ``pictures``). Every tool pays at
    least this for as many forward passes, so it is the floor under a comparison's wall times
    (reported with the metric :data:`FLOOR`)."""
    import tensorflow as tf

    if len(batch) < 1 or pictures < 1 or slice_size < 1:
        raise ValueError(f"forward_floor needs at least one picture in the batch, pictures >= 1 and slice_size >= 1; "
                         f"got a batch of {len(batch)}, pictures={pictures}, slice_size={slice_size}")
    z = tf.constant(batch, tf.float32)

    @tf.function
    def forward(z):
        return tf.add_n([tf.reduce_sum(tf.argmax(model(z[i: i + slice_size], training=False), -1))
                         for i in range(0, len(batch), slice_size)])

    calls = -(-pictures // len(batch))
    return compiled_seconds(forward, z, calls) * pictures / (calls * len(batch))


def compiled_seconds(fn: Any, arg: Any, calls: int) -> float:
    """Seconds of ``calls`` calls of the compiled ``fn(arg)`` in a row, after one untimed call (tracing),
    with one host sync at the end (:func:`benchmarks.measure.timed`)."""
    from benchmarks.measure import timed

    fn(arg).numpy()  # tracing, not timed
    seconds, _ = timed(lambda: [fn(arg) for _ in range(calls)][-1].numpy())
    return seconds

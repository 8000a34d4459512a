"""What a notebook run of the gradient loop gives back: the final batch and a per-step history.

- :class:`LoopResult` what :meth:`course_utils.core.loop.Loop.run` returns;
- :func:`history_frame` the one tidy per-step table every result shows (attacks and visualisation);
- :func:`check_history` refuses, before anything is traced, a run whose history would not fit in
  memory (:data:`MAX_HISTORY_BYTES`);
- :func:`progress_bar` the text progress bar of long runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["LoopResult", "history_frame", "check_history", "progress_bar", "MAX_HISTORY_BYTES"]

MAX_HISTORY_BYTES = 1_000_000_000
"""The most memory (bytes) a run's history may take: 1 GB. Every step keeps a loss per image and
the tracked values per image (4 bytes each), so a careless ``steps=10**9`` would fill the
computer's memory long before it finished; such a run is refused up front."""


@dataclass(frozen=True)
class LoopResult:
    """What :meth:`course_utils.core.loop.Loop.run` returns (NumPy arrays).

    Attributes:
        x: the final batch, same shape as the start, pixel units.
        losses: ``(steps + 1, N)``; row ``t`` is the loss at the start of step ``t`` and the last
            row the loss of the final ``x`` (penalties included). The first and the last row are
            measured on ``x`` itself; the rows in between on what the model saw at that step,
            after the loop's transforms (jitter, scale, ...), if it has any.
        tracked: ``(steps + 1, N, K)``; the objective's tracked values, rows as for ``losses``.
        compile_seconds: time spent tracing the loop and the final evaluation into graphs
            (Python -> TensorFlow graph), before any step runs; ~0 when nothing was traced.
        seconds: total wall time of the loop.
        chunks: the number of steps of each call of the compiled loop, in order (they add up to
            ``steps``); Python, and so Kernel -> Interrupt, gets control between them.
        traces: how many graphs this run traced (0 when it reused the compiled loop).
    """

    x: np.ndarray
    losses: np.ndarray
    tracked: np.ndarray
    compile_seconds: float
    seconds: float
    chunks: tuple[int, ...] = ()
    traces: int = 0

    @property
    def steps(self) -> int:
        return self.losses.shape[0] - 1


def history_frame(steps: int, **columns: Any) -> pd.DataFrame:
    """The tidy per-step history every result shows: one row per step and item, step by step.

    Columns: ``step``, then ``columns`` in the order given. Each is either per item (length
    ``M``, the same at every step: the image, the class, a label) or per step and item (shape
    ``(steps, M)``: a loss, a probability).
    """
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    widths = {a.shape[-1] for a in arrays.values()}
    if len(widths) != 1 or any(a.ndim == 2 and a.shape[0] != steps for a in arrays.values()):
        raise ValueError(f"history columns must be (M,) or ({steps}, M) for one M, got "
                         + ", ".join(f"{k} {a.shape}" for k, a in arrays.items()))
    (m,) = widths
    data = {"step": np.repeat(np.arange(steps), m)}
    data.update({k: np.tile(a, steps) if a.ndim == 1 else a.reshape(-1) for k, a in arrays.items()})
    return pd.DataFrame(data)


def check_history(steps: int, batch: int, width: int, *, at_least: bool = False) -> None:
    """Refuse a run whose history would take more than :data:`MAX_HISTORY_BYTES`.

    The history is ``(steps + 1)`` rows of ``batch`` losses and ``batch x width`` tracked values
    (float32). The message gives the size and the most steps that fit. ``at_least``: ``width``
    is only a lower bound (before tracing, the objective's width is not known yet).
    """
    per_step = 4 * batch * (1 + width)
    need = (steps + 1) * per_step
    if need > MAX_HISTORY_BYTES:
        most = MAX_HISTORY_BYTES // per_step - 1
        raise ValueError(
            f"steps={steps:,} would keep {'at least ' if at_least else ''}{need / 1e9:,.1f} GB of history "
            f"({batch} image(s) x {1 + width}{'+' if at_least else ''} "
            f"values x 4 bytes per step, kept in memory to plot and report); the limit is "
            f"{MAX_HISTORY_BYTES / 1e9:g} GB so a run cannot fill the computer's memory. Use fewer "
            f"steps (at most {most:,} here) or fewer images"
        )


def progress_bar(total: int, description: str) -> Any:
    """A text progress bar of ``total`` ticks (tqdm): it updates in place in JupyterLab and a
    terminal, and reads well in a notebook's saved output (a widget bar shows as a blank box on
    code hosts)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stdout, leave=True, ncols=90, mininterval=0.2)

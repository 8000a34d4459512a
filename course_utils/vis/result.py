"""The result of feature visualisation: :class:`Visualization`, and how a filter's rise is judged.

Made by :func:`course_utils.vis.visualize.maximize_filters` / ``maximize_class`` (through
:func:`course_utils.vis.visualize.ascent_step`): one object whatever the style or the parameterisation, so
tables, grids and checks work the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.core.loop import history_frame
from course_utils.io.images import to_uint8

__all__ = ["Visualization", "deprocess"]

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

"""Pictures and curves for the lessons. Every function draws one figure and returns it.

Images are pixels 0..255 (float or ``uint8``), ``(H, W, 3)`` colour or ``(H, W)`` / ``(H, W, 1)``
grey. In a notebook, end the call with ``;`` to show the figure once.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["show_images", "image_grid", "delta_image", "plot_curves", "plot_probabilities", "plot_tradeoff"]


def _prepare(image: Any) -> tuple[np.ndarray, dict]:
    a = np.asarray(image.numpy() if hasattr(image, "numpy") else image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"cannot show an array of shape {a.shape} as an image; expected (H, W) or (H, W, 3)")
    a = np.clip(np.round(a.astype(np.float32)), 0, 255).astype(np.uint8)
    style = {"cmap": "gray", "vmin": 0, "vmax": 255} if a.ndim == 2 else {}
    return a, style


def show_images(
    images: Sequence[Any],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    size: float = 3.0,
    suptitle: str | None = None,
) -> Figure:
    """Show images side by side (wrapping after ``ncols``), each with an optional title."""
    images = list(images)
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            a, style = _prepare(images[i])
            ax.imshow(a, **style)
            if titles is not None:
                ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def image_grid(
    rows: Sequence[Sequence[Any]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    *,
    size: float = 1.6,
    suptitle: str | None = None,
) -> Figure:
    """A grid of images, one list per row (e.g. one row per layer, one column per filter)."""
    rows = [list(r) for r in rows]
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols + 1.5, size * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row):
                a, style = _prepare(row[c])
                ax.imshow(a, **style)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=9)
            if r == 0 and col_labels is not None and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def delta_image(delta: Any, amplify: float | None = None) -> np.ndarray:
    """Make a perturbation visible: mid-grey plus ``amplify * delta``, as ``uint8``.

    ``delta`` is in pixels (any sign). By default it is scaled so its largest change reaches
    the edge of the range; grey means "unchanged", lighter "brighter", darker "darker".
    """
    d = np.asarray(delta.numpy() if hasattr(delta, "numpy") else delta, dtype=np.float32)
    if amplify is None:
        peak = float(np.abs(d).max())
        amplify = 127.0 / peak if peak > 0 else 1.0
    return np.clip(127.5 + amplify * d, 0, 255).astype(np.uint8)


def plot_curves(
    data: pd.DataFrame | dict[str, Sequence[float]],
    *,
    xlabel: str = "step",
    ylabel: str = "",
    title: str | None = None,
    logy: bool = False,
    ax: Any = None,
    hline: float | None = None,
) -> Figure:
    """Line plot of each column of ``data`` against its index (e.g. a loss or a probability per step)."""
    frame = pd.DataFrame(data)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.5))
    else:
        fig = ax.figure
    for column in frame.columns:
        ax.plot(frame.index, frame[column], label=str(column), marker="o" if len(frame) <= 30 else None, markersize=3)
    if hline is not None:
        ax.axhline(hline, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(frame.columns) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_probabilities(history: pd.DataFrame, *, image: int = 0, title: str | None = None, ax: Any = None) -> Figure:
    """Probability per step of every class in a tidy history (columns ``step``, ``image``,
    ``label``, ``probability``), as returned by the attacks."""
    rows = history[history["image"] == image]
    wide = rows.pivot_table(index="step", columns="label", values="probability", sort=False)
    return plot_curves(wide, ylabel="probability", title=title, ax=ax, hline=1.0)


def plot_tradeoff(
    x: Sequence[float],
    left: Sequence[float],
    right: Sequence[float],
    *,
    xlabel: str,
    left_label: str,
    right_label: str,
    logx: bool = True,
    right_line: float | None = 0.5,
    title: str | None = None,
) -> Figure:
    """Two quantities against one setting, with two y axes (e.g. size of a perturbation and the
    probability it reaches, against the weight of a penalty). ``right_line`` marks a threshold."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.plot(x, left, "o-", color="tab:blue")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(left_label, color="tab:blue")
    twin = ax.twinx()
    twin.plot(x, right, "s--", color="tab:red")
    twin.set_ylabel(right_label, color="tab:red")
    if right_line is not None:
        twin.axhline(right_line, color="tab:red", linestyle=":", linewidth=1)
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig

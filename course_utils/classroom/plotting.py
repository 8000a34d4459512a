"""Pictures and curves for the lessons. Every function draws one figure and returns it.

Images are pixels 0..255 (float or ``uint8``), ``(H, W, 3)`` colour or ``(H, W)`` / ``(H, W, 1)``
grey. In a notebook, end the call with ``;`` to show the figure once.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from course_utils.io.images import to_uint8

__all__ = [
    "show_images", "plot_filter_grid", "delta_image", "show_gradients", "show_kernels", "attack_panel",
    "plot_curves", "figure_slider",
]


def _array(x: Any, dtype: Any = None) -> np.ndarray:
    """A NumPy array of a NumPy array, a list or a TensorFlow tensor."""
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=dtype)


def _prepare(image: Any) -> tuple[np.ndarray, dict]:
    a = _array(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"cannot show an array of shape {a.shape} as an image; expected (H, W) or (H, W, 3)")
    a = to_uint8(a)
    style = {"cmap": "gray", "vmin": 0, "vmax": 255} if a.ndim == 2 else {}
    return a, style


def show_images(images: Sequence[Any], titles: Sequence[str] | None = None, *, ncols: int | None = None,
                size: float = 3.0, suptitle: str | None = None, row_labels: Sequence[str] | None = None,
                col_labels: Sequence[str] | None = None) -> Figure:
    """Show images side by side (wrapping after ``ncols``), each with an optional title.

    With ``row_labels``, a grid instead: ``images`` is a list of rows, one per label (e.g. one row
    per layer, one column per filter), and ``col_labels`` go over the first row. ``size`` is the
    side of one image, in inches.
    """
    if row_labels is None:
        images = list(images)
        if titles is not None and len(titles) != len(images):
            raise ValueError(f"got {len(titles)} titles for {len(images)} images")
        ncols = ncols or len(images)
        rows = [images[i:i + ncols] for i in range(0, len(images), ncols)]
        labels = [None] * len(rows)
    else:
        rows, labels, ncols = [list(r) for r in images], list(row_labels), max(len(r) for r in images)
        if len(labels) != len(rows):
            raise ValueError(f"got {len(labels)} row labels for {len(rows)} rows of images")
    height = size * len(rows) + (0.4 if suptitle and row_labels is None else 0)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols + (0 if row_labels is None else 1.5), height),
                             squeeze=False)
    for r, (row, label) in enumerate(zip(rows, labels)):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            if c < len(row):
                a, style = _prepare(row[c])
                ax.imshow(a, **style)
            if c == 0 and label is not None:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
            if row_labels is None and titles is not None and c < len(row):
                ax.set_title(titles[r * ncols + c], fontsize=10)
            elif row_labels is not None and r == 0 and col_labels is not None and c < len(col_labels):
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
    d = _array(delta, np.float32)
    if amplify is None:
        peak = float(np.abs(d).max())
        amplify = 127.0 / peak if peak > 0 else 1.0
    return to_uint8(127.5 + amplify * d)


def show_gradients(gradients: Sequence[Any], titles: Sequence[str] | None = None, *, percentile: float = 99.0,
                   size: float = 3.0) -> Figure:
    """Show input gradients as maps with a colour bar, so their structure is visible.

    Each gradient is ``(H, W, C)`` or ``(1, H, W, C)`` (per grey level of each pixel and colour,
    any units); it is summed over colours and drawn on a red-blue scale that is symmetric around
    0 (white = this pixel does not matter). A gradient's few largest values would make everything
    else look white, so the scale ends at the ``percentile``-th percentile of ``|gradient|``
    (values beyond it are drawn at full colour). One colour bar per map gives its units.
    """
    if not 50 <= percentile <= 100:
        raise ValueError(f"percentile must be in 50..100, got {percentile!r}")
    maps = []
    for g in gradients:
        a = _array(g, np.float32)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim == 3:
            a = a.sum(axis=-1)
        if a.ndim != 2:
            raise ValueError(f"cannot show a gradient of shape {np.shape(g)}; expected (H, W, C) or (1, H, W, C)")
        maps.append(a)
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"got {len(titles)} titles for {len(maps)} gradients")
    fig, axes = plt.subplots(1, len(maps), figsize=(size * 1.25 * len(maps), size), squeeze=False)
    for i, (ax, a) in enumerate(zip(axes[0], maps)):
        limit = float(np.percentile(np.abs(a), percentile)) or 1e-12
        shown = ax.imshow(a, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.axis("off")
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def show_kernels(kernel: Any, filters: Sequence[int], *, size: float = 1.3, title: str | None = None) -> Figure:
    """Show the weights of a first convolution layer as tiny colour pictures, one per filter.

    ``kernel`` is the layer's weight array, ``(kh, kw, 3, filters)`` (Keras' layout, e.g.
    ``layer.kernel``). Every shown kernel uses the *same* scale, mid-grey plus weight / (largest
    |weight| shown), so a filter with near-zero weights shows as flat grey and strong filters
    stand out. Each weight is one square.
    """
    k = _array(kernel, np.float32)
    if k.ndim != 4 or k.shape[2] not in (1, 3):
        raise ValueError(f"expected a first-layer kernel (kh, kw, 1 or 3, filters), got shape {k.shape}")
    filters = [int(f) for f in filters]
    bad = [f for f in filters if not 0 <= f < k.shape[-1]]
    if bad or not filters:
        raise ValueError(f"filters must be a non-empty list of indices in 0..{k.shape[-1] - 1}, got {filters}")
    peak = float(np.abs(k[..., filters]).max()) or 1.0
    pictures = [to_uint8(127.5 + 127.5 * k[..., f] / peak) for f in filters]
    return show_images(pictures, [f"filter {f}" for f in filters], size=size, suptitle=title)


def attack_panel(original: Any, adversarial: Any, top_k: pd.DataFrame, *, title: str | None = None,
                 amplify: float | None = None, size: float = 2.8) -> Figure:
    """One attacked photo at a glance: the adversarial image, its change (amplified around
    mid-grey, see :func:`delta_image`) and the model's top-k probabilities as bars.

    ``original`` and ``adversarial`` are ``(H, W, C)`` pixels 0..255; ``top_k`` is one image's rows
    of :func:`course_utils.models.predict_top_k` (columns ``label`` and ``probability``).
    """
    missing = {"label", "probability"} - set(top_k.columns)
    if missing:
        raise ValueError("top_k needs the columns 'label' and 'probability' (as predict_top_k gives); "
                         f"missing {sorted(missing)}")
    change = _array(adversarial, np.float32) - _array(original, np.float32)
    fig, axes = plt.subplots(1, 3, figsize=(size * 3.4, size), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    for ax, picture, name in zip(axes, [adversarial, delta_image(change, amplify)],
                                 ("adversarial", "change, amplified")):
        a, style = _prepare(picture)
        ax.imshow(a, **style)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    rows = top_k.iloc[::-1]
    axes[2].barh(range(len(rows)), rows["probability"], color="tab:blue")
    axes[2].set_yticks(range(len(rows)), rows["label"], fontsize=9)
    axes[2].set_xlim(0, 1)
    axes[2].set_xlabel("probability")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(data: pd.DataFrame | dict[str, Sequence[float]], *, xlabel: str = "step", ylabel: str = "",
                title: str | None = None, logx: bool = False, logy: bool = False, ax: Any = None,
                hline: float | None = None, right: str | None = None) -> Figure:
    """Line plot of each column of ``data`` against its index (e.g. a loss or a probability per step).

    An attack's tidy ``history`` (columns ``step``, ``image``, ``label``, ``probability``, one
    image) is drawn as one probability curve per label. ``right`` names a column drawn in red
    against a second y axis on the right (e.g. the probability a change reaches, next to its
    size); ``hline`` marks a level on that axis if there is one. With ``logx`` the x axis is
    logarithmic; if the index holds 0 (no penalty at all) it is "symlog" instead: linear from 0 up
    to the smallest positive value, so 0 is drawn at 0, not faked onto the log scale.
    """
    frame = pd.DataFrame(data)
    if {"step", "image", "label", "probability"} <= set(frame.columns):
        if frame["image"].nunique() > 1:
            raise ValueError("a history of several images: choose one, e.g. history.query('image == 0')")
        frame = frame.pivot_table(index="step", columns="label", values="probability", sort=False)
        ylabel, hline = ylabel or "probability", 1.0 if hline is None else hline
    x = np.asarray(frame.index, dtype=float)
    if logx and np.any(x < 0):
        raise ValueError(f"a logarithmic x axis needs values >= 0, got {x.min()}; pass logx=False")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.5))
    else:
        fig = ax.figure
    left = [c for c in frame.columns if c != right]
    for column in left:
        ax.plot(x, frame[column], label=str(column), marker="o" if len(frame) <= 30 else None, markersize=3)
    level = ax
    if right is not None:
        level = ax.twinx()
        level.plot(x, frame[right], "s--", color="tab:red", markersize=3)
        level.set_ylabel(str(right), color="tab:red")
    if hline is not None:
        level.axhline(hline, color="gray" if right is None else "tab:red", linestyle=":", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    positive = x[x > 0]
    if logx and len(positive) < len(x) and len(positive):
        ax.set_xscale("symlog", linthresh=float(positive.min()), linscale=0.5)
        ax.set_xlim(left=-0.2 * float(positive.min()), right=float(x.max()) * 1.5)
    elif logx and len(positive):
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(left) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_filter_grid(results: Mapping[str, Any], *, size: float = 1.5, title: str | None = None) -> Figure:
    """Filter pictures, layer name -> a filter :class:`course_utils.vis.result.Visualization`: one
    row per layer, one column per filter; a filter that did not rise 10x gets its status and lift
    ratio written under it in red, so weak and dead filters are shown, not hidden."""
    layers = list(results)
    fig = show_images([list(results[l].images) for l in layers], row_labels=layers, size=size, suptitle=title,
                      col_labels=[f"filter {w.split(':')[-1]}" for w in results[layers[0]].what])
    ncols = max(len(results[l].what) for l in layers)
    for r, layer in enumerate(layers):
        vis = results[layer]
        for c, (status, ratio) in enumerate(zip(vis.status, vis.lift_ratio)):
            if status != "rose":
                fig.axes[r * ncols + c].set_xlabel(f"{status} {np.floor(ratio * 10) / 10:.1f}x", color="red",
                                                   fontsize=8, labelpad=1)
    fig.tight_layout()
    return fig


def _widgets_available() -> bool:
    """Whether a live Jupyter front end can show widgets here (a kernel with ``ipywidgets``)."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def figure_slider(draw: Callable[[int], Figure], labels: Sequence[str], *, description: str,
                  overview: Callable[[], Figure], start: int = 0, interactive: bool | None = None) -> None:
    """Show a static overview of a sweep, then a slider over its precomputed figures.

    The lessons compute a sweep once (several betas, several budgets); every figure is drawn once
    and turned into a PNG, so dragging only swaps pictures. The static overview comes first, so the
    page tells the story where widgets cannot run (a static viewer, the tests, no ``ipywidgets``).

    Args:
        draw: ``draw(i) -> Figure`` draws the ``i``-th setting (called once per setting, up front).
        labels: one label per setting, shown on the slider (e.g. ``"β = 3e-4"``).
        description: the slider's name (e.g. ``"β"``).
        overview: draws one static figure of the whole sweep, shown first (and all that a static
            copy of the notebook keeps).
        start: the setting the slider shows first.
        interactive: force the slider on or off; ``None`` decides with :func:`_widgets_available`.
    """
    from IPython.display import display

    labels = [str(label) for label in labels]
    if not labels:
        raise ValueError("figure_slider needs at least one setting (labels is empty)")
    if not 0 <= start < len(labels):
        raise ValueError(f"start must be in 0..{len(labels) - 1}, got {start!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must differ from each other, got {labels}")
    fig = overview()
    display(fig)
    plt.close(fig)
    if not (_widgets_available() if interactive is None else interactive):
        return
    import ipywidgets as widgets

    pictures = [_png(draw(i)) for i in range(len(labels))]
    image = widgets.Image(value=pictures[start], format="png")
    slider = widgets.SelectionSlider(
        options=labels, value=labels[start], description=description, continuous_update=True,
        layout=widgets.Layout(width="60%"),
    )
    slider.observe(lambda change: setattr(image, "value", pictures[labels.index(change["new"])]), names="value")
    box = widgets.VBox([slider, image])
    bundle = box._repr_mimebundle_() or {}
    bundle["text/plain"] = f"(a slider over {description}: run this notebook in JupyterLab to use it)"
    display(bundle, raw=True)

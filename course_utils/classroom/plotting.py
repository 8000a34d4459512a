"""Pictures and curves for the lessons. Every function draws one figure and returns it.

Images are pixels 0..255 (float or ``uint8``), ``(H, W, 3)`` colour or ``(H, W)`` / ``(H, W, 1)``
grey. In a notebook, end the call with ``;`` to show the figure once.

:func:`figure_slider` slides over precomputed figures: the lessons compute a sweep once (several
betas, several budgets); every figure is drawn once and turned into a PNG, so dragging only swaps
pictures. It always shows one static overview of the sweep first, so the page tells the story where
widgets cannot run (a static viewer, the test suite, no ``ipywidgets``).
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
    "show_images", "image_grid", "plot_filter_grid", "delta_image", "show_gradients", "show_kernels",
    "attack_panel", "plot_curves", "plot_probabilities", "plot_tradeoff", "figure_slider",
]


def _prepare(image: Any) -> tuple[np.ndarray, dict]:
    a = np.asarray(image.numpy() if hasattr(image, "numpy") else image)
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
                size: float = 3.0, suptitle: str | None = None) -> Figure:
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


def image_grid(rows: Sequence[Sequence[Any]], row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, *, size: float = 1.6, suptitle: str | None = None) -> Figure:
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
        a = np.asarray(g.numpy() if hasattr(g, "numpy") else g, dtype=np.float32)
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
    stand out. Each weight is one square (no smoothing).
    """
    k = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel, dtype=np.float32)
    if k.ndim != 4 or k.shape[2] not in (1, 3):
        raise ValueError(f"expected a first-layer kernel (kh, kw, 1 or 3, filters), got shape {k.shape}")
    filters = [int(f) for f in filters]
    bad = [f for f in filters if not 0 <= f < k.shape[-1]]
    if bad or not filters:
        raise ValueError(f"filters must be a non-empty list of indices in 0..{k.shape[-1] - 1}, got {filters}")
    chosen = k[..., filters]
    peak = float(np.abs(chosen).max()) or 1.0
    fig, axes = plt.subplots(1, len(filters), figsize=(size * len(filters), size + (0.4 if title else 0.2)), squeeze=False)
    for ax, f in zip(axes[0], filters):
        w = k[..., f]
        pic = to_uint8(127.5 + 127.5 * w / peak)
        ax.imshow(pic[..., 0] if pic.shape[-1] == 1 else pic, cmap="gray" if pic.shape[-1] == 1 else None,
                  vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"filter {f}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def attack_panel(
    original: Any,
    adversarial: Any,
    top_k: pd.DataFrame,
    *,
    title: str | None = None,
    amplify: float | None = None,
    size: float = 2.8,
) -> Figure:
    """One attacked photo at a glance: the adversarial image, its change (amplified around
    mid-grey, see :func:`delta_image`) and the model's top-k probabilities as bars.

    ``original`` and ``adversarial`` are ``(H, W, C)`` pixels 0..255; ``top_k`` is one image's rows
    of :func:`course_utils.models.predict_top_k` (columns ``label`` and ``probability``).
    """
    missing = {"label", "probability"} - set(top_k.columns)
    if missing:
        raise ValueError(f"top_k needs the columns 'label' and 'probability' (as predict_top_k gives); missing {sorted(missing)}")
    a, style = _prepare(adversarial)
    change = np.asarray(adversarial, np.float32) - np.asarray(original, np.float32)
    fig, axes = plt.subplots(1, 3, figsize=(size * 3.4, size), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    axes[0].imshow(a, **style)
    axes[0].set_title("adversarial", fontsize=10)
    d, dstyle = _prepare(delta_image(change, amplify))
    axes[1].imshow(d, **dstyle)
    axes[1].set_title("change, amplified", fontsize=10)
    for ax in axes[:2]:
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
    probability it reaches, against the weight of a penalty). ``right_line`` marks a threshold.

    With ``logx`` the x axis is logarithmic; if ``x`` holds 0 (no penalty at all), the axis is
    "symlog" instead: linear from 0 up to the smallest positive value, logarithmic above, so 0 is
    drawn at 0 and not moved onto the log scale, where it would fake a jump.
    """
    x = np.asarray(x, dtype=float)
    if logx and np.any(x < 0):
        raise ValueError(f"a logarithmic x axis needs values >= 0, got {x.min()}; pass logx=False")
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
        positive = x[x > 0]
        if len(positive) < len(x) and len(positive):
            ax.set_xscale("symlog", linthresh=float(positive.min()), linscale=0.5)
            ax.set_xlim(left=-0.2 * float(positive.min()), right=float(x.max()) * 1.5)
        elif len(positive):
            ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_filter_grid(results: Mapping[str, Any], *, size: float = 1.5, title: str | None = None) -> Figure:
    """Filter pictures, layer name -> a filter :class:`course_utils.vis.result.Visualization`: one
    row per layer, one column per filter; a filter that did not rise 10x gets its status and lift
    ratio written under it in red, so weak and dead filters are shown, not hidden."""
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


def figure_slider(
    draw: Callable[[int], Figure],
    labels: Sequence[str],
    *,
    description: str,
    overview: Callable[[], Figure],
    start: int = 0,
    interactive: bool | None = None,
) -> None:
    """Show a static overview of a sweep, then a slider over its precomputed figures.

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

"""A slider over precomputed figures: instant to drag, and readable without widgets.

The lessons compute a sweep once (several betas, several budgets) and then let the reader slide
through the results. Nothing is recomputed while dragging: every figure is drawn once, turned into
a PNG, and the slider only swaps pictures.

Every call also shows one static overview figure of the whole sweep, first, so the page tells the
story where widgets cannot run: a static viewer on a code host, a notebook executed by the test
suite, an installation without ``ipywidgets``. There the slider's place holds one line of text.
"""

from __future__ import annotations

import io
from typing import Callable, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["figure_slider"]


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

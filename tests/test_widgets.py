"""The slider over precomputed figures: a static overview always, the widget only where it can run."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_utils.classroom import plotting  # noqa: E402


def _fig(label: str):
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title(label)
    return fig


def test_without_widgets_only_the_overview_is_shown(monkeypatch):
    shown, drawn = [], []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    plotting.figure_slider(lambda i: drawn.append(i) or _fig(str(i)), ["a", "b"], description="x",
                          overview=lambda: _fig("all"), interactive=False)
    assert len(shown) == 1 and shown[0].axes[0].get_title() == "all"
    assert drawn == []  # nothing precomputed for a slider that is not shown


def test_with_widgets_every_figure_is_drawn_once_and_dragging_only_swaps_pictures(monkeypatch):
    pytest.importorskip("ipywidgets")
    shown, drawn = [], []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    plotting.figure_slider(lambda i: drawn.append(i) or _fig(str(i)), ["a", "b", "c"], description="x",
                          overview=lambda: _fig("all"), start=1, interactive=True)
    assert drawn == [0, 1, 2]
    bundle = shown[1]
    assert "application/vnd.jupyter.widget-view+json" in bundle and "JupyterLab" in bundle["text/plain"]


@pytest.mark.parametrize("labels, start, message", [([], 0, "at least one"), (["a"], 3, "start must be"), (["a", "a"], 0, "differ")])
def test_bad_settings_are_refused(labels, start, message):
    with pytest.raises(ValueError, match=message):
        plotting.figure_slider(lambda i: _fig("x"), labels, description="x", overview=lambda: _fig("o"), start=start,
                              interactive=False)

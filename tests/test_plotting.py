"""The plotting helpers draw what they promise and refuse input they cannot draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from course_utils.classroom.plotting import plot_curves, show_gradients, show_images, show_kernels  # noqa: E402


def test_a_tradeoff_draws_zero_at_zero_on_a_symlog_axis_with_its_right_axis():
    sweep = pd.DataFrame({"l2": [100, 60, 20, 3], "p": [0.97, 0.84, 0.49, 0.33]}, index=[0.0, 1e-4, 1e-3, 1e-2])
    fig = plot_curves(sweep, right="p", hline=0.5, logx=True, xlabel="beta")
    ax, twin = fig.axes
    assert ax.get_xscale() == "symlog" and twin.get_ylabel() == "p"
    assert ax.lines[0].get_xdata()[0] == 0.0  # not moved onto the log scale
    plt.close(fig)
    fig = plot_curves(pd.DataFrame({"a": [1, 2], "b": [0.5, 0.6]}, index=[1e-4, 1e-3]), right="b", logx=True)
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(ValueError, match="logx=False"):
        plot_curves(pd.DataFrame({"a": [1, 2]}, index=[-1.0, 1.0]), logx=True)


def test_a_history_becomes_one_probability_curve_per_label():
    history = pd.DataFrame({"step": [0, 0, 1, 1], "image": 0, "label": ["cat", "dog"] * 2,
                            "probability": [0.9, 0.1, 0.2, 0.8]})
    fig = plot_curves(history)
    assert [line.get_label() for line in fig.axes[0].lines[:2]] == ["cat", "dog"]
    assert fig.axes[0].get_ylabel() == "probability"
    plt.close(fig)
    with pytest.raises(ValueError, match="query"):
        plot_curves(pd.concat([history, history.assign(image=1)]))


def test_a_grid_has_a_label_per_row_and_a_title_per_column():
    x = np.zeros((4, 4, 3), np.uint8)
    fig = show_images([[x, x], [x]], row_labels=["a", "b"], col_labels=["one", "two"], size=1.0)
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == ["a", "b"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["one", "two"] and not fig.axes[3].images
    plt.close(fig)
    with pytest.raises(ValueError, match="row labels"):
        show_images([[x]], row_labels=["a", "b"])
    with pytest.raises(ValueError, match="titles"):
        show_images([x, x], ["only one"])


def test_gradients_are_scaled_by_a_percentile_with_a_colour_bar():
    g = np.random.default_rng(0).normal(0, 1e-3, (1, 16, 16, 3)).astype(np.float32)
    g[0, 0, 0] = 1.0  # one huge value must not wash the rest out
    fig = show_gradients([g, g[0]], ["a", "b"], percentile=99)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2 and len(fig.axes) == 4  # two maps, two colour bars
    vmin, vmax = images[0].get_clim()
    assert vmax == -vmin and vmax < 0.1  # symmetric, set by the percentile, not by the outlier
    plt.close(fig)
    with pytest.raises(ValueError, match="percentile"):
        show_gradients([g], percentile=10)
    with pytest.raises(ValueError, match="cannot show a gradient"):
        show_gradients([np.zeros(5)])


def test_kernels_share_one_scale_so_near_zero_weights_look_grey():
    k = np.random.default_rng(0).normal(0, 1, (3, 3, 3, 4)).astype(np.float32)
    k[..., 2] = 1e-8  # a dead filter
    fig = show_kernels(k, [0, 2])
    dead = fig.axes[1].images[0].get_array()
    assert np.all(np.abs(dead.astype(int) - 127) <= 1)
    plt.close(fig)
    with pytest.raises(ValueError, match="0..3"):
        show_kernels(k, [4])
    with pytest.raises(ValueError, match="first-layer kernel"):
        show_kernels(np.zeros((3, 3)), [0])


def test_attack_panel_shows_image_change_and_bars():
    import pandas as pd

    from course_utils.classroom.plotting import attack_panel

    x = np.full((8, 8, 3), 100.0, np.float32)
    top = pd.DataFrame({"label": ["king penguin", "tabby"], "probability": [0.9, 0.05]})
    fig = attack_panel(x, x + 2.0, top, title="t", amplify=10.0)
    assert len(fig.axes) == 3 and [t.get_text() for t in fig.axes[2].get_yticklabels()] == ["tabby", "king penguin"]
    plt.close(fig)
    with pytest.raises(ValueError, match="probability"):
        attack_panel(x, x, pd.DataFrame({"label": ["a"]}))

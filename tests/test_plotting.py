"""The plotting helpers draw what they promise and refuse input they cannot draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_utils.classroom.plotting import plot_tradeoff, show_gradients, show_kernels  # noqa: E402


def test_tradeoff_draws_zero_at_zero_on_a_symlog_axis():
    fig = plot_tradeoff([0.0, 1e-4, 1e-3, 1e-2], [100, 60, 20, 3], [0.97, 0.84, 0.49, 0.33],
                        xlabel="beta", left_label="l2", right_label="p")
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog"
    assert ax.lines[0].get_xdata()[0] == 0.0  # not moved onto the log scale
    plt.close(fig)
    fig = plot_tradeoff([1e-4, 1e-3], [1, 2], [0.5, 0.6], xlabel="x", left_label="a", right_label="b")
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(ValueError, match="logx=False"):
        plot_tradeoff([-1.0, 1.0], [1, 2], [0.5, 0.6], xlabel="x", left_label="a", right_label="b")


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

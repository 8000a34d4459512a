"""What the notebooks show and check: plots (:mod:`~course_utils.classroom.plotting`), sliders
(:mod:`~course_utils.classroom.widgets`), claims with margins (:mod:`~course_utils.classroom.claims`)
and each lesson's exercise checks (:mod:`~course_utils.classroom.exercises`,
:mod:`~course_utils.classroom.practice` and the modules beside them).

The names the lessons use are importable from here: ``from course_utils.classroom import claim, show_images``."""

from course_utils.classroom.claims import claim
from course_utils.classroom.plotting import (
    attack_panel, delta_image, image_grid, plot_curves, plot_filter_grid, plot_probabilities, plot_tradeoff,
    show_gradients, show_images, show_kernels,
)
from course_utils.classroom.widgets import figure_slider

__all__ = [
    "claim", "attack_panel", "delta_image", "image_grid", "plot_curves", "plot_filter_grid", "plot_probabilities",
    "plot_tradeoff", "show_gradients", "show_images", "show_kernels", "figure_slider",
]

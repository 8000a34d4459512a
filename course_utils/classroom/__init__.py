"""What the notebooks show and check: plots and sliders (:mod:`~course_utils.classroom.plotting`),
claims with margins and the grading every check shares (:mod:`~course_utils.classroom.grading`),
and each lesson's exercise checks, one module per lesson (:mod:`~course_utils.classroom.lesson1` ...
:mod:`~course_utils.classroom.lesson7`).

The names the lessons use are importable from here: ``from course_utils.classroom import claim, show_images``.
A lesson imports its own checks as a module: ``from course_utils.classroom import lesson1 as exercises``,
then ``exercises.lesson1_transfers(transfers, ...)``."""

from course_utils.classroom.grading import claim
from course_utils.classroom.plotting import (
    attack_panel, delta_image, figure_slider, plot_curves, plot_filter_grid, show_gradients, show_images, show_kernels,
)

__all__ = [
    "claim", "attack_panel", "delta_image", "plot_curves", "plot_filter_grid", "show_gradients", "show_images",
    "show_kernels", "figure_slider",
]

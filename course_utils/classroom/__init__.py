"""What the notebooks show and check: plots and sliders (:mod:`~course_utils.classroom.plotting`),
claims with margins and the one grading helper (:mod:`~course_utils.classroom.grading`), and each
lesson's exercise checks (:mod:`~course_utils.classroom.lesson1` ... ``lesson7``), which a lesson
imports as a module: ``from course_utils.classroom import lesson1 as exercises``."""

from course_utils.classroom.grading import claim
from course_utils.classroom.plotting import (
    attack_panel, delta_image, figure_slider, plot_curves, plot_filter_grid, show_gradients, show_images, show_kernels,
)

__all__ = [
    "claim", "attack_panel", "delta_image", "plot_curves", "plot_filter_grid", "show_gradients", "show_images",
    "show_kernels", "figure_slider",
]

"""What the notebooks show and check: plots (:mod:`~course_utils.classroom.plotting`), sliders
(:mod:`~course_utils.classroom.widgets`), claims with margins (:mod:`~course_utils.classroom.claims`)
and each lesson's exercise checks, one module per lesson (:mod:`~course_utils.classroom.lesson1` ...
:mod:`~course_utils.classroom.lesson7`), all graded by :mod:`~course_utils.classroom.grading`.

The names the lessons use are importable from here: ``from course_utils.classroom import claim, show_images``.
A lesson imports its own checks as a module: ``from course_utils.classroom import lesson1 as exercises``,
then ``exercises.lesson1_transfers(transfers, ...)``."""

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

"""Seeing inside networks: lesson 3 (and lesson 4's drawn faces), in Lucent's split.

- :mod:`~course_utils.vis.param` how the picture is described (pixels, Fourier, MaCo's phase);
- :mod:`~course_utils.vis.objectives` what the step optimises: the objective, transforms,
  penalties and after-step priors;
- :mod:`~course_utils.vis.visualize` the step and the filter and class pictures (Lucent's ``render``);
- :mod:`~course_utils.vis.maco` MaCo, its own step;
- :mod:`~course_utils.vis.result` what comes back and how it is read: the result, reports, a
  second network's judgement, picture statistics.

Depends on :mod:`course_utils.core`, :mod:`course_utils.models` and :mod:`course_utils.io`. The
lessons import from here: ``from course_utils.vis import maximize_class``."""

from course_utils.vis.maco import maximize_class_maco
from course_utils.vis.objectives import Jitter, diversity
from course_utils.vis.param import natural_magnitude
from course_utils.vis.result import JUDGED_CLASSES, filter_report, judge_classes, picture_stats, shipped_class_pictures
from course_utils.vis.visualize import (
    compare_batched_serial, default_regularizers, maximize_class, maximize_filters, visualize_layers,
)

__all__ = [
    "default_regularizers", "maximize_class", "maximize_filters", "JUDGED_CLASSES", "judge_classes", "Jitter",
    "diversity", "compare_batched_serial", "filter_report", "visualize_layers", "maximize_class_maco",
    "natural_magnitude", "picture_stats", "shipped_class_pictures",
]

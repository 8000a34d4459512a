"""Seeing inside networks: lesson 3's filter and class pictures, their step and the judge, a second
network scoring class pictures (:mod:`~course_utils.vis.visualize`), filter pictures by the layer
(:mod:`~course_utils.vis.report`), MaCo (:mod:`~course_utils.vis.maco`) and the result object
(:mod:`~course_utils.vis.result`). Depends on
:mod:`course_utils.core`, :mod:`course_utils.models` and :mod:`course_utils.io`; nothing there depends on it.

The names the lessons use are importable from here: ``from course_utils.vis import maximize_class``."""

from course_utils.vis.report import (
    compare_batched_serial, filter_report, natural_magnitude, picture_stats, shipped_class_pictures,
    visualize_layers,
)
from course_utils.vis.maco import maximize_class_maco
from course_utils.vis.visualize import JUDGED_CLASSES, default_regularizers, judge_classes, maximize_class, maximize_filters

__all__ = [
    "default_regularizers", "maximize_class", "maximize_filters", "JUDGED_CLASSES", "judge_classes",
    "compare_batched_serial", "filter_report", "visualize_layers", "maximize_class_maco", "natural_magnitude",
    "picture_stats", "shipped_class_pictures",
]

"""Seeing inside networks: the runner for every parameterisation (:mod:`~course_utils.vis.run`),
lesson 3's filter and class pictures (:mod:`~course_utils.vis.filters`), filter pictures by the layer
(:mod:`~course_utils.vis.report`), the result object (:mod:`~course_utils.vis.result`) and the judge, a
second network scoring class pictures (:mod:`~course_utils.vis.judge`). Depends on
:mod:`course_utils.core`, :mod:`course_utils.models` and :mod:`course_utils.io`; nothing there depends on it.

The names the lessons use are importable from here: ``from course_utils.vis import maximize_class``."""

from course_utils.vis.filters import default_regularizers, maximize_class, maximize_filters
from course_utils.vis.judge import JUDGED_CLASSES, judge_classes
from course_utils.vis.report import compare_batched_serial, filter_report, visualize_layers

__all__ = [
    "default_regularizers", "maximize_class", "maximize_filters", "JUDGED_CLASSES", "judge_classes",
    "compare_batched_serial", "filter_report", "visualize_layers",
]

"""Seeing inside networks, on the one loop: filter and class visualisation
(:mod:`~course_utils.vis.filters`), Lucid-style pictures and their judge (:mod:`~course_utils.vis.lucid`),
and the result object (:mod:`~course_utils.vis.result`)."""

"""Seeing inside networks, on the one loop: the runner for every parameterisation
(:mod:`~course_utils.vis.run`), lesson 3's filter and class pictures (:mod:`~course_utils.vis.filters`),
filter pictures by the layer (:mod:`~course_utils.vis.report`), the result object
(:mod:`~course_utils.vis.result`) and the judge, a second network scoring class pictures
(:mod:`~course_utils.vis.judge`). Depends on :mod:`course_utils.core`, :mod:`course_utils.models`
and :mod:`course_utils.io`; nothing there depends on it."""

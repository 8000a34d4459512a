"""What the notebooks show and check: plots (:mod:`~course_utils.classroom.plotting`), sliders
(:mod:`~course_utils.classroom.widgets`), claims with margins (:mod:`~course_utils.classroom.claims`)
and the exercise checks (:mod:`~course_utils.classroom.exercises`,
:mod:`~course_utils.classroom.exercises_defences`)."""

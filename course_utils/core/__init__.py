"""The driver and what the steps are written with (as Lucent and Foolbox split them).

- :mod:`~course_utils.core.loop` the driver: compiles a step given to it, runs it in chunks (history,
  progress, Kernel -> Interrupt) or graph-level (inside a ``train_step``), and what a run returns;
- :mod:`~course_utils.core.ops` the tensor operations the steps are written with (losses, step
  directions, projections, random starts, blur, affine, JPEG, rounding, straight-through).

The steps themselves live with their algorithms, in :mod:`course_utils.attacks` and
:mod:`course_utils.vis` (feature visualisation's objectives, transforms and parameterisations too).
Depends on :mod:`course_utils.models` only. Lessons import nothing from here."""

__all__ = []

"""The driver and what the steps are written with (as Lucent and Foolbox split them).

- :mod:`~course_utils.core.loop` the driver: compiles a step given to it, runs it in chunks (history,
  progress, Kernel -> Interrupt) or graph-level (inside a ``train_step``), and what a run returns;
- :mod:`~course_utils.core.ops` the tensor operations the steps are written with (losses, step
  directions, projections, random starts, blur, affine, JPEG, rounding, straight-through);
- :mod:`~course_utils.core.objectives` lesson 3's objectives; :mod:`~course_utils.core.transforms`
  its regularisers (transforms, total variation, decay, blur); :mod:`~course_utils.core.param` how the
  picture is represented (pixels, Fourier).

The steps themselves live with their algorithms, in :mod:`course_utils.attacks` and
:mod:`course_utils.vis` (lesson 6's print-and-photograph simulation too, in
:mod:`course_utils.attacks.physical`). Depends on :mod:`course_utils.models` only.

The few names the lessons use directly are importable from here: ``from course_utils.core import Jitter``."""

from course_utils.core.objectives import diversity
from course_utils.core.transforms import Jitter

__all__ = ["diversity", "Jitter"]

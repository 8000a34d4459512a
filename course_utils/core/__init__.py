"""The one compiled gradient loop and its pieces, by role (as Lucent and Foolbox split them).

- :mod:`~course_utils.core.gradient_loop` the loop (:class:`~course_utils.core.gradient_loop.GradientLoop`);
  :mod:`~course_utils.core.cache` the compiled loops kept per model; :mod:`~course_utils.core.history`
  what a run returns;
- :mod:`~course_utils.core.objectives` what is minimised;
- :mod:`~course_utils.core.pieces` what the pieces share; :mod:`~course_utils.core.penalties` added to
  the loss, :mod:`~course_utils.core.steps` the step rule and after each step;
  :mod:`~course_utils.core.transforms` lesson 3's regularisers (transforms, total variation, decay, blur);
- :mod:`~course_utils.core.param` how the picture is represented (pixels, Fourier).

Depends on :mod:`course_utils.models` (layers) only.

The few names the lessons use directly are importable from here: ``from course_utils.core import Jitter``."""

from course_utils.core.objectives import diversity
from course_utils.core.photo_transforms import PrintPhoto
from course_utils.core.transforms import Jitter

__all__ = ["diversity", "PrintPhoto", "Jitter"]

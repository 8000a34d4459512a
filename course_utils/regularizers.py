"""Every piece of the gradient loop under one roof, by the names the lessons first used.

The pieces live with their role (see :mod:`course_utils.pieces`):

- :mod:`course_utils.transforms` before the model: :class:`Jitter`, :class:`RandomScale`,
  :class:`RandomRotate`;
- :mod:`course_utils.penalties` added to the loss: :class:`TotalVariation`, :class:`L2Penalty`;
- :mod:`course_utils.steps` after each step: :class:`PixelRange`, :class:`LinfBall`,
  :class:`L2Ball`, :class:`L2Decay`, :class:`Blur`.

All are :class:`Regularizer` objects, passed to the loop in a tuple and applied in order.
Settings are checked when a piece is made, and :meth:`Regularizer.check_input` refuses an image
the piece cannot work on (a blur wider than the picture) before the loop is traced.
"""

from __future__ import annotations

from course_utils.penalties import L2Penalty, TotalVariation
from course_utils.pieces import GRAY, AfterStep, Penalty, Regularizer, Transform
from course_utils.steps import Blur, L2Ball, L2Decay, LinfBall, PixelRange
from course_utils.transforms import Jitter, RandomRotate, RandomScale

__all__ = [
    "GRAY",
    "Regularizer",
    "Transform",
    "Penalty",
    "AfterStep",
    "PixelRange",
    "LinfBall",
    "L2Ball",
    "L2Penalty",
    "Jitter",
    "RandomScale",
    "RandomRotate",
    "TotalVariation",
    "L2Decay",
    "Blur",
    "default_regularizers",
]


def default_regularizers() -> tuple[Regularizer, ...]:
    """The set lesson 3 compares with the plain loop: jitter, total variation, L2 decay and blur."""
    return (Jitter(8), TotalVariation(0.5), L2Decay(0.02), Blur(1.0, every=4))

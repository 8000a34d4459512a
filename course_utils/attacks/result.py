"""What a gradient attack returns: :class:`AttackResult` (in the spirit of Foolbox: success per
example, the change and its size, and the probabilities step by step).

Units: images are float32 pixels 0..255; ``delta``, ``linf``, ``l2`` and ``epsilon`` in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from course_utils.models.labels import ClassNames, Target

__all__ = ["AttackResult"]


@dataclass
class AttackResult:
    """The outcome of an attack on a batch of ``N`` images.

    Attributes:
        method: which attack made it.
        original, adversarial, delta: ``(N, H, W, C)`` float32 pixels; ``delta = adversarial - original``.
        target: ``(N,)`` the class each image was pushed towards (targeted) or away from (untargeted).
        targeted: whether ``target`` is a goal or a class to leave.
        original_class, adversarial_class: ``(N,)`` the model's top-1 before and after.
        success: ``(N,)`` bool: top-1 is ``target`` (targeted) or is no longer ``target`` (untargeted).
        steps_to_success: ``(N,)`` the first step at which the criterion held (0 = before any step),
            -1 if it never did.
        linf, l2: ``(N,)`` size of ``delta`` in pixels: largest change, Euclidean length.
        epsilon: the L-inf budget in pixels, or ``None`` when there is none.
        probabilities: ``(steps + 1, N, num_classes)`` softmax at the start of every step and at the end.
        losses: ``(steps + 1, N)`` the loss the attack minimised.
        history: a tidy DataFrame, one row per (step, image, tracked class): ``step``, ``image``,
            ``loss``, ``class_index``, ``label``, ``probability``. Tracked classes: the target, the
            original top-1 and any asked for.
        seconds, compile_seconds: wall time of the loop, and of tracing it.
        traces: how many graphs the call traced (0 when it reused a compiled loop).
        classes: the model's classes (:class:`~course_utils.models.labels.ClassNames`), which name
            them in the tables and resolve the names the methods take.
    """

    method: str
    original: np.ndarray
    adversarial: np.ndarray
    target: np.ndarray
    targeted: bool
    original_class: np.ndarray
    adversarial_class: np.ndarray
    success: np.ndarray
    steps_to_success: np.ndarray
    linf: np.ndarray
    l2: np.ndarray
    epsilon: float | None
    probabilities: np.ndarray
    losses: np.ndarray
    history: pd.DataFrame = field(repr=False)
    seconds: float = 0.0
    compile_seconds: float = 0.0
    traces: int = 0
    classes: ClassNames | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.classes is None:
            self.classes = ClassNames(self.num_classes)

    @property
    def delta(self) -> np.ndarray:
        return self.adversarial - self.original

    @property
    def steps(self) -> int:
        return self.probabilities.shape[0] - 1

    @property
    def num_classes(self) -> int:
        return self.probabilities.shape[-1]

    def final_probability(self, cls: Target | None = None) -> np.ndarray:
        """``(N,)`` probability of class ``cls`` (default: each image's target) after the attack."""
        last = self.probabilities[-1]
        if cls is None:
            return last[np.arange(len(last)), self.target]
        return last[:, self.classes.index(cls, name="cls")]

    def probability_curves(self, classes: Sequence[Target], image: int = 0) -> pd.DataFrame:
        """Probability of each of ``classes`` at every step for one image: index ``step``, a column per label."""
        idx = self.classes.indices(classes, name="classes")
        data = {self.classes.label(i): self.probabilities[:, image, i] for i in idx}
        return pd.DataFrame(data, index=pd.RangeIndex(self.steps + 1, name="step"))

    def summary(self) -> pd.DataFrame:
        """One row per image: classes before/after, target probability, success and norms (pixels)."""
        label = self.classes.label
        return pd.DataFrame(
            {
                "original": [label(int(c)) for c in self.original_class],
                "target": [label(int(c)) for c in self.target],
                "adversarial": [label(int(c)) for c in self.adversarial_class],
                "p_target": self.final_probability(),
                "success": self.success,
                "steps_to_success": self.steps_to_success,
                "linf": self.linf,
                "l2": self.l2,
            }
        )

    def __repr__(self) -> str:
        rate = float(np.mean(self.success)) if len(self.success) else 0.0
        eps = "" if self.epsilon is None else f", epsilon={self.epsilon:g}"
        return (
            f"AttackResult({self.method}, {len(self.success)} image(s), steps={self.steps}{eps}, "
            f"success={rate:.0%}, max linf={self.linf.max():.3g}, max l2={self.l2.max():.4g})"
        )

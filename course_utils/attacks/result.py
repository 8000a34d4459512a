"""What an attack returns: :class:`AttackResult` (in the spirit of Foolbox: success per example,
the change and its size, and, when the attack kept them, the probabilities step by step or, for a
query attack, the queries it used).

Units: images are float32 pixels 0..255; ``delta``, ``linf``, ``l2`` and ``epsilon`` in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from course_utils.checks import check_int
from course_utils.core.loop import LoopResult, history_frame
from course_utils.models.labels import ClassNames, Target

__all__ = ["AttackResult"]


@dataclass
class AttackResult:
    """The outcome of an attack on a batch of ``N`` images.

    Attributes:
        method: which attack made it.
        original, adversarial: ``(N, H, W, C)`` float32 pixels.
        labels: ``(N,)`` the class each image was pushed towards (``targeted``) or away from.
        targeted: whether ``labels`` are goals or classes to leave.
        predicted: ``(N,)`` the model's top-1 on ``adversarial``.
        epsilon: ``(N,)`` the budget of each image in pixels, or ``None`` when there is none.
        norm: the budget's norm, ``"linf"`` or ``"l2"`` (``None`` without a budget).
        original_class: ``(N,)`` the model's top-1 on ``original``.
        probabilities: ``(steps + 1, N, classes)`` softmax at the start of every step and at the
            end, when the attack kept its history (``None`` otherwise); ``losses`` ``(steps + 1, N)``
            likewise, the loss the attack minimised.
        steps_to_success: ``(N,)`` the first step at which the criterion held (0 = before any
            step), -1 if it never did; ``None`` without a history.
        history: a gradient attack's: a tidy DataFrame, one row per (step, image, tracked class):
            ``step``, ``image``, ``loss``, ``class_index``, ``label``, ``probability`` (the target,
            the original top-1 and any class asked for). A query attack's: ``{name: (T + 1, N)}``
            per iteration (row 0: after the start): ``"queries"`` always, then ``"loss"`` and
            ``"probability"`` (Square Attack: margin loss, probability of the label) or ``"l2"``
            (HopSkipJump: distance in pixels); an example that stopped keeps its last value.
            ``None`` without a history.
        seconds, compile_seconds: wall time of the loop, and of tracing it.
        traces: how many graphs the call traced (0 when it reused a compiled loop).
        classes: the model's classes (:class:`~course_utils.models.labels.ClassNames`).
        queries, budget: a query attack's: ``(N,)`` queries each example used (the clean query
            included, never above ``budget``), and the budget per example; ``None`` otherwise.
        fooled: ``(N,)`` the attack's own verdict, when it judged success itself (a query attack:
            fooled as the last query answered, and within the budget); ``None``: from ``predicted``.
    """

    method: str
    original: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    targeted: bool
    predicted: np.ndarray
    epsilon: np.ndarray | None
    norm: str | None = "linf"
    original_class: np.ndarray | None = None
    probabilities: np.ndarray | None = field(default=None, repr=False)
    losses: np.ndarray | None = field(default=None, repr=False)
    steps_to_success: np.ndarray | None = None
    history: pd.DataFrame | dict[str, np.ndarray] | None = field(default=None, repr=False)
    seconds: float = 0.0
    compile_seconds: float = 0.0
    traces: int = 0
    classes: ClassNames | None = field(default=None, repr=False)
    queries: np.ndarray | None = None
    budget: int | None = None
    fooled: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_run(cls, method: str, x0: np.ndarray, run: LoopResult, labels: np.ndarray, targeted: bool,
                 epsilon: np.ndarray | None, norm: str | None, classes: ClassNames, track: Sequence[int] = ()) -> "AttackResult":
        """The result of one :meth:`~course_utils.core.loop.Loop.run` whose tracked values are
        the softmax ``(steps + 1, N, classes)``."""
        probs = run.tracked
        top1 = probs.argmax(-1)  # (steps + 1, N)
        hit = top1 == labels[None] if targeted else top1 != labels[None]
        items = [(i, c) for i in range(len(x0)) for c in dict.fromkeys([int(labels[i]), int(top1[0, i]), *track])]
        image, chosen = (np.asarray(v, dtype=np.int64) for v in zip(*items))
        history = history_frame(
            len(probs), image=image, loss=run.losses[:, image], class_index=chosen,
            label=np.asarray([classes.label(c) for c in chosen], dtype=object), probability=probs[:, image, chosen],
        )
        return cls(method=method, original=x0, adversarial=run.x, labels=labels, targeted=targeted, predicted=top1[-1],
                   epsilon=epsilon, norm=norm, original_class=top1[0], probabilities=probs, losses=run.losses,
                   steps_to_success=np.where(hit.any(0), hit.argmax(0), -1), history=history, seconds=run.seconds,
                   compile_seconds=run.compile_seconds, traces=run.traces, classes=classes)

    def __post_init__(self) -> None:
        if self.classes is None:
            self.classes = ClassNames(self.probabilities.shape[-1] if self.probabilities is not None
                                      else int(max(np.max(self.labels), np.max(self.predicted))) + 1)

    @property
    def delta(self) -> np.ndarray:
        """``adversarial - original``, pixels."""
        return self.adversarial - self.original

    @property
    def success(self) -> np.ndarray:
        """``(N,)`` bool: top-1 is the label (targeted) or is no longer the label (untargeted)."""
        if self.fooled is not None:
            return self.fooled
        return self.predicted == self.labels if self.targeted else self.predicted != self.labels

    @property
    def linf(self) -> np.ndarray:
        """``(N,)`` the largest change of any pixel, pixels."""
        return np.abs(self.delta.reshape(len(self.delta), -1)).max(1)

    @property
    def l2(self) -> np.ndarray:
        """``(N,)`` the Euclidean length of the change, pixels."""
        d = self.delta.reshape(len(self.delta), -1).astype(np.float64)
        return np.sqrt((d ** 2).sum(1)).astype(np.float32)

    @property
    def steps(self) -> int | None:
        """Steps of a gradient attack that kept its probabilities, else ``None``."""
        return None if self.probabilities is None else self.probabilities.shape[0] - 1

    def final_probability(self, cls: Target | None = None) -> np.ndarray:
        """``(N,)`` probability of class ``cls`` (default: each image's label) after the attack."""
        if self.probabilities is None:
            raise ValueError(f"{self.method} kept no probabilities; run it with history=True")
        last = self.probabilities[-1]
        if cls is None:
            return last[np.arange(len(last)), self.labels]
        return last[:, self.classes.index(cls, name="cls")]

    def probability_curves(self, classes: Sequence[Target], image: int = 0) -> pd.DataFrame:
        """Probability of each of ``classes`` at every step for one image: index ``step``, a column per label."""
        if self.probabilities is None:
            raise ValueError(f"{self.method} kept no probabilities; run it with history=True")
        idx = self.classes.indices(classes, name="classes")
        data = {self.classes.label(i): self.probabilities[:, image, i] for i in idx}
        return pd.DataFrame(data, index=pd.RangeIndex(self.steps + 1, name="step"))

    def success_rate(self, queries: int | None = None) -> float:
        """A query attack's: fraction of examples fooled within ``queries`` queries each (default: the budget)."""
        if self.queries is None:
            raise ValueError(f"{self.method} is not a query attack: it counted no queries")
        q = self.budget if queries is None else check_int("queries", queries, minimum=0)
        return float(np.mean(self.success & (self.queries <= q)))

    def success_curve(self, points: int = 50) -> pd.DataFrame:
        """A query attack's success rate against queries: ``points`` rows ``queries``, ``success_rate`` (0..1)."""
        q = np.unique(np.linspace(1, self.budget or 1, check_int("points", points, minimum=2)).round().astype(int))
        return pd.DataFrame({"queries": q, "success_rate": [self.success_rate(int(v)) for v in q]})

    def summary(self) -> pd.DataFrame:
        """One row per image: classes before/after, success and norms (pixels), and the label's
        final probability and the first step of success when the attack kept them. A query
        attack's: class indices, success, queries used and the norms."""
        if self.queries is not None:
            return pd.DataFrame({"label": self.labels, "predicted": self.predicted, "success": self.success,
                                 "queries": self.queries, "linf": self.linf, "l2": self.l2})
        label = self.classes.label
        table = {"label": [label(int(c)) for c in self.labels], "adversarial": [label(int(c)) for c in self.predicted]}
        if self.original_class is not None:
            table = {"original": [label(int(c)) for c in self.original_class], **table}
        if self.probabilities is not None:
            table["p_label"] = self.final_probability()
        table["success"] = self.success
        if self.steps_to_success is not None:
            table["steps_to_success"] = self.steps_to_success
        return pd.DataFrame({**table, "linf": self.linf, "l2": self.l2})

    def __repr__(self) -> str:
        rate = float(np.mean(self.success)) if len(self.success) else 0.0
        budgets = [] if self.epsilon is None else np.unique(np.asarray(self.epsilon, np.float64)).tolist()
        eps = "" if not budgets else f", epsilon={budgets[0]:g}" if len(budgets) == 1 else f", epsilon={budgets}"
        steps = "" if self.steps is None else f", steps={self.steps}"
        if self.queries is not None:
            med = float(np.median(self.queries[self.success])) if self.success.any() else float("nan")
            steps = f", median queries of successes={med:g}, budget={self.budget}"
        return (f"AttackResult({self.method}, {len(self.success)} image(s){steps}{eps}, "
                f"{'targeted' if self.targeted else 'untargeted'}, success={rate:.0%}, "
                f"max linf={self.linf.max():.3g}, max l2={self.l2.max():.4g})")

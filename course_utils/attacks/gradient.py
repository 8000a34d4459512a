"""Lesson 1's noise filter on its step :func:`noise_filter_step` (gradient descent on
``cross-entropy(target) + beta * |DX|^2 / 2``, compiled and run by :mod:`course_utils.core.loop`), the
input gradient lesson 2 starts from, and :class:`AttackResult`, what every attack on photos returns.
Images are float32 pixels 0..255, ``(N, H, W, C)`` (one image ``(H, W, C)`` is accepted too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_int, check_number, check_steps
from course_utils.core import ops
from course_utils.core.loop import LoopResult, compiled, history_frame
from course_utils.io.images import ImageLoadError, as_batch
from course_utils.models.imagenet import ClassNames, Target

__all__ = ["AttackResult", "noise_filter_step", "noise_filter", "input_gradient"]


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
        classes: the model's classes (:class:`~course_utils.models.imagenet.ClassNames`).
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
            l2 = np.sqrt(np.square(self.delta, dtype=np.float64).reshape(len(self.delta), -1).sum(1))
            return pd.DataFrame({"label": self.labels, "predicted": self.predicted, "success": self.success,
                                 "queries": self.queries, "linf": self.linf, "l2": l2})
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


def noise_filter_step(model, x, x0, i, seed, data, *, clip: bool = True):
    """One step of lesson 1's noise filter: plain gradient descent on the price of ``x = x0 + DX``."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        logits = model(x, training=False)
        loss = ops.cross_entropy(logits, data["labels"])                        # towards the target
        if "beta" in data:                                                      # + beta * |DX|^2 / 2
            loss += data["beta"] * 0.5 * tf.reduce_sum(tf.square(x - x0), axis=[1, 2, 3])
    grad = tape.gradient(loss, x)
    x_next = x - ops.per_example(data["learning_rate"], x) * grad
    if clip:
        x_next = tf.clip_by_value(x_next, 0.0, 255.0)                           # valid pixels
    success = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(data["labels"], tf.int32))
    return x_next, loss, tf.nn.softmax(logits), success


def input_gradient(model: Any, images: Any, target: Target | Sequence[Target]) -> np.ndarray:
    """The gradient of ``log p(target)`` with respect to the input pixels.

    Args:
        model: a classifier giving logits, taking pixels 0..255.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        target: a class (an index or one of the model's class names), or one per image. Required:
            there is no default class.

    Returns:
        ``(N, H, W, C)`` float32: how much the log-probability changes per pixel of change. It has
        the photo's shape; a positive value means "brighter here makes ``target`` more likely".
    """
    if target is None:
        raise WrongTypeError(
            "input_gradient needs a target class (the gradient of log p(target) is taken for one class); "
            "name it, e.g. target='king penguin' or target=0"
        )
    x = tf.constant(as_batch(images, model))
    targets = np.asarray(ClassNames.of(model).indices(target, len(x), name="target"), dtype=np.int32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        chosen = tf.gather(tf.nn.log_softmax(model(x, training=False)), targets, batch_dims=1)
    return tape.gradient(chosen, x).numpy()


def noise_filter(
    model: Any,
    image: np.ndarray,
    target: Target,
    beta: float | Sequence[float] = 0.0,
    steps: int = 1000,
    learning_rate: float = 0.1,
    *,
    progress: bool | None = None,
) -> AttackResult:
    """Learn a noise image ``DX`` that, added to ``image``, makes the model answer ``target``.

    Minimises ``cross_entropy(model(image + DX), target) + beta * sum(DX**2) / 2`` by plain
    gradient descent from ``DX = 0`` (the tutorial's noise filter; the step is
    :func:`noise_filter_step`), keeping ``image + DX`` within pixels 0..255. ``beta > 0`` prices
    every grey level of change, so the filter stays fainter.

    Args:
        model: the face classifier (:func:`course_utils.models.load_gender_cnn`), taking
            ``(N, 48, 48, 1)`` pixels 0..255 and giving 2 logits (0 = man, 1 = woman).
        image: ``(48, 48)``, ``(48, 48, 1)`` or a batch ``(N, 48, 48, 1)``, pixels 0..255.
        target: ``"man"``, ``"woman"``, 0 or 1 (the same names every attack takes for this model).
        beta: weight of the L2 penalty (>= 0), per squared pixel. A list of ``B`` betas runs ``B``
            filters side by side in one batch (one image, or one per beta), e.g. for a trade-off curve.
            Gradient descent on the penalty is stable only while ``learning_rate * beta < 2``.
        steps: gradient steps (>= 1).
        learning_rate: gradient-descent rate, in pixels per unit of gradient (> 0).
        progress: show a progress bar (``None``: for 50 steps or more).
    """
    beta_list = list(beta) if isinstance(beta, (list, tuple, np.ndarray)) else [beta]
    if not beta_list:
        raise ValueError("beta is empty: give one beta, or a list of them")
    betas = np.asarray([check_number("beta", b, minimum=0.0) for b in beta_list], dtype=np.float32)
    steps = check_steps(steps)
    learning_rate = check_number("learning_rate", learning_rate, minimum=0.0, above=True)
    if learning_rate * betas.max() >= 2.0:
        raise ValueError(
            f"learning_rate * beta = {learning_rate * betas.max():g} must stay below 2: the penalty's "
            "gradient step would overshoot and DX would grow without end. Lower the learning rate or beta."
        )
    classes = ClassNames.of(model)
    t = classes.index(target)
    x0 = np.asarray(image, dtype=np.float32)
    x0 = x0[None, ..., None] if x0.ndim == 2 else (x0[None] if x0.ndim == 3 else x0)
    if x0.ndim != 4 or x0.shape[1:] != (48, 48, 1):
        raise ImageLoadError(
            f"the face model takes 48x48 grayscale images, got shape {np.shape(image)}; "
            "make one with load_image(photo, size=48, mode='gray') (or sample_face('astronaut'))"
        )
    x0 = as_batch(x0, model)
    if len(betas) > 1 and len(x0) == 1:
        x0 = np.repeat(x0, len(betas), axis=0)
    if len(betas) > 1 and len(betas) != len(x0):
        raise ValueError(f"got {len(betas)} betas for {len(x0)} images; give one beta, or one per image")
    n = len(x0)
    data = {"labels": np.full(n, t, np.int32), "learning_rate": np.full(n, learning_rate, np.float32)}
    if np.any(betas > 0):  # beta = 0 everywhere: the tutorial's plain loop, without a penalty term
        data["beta"] = np.broadcast_to(betas, n).astype(np.float32)
    run = compiled(noise_filter_step, model, clip=True).run(
        x0, data, steps=steps, progress=progress, description="noise filter")
    return AttackResult.from_run("noise_filter", x0, run, data["labels"], True, None, None, classes)

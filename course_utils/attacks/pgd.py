"""Projected gradient descent (PGD) on the course's one loop, and robust accuracy.

PGD (Madry et al., 2018) is lesson 2's iterative attack with a random start: begin at a random
point of the budget, then repeat "step along the normalised gradient of the loss, project back
into the budget, clip to valid pixels". On :class:`~course_utils.core.loop.GradientLoop` that is
only a structure, with no loop of its own:

========================  ==========================================================
objective                 :class:`~course_utils.core.objectives.CrossEntropy` (``samples`` > 1: EOT),
                          or ``loss="margin"``: :class:`~course_utils.core.objectives.LogitMargin`
step rule                 ``"sign"`` (L-inf) or ``"l2"``
after each step           :class:`~course_utils.core.steps.LinfBall` or ``L2Ball``, then ``PixelRange``
random start              the ball's :meth:`~course_utils.core.steps.LinfBall.random_start`
stop at success           the loop's ``stop_at_success``
========================  ==========================================================

- :func:`pgd_perturb` takes tensors and returns a tensor (the adversarial batch), through the
  loop's graph-level :meth:`~course_utils.core.loop.GradientLoop.perturb`: it can be called
  eagerly, inside any ``tf.function`` and inside a Keras ``train_step`` (adversarial training,
  :mod:`course_utils.attacks.defences`).
- :func:`pgd_attack` and :func:`robust_accuracy` are the NumPy-facing helpers for notebooks.
  The loop is compiled once per model and structure (:func:`pgd_loop`); the budget, step size,
  number of steps and seed are arguments of the compiled graph, so a new epsilon never traces
  it again.

Units: pixels 0..255 everywhere; ``epsilon=4.0`` allows every pixel to move by four grey levels
(``norm="linf"``), or the whole change to have an L2 length of 4 grey levels (``norm="l2"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import check_int
from course_utils.core.cache import loop_for
from course_utils.core.history import progress_bar
from course_utils.core.loop import GradientLoop
from course_utils.core.objectives import CrossEntropy, LogitMargin, weak
from course_utils.core.steps import L2Ball, LinfBall, PixelRange
from course_utils.seeds import seed_offset

__all__ = [
    "Norm",
    "NORMS",
    "check_norm",
    "LOSSES",
    "pgd_loop",
    "pgd_perturb",
    "default_step_size",
    "resolve_labels",
    "PGDResult",
    "pgd_attack",
    "robust_accuracy",
]

Label = int | str | np.integer
Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = ("linf", "l2")
#: The attack losses: cross-entropy, or Carlini & Wagner's logit margin (kappa 0).
LOSSES: tuple[str, ...] = ("ce", "margin")


def check_norm(norm: Any) -> str:
    """``norm`` if it is ``"linf"`` or ``"l2"``, else a ``ValueError`` that names the choices."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose 'linf' (largest change of any pixel) or 'l2' (Euclidean length)")
    return norm


def default_step_size(epsilon: Any, steps: Any) -> Any:
    """The MadryLab robustness library's step size (Engstrom et al., 2019), ``2.5 * epsilon / steps``:
    enough to cross the budget and come back."""
    return 2.5 * epsilon / steps


def _ball(norm: str) -> LinfBall | L2Ball:
    return LinfBall() if check_norm(norm) == "linf" else L2Ball()


def pgd_loop(model: Any, *, norm: Norm = "linf", targeted: bool = False, samples: int = 1,
             stop_at_success: bool = False, loss: str = "ce") -> GradientLoop:
    """The model's cached PGD loop for this structure (built the first time it is asked for).

    Labels, epsilon, step size, steps and seed are per-call values of the loop, so one loop serves
    every budget. ``loop.traces`` counts how often its graphs were traced. ``loss``: ``"ce"``
    (cross-entropy) or ``"margin"`` (:class:`~course_utils.core.objectives.LogitMargin`, which
    needs ``samples=1``).
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose 'ce' (cross-entropy) or 'margin' (Carlini & Wagner's logit margin)")
    if loss == "margin" and samples != 1:
        raise ValueError(f"loss='margin' takes one sample (samples=1), got samples={samples!r}; use loss='ce' for EOT")
    objective = LogitMargin(weak(model), targeted=targeted) if loss == "margin" else None
    return loop_for(
        model, objective or CrossEntropy(weak(model), targeted=targeted, samples=samples),
        step_rule="sign" if check_norm(norm) == "linf" else "l2",
        regularizers=(_ball(norm), PixelRange()), stop_at_success=stop_at_success,
    )


def pgd_perturb(
    model: Any,
    x: tf.Tensor,
    labels: tf.Tensor,
    epsilon: tf.Tensor | float,
    *,
    steps: int | tf.Tensor,
    step_size: tf.Tensor | float | None = None,
    norm: Norm = "linf",
    random_start: bool = True,
    seed: int | tf.Tensor = 0,
    targeted: bool = False,
    samples: int = 1,
    stop_at_success: bool = False,
    loss: str = "ce",
) -> tf.Tensor:
    """The PGD adversarial batch for ``x``: tensors in, a tensor out, no host sync.

    Untargeted (default), it climbs the cross-entropy of the true ``labels`` (away from them);
    targeted, it descends the cross-entropy to ``labels`` (towards them). Each step moves by
    ``step_size`` along the sign of the gradient (``"linf"``) or the gradient over its length
    (``"l2"``), then projects into the budget around ``x`` and clips to pixels 0..255.

    Args:
        model: a callable ``pixels (N, H, W, C) -> logits (N, K)`` (a Keras model, a defended
            model, an ensemble); called with ``training=False``.
        x: float32 pixels 0..255, ``(N, H, W, C)``.
        labels: int ``(N,)`` class indices: the truth (untargeted) or the targets.
        epsilon: the budget in pixels, a scalar or one per example ``(N,)``.
        steps: number of steps, a Python int or an int32 scalar tensor (0 gives the start).
        step_size: pixels per step (scalar or ``(N,)``); ``None``: ``2.5 * epsilon / steps``.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start at a uniformly random point of the budget (seeded), else at ``x``.
        seed: an int or an int32 tensor of shape ``()`` or ``(2,)``; the same seed, the same start.
            Inside a training step pass something that changes per batch (e.g. the step count).
        targeted: towards ``labels`` instead of away from them.
        samples: expectation over transformation: average the loss over this many calls of
            ``model`` on copies of the batch (useful only when ``model`` is random). With
            ``stop_at_success`` an example counts as fooled only when every one of these calls is.
        stop_at_success: leave each example where it is from the first step at which the model
            is fooled (the smallest change that works, as a careful attacker would send), and
            stop the loop when all are. Without it every example takes all ``steps``.
        loss: ``"ce"`` (cross-entropy, the default) or ``"margin"``: Carlini & Wagner's margin
            on the logits, which still has a gradient where the softmax saturates.

    Returns:
        float32 tensor like ``x``: the adversarial batch, within the budget and 0..255. No
        gradient flows back through it (it is an input, not a function of the weights).

    A gradient that does not exist (a non-differentiable step in ``model``, such as rounding or
    JPEG) counts as zero, as TensorFlow defines it: the attack then only makes its random start.
    That is gradient masking, and :mod:`course_utils.attacks.defences` shows how an attacker gets
    around it.
    """
    loop = pgd_loop(model, norm=norm, targeted=targeted, samples=samples, stop_at_success=stop_at_success, loss=loss)
    x = tf.convert_to_tensor(x, tf.float32)
    eps = tf.broadcast_to(tf.cast(epsilon, tf.float32), tf.shape(x)[:1])
    steps_t = tf.cast(steps, tf.int32)
    if step_size is None:
        step_size = default_step_size(eps, tf.cast(tf.maximum(steps_t, 1), tf.float32))
    pair = tf.concat([tf.reshape(tf.cast(seed, tf.int32), [-1]), tf.zeros([1], tf.int32)], axis=0)[:2]
    start = None
    if random_start:  # COURSE_SEED moves it like every seed of the course (course_utils.seeds)
        start = tf.clip_by_value(_ball(norm).random_start(x, eps, pair + tf.constant([seed_offset(), 0])), 0.0, 255.0)
    return loop.perturb(x, {"labels": labels, "epsilon": eps}, steps=steps_t, step_size=step_size, seed=pair[0], start=start)


# --------------------------------------------------------------------------- labels


def resolve_labels(model: Any, labels: Label | Sequence[Label] | np.ndarray, n: int) -> np.ndarray:
    """Class indices ``(n,)`` for ``model`` from one label or one per image.

    A label is an index, or one of the model's own class names (``model.class_names``, set by the
    course's loaders: ``"man"``/``"woman"`` for the face models, ImageNet labels for the ImageNet
    models); the course's one class resolution, :func:`course_utils.models.labels.resolve_classes`.
    """
    from course_utils.models.labels import resolve_classes

    if isinstance(labels, np.ndarray):
        labels = [x.item() if isinstance(x, np.generic) and not isinstance(x, np.str_) else x for x in labels.reshape(-1)]
    return np.asarray(resolve_classes(labels, model, n, name="labels"), dtype=np.int64)


# --------------------------------------------------------------------------- NumPy helpers


def _check_epsilons(values: Any) -> np.ndarray:
    eps = np.atleast_1d(np.asarray(values, dtype=np.float64)).reshape(-1)
    if eps.size == 0 or not np.all(np.isfinite(eps)) or np.any(eps < 0):
        raise ValueError(f"epsilon must be finite numbers >= 0 (pixels), got {values!r}")
    return eps.astype(np.float32)


def _as_images(images: Any, model: Any) -> np.ndarray:
    from course_utils.io.images import as_batch

    try:
        fixed = tuple(model.input_shape[1:])[0] is not None
    except (AttributeError, ValueError, TypeError):
        fixed = False
    return as_batch(images, model if fixed else None)


def _top1(model: Any, x: tf.Tensor) -> np.ndarray:
    """The model's top-1 class of each image, ``(N,)`` int64."""
    return np.asarray(model(x, training=False)).argmax(-1).astype(np.int64)


@dataclass(frozen=True)
class PGDResult:
    """What :func:`pgd_attack` returns (NumPy arrays, pixels 0..255).

    Attributes:
        original, adversarial: ``(N, H, W, C)`` float32.
        labels: ``(N,)`` the classes attacked (the truth, or the targets when ``targeted``).
        predicted: ``(N,)`` the model's top-1 on ``adversarial``.
        epsilon: ``(N,)`` the budget of each example, pixels.
        norm, targeted: the threat model.
    """

    original: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    epsilon: np.ndarray
    norm: str
    targeted: bool

    @property
    def delta(self) -> np.ndarray:
        return self.adversarial - self.original

    @property
    def success(self) -> np.ndarray:
        """``(N,)`` bool: top-1 is the target (targeted) or is no longer the label (untargeted)."""
        return self.predicted == self.labels if self.targeted else self.predicted != self.labels

    def __repr__(self) -> str:
        return (f"PGDResult({len(self.labels)} image(s), norm={self.norm}, epsilon={np.unique(self.epsilon).tolist()}, "
                f"{'targeted' if self.targeted else 'untargeted'}, success={np.mean(self.success):.0%})")


def pgd_attack(
    model: Any,
    images: Any,
    labels: Label | Sequence[Label] | np.ndarray | None,
    epsilon: float | Sequence[float],
    *,
    steps: int = 20,
    step_size: float | None = None,
    norm: Norm = "linf",
    random_start: bool = True,
    seed: int = 0,
    targeted: bool = False,
    samples: int = 1,
    stop_at_success: bool = False,
    batch_size: int = 64,
    loss: str = "ce",
) -> PGDResult:
    """PGD on a batch of photos (NumPy in, NumPy out), compiled once per model and structure.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: the true class of each image (untargeted), or the target (``targeted=True``);
            one or one per image, indices or names. ``None``: the model's own answer on the photo.
        epsilon: the budget in pixels, one or one per image.
        steps: number of steps (>= 0).
        step_size: pixels per step; default ``2.5 * epsilon / steps``.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start at a random point of the budget (seeded by ``seed``).
        seed: the same seed (and batch size) gives the same result.
        targeted: push towards ``labels`` instead of away from them.
        samples: expectation over transformation (see :func:`pgd_perturb`).
        stop_at_success: keep each image's first change that fools the model (see :func:`pgd_perturb`).
        batch_size: images per compiled call.
        loss: ``"ce"`` or ``"margin"`` (see :func:`pgd_perturb`).
    """
    steps = check_int("steps", steps, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    pgd_loop(model, norm=norm, targeted=targeted, samples=samples, stop_at_success=stop_at_success, loss=loss)  # checks
    x = _as_images(images, model)
    n = len(x)
    if labels is None:
        if targeted:
            raise ValueError("a targeted attack needs its targets: pass labels")
        y = np.concatenate([np.asarray(model(x[i : i + batch_size], training=False)).argmax(-1) for i in range(0, n, batch_size)])
    else:
        y = resolve_labels(model, labels, n)
    eps = _check_epsilons(epsilon)
    if eps.size not in (1, n):
        raise ValueError(f"got {eps.size} epsilons for {n} images; give one, or one per image")
    eps = np.broadcast_to(eps, (n,)).astype(np.float32)
    rate = default_step_size(eps, max(steps, 1)) if step_size is None else np.full(n, _check_epsilons(step_size)[0])
    adversarial, predicted = [], []
    for b, i in enumerate(range(0, n, batch_size)):
        sl = slice(i, i + batch_size)
        a = pgd_perturb(model, x[sl], y[sl], eps[sl], steps=steps, step_size=rate[sl].astype(np.float32), norm=norm,
                        random_start=random_start, seed=(seed, b), targeted=targeted, samples=samples,
                        stop_at_success=stop_at_success, loss=loss)
        adversarial.append(a.numpy())
        predicted.append(_top1(model, a))
    return PGDResult(x, np.concatenate(adversarial), y, np.concatenate(predicted), eps, norm, targeted)


def robust_accuracy(
    model: Any,
    images: Any,
    labels: Label | Sequence[Label] | np.ndarray,
    epsilons: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0),
    *,
    steps: int = 20,
    step_size: float | None = None,
    norm: Norm = "linf",
    random_start: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
    loss: str = "ce",
) -> pd.DataFrame:
    """Accuracy under an untargeted PGD attack, for each budget in ``epsilons``.

    One compiled function serves every epsilon (the budget is a tensor argument), so a sweep
    costs one tracing however many budgets it has.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(N, H, W, C)`` pixels 0..255.
        labels: the true classes: indices or names (``"man"``/``"woman"``, ImageNet names), one
            per image or one for all.
        epsilons: budgets in pixels (grey levels). ``0`` gives the clean accuracy.
        steps: PGD steps per budget (the course's default: PGD-20).
        step_size: pixels per step; default ``2.5 * epsilon / steps`` for each budget.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start each attack at a random point of the budget (seeded).
        seed: the same seed (and batch size) gives the same numbers.
        batch_size: images per compiled call.
        progress: show a text progress bar (one tick per budget and batch).
        loss: ``"ce"`` (cross-entropy) or ``"margin"`` (Carlini & Wagner's logit margin).

    Returns:
        A DataFrame with one row per epsilon: ``epsilon``, ``accuracy`` (0..1: the share of
        images still classified as their label after the attack) and ``n`` (images).
    """
    steps = check_int("steps", steps, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    eps_list = _check_epsilons(epsilons)
    x = _as_images(images, model)
    n = len(x)
    if n == 0:
        raise ValueError("robust_accuracy needs at least one image")
    y = resolve_labels(model, labels, n)
    pgd_loop(model, norm=norm, loss=loss)  # checks norm and loss
    batches = list(range(0, n, batch_size))
    bar = progress_bar(len(eps_list) * len(batches), f"PGD-{steps} on {getattr(model, 'name', 'model')}") if progress else None
    rows = []
    try:
        for e in eps_list:
            rate = default_step_size(float(e), max(steps, 1)) if step_size is None else float(_check_epsilons(step_size)[0])
            correct = 0
            for b, i in enumerate(batches):
                sl = slice(i, i + batch_size)
                m = len(x[sl])
                # A zero budget leaves every image where it is: no steps needed (same graph, steps=0).
                adversarial = pgd_perturb(model, x[sl], y[sl], np.full(m, e, np.float32), steps=steps if e > 0 else 0,
                                          step_size=np.full(m, rate, np.float32), norm=norm, random_start=random_start,
                                          seed=(seed, b), loss=loss)
                predicted = _top1(model, adversarial)
                correct += int(np.sum(predicted == y[sl]))
                if bar is not None:
                    bar.update(1)
            rows.append({"epsilon": float(e), "accuracy": correct / n, "n": n})
    finally:
        if bar is not None:
            bar.close()
    return pd.DataFrame(rows)

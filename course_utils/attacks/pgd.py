"""The signed-gradient attacks of lessons 2 and 4 on one step, :func:`pgd_step` (the loop lesson 2
writes by hand, compiled and run by :mod:`course_utils.core.loop`): FGSM (Goodfellow et al., 2015),
lesson 2's iterative attack (Kurakin et al., 2017), PGD (Madry et al., 2018) and robust accuracy.

:func:`pgd_perturb` is tensors in, a tensor out (inside a Keras ``train_step``); the others take
NumPy, run the steps in chunks (Kernel -> Interrupt stops them) and return an
:class:`~course_utils.attacks.gradient.AttackResult`. Pixels 0..255; budgets in grey levels
(``norm="linf"``: per pixel; ``"l2"``: the length of the whole change).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.attacks.gradient import AttackResult
from course_utils.checks import (
    check_flag, check_gradient_memory, check_int, check_number, check_seed, check_steps, effective_seed,
)
from course_utils.core import ops
from course_utils.core.loop import compiled, progress_bar
from course_utils.core.ops import NORMS, Norm
from course_utils.io.images import as_batch
from course_utils.models.imagenet import ClassNames, Target

__all__ = ["pgd_step", "pgd_perturb", "pgd_attack", "iterative_attack", "fgsm", "robust_accuracy", "default_step_size"]


def pgd_step(model, x, x0, i, seed, data, *, norm: str = "linf", targeted: bool = False, loss: str = "ce",
             samples: int = 1):
    """One step of PGD (and of lesson 2's iterative attack): the notebook's loop, compiled."""
    labels = tf.cast(data["labels"], tf.int32)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        logits = model(x if samples == 1 else tf.concat([x] * samples, 0), training=False)
        logits = tf.reshape(logits, [samples, tf.shape(x)[0], -1])              # EOT: samples calls of a random model
        if loss == "margin":                                                    # C&W: how far the label's logit leads
            gap = -ops.logit_margin(logits[0], labels) if targeted else ops.logit_margin(logits[0], labels)
            objective, success = tf.maximum(gap, 0.0), gap < 0
        else:
            ce = ops.cross_entropy(logits, labels)
            objective = ce if targeted else -ce                                 # minimised: towards / away from labels
            top1 = tf.argmax(logits, -1, output_type=tf.int32)
            success = tf.reduce_all(tf.equal(top1, labels) if targeted else tf.not_equal(top1, labels), axis=0)
    # No path to x (rounding or JPEG inside the model) gives a zero gradient: gradient masking (lesson 4).
    grad = tape.gradient(objective, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    x_next = x - ops.per_example(data["step_size"], x) * ops.direction(grad, norm)   # downhill: sign or unit step
    x_next = tf.clip_by_value(ops.project(x_next, x0, data["epsilon"], norm), 0.0, 255.0)  # budget, valid pixels
    return x_next, objective, tf.reduce_mean(tf.nn.softmax(logits), axis=0), success


def _check_norm(norm: Any) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose 'linf' (largest change of any pixel) or 'l2' (Euclidean length)")
    return norm


def _check_loss(loss: Any, samples: int) -> str:
    if loss not in ("ce", "margin"):
        raise ValueError(f"unknown loss {loss!r}; choose 'ce' (cross-entropy) or 'margin' (Carlini & Wagner's logit margin)")
    if loss == "margin" and samples != 1:
        raise ValueError(f"loss='margin' takes one sample (samples=1), got samples={samples!r}; use loss='ce' for EOT")
    return loss


def default_step_size(epsilon: Any, steps: Any) -> Any:
    """The MadryLab robustness library's step size (Engstrom et al., 2019), ``2.5 * epsilon / steps``:
    over all steps the pixels could travel 2.5 times the budget, enough to cross it and come back."""
    return 2.5 * epsilon / steps


def _epsilons(values: Any, name: str = "epsilon") -> np.ndarray:
    """One budget or a list of them, each a finite number >= 0 (pixels), as float32 ``(k,)``."""
    return np.asarray([check_number(name, v, minimum=0.0) for v in np.ravel(np.asarray(values, dtype=object))],
                      dtype=np.float32)


def _labels(model: Any, labels: Any, x: np.ndarray, name: str = "labels") -> np.ndarray:
    """Class indices ``(N,)``: one class or one per image (indices or the model's class names)."""
    return np.asarray(ClassNames.of(model).indices(labels, len(x), name=name), dtype=np.int32)


def _top1(model: Any, x: Any, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False)).argmax(-1)
                           for i in range(0, len(x), batch_size)]).astype(np.int32)


def _check_pgd(model, images, steps, step_size, norm, loss, samples, random_start, seed, batch_size, progress):
    """The checks :func:`pgd_attack` and :func:`robust_accuracy` share, before any work: the batch and the values."""
    steps = check_int("steps", steps, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    _check_norm(norm), _check_loss(loss, samples)
    samples = check_int("samples", samples, minimum=1)
    random_start, progress = check_flag("random_start", random_start), check_flag("progress", progress)
    seed = check_seed(seed)
    rate = None if step_size is None else check_number("step_size", step_size, minimum=0.0, above=True)
    check_gradient_memory(model, images, batch_size=batch_size, copies=samples)
    return as_batch(images, model), steps, rate, random_start, seed, batch_size, progress


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
    stop_at_success: bool = False,
) -> tf.Tensor:
    """The untargeted PGD batch for ``x``: tensors in, a tensor out, no host sync (usable inside
    a ``tf.function`` or a Keras ``train_step``: adversarial training runs it there).

    Each :func:`pgd_step` climbs the cross-entropy of the true ``labels`` by ``step_size`` along the
    sign of the gradient (``"linf"``) or the gradient over its length (``"l2"``), then projects
    into the budget around ``x`` and clips to pixels 0..255.

    Args:
        model: a callable ``pixels (N, H, W, C) -> logits (N, K)`` (a Keras model, a defended
            model, an ensemble); called with ``training=False``.
        x: float32 pixels 0..255, ``(N, H, W, C)``.
        labels: int ``(N,)`` the true class indices.
        epsilon: the budget in pixels, a scalar or one per example ``(N,)``.
        steps: number of steps, a Python int or an int32 scalar tensor (0 gives the start).
        step_size: pixels per step (scalar or ``(N,)``); ``None``: :func:`default_step_size`.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start at a uniformly random point of the budget (seeded), else at ``x``.
        seed: an int or an int32 tensor ``()`` or ``(2,)``; the same seed, the same start. Inside a
            training step pass something that changes per batch (e.g. the step count).
        stop_at_success: leave each example where it is from the first step at which the model
            is fooled, and stop when all are.

    Returns:
        float32 tensor like ``x``: the adversarial batch, within the budget and 0..255. No
        gradient flows back through it (it is an input, not a function of the weights).
    """
    norm = _check_norm(norm)
    if step_size is None:
        step_size = default_step_size(tf.cast(epsilon, tf.float32), tf.cast(tf.maximum(tf.cast(steps, tf.int32), 1), tf.float32))
    x, data, seed, start = _pgd_inputs(x, labels, epsilon, step_size, norm, random_start, seed)
    loop = compiled(pgd_step, model, stop_at_success=stop_at_success, norm=norm, targeted=False, loss="ce", samples=1)
    return loop.perturb(x, data, steps=tf.cast(steps, tf.int32), seed=seed, start=start)


def _pgd_inputs(x, labels, epsilon, step_size, norm, random_start, seed):
    """PGD's per-call tensors and its start (drawn from ``seed``, an int or ``(seed, batch)``): what
    :func:`pgd_perturb` runs in one graph call and :func:`pgd_attack`, :func:`robust_accuracy` in chunks."""
    x = tf.convert_to_tensor(x, tf.float32)
    eps = tf.broadcast_to(tf.cast(epsilon, tf.float32), tf.shape(x)[:1])
    pair = tf.concat([tf.reshape(tf.cast(seed, tf.int32), [-1]), tf.zeros([1], tf.int32)], axis=0)[:2]
    # COURSE_SEED moves the start like every seed of the course (course_utils.checks)
    start = ops.random_start(x, eps, norm, pair + tf.constant([effective_seed(0), 0])) if random_start else None
    data = {"labels": tf.cast(labels, tf.int32), "epsilon": eps, "step_size": tf.cast(step_size, tf.float32)}
    return x, data, pair[0], start


def _advance(loop, x, y, eps, rate, norm, random_start, seed, batch_size, steps, bar) -> np.ndarray:
    """The chunked run of :func:`pgd_attack` and :func:`robust_accuracy`: ``x`` in batches of
    ``batch_size``, batch ``b`` started from ``(seed, b)``, one tick of ``bar`` each."""
    out = []
    for b, i in enumerate(range(0, len(x), batch_size)):
        sl = slice(i, i + batch_size)
        xb, data, s, start = _pgd_inputs(x[sl], y[sl], eps[sl], rate[sl], norm, random_start, (seed, b))
        out.append(loop.advance(xb, data, steps=steps, seed=s, start=start))
        bar.update(1)
    return np.concatenate(out)


def pgd_attack(
    model: Any,
    images: Any,
    labels: Target | Sequence[Target] | np.ndarray | None,
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
    progress: bool = False,
) -> AttackResult:
    """PGD on a batch of photos (NumPy in, an :class:`AttackResult` out), compiled once per model
    and settings: :func:`pgd_perturb`'s result, on batches of ``batch_size``, run in chunks.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: the true class of each image (untargeted), or the target (``targeted=True``);
            one or one per image, indices or names. ``None``: the model's own answer on the photo.
        epsilon: the budget in pixels, one or one per image.
        steps (>= 0), step_size, norm, random_start, stop_at_success: as :func:`pgd_perturb`.
        targeted: descend the cross-entropy to ``labels`` instead of climbing it away from them.
        samples: expectation over transformation: average the loss over this many calls of
            ``model`` on the batch (useful only when ``model`` is random). With ``stop_at_success``
            an example counts as fooled only when every one of these calls is.
        loss: ``"ce"`` (cross-entropy) or ``"margin"`` (Carlini & Wagner's margin on the logits,
            which keeps a gradient where the softmax saturates; one sample only).
        seed: the same seed (and batch size) gives the same result.
        batch_size: images per compiled call.
        progress: show a text progress bar, one tick per batch.
    """
    targeted, stop_at_success = check_flag("targeted", targeted), check_flag("stop_at_success", stop_at_success)
    eps = _epsilons(epsilon)
    x, steps, rate, random_start, seed, batch_size, progress = _check_pgd(
        model, images, steps, step_size, norm, loss, samples, random_start, seed, batch_size, progress)
    n = len(x)
    if eps.size not in (1, n):
        raise ValueError(f"got {eps.size} epsilons for {n} images; give one, or one per image")
    if labels is None:
        if targeted:
            raise ValueError("a targeted attack needs its targets: pass labels")
        y = _top1(model, x, batch_size)
    else:
        y = _labels(model, labels, x)
    eps = np.broadcast_to(eps, (n,)).astype(np.float32)
    rate = default_step_size(eps, max(steps, 1)) if rate is None else np.full(n, np.float32(rate))
    loop = compiled(pgd_step, model, stop_at_success=stop_at_success, norm=norm, targeted=targeted, loss=loss,
                    samples=samples)
    with progress_bar(len(range(0, n, batch_size)), f"PGD-{steps} on {getattr(model, 'name', 'model')}",
                      show=progress) as bar:
        adversarial = _advance(loop, x, y, eps, rate.astype(np.float32), norm, random_start, seed, batch_size, steps,
                               bar)
    return AttackResult("pgd", x, adversarial, y, bool(targeted), _top1(model, adversarial, batch_size), eps, norm,
                        classes=ClassNames.of(model))


def iterative_attack(
    model: Any,
    images: Any,
    target: Target | Sequence[Target] | None,
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    targeted: bool = True,
    *,
    track: Sequence[Target] = (),
    progress: bool | None = None,
) -> AttackResult:
    """Lesson 2's iterative attack (Kurakin et al., 2017): L-inf :func:`pgd_step` from the photo
    itself (no random start), targeted by default, on the whole batch, keeping every step's probabilities.

    Args:
        model: a classifier giving logits, taking pixels 0..255.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        target: the class to reach (targeted) or to leave (untargeted): an index or one of the
            model's class names, or one per image. ``None`` means "the model's own answer" and so
            needs ``targeted=False``.
        epsilon: the L-inf budget in pixels (>= 0).
        steps: number of steps (>= 1).
        step_size: pixels per step (> 0). ``None``: ``2.5 * epsilon / steps`` (:func:`default_step_size`,
            the MadryLab rule of thumb). Kurakin et al. use 1 grey level per step (``step_size=1.0``).
        targeted: towards ``target`` (True) or away from it (False).
        track: extra classes whose probability the history records (e.g. ``["mouse"]``).
        progress: show a progress bar (``None``: for 50 steps or more).
    """
    epsilon = check_number("epsilon", epsilon, minimum=0.0)
    steps = check_steps(steps)
    step_size = (default_step_size(epsilon, steps) if step_size is None
                 else check_number("step_size", step_size, minimum=0.0, above=True))
    x0, classes, targets, extra, data = _lesson2_inputs(model, images, target, epsilon, steps, step_size, targeted, track)
    run = compiled(pgd_step, model, norm="linf", targeted=targeted, loss="ce", samples=1).run(
        x0, data, steps=steps, progress=progress, description="iterative_attack")
    return AttackResult.from_run("iterative_attack", x0, run, targets, targeted, data["epsilon"], "linf", classes, extra)


def _lesson2_inputs(model, images, target, epsilon, steps, step_size, targeted, track):
    """Lesson 2's batch ``x0``, its classes, targets, tracked classes and per-call data, checked
    (what :func:`iterative_attack` and :func:`fgsm` share)."""
    if check_flag("targeted", targeted) and target is None:
        raise ValueError(
            "target=None needs targeted=False: a targeted attack needs a class to reach (name one, e.g. "
            "'king penguin'); with targeted=False, None means 'leave the class the model sees now'"
        )
    check_gradient_memory(model, images)
    x0 = as_batch(images, model)
    classes = ClassNames.of(model)
    extra = [] if isinstance(track, (list, tuple)) and not track else classes.indices(track, name="track")
    targets = _top1(model, x0) if target is None else _labels(model, target, x0, name="target")
    check_steps(steps, len(x0), classes.count)
    n = len(x0)
    data = {"labels": targets, "epsilon": np.full(n, epsilon, np.float32),
            "step_size": np.full(n, max(step_size, 1e-12), np.float32)}
    return x0, classes, targets, extra, data


def fgsm(model: Any, images: Any, target: Target | Sequence[Target] | None, epsilon: float, *,
         targeted: bool = True) -> AttackResult:
    """The fast gradient sign method (Goodfellow et al., 2015): one :func:`pgd_step` of the whole
    budget, ``epsilon * sign(gradient)``, clipped to 0..255.

    Args:
        model, images, target, targeted: as :func:`iterative_attack`.
        epsilon: the step in pixels (>= 0): every pixel moves by exactly this much (before clipping).
    """
    epsilon = check_number("epsilon", epsilon, minimum=0.0)
    x0, classes, targets, extra, data = _lesson2_inputs(model, images, target, epsilon, 1, epsilon, targeted, ())
    run = compiled(pgd_step, model, norm="linf", targeted=targeted, loss="ce", samples=1).run(
        x0, data, steps=1, progress=False, description="fgsm")
    return AttackResult.from_run("fgsm", x0, run, targets, targeted, data["epsilon"], "linf", classes, extra)


def robust_accuracy(
    model: Any,
    images: Any,
    labels: Target | Sequence[Target] | np.ndarray,
    epsilons: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0),
    *,
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
    loss: str = "ce",
) -> pd.DataFrame:
    """Accuracy under an untargeted L-inf PGD attack, for each budget in ``epsilons`` (one compiled
    step serves every budget: a sweep costs one tracing).

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(N, H, W, C)`` pixels 0..255.
        labels: the true classes: indices or names, one per image or one for all.
        epsilons: budgets in pixels (grey levels). ``0`` gives the clean accuracy.
        steps: PGD steps per budget (the course's default: PGD-20).
        step_size: pixels per step; default :func:`default_step_size` for each budget.
        random_start: as :func:`pgd_perturb`; loss: as :func:`pgd_attack`.
        seed: the same seed (and batch size) gives the same numbers.
        batch_size: images per compiled call.
        progress: show a text progress bar (one tick per budget and batch).

    Returns:
        A DataFrame with one row per epsilon: ``epsilon``, ``accuracy`` (0..1: the share of
        images still classified as their label after the attack) and ``n`` (images).
    """
    eps_list = _epsilons(epsilons, "epsilons")
    if eps_list.size == 0:
        raise ValueError("epsilons is empty: give at least one budget, e.g. [0, 4, 8]")
    x, steps, rate, random_start, seed, batch_size, progress = _check_pgd(
        model, images, steps, step_size, "linf", loss, 1, random_start, seed, batch_size, progress)
    n = len(x)
    y = _labels(model, labels, x)
    loop = compiled(pgd_step, model, stop_at_success=False, norm="linf", targeted=False, loss=loss, samples=1)
    rows = []
    with progress_bar(len(eps_list) * len(range(0, n, batch_size)), f"PGD-{steps} on {getattr(model, 'name', 'model')}",
                      show=progress) as bar:
        for e in eps_list:
            e_rate = default_step_size(float(e), max(steps, 1)) if rate is None else float(np.float32(rate))
            # A zero budget leaves every image where it is: no steps needed (same graph, steps=0).
            adversarial = _advance(loop, x, y, np.full(n, e, np.float32), np.full(n, e_rate, np.float32), "linf",
                                   random_start, seed, batch_size, steps if e > 0 else 0, bar)
            correct = sum(int(np.sum(_top1(model, adversarial[i:i + batch_size]) == y[i:i + batch_size]))
                          for i in range(0, n, batch_size))
            rows.append({"epsilon": float(e), "accuracy": correct / n, "n": n})
    return pd.DataFrame(rows)

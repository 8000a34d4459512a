"""Adversarial examples in the physical world: does an attack survive being printed and photographed?

Kurakin, Goodfellow and Bengio ("Adversarial examples in the physical world", 2016; ICLR
workshop 2017) printed adversarial ImageNet images, photographed the prints with a phone and
found that a good share of them still fooled the classifier, though the iterative attacks, whose
changes are the finest, were destroyed more often than one-step ones. Athalye, Engstrom, Ilyas
and Kwok ("Synthesizing robust adversarial examples", ICML 2018) made attacks that survive on
purpose: expectation over transformation (EOT) minimises the loss *averaged over random
transforms* of the picture, so the change works whatever transform comes.

- :func:`print_and_photograph` -- the evaluation simulation: :class:`~course_utils.core.photo_transforms.PrintPhoto`
  with a real JPEG and whole grey levels at the end, seeded;
- :func:`survival_rate` -- the share of simulated print-photo draws after which the attack still works;
- :func:`eot_step`, :func:`eot_attack` -- EOT: lesson 2's iterative attack (sign steps, L-inf
  budget, valid pixels) whose gradient is averaged over ``draws`` random print-photo versions of
  the picture every step.

Pixels 0..255 and budgets in grey levels throughout. A simulation is not a camera: it checks an
attack against the changes we thought of, with ranges we chose.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from course_utils.attacks.result import AttackResult
from course_utils.checks import WrongTypeError, check_flag, check_int, check_number, check_seed, check_steps
from course_utils.core import ops
from course_utils.core.history import check_history
from course_utils.core.loop import compiled
from course_utils.core.photo_transforms import PrintPhoto
from course_utils.io.images import as_batch
from course_utils.models.forward import cached
from course_utils.models.labels import ClassNames, Target
from course_utils.seeds import effective_seed

__all__ = ["PHOTO_JPEG", "print_and_photograph", "survival_rate", "eot_step", "eot_attack"]

PHOTO_JPEG: tuple[int, int] = (50, 95)
"""The JPEG qualities a phone photo is saved with in :func:`print_and_photograph` (drawn uniformly)."""

_EVAL_SALT = 7919  # the evaluation's draws: another stream than any loop step with the same seed


def _check_settings(settings: dict) -> dict:
    """The print-photo ``settings`` (``blur=2.0``...): each one of :class:`PrintPhoto`'s, or a clear error."""
    known = [p for p in inspect.signature(PrintPhoto).parameters if p not in ("draws", "jpeg")]
    unknown = [k for k in settings if k not in known]
    if unknown:
        raise WrongTypeError(f"unknown print-photo setting {unknown[0]!r}; the settings are {', '.join(known)} "
                             "(e.g. blur=2.0) and jpeg=(low, high)")
    return settings


def _images(images: Any) -> np.ndarray:
    x = as_batch(images)
    if len(x) == 0:
        raise ValueError(f"got an empty batch of images (shape {tuple(x.shape)}); give at least one picture")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"print_and_photograph takes colour pictures (N, H, W, 3), got shape {tuple(x.shape)}")
    return x


def print_and_photograph(images: Any, seed: int = 0, draws: int = 1, *, jpeg: tuple[int, int] = PHOTO_JPEG,
                         **settings: float) -> np.ndarray:
    """Simulated photos of printed ``images``: ``draws`` random versions of each, seeded.

    Each version: a small turn, zoom and move, blur, contrast, brightness, sensor noise (the
    ranges of :class:`~course_utils.core.photo_transforms.PrintPhoto`, changed with ``settings``,
    e.g. ``blur=2.0``), a JPEG of quality ``jpeg`` (low, high), and whole grey levels.

    Args:
        images: ``(H, W, 3)`` or ``(N, H, W, 3)`` pixels 0..255.
        seed: the same seed (and batch size) gives the same photos; ``COURSE_SEED`` moves it.
        draws: versions per picture (>= 1).

    Returns:
        float32 ``(draws, N, H, W, 3)``, whole grey levels 0..255.
    """
    _check_settings(settings)
    seed = check_seed(seed)
    x = _images(images)
    draws = check_int("draws", draws, minimum=1, maximum=4096)
    PrintPhoto(1, jpeg=jpeg, **settings).check_input(x.shape)  # bad settings refused before any work
    per_call = max(1, _ROWS_PER_CALL // len(x))  # draws per compiled call: bounded memory
    s = tf.constant(effective_seed(seed), tf.int32)
    out = []
    for j, first in enumerate(range(0, draws, per_call)):
        n = min(per_call, draws - first)
        photo = _photo_function(PrintPhoto(n, jpeg=jpeg, **settings))
        out.append(photo(tf.constant(x), tf.constant(_EVAL_SALT + j), s).numpy())
    return np.concatenate(out).reshape(draws, *x.shape)


_ROWS_PER_CALL = 64


def _photo_function(transform: PrintPhoto):
    """``transform`` then whole grey levels (``ops.round_pixels``), as one compiled function, kept per
    settings in the course's one cache (under :class:`PrintPhoto`: it needs no model)."""
    return cached(PrintPhoto, ("photo", transform.key()), lambda: tf.function(
        lambda x, step, seed: ops.round_pixels(transform.transform(x, step, seed)), reduce_retracing=True))


def survival_rate(model: Any, adversarial: Any, target: Target | Sequence[Target], draws: int = 100,
                  seed: int = 1, *, targeted: bool = True, batch_size: int = 32, **settings: float) -> np.ndarray:
    """The share of simulated print-photo draws after which the attack still works.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        adversarial: ``(H, W, 3)`` or ``(N, H, W, 3)`` the attacked pictures, pixels 0..255.
        target: the class each should be seen as (``targeted``), or the true class it should no
            longer be seen as (``targeted=False``); a name or index, or one per picture.
        draws: simulated photos per picture (>= 1). Use a ``seed`` the attack did not train on.
        seed: seed of the draws; the same seed gives the same draws for every batch of this size,
            so two attacks on one photo are compared on the same photos.
        settings: the simulation's ranges (see :func:`print_and_photograph`).

    Returns:
        ``(N,)`` float64 in 0..1: per picture, the share of its photos whose top-1 is ``target``
        (targeted) or is not ``target`` (untargeted).
    """
    from course_utils.attacks.transfer import top1

    x = _images(adversarial)
    targeted = check_flag("targeted", targeted)
    labels = np.asarray(ClassNames.of(model).indices(target, len(x)), dtype=np.int64)
    photos = print_and_photograph(x, seed, draws, **settings)  # (draws, N, H, W, 3)
    predicted = top1(model, photos.reshape(-1, *x.shape[1:]), batch_size=batch_size).reshape(draws, len(x))
    hit = predicted == labels[None] if targeted else predicted != labels[None]
    return hit.mean(axis=0)


def eot_step(model, x, x0, i, seed, data, *, draws: int = 8, settings: tuple = (), targeted: bool = True):
    """One EOT step: lesson 2's step, its gradient averaged over ``draws`` random print-photos of ``x``."""
    labels = tf.cast(data["labels"], tf.int32)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        photos = PrintPhoto(draws, **dict(settings)).transform(x, i, seed[0])  # (draws * N, H, W, 3), new each step
        logits = tf.reshape(model(photos, training=False), [draws, tf.shape(x)[0], -1])
        ce = ops.cross_entropy(logits, labels)                                  # averaged over the draws
        loss = ce if targeted else -ce
    grad = tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    x_next = x - ops.per_example(data["step_size"], x) * tf.sign(grad)
    x_next = tf.clip_by_value(ops.project(x_next, x0, data["epsilon"], "linf"), 0.0, 255.0)
    top1 = tf.argmax(logits, -1, output_type=tf.int32)
    return x_next, loss, tf.reduce_mean(tf.nn.softmax(logits), axis=0), tf.reduce_all(tf.equal(top1, labels), 0)


def _on_the_picture(model, x, x0, i, seed, data, *, targeted: bool = True, **_):
    """The loss and the softmax on the picture itself, unphotographed: what the history starts and ends with."""
    logits = model(x, training=False)
    ce = ops.cross_entropy(logits, data["labels"])
    return (ce if targeted else -ce), tf.nn.softmax(logits)


def eot_attack(
    model: Any,
    images: Any,
    target: Target | Sequence[Target],
    epsilon: float,
    steps: int = 40,
    step_size: float | None = None,
    *,
    draws: int = 8,
    seed: int = 0,
    targeted: bool = True,
    progress: bool | None = None,
    settings: Mapping[str, Any] | None = None,
) -> AttackResult:
    """Expectation over transformation (Athalye et al., 2018) against the print-photo simulation.

    Lesson 2's iterative attack, except that every step's gradient is the average over ``draws``
    random print-photo versions of the picture (a new set each step, from ``seed`` and the step):
    the change is pushed to work whatever the light, focus, noise and hand do.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, 3)`` or ``(N, H, W, 3)`` pixels 0..255.
        target: the class to reach (or to leave, ``targeted=False``), a name or index, or one per image.
        epsilon: the L-inf budget in grey levels (> 0).
        steps: gradient steps (>= 1).
        step_size: grey levels per step; ``None``: ``2.5 * epsilon / steps``.
        draws: print-photo versions averaged per step (>= 1); each costs one pass of the model.
        seed: seed of the draws (``COURSE_SEED`` moves it).
        settings: the simulation's ranges (see :class:`PrintPhoto`), e.g. ``{"blur": 2.0}``.

    Returns:
        An :class:`AttackResult`; its ``success`` and final probabilities are for the picture
        itself, unphotographed (measure the photos with :func:`survival_rate`).
    """
    epsilon = check_number("epsilon", epsilon, minimum=0.0, above=True)
    steps = check_steps(steps)
    step_size = 2.5 * epsilon / steps if step_size is None else check_number("step_size", step_size, minimum=0.0,
                                                                              above=True)
    draws = check_int("draws", draws, minimum=1, maximum=256)
    targeted = check_flag("targeted", targeted)
    x0 = as_batch(images, model)
    classes = ClassNames.of(model)
    targets = np.asarray(classes.indices(target, len(x0)), dtype=np.int64)
    check_history(steps, len(x0), classes.count)
    settings = tuple(sorted(dict(settings or {}).items()))
    PrintPhoto(draws, **_check_settings(dict(settings))).check_input(x0.shape)  # unknown or out-of-range settings: said here
    n = len(x0)
    data = {"labels": targets.astype(np.int32), "epsilon": np.full(n, epsilon, np.float32),
            "step_size": np.full(n, step_size, np.float32)}
    loop = compiled(eot_step, model, measure=_on_the_picture, draws=draws, settings=settings, targeted=targeted)
    run = loop.run(x0, data, steps=steps, seed=seed, progress=progress, description="EOT attack")
    return AttackResult.from_run("eot_attack", x0, run, targets, targeted, data["epsilon"], "linf", classes)

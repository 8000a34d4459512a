"""Lesson 6's physical world: does an attack survive being printed and photographed?

- :class:`PrintPhoto`, the simulated print-and-photograph as a differentiable transform (light,
  focus, sensor noise, the phone's JPEG passed straight through, the hand's turn, zoom and move);
  :func:`print_and_photograph` (its evaluation, seeded, real JPEG and whole grey levels) and
  :func:`survival_rate` (the share of simulated photos after which an attack still works);
- :func:`eot_attack` on its step :func:`_eot_step`: expectation over transformation, lesson 2's
  iterative attack with its gradient averaged over random print-photos every step.

Kurakin, Goodfellow and Bengio (2016; ICLR workshop 2017) photographed printed adversarial images;
Athalye, Engstrom, Ilyas and Kwok (ICML 2018) made attacks survive on purpose (EOT). Pixels 0..255,
budgets in grey levels. A simulation is not a camera: it checks the changes we thought of.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from course_utils.attacks.gradient import AttackResult
from course_utils.attacks.pgd import default_step_size
from course_utils.attacks.transfer import top1
from course_utils.checks import (
    check_gradient_memory, check_int, check_number, check_seed, check_steps, effective_seed,
)
from course_utils.core import ops
from course_utils.core.loop import compiled
from course_utils.core.ops import seed_pair
from course_utils.io.images import as_batch
from course_utils.models.forward import cached
from course_utils.models.imagenet import ClassNames, Target

__all__ = ["PrintPhoto", "PHOTO_JPEG", "print_and_photograph", "survival_rate", "eot_attack"]


def _affine_each(x: tf.Tensor, angle: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Turn each picture by ``angle`` (radians), zoom it by ``scale`` and move it by ``shift``
    ``(N, 2)`` pixels (rows, columns) about its centre (bilinear, edges mirrored, same size)."""
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    cx, cy = (tf.cast(w, tf.float32) - 1) / 2, (tf.cast(h, tf.float32) - 1) / 2
    a, b = tf.cos(angle) / scale, tf.sin(angle) / scale
    c, d = -b, a
    ox, oy = cx - shift[:, 1], cy - shift[:, 0]  # the output's centre shows the input's centre - shift
    return ops.affine(x, a, b, cx - a * ox - b * oy, c, d, cy - c * ox - d * oy)


class PrintPhoto:
    """A simulated print-and-photograph: ``draws`` random versions of every picture.

    Each version draws, uniformly and independently, a turn of ``-degrees..degrees``, a zoom of
    ``1 - scale..1 + scale``, a move of ``-shift..shift`` pixels each way, a Gaussian blur of
    width ``0..blur`` pixels, a contrast factor ``1 - contrast..1 + contrast`` (about the
    picture's mean), a brightness change of ``-brightness..brightness`` grey levels and sensor
    noise of ``0..noise`` grey levels (standard deviation), then clips to 0..255; with ``jpeg``
    ``(low, high)`` it is also saved as a JPEG of quality ``low..high``, forwards only (the
    straight-through gradient, BPDA). The draw depends only on ``(seed, step)`` and the row.

    ``(N, H, W, C) -> (draws * N, H, W, C)``, row ``j * N + i`` being draw ``j`` of picture ``i``;
    a step reshapes what the model says to ``(draws, N, ...)`` and averages over the draws
    (:func:`_eot_step`).
    """

    def __init__(self, draws: int = 1, *, degrees: float = 5.0, scale: float = 0.08, shift: float = 4.0,
                 blur: float = 1.5, contrast: float = 0.2, brightness: float = 20.0, noise: float = 4.0,
                 jpeg: tuple[int, int] | None = None) -> None:
        self.draws = check_int("PrintPhoto draws", draws, minimum=1)
        self.degrees = check_number("PrintPhoto degrees", degrees, minimum=0.0, maximum=45.0)
        self.scale = check_number("PrintPhoto scale", scale, minimum=0.0, maximum=0.5)
        self.shift = check_number("PrintPhoto shift", shift, minimum=0.0, maximum=32.0)
        self.blur = check_number("PrintPhoto blur", blur, minimum=0.0, maximum=5.0)
        self.contrast = check_number("PrintPhoto contrast", contrast, minimum=0.0, maximum=0.9)
        self.brightness = check_number("PrintPhoto brightness", brightness, minimum=0.0, maximum=128.0)
        self.noise = check_number("PrintPhoto noise", noise, minimum=0.0, maximum=64.0)
        if jpeg is not None:
            if not (isinstance(jpeg, (tuple, list)) and len(jpeg) == 2):
                raise ValueError(f"PrintPhoto jpeg must be None or (low, high) qualities in 1..100, got {jpeg!r}")
            low, high = (check_int("PrintPhoto jpeg quality", q, minimum=1, maximum=100) for q in jpeg)
            if low > high:
                raise ValueError(f"PrintPhoto jpeg: the lowest quality must come first, got {jpeg!r}")
            jpeg = (low, high)
        self.jpeg = jpeg

    def __repr__(self) -> str:
        return f"PrintPhoto({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def check_input(self, shape: tuple) -> None:
        """Refuse, before any work, a batch ``(N, H, W, C)`` too small to blur and resample."""
        smallest = 2 * math.ceil(3 * self.blur) + 1
        if len(shape) != 4:
            raise ValueError(f"{self!r} works on image batches (N, H, W, C), got shape {tuple(shape)}")
        if min(shape[1], shape[2]) < smallest:
            raise ValueError(f"{self!r} needs images at least {smallest}x{smallest} pixels (it blurs and resamples "
                             f"the picture), got {shape[1]}x{shape[2]}; use a larger size or leave it out")

    def parameters(self, rows: tf.Tensor | int, step: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """The draw of each of ``rows`` pictures at ``step``: ``(rows,)`` float32 tensors ``angle``
        (degrees), ``scale``, ``blur`` (pixels), ``contrast``, ``brightness`` and ``noise`` (grey
        levels), ``quality``; and ``shift`` ``(rows, 2)`` pixels."""
        pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), 40)
        u = tf.random.stateless_uniform(tf.stack([rows, 9]), seed=pair)  # (rows, 9) in 0..1
        spread = 2.0 * u - 1.0
        low, high = self.jpeg or (100, 100)
        return {
            "angle": self.degrees * spread[:, 0], "scale": 1.0 + self.scale * spread[:, 1],
            "shift": self.shift * spread[:, 2:4], "blur": self.blur * u[:, 4],
            "contrast": 1.0 + self.contrast * spread[:, 5], "brightness": self.brightness * spread[:, 6],
            "noise": self.noise * u[:, 7], "quality": tf.floor(low + (high - low + 1) * u[:, 8]),
        }

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.draws > 1:
            x = tf.concat([x] * self.draws, axis=0)
        p = self.parameters(tf.shape(x)[0], step, seed)
        if self.degrees or self.scale or self.shift:
            x = _affine_each(x, p["angle"] * (math.pi / 180.0), p["scale"], p["shift"])
        if self.blur:
            x = ops.gaussian_blur(x, p["blur"], math.ceil(3 * self.blur))
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = mean + p["contrast"][:, None, None, None] * (x - mean) + p["brightness"][:, None, None, None]
        if self.noise:
            pair = seed_pair(tf.stack([tf.cast(seed, tf.int32), tf.cast(step, tf.int32)]), 41)
            x = x + p["noise"][:, None, None, None] * tf.random.stateless_normal(tf.shape(x), seed=pair)
        x = tf.clip_by_value(x, 0.0, 255.0)
        if self.jpeg is not None:
            x = ops.straight_through(x, ops.jpeg(x, p["quality"]))  # BPDA
        return x


PHOTO_JPEG: tuple[int, int] = (50, 95)
"""The JPEG qualities a phone photo is saved with in :func:`print_and_photograph` (drawn uniformly)."""

_EVAL_SALT = 7919  # the evaluation's draws: another stream than any loop step with the same seed


def _images(images: Any) -> np.ndarray:
    x = as_batch(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"print_and_photograph takes colour pictures (N, H, W, 3), got shape {tuple(x.shape)}")
    return x


def print_and_photograph(images: Any, seed: int = 0, draws: int = 1) -> np.ndarray:
    """Simulated photos of printed ``images``: ``draws`` random versions of each, seeded.

    Each version: a small turn, zoom and move, blur, contrast, brightness, sensor noise (the
    ranges of :class:`PrintPhoto`), a JPEG of quality :data:`PHOTO_JPEG`, and whole grey levels.

    Args:
        images: ``(H, W, 3)`` or ``(N, H, W, 3)`` pixels 0..255.
        seed: the same seed (and batch size) gives the same photos; ``COURSE_SEED`` moves it.
        draws: versions per picture (>= 1).

    Returns:
        float32 ``(draws, N, H, W, 3)``, whole grey levels 0..255.
    """
    seed = check_seed(seed)
    x = _images(images)
    draws = check_int("draws", draws, minimum=1, maximum=4096)
    PrintPhoto(1).check_input(x.shape)  # too small to blur: refused before any work
    per_call = max(1, _ROWS_PER_CALL // len(x))  # draws per compiled call: bounded memory
    s = tf.constant(effective_seed(seed), tf.int32)
    out = []
    for j, first in enumerate(range(0, draws, per_call)):
        n = min(per_call, draws - first)
        photo = _photo_function(PrintPhoto(n, jpeg=PHOTO_JPEG))
        out.append(photo(tf.constant(x), tf.constant(_EVAL_SALT + j), s).numpy())
    return np.concatenate(out).reshape(draws, *x.shape)


_ROWS_PER_CALL = 64


def _photo_function(transform: PrintPhoto):
    """``transform`` then whole grey levels (``ops.round_pixels``), as one compiled function, kept per
    settings in the course's one cache (under :class:`PrintPhoto`: it needs no model)."""
    return cached(PrintPhoto, ("photo", tuple(sorted(vars(transform).items()))), lambda: tf.function(
        lambda x, step, seed: ops.round_pixels(transform.transform(x, step, seed)), reduce_retracing=True))


def survival_rate(model: Any, adversarial: Any, target: Target | Sequence[Target], draws: int = 100,
                  seed: int = 1) -> np.ndarray:
    """The share of simulated print-photo draws (:func:`print_and_photograph`) after which the attack still works.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        adversarial: ``(H, W, 3)`` or ``(N, H, W, 3)`` the attacked pictures, pixels 0..255.
        target: the class each should be seen as, a name or index, or one per picture.
        draws: simulated photos per picture (>= 1). Use a ``seed`` the attack did not train on.
        seed: seed of the draws; the same seed gives the same draws for every batch of this size,
            so two attacks on one photo are compared on the same photos.

    Returns:
        ``(N,)`` float64 in 0..1: per picture, the share of its photos whose top-1 is ``target``.
    """
    x = _images(adversarial)
    labels = np.asarray(ClassNames.of(model).indices(target, len(x)), dtype=np.int64)
    photos = print_and_photograph(x, seed, draws)  # (draws, N, H, W, 3)
    predicted = top1(model, photos.reshape(-1, *x.shape[1:]), batch_size=32).reshape(draws, len(x))
    return (predicted == labels[None]).mean(axis=0)


def _eot_step(model, x, x0, i, seed, data, *, draws: int = 8):
    """One EOT step: lesson 2's step, its gradient averaged over ``draws`` random print-photos of ``x``."""
    labels = tf.cast(data["labels"], tf.int32)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        photos = PrintPhoto(draws).transform(x, i, seed[0])                    # (draws * N, H, W, 3), new each step
        logits = tf.reshape(model(photos, training=False), [draws, tf.shape(x)[0], -1])
        loss = ops.cross_entropy(logits, labels)                                # towards the target, over the draws
    grad = tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    x_next = x - ops.per_example(data["step_size"], x) * tf.sign(grad)
    x_next = tf.clip_by_value(ops.project(x_next, x0, data["epsilon"], "linf"), 0.0, 255.0)
    top1 = tf.argmax(logits, -1, output_type=tf.int32)
    return x_next, loss, tf.reduce_mean(tf.nn.softmax(logits), axis=0), tf.reduce_all(tf.equal(top1, labels), 0)


def _on_the_picture(model, x, x0, i, seed, data, **_):
    """The loss and the softmax on the picture itself, unphotographed: what the history starts and ends with."""
    logits = model(x, training=False)
    return ops.cross_entropy(logits, data["labels"]), tf.nn.softmax(logits)


def eot_attack(
    model: Any,
    images: Any,
    target: Target | Sequence[Target],
    epsilon: float,
    steps: int = 40,
    *,
    draws: int = 8,
    seed: int = 0,
    progress: bool | None = None,
) -> AttackResult:
    """Expectation over transformation (Athalye et al., 2018) against the print-photo simulation.

    Lesson 2's iterative attack (steps of :func:`~course_utils.attacks.pgd.default_step_size`),
    except that every step's gradient is the average over ``draws``
    random print-photo versions of the picture (a new set each step, from ``seed`` and the step):
    the change is pushed to work whatever the light, focus, noise and hand do.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, 3)`` or ``(N, H, W, 3)`` pixels 0..255.
        target: the class to reach, a name or index, or one per image.
        epsilon: the L-inf budget in grey levels (> 0).
        steps: gradient steps (>= 1).
        draws: print-photo versions averaged per step (>= 1); each costs one pass of the model.
        seed: seed of the draws (``COURSE_SEED`` moves it).

    Returns:
        An :class:`AttackResult`; its ``success`` and final probabilities are for the picture
        itself, unphotographed (measure the photos with :func:`survival_rate`).
    """
    epsilon = check_number("epsilon", epsilon, minimum=0.0, above=True)
    steps = check_steps(steps)
    draws = check_int("draws", draws, minimum=1, maximum=256)
    check_gradient_memory(model, images, copies=draws)
    x0 = as_batch(images, model)
    classes = ClassNames.of(model)
    targets = np.asarray(classes.indices(target, len(x0)), dtype=np.int64)
    check_steps(steps, len(x0), classes.count)
    PrintPhoto(draws).check_input(x0.shape)  # pictures too small to blur: said here
    n = len(x0)
    data = {"labels": targets.astype(np.int32), "epsilon": np.full(n, epsilon, np.float32),
            "step_size": np.full(n, default_step_size(epsilon, steps), np.float32)}
    loop = compiled(_eot_step, model, measure=_on_the_picture, draws=draws)
    run = loop.run(x0, data, steps=steps, seed=seed, progress=progress, description="EOT attack")
    return AttackResult.from_run("eot_attack", x0, run, targets, True, data["epsilon"], "linf", classes)

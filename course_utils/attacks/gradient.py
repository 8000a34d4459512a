"""Lesson 1's gradient attack, the noise filter, and the input gradient lesson 2 starts from.

:func:`noise_filter_step` is the loop lesson 1 writes by hand, compiled (by :mod:`course_utils.core.loop`,
which only runs a step; it holds none of the maths): gradient descent on
``cross-entropy(target) + beta * |DX|^2 / 2``. :func:`noise_filter` checks its arguments, compiles the
step for the model (once per model: the target and beta are per-call tensors, so a new one never
traces it again), runs it and returns an :class:`~course_utils.attacks.result.AttackResult`.
The signed-gradient attacks (FGSM, the iterative attack, PGD) are in :mod:`course_utils.attacks.pgd`.

Units: images are float32 **pixels 0..255**, ``(N, H, W, C)`` (one image ``(H, W, C)`` is accepted too).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from course_utils.attacks.result import AttackResult
from course_utils.checks import WrongTypeError, check_batch, check_flag, check_number, check_steps
from course_utils.core import ops
from course_utils.core.loop import compiled
from course_utils.io.images import ImageLoadError, as_batch
from course_utils.models.imagenet import ClassNames, Target

__all__ = ["noise_filter_step", "noise_filter", "input_gradient"]


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
    x = tf.constant(check_batch(as_batch(images, model)))
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
    clip: bool = True,
    progress: bool | None = None,
) -> AttackResult:
    """Learn a noise image ``DX`` that, added to ``image``, makes the model answer ``target``.

    Minimises ``cross_entropy(model(image + DX), target) + beta * sum(DX**2) / 2`` by plain
    gradient descent from ``DX = 0`` (the tutorial's noise filter; the step is
    :func:`noise_filter_step`). ``beta > 0`` prices every grey level of change, so the filter
    stays fainter.

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
        clip: keep ``image + DX`` within valid pixels 0..255 after each step.
        progress: show a progress bar (``None``: for 50 steps or more).
    """
    beta_list = list(beta) if isinstance(beta, (list, tuple, np.ndarray)) else [beta]
    if not beta_list:
        raise ValueError("beta is empty: give one beta, or a list of them")
    betas = np.asarray([check_number("beta", b, minimum=0.0) for b in beta_list], dtype=np.float32)
    steps = check_steps(steps)
    learning_rate = check_number("learning_rate", learning_rate, minimum=0.0, above=True)
    clip = check_flag("clip", clip)
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
    x0 = check_batch(as_batch(x0, model))
    if len(betas) > 1 and len(x0) == 1:
        x0 = np.repeat(x0, len(betas), axis=0)
    if len(betas) > 1 and len(betas) != len(x0):
        raise ValueError(f"got {len(betas)} betas for {len(x0)} images; give one beta, or one per image")
    n = len(x0)
    data = {"labels": np.full(n, t, np.int32), "learning_rate": np.full(n, learning_rate, np.float32)}
    if np.any(betas > 0):  # beta = 0 everywhere: the tutorial's plain loop, without a penalty term
        data["beta"] = np.broadcast_to(betas, n).astype(np.float32)
    run = compiled(noise_filter_step, model, clip=clip).run(
        x0, data, steps=steps, progress=progress, description="noise filter")
    return AttackResult.from_run("noise_filter", x0, run, data["labels"], True, None, None, classes)

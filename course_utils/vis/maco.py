"""MaCo (Fel et al., NeurIPS 2023): class pictures with a photo's amplitude spectrum.

The algorithm is :func:`maco_step`: gradient ascent on a class logit over the *phase* of the
picture's Fourier transform (:class:`~course_utils.vis.param.Phase`; the amplitude stays the sample
photos', :func:`~course_utils.vis.param.natural_magnitude`), the logit scored on random square
crops of the picture resized to the model's input, a step of Adam. The loop's state is the phases,
Adam's running means and the transparency map: the size of the gradient on every pixel of the picture, added up over the
steps (where the evidence for the class is). :func:`course_utils.core.loop.compiled` compiles the
step once per model and settings and runs it in chunks (history, progress, Kernel -> Interrupt);
the classes and the step size enter each call as data. Pixels: float32 0..255.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from course_utils.checks import (
    MAX_WORKING_BYTES, check_gradient_memory, check_int, check_memory, check_number, check_seed, check_steps,
)
from course_utils.core import ops
from course_utils.core.loop import compiled
from course_utils.io.images import to_uint8
from course_utils.models.forward import compiled_forward
from course_utils.models.imagenet import ClassNames
from course_utils.vis.param import Phase, natural_magnitude
from course_utils.vis.result import Visualization, history as _history

__all__ = ["maco_step", "maximize_class_maco"]


def maco_step(model, x, x0, i, seed, data, *, param: Phase, crops: int, crop_range: tuple[float, float]):
    """One MaCo step, compiled by the driver. ``x``: ``(N, 3 P + H * W)``, the phases (``param``'s
    parameters, ``P``), Adam's two running means of their gradient, then the transparency map so
    far; ``data``: ``labels`` and ``step_size`` (Adam's rate, radians, one per picture). Each picture
    is seen as ``crops`` random squares of ``crop_range`` of its side, resized to the model's input
    (bilinear, with a deterministic gradient)."""
    n, p, (h, w), side = tf.shape(x)[0], param.param_shape(1)[1], model.input_shape[1:3], param.size[0]
    phase, m, v, alpha = x[:, :p], x[:, p:2 * p], x[:, 2 * p:3 * p], x[:, 3 * p:]
    pair = ops.seed_pair(tf.stack([seed[0], i]), 40)                    # new crops every step
    share = tf.random.stateless_uniform([crops * n], pair, *crop_range)  # crop side / picture side
    corner = tf.random.stateless_uniform([2, crops * n], ops.seed_pair(pair, 1)) * (1.0 - share) * side
    zoom = share * side / h                                              # picture pixels per model pixel
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(phase)
        img = param.to_pixels(phase)                                     # phases -> picture, 0..255
        seen = ops.affine(tf.tile(img, [crops, 1, 1, 1]), zoom, 0.0, corner[1] + zoom / 2 - 0.5,
                          0.0, zoom, corner[0] + zoom / 2 - 0.5, size=(h, w), fill="CONSTANT")
        logits = compiled_forward(model)(seen)                           # (crops * N, classes), crop-major
        logit = tf.gather(logits, tf.tile(data["labels"], [crops]), axis=1, batch_dims=1)
        loss = -tf.reduce_mean(tf.reshape(logit, [crops, n]), axis=0)   # (N,) minus the mean logit
    g_phase, g_img = tape.gradient(loss, [phase, img])
    t = tf.cast(i + 1, tf.float32)                                      # Adam (Kingma and Ba, 2015)
    m, v = 0.9 * m + 0.1 * g_phase, 0.999 * v + 0.001 * tf.square(g_phase)
    rate = ops.per_example(data["step_size"], phase) * tf.sqrt(1.0 - 0.999 ** t) / (1.0 - 0.9 ** t)
    phase = phase - rate * m / (tf.sqrt(v) + 1e-7)
    alpha = alpha + tf.reshape(tf.reduce_sum(tf.abs(g_img), axis=-1), [n, -1])   # where the gradient was
    prob = tf.gather(tf.nn.softmax(logits[:n]), data["labels"], axis=1, batch_dims=1)  # on the first crops
    return tf.concat([phase, m, v, alpha], axis=1), loss, tf.stack([prob, -loss], axis=1), None


def _maco_measure(model, x, x0, i, seed, data, *, param: Phase, **_):
    """``(loss (N,), tracked (N, 2))`` on the whole picture, resized to the model's input: what
    the history's first and last rows record."""
    img = tf.image.resize(param.to_pixels(x[:, :param.param_shape(1)[1]]), model.input_shape[1:3], method="bilinear")
    logits = compiled_forward(model)(img)
    logit = tf.gather(logits, data["labels"], axis=1, batch_dims=1)
    prob = tf.gather(tf.nn.softmax(logits), data["labels"], axis=1, batch_dims=1)
    return -logit, tf.stack([prob, logit], axis=1)


def maximize_class_maco(
    model: keras.Model, target: int | str | Sequence[int | str], steps: int = 64, *, size: int = 320,
    crops: int = 6, crop_range: tuple[float, float] = (0.5, 1.0), step_size: float = 0.2, seed: int = 0,
    progress: bool | None = None,
) -> Visualization:
    """MaCo (Fel et al., NeurIPS 2023): :func:`maco_step` ``steps`` times from a random phase.

    Args:
        model: a classifier taking pixels 0..255 of a fixed size (e.g. 224x224).
        target: a class index or name, or several (one picture each).
        steps: gradient steps (>= 1). size: the picture's side in pixels (>= 32; square).
        crops: random crops scored per picture and step (>= 1). crop_range: their side, as a share
            of the picture's (0.05..1). step_size: Adam's rate on the phases, radians (> 0).
        seed: for the start phases and the crops. progress: a progress bar (``None``: 50 steps or more).

    Returns:
        A class :class:`Visualization` (``pixels`` ``(N, size, size, 3)``, float32 0..255, nothing
        clipped): ``start``/``final``/``history["value"]`` the class probability on the whole
        picture resized to the model's input (the rows in between on the first crop),
        ``history["logit"]``; ``alpha`` ``(N, size, size)`` in 0..1, the transparency map: the
        gradient's size on each pixel added up over the steps, smoothed (9x9 mean) and scaled.

    Raises:
        ValueError: an unknown class; a bad ``steps``, ``size``, ``crops``, ``crop_range``, ``step_size`` or ``seed``.
    """
    classes = ClassNames.of(model)
    idx = classes.indices(target)
    steps, seed, size = check_steps(steps), check_seed(seed), check_int("size", size, minimum=32)
    crops = check_int("crops", crops, minimum=1)
    if not isinstance(crop_range, (tuple, list)) or len(crop_range) != 2:
        raise ValueError(f"crop_range must be two numbers (smallest, largest), e.g. (0.5, 1.0), got {crop_range!r}")
    lo, hi = (check_number("crop_range", v, minimum=0.05, maximum=1.0) for v in crop_range)
    if lo > hi:
        raise ValueError(f"crop_range must be (smallest, largest), got {crop_range!r}")
    step_size = check_number("step_size", step_size, minimum=0.0, above=True)
    per_pixel = 4 * 32 * len(idx)   # float32: phases, Adam's two means, their gradient, the map, the picture and copies
    check_memory("size", size, per_pixel * size * size, math.isqrt(int(MAX_WORKING_BYTES // per_pixel)),
                 f"{len(idx)} MaCo picture(s) of {size} x {size} with Adam's state and the gradients")
    h, w, c = model.input_shape[1:]
    try:                                                                  # the crops' pass through the model
        check_gradient_memory(model, np.broadcast_to(np.float32(0), (len(idx) * crops, h, w, c)))
    except ValueError as err:
        raise ValueError(f"crops={crops} for {len(idx)} class(es) is too many at once: {err}. "
                         "Use fewer crops or fewer classes per call") from None
    param = Phase(size, natural_magnitude(size))
    start = param.init(idx, seed)
    x0 = np.concatenate([start, np.zeros_like(start), np.zeros_like(start),   # phases, Adam's m and v
                         np.zeros((len(idx), size * size), np.float32)], axis=1)  # the transparency map
    data = {"labels": np.asarray(idx, np.int32), "step_size": np.full(len(idx), step_size, np.float32)}
    what = [classes.label(k) for k in idx]
    run = compiled(maco_step, model, measure=_maco_measure, param=param, crops=crops, crop_range=(lo, hi)).run(
        x0, data, steps=steps, seed=seed, progress=progress, description="MaCo " + ", ".join(what))
    p = param.param_shape(1)[1]
    initial, pixels = param.to_pixels(x0[:, :p]).numpy(), param.to_pixels(run.x[:, :p]).numpy()
    alpha = tf.nn.avg_pool2d(run.x[:, 3 * p:].reshape(-1, size, size, 1), 9, 1, "SAME").numpy()[..., 0]
    alpha = alpha / np.maximum(alpha.max(axis=(1, 2), keepdims=True), 1e-30)
    probs, logits = run.tracked[..., 0], run.tracked[..., 1]
    return Visualization("class", what, initial, pixels, to_uint8(pixels), probs[0], probs[-1],
                         _history(probs, what, logit=logits), None, run.seconds, run.compile_seconds, run.traces,
                         alpha=alpha)

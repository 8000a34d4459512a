"""Randomized smoothing (Cohen, Rosenfeld & Kolter, 2019): a classifier with a certified L2 radius.

- :func:`smoothed_predict` -- their PREDICT: the smoothed classifier's answer, or an abstention;
- :func:`certify` -- their CERTIFY: its class and a certified L2 radius per image;
- :func:`certified_accuracy` -- the share certified right at each radius; :func:`clopper_pearson_lower` -- the bound.

Lesson 7 (section 3) explains what is certified. Pixels 0..255, ``sigma`` and radii in grey levels, no clipping
of the noisy copies. The noise is drawn in one compiled function per model, keyed by (seed, image index, step):
the same call gives the same counts however many images share a step. The statistics are SciPy's.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats
import tensorflow as tf

from course_utils.checks import check_int, check_number, effective_seed
from course_utils.core.loop import Loop
from course_utils.models.forward import cached
from course_utils.io.images import as_batch
from course_utils.models.imagenet import ClassNames

__all__ = ["certified_accuracy", "certify", "clopper_pearson_lower", "smoothed_predict"]


def clopper_pearson_lower(k: Any, n: int, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower confidence bound on a binomial proportion: the p with
    P(X >= k | p) = alpha for X ~ Binomial(n, p), ``scipy.stats.beta.ppf(alpha, k, n - k + 1)``
    (Cohen et al. use statsmodels' equivalent). ``k = 0`` gives 0, ``k = n`` gives ``alpha ** (1 / n)``.

    Args:
        k: successes (any shape), whole numbers 0..n.
        n: trials (>= 1).
        alpha: in (0, 1): the bound is below the true p with probability >= 1 - alpha.

    Returns:
        float64 array shaped like ``k``, in 0..1.
    """
    n = check_int("n", n, minimum=1)
    alpha = _check_alpha(alpha)
    k = np.asarray(k)
    if k.size and (np.any(k < 0) or np.any(k > n) or np.any(k != np.round(k))):
        raise ValueError(f"k must hold whole numbers in 0..{n}, got values from {k.min()} to {k.max()}")
    k = k.astype(np.int64)
    return np.where(k == 0, 0.0, scipy.stats.beta.ppf(alpha, np.maximum(k, 1), n - k + 1))


MAX_SAMPLES = 2**31 - 1
"""The most noisy copies per image (counted in 32-bit integers; they are drawn in batches, only counted)."""


def _check_alpha(alpha: Any) -> float:
    return check_number("alpha", alpha, minimum=0, maximum=1, above=True, below=True)


def _check(sigma: Any, n: Any, alpha: Any, batch_size: Any, seed: Any) -> tuple[float, int, float, int, int]:
    return (check_number("sigma", sigma, minimum=0, above=True), check_int("n", n, minimum=1, maximum=MAX_SAMPLES),
            _check_alpha(alpha), check_int("batch_size", batch_size, minimum=1, maximum=MAX_SAMPLES),
            effective_seed(seed))


def _counter(model: Any, per: int, group: int, shape: tuple[int, ...]) -> Any:
    """The compiled sampler (cached per model): class counts of ``per`` noisy copies of each of ``group`` images
    per step, for steps ``first..last-1`` of the ``(num + per - 1) // per`` steps of ``num`` copies."""
    ref, classes = weakref.ref(model), int(model.output_shape[-1])

    @tf.function(reduce_retracing=True)
    def count(x: tf.Tensor, index: tf.Tensor, sigma: tf.Tensor, num: tf.Tensor, seed: tf.Tensor, first: tf.Tensor,
              last: tf.Tensor) -> tf.Tensor:
        def body(step: tf.Tensor, counts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            noise = [tf.random.stateless_normal((per, *shape), tf.random.experimental.stateless_fold_in(
                tf.random.experimental.stateless_fold_in(seed, index[g]), step)) for g in range(group)]
            noisy = tf.repeat(x, per, axis=0) + sigma * tf.concat(noise, axis=0)
            # slices of _FORWARD_SLICE: a small CNN runs several times faster per picture on a slice that stays in cache
            logits = [ref()(noisy[i: i + _FORWARD_SLICE], training=False)
                      for i in range(0, group * per, _FORWARD_SLICE)]
            top = tf.reshape(tf.argmax(tf.concat(logits, axis=0), axis=-1, output_type=tf.int32), (group, per))
            valid = tf.cast(step * per + tf.range(per) < num, tf.float32)
            return step + 1, counts + tf.reduce_sum(tf.one_hot(top, classes) * valid[None, :, None], axis=1)

        _, counts = tf.while_loop(lambda s, c: s < last, body, (first, tf.zeros((group, classes))))
        return tf.cast(tf.round(counts), tf.int64)

    return cached(model, ("noise counts", per, group, shape), lambda: count)


def _noise_counts(model: Any, images: Any, sigma: float, n: int, *, seed: int = 0, batch_size: int = 1000,
                 stream: int = 0) -> np.ndarray:
    """int64 ``(N, K)``: how often ``model`` answers each class on ``n`` noisy copies of each image (rows sum to
    ``n``); the caller checks the arguments (``seed``: the effective one). The noise of image ``i`` depends only
    on (seed, stream, i) and ``min(batch_size, n)``; ``stream`` keeps selection and estimation noise apart."""
    x = as_batch(images, model)
    per = min(batch_size, n)
    # images per compiled step (unrolled in the graph): at least _STEP_PICTURES copies, Python not paid per image
    group = max(1, min(len(x), max(batch_size, _STEP_PICTURES) // per, 16))
    count = _counter(model, per, group, tuple(x.shape[1:]))
    key = tf.constant([seed, stream], tf.int64)
    steps = (n + per - 1) // per
    most = max(1, _CHUNK_SAMPLES // (per * group))  # steps per compiled call at most: counts exact in float32
    out, length = [], 1  # steps per call: one first, then as many as fit in Loop.chunk_seconds (Stop lands between)
    for i in range(0, len(x), group):
        images_i = x[i: i + group]
        index = np.arange(i, i + group, dtype=np.int64)
        if len(images_i) < group:  # pad to the compiled group size; the padding's counts are dropped
            images_i = np.concatenate([images_i, np.repeat(images_i[-1:], group - len(images_i), axis=0)])
        total, first = 0, 0
        while first < steps:  # the noise depends on the step, not the chunk: any chunks give the same counts
            last = min(first + length, steps)
            tick = time.perf_counter()
            total = total + count(tf.constant(images_i), tf.constant(index), tf.constant(sigma, tf.float32),
                                  tf.constant(n, tf.int32), key, tf.constant(first), tf.constant(last)).numpy()
            length = min(most, Loop.next_chunk_length(last - first, time.perf_counter() - tick, Loop.chunk_seconds))
            first = last
        out.append(total[: min(group, len(x) - i)])
    return np.concatenate(out)


_FORWARD_SLICE = 100  # noisy copies per forward pass in a step (the counts do not depend on it)
_STEP_PICTURES = 4000  # noisy copies one compiled step draws at least (when there are images enough)
_CHUNK_SAMPLES = 50_000  # the most copies per compiled call (exact float32 counts; fewer if slower than chunk_seconds)


@dataclass(frozen=True)
class _SmoothingResult:
    """What :func:`certify` or :func:`smoothed_predict` found, one entry per image:
        predicted: ``(N,)`` class of the smoothed classifier g, ``-1`` where it abstained.
        p_lower: ``(N,)`` lower confidence bound on the top class's probability under noise
            (:func:`certify`), or the top class's share of the ``n`` samples (:func:`smoothed_predict`).
        radius: ``(N,)`` certified L2 radius in grey levels (``sigma * Phi^{-1}(p_lower)``); 0 where
            abstained (and always 0 for :func:`smoothed_predict`, which certifies nothing).
        abstained: ``(N,)`` bool. sigma, n0, n, alpha: the settings.
        counts, selection: ``(N, K)`` class counts of the ``n`` estimation and ``n0`` selection samples (or zeros).
        classes: the model's class names (:class:`~course_utils.models.imagenet.ClassNames`), so that
            :func:`certified_accuracy` takes labels by name too; ``None``: indices only.
    """

    predicted: np.ndarray
    p_lower: np.ndarray
    radius: np.ndarray
    abstained: np.ndarray
    counts: np.ndarray
    selection: np.ndarray
    sigma: float
    n0: int
    n: int
    alpha: float
    classes: ClassNames | None = None

    def __repr__(self) -> str:
        r = self.radius[~self.abstained]
        median = f"{np.median(r):.2f}" if r.size else "-"
        return (f"SmoothingResult({len(self.predicted)} images, sigma {self.sigma:g}, n0 {self.n0}, n {self.n}, "
                f"alpha {self.alpha:g}: {int(self.abstained.sum())} abstained, median radius {median} grey levels)")


def smoothed_predict(model: Any, images: Any, sigma: float, n: int = 1000, alpha: float = 0.001, *, seed: int = 0,
                     batch_size: int = 1000) -> _SmoothingResult:
    """Cohen et al.'s PREDICT: the smoothed classifier's answer, or an abstention.

    Draws ``n`` noisy copies of each image; if the top class's count beats the runner-up's by a
    two-sided binomial test at level ``alpha`` (counts of the two, p = 1/2) it is the answer,
    else the image is abstained on (``predicted = -1``). The answer differs from g's true class
    with probability at most ``alpha``.

    Args:
        model: pixels 0..255 -> logits. images: one image or a batch, pixels 0..255.
        sigma: noise standard deviation, grey levels (> 0). n: samples (>= 1).
        alpha: test level in (0, 1). seed: same seed, same answers. batch_size: forward passes per step.
    """
    sigma, n, alpha, batch_size, seed = _check(sigma, n, alpha, batch_size, seed)
    counts = _noise_counts(model, images, sigma, n, seed=seed, batch_size=batch_size, stream=2)
    top, ranked = counts.argmax(1), np.sort(counts, axis=1)
    n_a, n_b = ranked[:, -1], (ranked[:, -2] if counts.shape[1] > 1 else np.zeros_like(ranked[:, -1]))
    p_value = np.ones(len(top))
    for i, (a, b) in enumerate(zip(n_a, n_b)):
        if a > b:  # two-sided test of a successes in a + b trials at p = 1/2
            p_value[i] = scipy.stats.binomtest(int(a), int(a + b), 0.5).pvalue
    abstained = p_value > alpha
    return _SmoothingResult(np.where(abstained, -1, top), n_a / n, np.zeros(len(top)), abstained, counts,
                           np.zeros_like(counts), sigma, 0, n, alpha, ClassNames.of(model))


def certify(model: Any, images: Any, sigma: float, n0: int = 100, n: int = 1000, alpha: float = 0.001, *,
            seed: int = 0, batch_size: int = 1000) -> _SmoothingResult:
    """Cohen et al.'s CERTIFY: the smoothed classifier's class and a certified L2 radius per image.

    1. ``n0`` noisy copies choose the candidate class c_A (the most frequent).
    2. ``n`` fresh copies count c_A; ``p_lower`` = one-sided Clopper-Pearson bound at ``alpha``.
    3. ``p_lower < 0.5``: abstain; else radius = ``sigma * Phi^{-1}(p_lower)`` grey levels (L2).

    With probability at least ``1 - alpha`` (over the noise), g(x + delta) = c_A for every
    ``||delta||_2 < radius``. The largest radius ``n`` samples can give is
    ``sigma * Phi^{-1}(alpha ** (1 / n))``.

    Args:
        model: the base classifier f, pixels 0..255 ``(N, H, W, C)`` -> logits.
        images: one image or a batch, pixels 0..255.
        sigma: noise standard deviation in grey levels (> 0); the one f was trained with.
        n0: selection samples (>= 1). n: estimation samples (>= 1).
        alpha: in (0, 1). seed: same seed, same result. batch_size: forward passes per step.

    Returns:
        A :class:`_SmoothingResult`.
    """
    sigma, n, alpha, batch_size, seed = _check(sigma, n, alpha, batch_size, seed)
    n0 = check_int("n0", n0, minimum=1, maximum=MAX_SAMPLES)
    selection = _noise_counts(model, images, sigma, n0, seed=seed, batch_size=batch_size, stream=0)
    counts = _noise_counts(model, images, sigma, n, seed=seed, batch_size=batch_size, stream=1)
    top = np.argmax(selection, axis=1)
    n_a = counts[np.arange(len(top)), top]
    p_lower = clopper_pearson_lower(n_a, n, alpha)
    abstained = p_lower < 0.5
    radius = np.where(abstained, 0.0, sigma * scipy.stats.norm.ppf(np.where(abstained, 0.5, p_lower)))
    return _SmoothingResult(np.where(abstained, -1, top), p_lower, radius, abstained, counts, selection,
                           sigma, n0, n, alpha, ClassNames.of(model))


def certified_accuracy(result: _SmoothingResult, labels: Any, radii: Sequence[float] | float) -> np.ndarray:
    """Share of images that are certified correct at each radius: not abstained, the right class,
    and a certified radius at least that large (Cohen et al.'s "approximate certified accuracy").

    Args:
        result: from :func:`certify`.
        labels: ``(N,)`` true classes: indices, or the model's class names (as everywhere in the
            course; a result made without a model takes indices only).
        radii: L2 radii in grey levels (>= 0), one or several.

    Returns:
        float64 array, one accuracy in 0..1 per radius (non-increasing in the radius).
    """
    n = len(result.predicted)
    if np.ndim(labels) and np.size(labels) != n:
        raise ValueError(f"got {np.size(labels)} labels for {n} certified images")
    if result.classes is not None:
        labels = np.asarray(result.classes.indices(labels, n, name="labels"))
    else:
        labels = np.asarray(labels, dtype=object).reshape(-1)
        if labels.shape != result.predicted.shape:
            raise ValueError(f"got {labels.size} labels for {n} certified images")
        labels = np.asarray([check_int("labels", v, minimum=0) for v in labels], dtype=np.int64)
    values = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    for r in values:
        check_number("radius", r, minimum=0)
    right = (~result.abstained) & (result.predicted == labels)
    return np.array([float(np.mean(right & (result.radius >= r))) for r in values])

"""Detecting adversarial examples by feature squeezing, and the adaptive attack that evades it.

**Feature squeezing** (Xu, Evans & Qi, NDSS 2018): an adversarial change lives in detail a person
would not miss, so *squeeze* the picture (fewer grey levels, a small median filter) and ask the
model again. On a clean picture its answer hardly moves; on an attacked one it often does. The
detector's score of a picture is the largest L1 distance between the model's softmax on the
picture and on each squeezed copy (0..2); a picture scoring above a threshold, chosen on clean
pictures for a false-positive rate, is flagged.

- :class:`BitDepth` and :class:`MedianFilter`: the squeezers (Keras layers on pixels 0..255).
- :func:`_squeeze_score` (tensors, in a graph) and :func:`detector_scores` (NumPy, batched).
- :func:`threshold_for_fpr` and :func:`detection_rate`.
- :func:`adaptive_step`, :func:`adaptive_attack`: an attacker who knows the detector (Carlini &
  Wagner, AISec 2017; He et al., 2017 for feature squeezing) fools the classifier *and* keeps the
  score under the threshold, taking the squeezers' gradient as the identity
  (:func:`~course_utils.core.ops.straight_through`, BPDA): the rounding of :class:`BitDepth` has
  no gradient of its own. The step is compiled and run by :mod:`course_utils.core.loop`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

from course_utils.attacks.pgd import default_step_size
from course_utils.checks import WrongTypeError, check_gradient_memory, check_int, check_number, describe, effective_seed
from course_utils.core import ops
from course_utils.core.loop import compiled
from course_utils.io.images import as_batch
from course_utils.models.imagenet import ClassNames

__all__ = [
    "BitDepth", "MedianFilter", "default_squeezers", "detector_scores", "threshold_for_fpr",
    "detection_rate", "adaptive_step", "adaptive_attack",
]


class BitDepth(keras.layers.Layer):
    """Keep ``bits`` bits of each pixel (1..8): ``2**bits`` grey levels, evenly spread over 0..255.

    ``round(x / 255 * (2**bits - 1)) / (2**bits - 1) * 255`` (Xu et al.'s bit-depth reduction on
    0..1 pixels, in grey levels). ``bits=8`` rounds to whole grey levels. No gradient (rounding).
    """

    def __init__(self, bits: int = 5, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"bit_depth_{bits}")
        super().__init__(**kwargs)
        self.bits = check_int("bits", bits, minimum=1, maximum=8)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return ops.round_pixels(x, self.bits)

    def get_config(self) -> dict:
        return {**super().get_config(), "bits": self.bits}


class MedianFilter(keras.layers.Layer):
    """Replace each pixel by the median of the ``size`` x ``size`` window around it, per channel.

    As ``scipy.ndimage.median_filter(x, size)`` (mode ``"reflect"``): edges mirrored, an even
    window reaching one more pixel up/left than down/right, and of an even count of values the
    upper of the two middle ones. ``size=1`` changes nothing.
    """

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"median_{size}x{size}")
        super().__init__(**kwargs)
        self.size = check_int("median filter size", size, minimum=1, maximum=15)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        k = self.size
        before, after = k // 2, k - 1 - k // 2
        padded = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]], mode="SYMMETRIC")
        patches = tf.image.extract_patches(padded, [1, k, k, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
        shape = tf.shape(x)
        patches = tf.reshape(patches, [shape[0], shape[1], shape[2], k * k, x.shape[-1]])
        return tf.sort(patches, axis=3)[:, :, :, (k * k) // 2, :]

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


def default_squeezers() -> tuple[keras.layers.Layer, ...]:
    """The course's squeezers for the 48x48 faces: 5 bits (32 grey levels) and a 2x2 median,
    Xu et al.'s choice for CIFAR-10's small colour pictures."""
    return (BitDepth(5), MedianFilter(2))


def _check_squeezers(squeezers: Any) -> tuple:
    if squeezers is not None and (isinstance(squeezers, (str, bytes)) or not hasattr(squeezers, "__iter__")):
        raise WrongTypeError(f"squeezers must be a list of Keras layers such as [BitDepth(5), MedianFilter(2)], "
                             f"got {describe(squeezers)}")
    squeezers = default_squeezers() if squeezers is None else tuple(squeezers)
    if not squeezers or not all(isinstance(s, keras.layers.Layer) for s in squeezers):
        raise WrongTypeError(f"squeezers must be one or more Keras layers such as BitDepth(5), MedianFilter(2) (a "
                             f"plain function: wrap it in keras.layers.Lambda); got {squeezers!r}")
    return squeezers


def _squeeze_score(model: Any, x: tf.Tensor, squeezers: Sequence[Any]) -> tf.Tensor:
    """``(N,)`` the detector's score, 0..2: ``max_s || softmax(model(x)) - softmax(model(s(x))) ||_1``.

    Tensors in and out (usable in a graph). ``x``: float32 pixels 0..255 ``(N, H, W, C)``. With
    squeezers passed straight through (:func:`~course_utils.core.ops.straight_through`) the score
    has the BPDA gradient.
    """
    n = tf.shape(x)[0]
    squeezed = [tf.convert_to_tensor(x, tf.float32)] + [s(x) for s in squeezers]
    p = tf.reshape(tf.nn.softmax(model(tf.concat(squeezed, axis=0), training=False)), [len(squeezed), n, -1])
    return tf.reduce_max(tf.reduce_sum(tf.abs(p[1:] - p[:1]), axis=-1), axis=0)


def detector_scores(model: Any, images: Any, squeezers: Sequence[Any] | None = None, *, batch_size: int = 256) -> np.ndarray:
    """The detector's score of each image, ``(N,)`` float32 in 0..2 (see :func:`_squeeze_score`).

    ``images``: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255; ``squeezers``: default
    :func:`default_squeezers`.
    """
    squeezers = _check_squeezers(squeezers)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    x = as_batch(images, model)
    return np.concatenate([_squeeze_score(model, tf.constant(x[i : i + batch_size]), squeezers).numpy()
                           for i in range(0, len(x), batch_size)] or [np.zeros(0, np.float32)])


def threshold_for_fpr(clean_scores: Any, fpr: float = 0.05) -> float:
    """The threshold that flags (score > threshold) at most a share ``fpr`` of ``clean_scores``.

    With ``n`` clean scores it is the ``floor(fpr * n) + 1``-th largest, so exactly
    ``floor(fpr * n)`` are above it when the scores are distinct (fewer with ties).

    Raises:
        ValueError: ``fpr`` not strictly between 0 and 1, or no finite scores.
    """
    fpr = check_number("fpr (false-positive rate)", fpr, minimum=0.0, maximum=1.0, above=True, below=True)
    scores = np.sort(np.asarray(clean_scores, dtype=np.float64).reshape(-1))
    if scores.size == 0 or not np.all(np.isfinite(scores)):
        raise ValueError(f"clean_scores must be one or more finite numbers, got {scores.size} value(s)")
    return float(scores[scores.size - 1 - int(np.floor(fpr * scores.size))])


def detection_rate(scores: Any, threshold: float) -> float:
    """The share of ``scores`` above ``threshold`` (flagged), 0..1: on clean pictures the
    false-positive rate, on attacked ones the detection rate."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise ValueError("detection_rate needs at least one score")
    return float(np.mean(scores > check_number("threshold", threshold)))


def adaptive_step(model, x, x0, i, seed, data, *, squeezers: tuple = ((BitDepth, 5), (MedianFilter, 2)),
                  weight: float = 20.0, kappa: float = 2.0):
    """One step of the adaptive attack: a sign step down C&W's margin plus the detector's score over the threshold."""
    labels, threshold = tf.cast(data["labels"], tf.int32), data["threshold"]
    bpda = [lambda v, squeeze=_squeezer(k): ops.straight_through(v, squeeze(v)) for k in squeezers]  # forwards only
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        gap = ops.logit_margin(model(x, training=False), labels)             # > 0 while the true class leads
        score = _squeeze_score(model, x, bpda)                               # what the detector measures
        loss = tf.maximum(gap, -kappa) + weight * tf.nn.relu(score - threshold)
    grad = tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    x_next = x - ops.per_example(data["step_size"], x) * tf.sign(grad)
    x_next = tf.clip_by_value(ops.project(x_next, x0, data["epsilon"], "linf"), 0.0, 255.0)  # budget, valid pixels
    return x_next, loss, tf.stack([score, gap], axis=1), (gap < 0) & (score <= threshold)


def _setting(squeezer: Any) -> Any:
    """A squeezer as a setting of the compiled step: the course's by kind and size (equal ones share
    one graph), any other by itself."""
    if type(squeezer) is BitDepth:
        return BitDepth, squeezer.bits
    if type(squeezer) is MedianFilter:
        return MedianFilter, squeezer.size
    return squeezer


def _squeezer(setting: Any) -> Any:
    """The squeezer of a setting made by :func:`_setting`."""
    return setting[0](setting[1]) if isinstance(setting, tuple) else setting


def adaptive_attack(
    model: Any,
    images: Any,
    labels: Any,
    epsilon: float,
    threshold: float,
    *,
    squeezers: Sequence[Any] | None = None,
    steps: int = 100,
    step_size: float | None = None,
    weight: float = 20.0,
    kappa: float = 2.0,
    seed: int = 0,
    batch_size: int = 256,
) -> np.ndarray:
    """Untargeted L-inf attack that fools ``model`` while keeping the squeezing score <= ``threshold``.

    :func:`adaptive_step` minimises ``max(Z_y - max_{j != y} Z_j, -kappa) + weight * max(score - threshold, 0)``
    (Carlini & Wagner's logit margin of the true class ``y``, and the squeezing score of
    :func:`_squeeze_score` through BPDA squeezers) by sign steps from a seeded random start,
    projected into the budget and 0..255; each image stays where it first succeeds (fooled and
    under the threshold), as a careful attacker would send it.

    Args:
        model: classifier, pixels 0..255 -> logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: true classes (indices or names), one or one per image.
        epsilon: the budget, grey levels (> 0).
        threshold: the detector's threshold (:func:`threshold_for_fpr`), 0..2.
        squeezers: the detector's squeezers (default :func:`default_squeezers`).
        steps: number of steps (>= 1); step_size: grey levels per step, default ``2.5 * epsilon / steps``.
        weight: weight of the detector term; kappa: logit margin aimed for (>= 0).
        seed: seed of the random start (plus ``COURSE_SEED``).

    Returns:
        float32 ``(N, H, W, C)``: the adversarial images, within ``epsilon`` of the originals.
    """
    epsilon = check_number("epsilon", epsilon, minimum=0.0, above=True)
    threshold = check_number("threshold", threshold, minimum=0.0, maximum=2.0)
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    rate = default_step_size(epsilon, steps) if step_size is None else check_number("step_size", step_size, minimum=0.0, above=True)
    squeezers = tuple(_setting(s) for s in _check_squeezers(squeezers))
    weight, kappa = check_number("weight", weight, minimum=0.0), check_number("kappa", kappa, minimum=0.0)
    seed = effective_seed(seed)
    check_gradient_memory(model, images, batch_size=batch_size, copies=1 + len(squeezers))
    x = as_batch(images, model)
    y = np.asarray(ClassNames.of(model).indices(labels, len(x), name="labels"), dtype=np.int32)
    loop = compiled(adaptive_step, model, stop_at_success=True, squeezers=squeezers, weight=weight, kappa=kappa)
    out = []
    for b, i in enumerate(range(0, len(x), batch_size)):
        xb = tf.constant(x[i : i + batch_size])
        m = int(xb.shape[0])
        data = {"labels": y[i : i + batch_size], "epsilon": np.full(m, epsilon, np.float32),
                "threshold": np.full(m, threshold, np.float32), "step_size": np.full(m, rate, np.float32)}
        start = ops.random_start(xb, data["epsilon"], "linf", tf.constant([seed, b]))
        out.append(loop.advance(xb, data, steps=steps, seed=b, start=start))  # in chunks: Stop works
    return np.concatenate(out)

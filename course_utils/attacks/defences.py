"""Lesson 4's and lesson 7's defences, and the attacks that test them honestly.

- Input transformations, Keras layers on pixels 0..255 ``(N, H, W, C)``: :class:`RoundPixels`,
  :class:`JpegRecompress`, :class:`RandomBlur`; :func:`defend` puts one in front of a model, and
  :class:`StraightThrough` passes its gradient straight through (BPDA, Athalye, Carlini & Wagner, 2018).
- Adversarial training (Madry et al., 2018): :class:`AdversarialTraining`, PGD inside ``train_step``.
- Feature squeezing (Xu, Evans & Qi, NDSS 2018): the squeezers :class:`BitDepth` and
  :class:`MedianFilter`, :func:`detector_scores`, :func:`threshold_for_fpr`, :func:`detection_rate`;
  and the adaptive attack that evades it (Carlini & Wagner, AISec 2017; He et al., 2017),
  :func:`adaptive_attack` (its step: :func:`_adaptive_step`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

from course_utils.attacks.pgd import default_step_size, pgd_perturb
from course_utils.checks import (
    WrongTypeError, check_gradient_memory, check_int, check_number, check_seed, describe, effective_seed,
)
from course_utils.core import ops
from course_utils.core.loop import compiled
from course_utils.io.images import as_batch
from course_utils.models.imagenet import ClassNames

__all__ = [
    "RoundPixels", "JpegRecompress", "RandomBlur", "StraightThrough", "defend", "AdversarialTraining",
    "BitDepth", "MedianFilter", "default_squeezers", "detector_scores", "threshold_for_fpr", "detection_rate",
    "adaptive_attack",
]


class RoundPixels(keras.layers.Layer):
    """Round to whole grey levels in 0..255, as saving the picture as 8-bit (uint8) would.

    Its gradient is zero almost everywhere (TensorFlow defines none), so an attack that
    differentiates through it learns nothing.
    """

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return ops.round_pixels(x)


class JpegRecompress(keras.layers.Layer):
    """Encode each picture as a JPEG of the given ``quality`` (1..100) and decode it again.

    JPEG drops the fine detail people do not notice, where much of an adversarial change
    lives. There is no gradient through it (the pixels become bytes).
    """

    def __init__(self, quality: int = 75, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quality = check_int("JPEG quality", quality, minimum=1, maximum=100)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return ops.jpeg(x, self.quality, chroma_downsampling=False)  # colour kept at full resolution


class RandomBlur(keras.layers.Layer):
    """Blur every picture with a Gaussian of a *random* width, drawn anew at every call.

    ``sigma`` is drawn uniformly from ``low..high`` pixels, per picture. The randomness comes
    from a seeded Keras ``SeedGenerator``: a freshly built layer with the same ``seed`` gives the
    same sequence of draws. Differentiable, but every gradient is taken for one random draw:
    an attack needs the average over many (expectation over transformation).
    """

    def __init__(self, low: float = 0.5, high: float = 1.5, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.low = check_number("low", low, minimum=0.0, maximum=10.0, above=True)
        self.high = check_number("high", high, minimum=self.low, maximum=10.0)
        self.seed = check_seed(seed)
        self.radius = max(1, int(np.ceil(3 * self.high)))
        self.generator = keras.random.SeedGenerator(effective_seed(self.seed))  # plus COURSE_SEED

    def call(self, x: tf.Tensor) -> tf.Tensor:
        sigma = keras.random.uniform(tf.shape(x)[:1], self.low, self.high, seed=self.generator)
        return ops.gaussian_blur(x, sigma, self.radius)


class StraightThrough(keras.layers.Layer):
    """BPDA: ``transform`` forwards, the identity backwards (the "straight-through" gradient).

    The output equals ``transform(x)``; its gradient with respect to ``x`` is taken as if the
    transform had not been there, which is a good approximation for any transform that keeps
    the picture roughly as it was (rounding, JPEG, a mild blur).
    """

    def __init__(self, transform: keras.layers.Layer, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"bpda_{transform.name}")
        super().__init__(**kwargs)
        self.transform = transform

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return ops.straight_through(x, self.transform(x))


def defend(model: keras.Model, transform: keras.layers.Layer) -> keras.Model:
    """``model`` with ``transform`` in front of it: a Keras model, pixels in, logits out.

    ``defend(model, JpegRecompress())`` is what a defender deploys; the attacker who knows it
    attacks ``defend(model, StraightThrough(JpegRecompress()))`` (same answers, usable gradient).
    The model's own weights are shared, not copied.
    """
    pixels = keras.Input(model.input_shape[1:], name="pixels")
    return keras.Model(pixels, model(transform(pixels)), name=f"{model.name}_{transform.name}")


class AdversarialTraining(keras.Model):
    """Train ``model`` on PGD-perturbed batches (Madry et al., 2018), inside the compiled step.

    Compile and ``fit`` it like any Keras model; ``model`` (the wrapped classifier, pixels ->
    logits) is what gets trained, and what to save. Every batch is first attacked with
    :func:`~course_utils.attacks.pgd.pgd_perturb` (L-inf, untargeted, random start seeded by ``seed``
    and the optimizer's step count, its default step size) against the current weights, then
    ``(1 - clean_weight) * CE(attacked) + clean_weight * CE(clean)`` is minimised, in the same graph.

    Args:
        model: the classifier to train (logits out).
        epsilon: the training budget in pixels; change it during training with
            :meth:`set_epsilon` (e.g. a warm-up ramp).
        steps: PGD steps per batch (>= 1).
        clean_weight: share of the loss taken on the clean batch, 0..1 (0: Madry's pure adversarial loss).
        seed: seed of the random starts.
    """

    def __init__(
        self,
        model: keras.Model,
        epsilon: float,
        *,
        steps: int = 5,
        clean_weight: float = 0.0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        epsilon = check_number("epsilon", epsilon, minimum=0.0)
        self.model = model
        self.steps = check_int("steps", steps, minimum=1)
        self.clean_weight = check_number("clean_weight", clean_weight, minimum=0.0, maximum=1.0)
        self.seed = check_seed(seed)
        self.epsilon = keras.Variable(epsilon, trainable=False, dtype="float32", name="epsilon")

    def set_epsilon(self, epsilon: float) -> None:
        """Change the training budget (pixels); the compiled step reads it every batch."""
        self.epsilon.assign(check_number("epsilon", epsilon, minimum=0.0))

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.model(x, training=training)

    def perturb(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """The PGD batch the next training step would use (same graph code as in ``train_step``)."""
        seed = tf.stack([tf.constant(self.seed, tf.int32), tf.cast(self.optimizer.iterations, tf.int32)])
        return pgd_perturb(self.model, x, tf.reshape(y, [-1]), self.epsilon, steps=self.steps, seed=seed)

    def train_step(self, data: Any) -> dict:
        x, y = data[0], data[1]
        x_adv = self.perturb(x, y)
        with tf.GradientTape() as tape:
            logits = self.model(x_adv, training=True)
            loss = self.compute_loss(x=x_adv, y=y, y_pred=logits)
            if self.clean_weight > 0:
                clean = self.compute_loss(x=x, y=y, y_pred=self.model(x, training=True))
                loss = (1.0 - self.clean_weight) * loss + self.clean_weight * clean
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        for metric in self.metrics:  # the loss tracker, then the compiled metrics (on the attacked batch)
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, logits)
        return self.get_metrics_result()


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


def default_squeezers() -> tuple[keras.layers.Layer, ...]:
    """The course's squeezers for the 48x48 faces: 5 bits (32 grey levels) and a 2x2 median,
    Xu et al.'s choice for CIFAR-10's small colour pictures."""
    return (BitDepth(5), MedianFilter(2))


def _check_squeezers(squeezers: Any) -> tuple:
    squeezers = default_squeezers() if squeezers is None else squeezers
    layers = () if isinstance(squeezers, (str, bytes)) or not hasattr(squeezers, "__iter__") else tuple(squeezers)
    if not layers or not all(isinstance(s, keras.layers.Layer) for s in layers):
        raise WrongTypeError(f"squeezers must be one or more Keras layers such as [BitDepth(5), MedianFilter(2)] (a "
                             f"plain function: wrap it in keras.layers.Lambda); got {describe(squeezers)}")
    return layers


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


def detector_scores(model: Any, images: Any, squeezers: Sequence[Any] | None = None) -> np.ndarray:
    """The detector's score of each image, ``(N,)`` float32 in 0..2 (see :func:`_squeeze_score`).

    ``images``: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255; ``squeezers``: default
    :func:`default_squeezers`. Runs 256 images per call.
    """
    squeezers = _check_squeezers(squeezers)
    x = as_batch(images, model)
    return np.concatenate([_squeeze_score(model, tf.constant(x[i : i + 256]), squeezers).numpy()
                           for i in range(0, len(x), 256)] or [np.zeros(0, np.float32)])


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


def _adaptive_step(model, x, x0, i, seed, data, *, weight: float = 20.0, kappa: float = 2.0):
    """One step of the adaptive attack: a sign step down C&W's margin plus the detector's score over the threshold."""
    labels, threshold = tf.cast(data["labels"], tf.int32), data["threshold"]
    bpda = [lambda v, squeeze=s: ops.straight_through(v, squeeze(v)) for s in default_squeezers()]  # forwards only
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        gap = ops.logit_margin(model(x, training=False), labels)             # > 0 while the true class leads
        score = _squeeze_score(model, x, bpda)                               # what the detector measures
        loss = tf.maximum(gap, -kappa) + weight * tf.nn.relu(score - threshold)
    grad = tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    x_next = x - ops.per_example(data["step_size"], x) * tf.sign(grad)
    x_next = tf.clip_by_value(ops.project(x_next, x0, data["epsilon"], "linf"), 0.0, 255.0)  # budget, valid pixels
    return x_next, loss, tf.stack([score, gap], axis=1), (gap < 0) & (score <= threshold)


def adaptive_attack(model: Any, images: Any, labels: Any, epsilon: float, threshold: float, *, steps: int = 100,
                    seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """Untargeted L-inf attack that fools ``model`` while keeping the squeezing score (of
    :func:`default_squeezers`) <= ``threshold``.

    :func:`_adaptive_step` minimises ``max(Z_y - max_{j != y} Z_j, -2) + 20 * max(score - threshold, 0)``
    (Carlini & Wagner's logit margin of the true class ``y`` with kappa = 2, and the squeezing score
    of :func:`_squeeze_score` through BPDA squeezers) by sign steps of
    :func:`~course_utils.attacks.pgd.default_step_size` from a seeded random start, projected into
    the budget and 0..255; each image stays where it first succeeds (fooled and under the
    threshold), as a careful attacker would send it.

    Args:
        model: classifier, pixels 0..255 -> logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: true classes (indices or names), one or one per image.
        epsilon: the budget, grey levels (> 0).
        threshold: the detector's threshold (:func:`threshold_for_fpr`), 0..2.
        steps: number of steps (>= 1); batch_size: images per compiled call (>= 1).
        seed: seed of the random start (plus ``COURSE_SEED``).

    Returns:
        float32 ``(N, H, W, C)``: the adversarial images, within ``epsilon`` of the originals.
    """
    epsilon = check_number("epsilon", epsilon, minimum=0.0, above=True)
    threshold = check_number("threshold", threshold, minimum=0.0, maximum=2.0)
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = effective_seed(seed)
    check_gradient_memory(model, images, batch_size=batch_size, copies=1 + len(default_squeezers()))
    x = as_batch(images, model)
    y = np.asarray(ClassNames.of(model).indices(labels, len(x), name="labels"), dtype=np.int32)
    loop = compiled(_adaptive_step, model, stop_at_success=True)
    out = []
    for b, i in enumerate(range(0, len(x), batch_size)):
        xb = tf.constant(x[i : i + batch_size])
        m = int(xb.shape[0])
        data = {"labels": y[i : i + batch_size], "epsilon": np.full(m, epsilon, np.float32),
                "threshold": np.full(m, threshold, np.float32),
                "step_size": np.full(m, default_step_size(epsilon, steps), np.float32)}
        start = ops.random_start(xb, data["epsilon"], "linf", tf.constant([seed, b]))
        out.append(loop.advance(xb, data, steps=steps, seed=b, start=start))  # in chunks: Stop works
    return np.concatenate(out)

"""Defences against adversarial examples, and the attacks that test them honestly.

Two kinds of defence, as lesson 4 teaches them:

**Input transformations** change the picture before the model sees it, hoping to wash the
attacker's change out: :class:`RoundPixels` (save as whole grey levels), :class:`JpegRecompress`
(save as a JPEG) and :class:`RandomBlur` (a Gaussian blur of random width).
:func:`defend` puts one in front of a model. Attacked through such a model, two of them hide the
gradient (rounding and JPEG have none: gradient *masking*) and one makes it random. Athalye,
Carlini & Wagner (2018) showed that this is no protection against an attacker who knows the
defence:

- *BPDA* (backward pass differentiable approximation): run the transform forwards, but take its
  gradient as if it were the identity. :class:`StraightThrough` wraps a transform that way;
  ``defend(model, StraightThrough(JpegRecompress()))`` is the model the adaptive attacker uses.
- *EOT* (expectation over transformation): against a random transform, average the loss over
  several draws (``samples=`` of :func:`course_utils.attacks.pgd.pgd_perturb`).

**Adversarial training** (Madry et al., 2018) trains on attacked images: :class:`AdversarialTraining`
is a Keras model whose ``train_step`` perturbs every batch with PGD inside the compiled step.

Every transform is a Keras layer on float32 pixels 0..255, ``(N, H, W, C)``, returning the same shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

from course_utils.attacks.pgd import check_norm, pgd_perturb
from course_utils.core import ops
from course_utils.core.ops import Norm
from course_utils.checks import check_int, check_number, check_seed, effective_seed

__all__ = ["RoundPixels", "JpegRecompress", "RandomBlur", "StraightThrough", "defend", "AdversarialTraining"]


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

    def get_config(self) -> dict:
        return {**super().get_config(), "quality": self.quality}


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

    def get_config(self) -> dict:
        return {**super().get_config(), "low": self.low, "high": self.high, "seed": self.seed}


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


def defend(model: keras.Model, transform: keras.layers.Layer, *, name: str | None = None) -> keras.Model:
    """``model`` with ``transform`` in front of it: a Keras model, pixels in, logits out.

    ``defend(model, JpegRecompress())`` is what a defender deploys; the attacker who knows it
    attacks ``defend(model, StraightThrough(JpegRecompress()))`` (same answers, usable gradient).
    The model's own weights are shared, not copied.
    """
    pixels = keras.Input(model.input_shape[1:], name="pixels")
    return keras.Model(pixels, model(transform(pixels)), name=name or f"{model.name}_{transform.name}")


class AdversarialTraining(keras.Model):
    """Train ``model`` on PGD-perturbed batches (Madry et al., 2018), inside the compiled step.

    Compile and ``fit`` it like any Keras model; ``model`` (the wrapped classifier, pixels ->
    logits) is what gets trained, and what to save. Every batch is first attacked with
    :func:`course_utils.attacks.pgd.pgd_perturb` (untargeted, random start, seeded by ``seed`` and the
    optimizer's step count) against the current weights, then the loss on
    ``(1 - clean_weight) * CE(attacked) + clean_weight * CE(clean)`` is minimised. The attack runs
    in the same graph as the weight update: no Python loop per example or per step.

    Args:
        model: the classifier to train (logits out).
        epsilon: the training budget in pixels; change it during training with
            :meth:`set_epsilon` (e.g. a warm-up ramp).
        steps: PGD steps per batch.
        step_size: pixels per PGD step; default ``2.5 * epsilon / steps``.
        norm: ``"linf"`` or ``"l2"``.
        clean_weight: share of the loss taken on the clean batch (0: Madry's pure adversarial loss).
        seed: seed of the random starts.
    """

    def __init__(
        self,
        model: keras.Model,
        epsilon: float,
        *,
        steps: int = 5,
        step_size: float | None = None,
        norm: Norm = "linf",
        clean_weight: float = 0.0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        epsilon = check_number("epsilon", epsilon, minimum=0.0)
        self.model = model
        self.steps = check_int("steps", steps, minimum=1)
        self.step_size = None if step_size is None else check_number("step_size", step_size, minimum=0.0, above=True)
        self.norm = check_norm(norm)
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
        return pgd_perturb(self.model, x, tf.reshape(y, [-1]), self.epsilon, steps=self.steps,
                           step_size=self.step_size, norm=self.norm, seed=seed)

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

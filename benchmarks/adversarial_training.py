"""Workload 5: one epoch of adversarial training (lesson 4), compiled vs a per-example eager PGD loop.

- course: :class:`course_utils.attacks.defences.AdversarialTraining` (``fit`` for one epoch): every batch
  is attacked with PGD *inside* the compiled training step (:func:`course_utils.attacks.pgd.pgd_perturb`,
  a ``tf.while_loop``), then the weights take one Adam step.
- tutorial-style: the same epoch written as tutorials write it: for every batch, attack each face
  on its own with an eager ``GradientTape`` PGD loop (random start, sign steps, projection and
  clip per step), stack the attacked faces, then one eager training step.

Both train lesson 4's robust architecture (random initial weights: the speed does not depend on
them) on faces made from the two offline sample faces (mirrored, shifted, re-exposed, seeded), so
the workload needs no face data set. The sides draw different random starts, so their losses
agree only roughly (reported as a check, not compared).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from benchmarks.measure import PeakMemory, interleave, timed
from benchmarks.common import Context, Plan, Side, WorkloadResult
from course_utils.attacks.defences import AdversarialTraining
from course_utils.io.images import sample_face
from course_utils.models.faces import ROBUST_FILTERS, build_gender_cnn
from tools.facetrain.training import augment_faces

__all__ = ["EpochPlan", "EPOCH_PLANS", "eager_adversarial_epoch", "adversarial_training_workload"]

EPSILON = 4.0  # grey levels, lesson 4's training budget


@dataclass(frozen=True)
class EpochPlan:
    faces: int  # training faces in the epoch
    batch: int
    steps: int  # PGD steps per batch


#: Sizes per benchmark mode: the full mode trains lesson 4's recipe (PGD-5, batch 32) on 256 faces;
#: quick mode one batch of 16 with one PGD step (a few seconds in all).
EPOCH_PLANS = {"full": EpochPlan(faces=256, batch=32, steps=5), "quick": EpochPlan(faces=16, batch=16, steps=1)}


def _faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic training faces from the two sample faces, and alternating labels."""
    base = np.stack([sample_face("astronaut"), sample_face("grace_hopper")])
    rng = np.random.default_rng(seed)
    x = augment_faces(base[np.arange(n) % 2], rng)
    return x, (np.arange(n) // 2 % 2).astype(np.int64)


def _fresh_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_gender_cnn(ROBUST_FILTERS, name="gender_cnn_robust")


def eager_adversarial_epoch(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epsilon: float,
    steps: int,
    batch_size: int,
    seed: int = 0,
) -> float:
    """One adversarial-training epoch, tutorial-style: eager PGD one face at a time, then an eager step.

    Returns the mean training loss over the batches (on the attacked faces).
    """
    rng = np.random.default_rng(seed)
    step_size = 2.5 * epsilon / steps
    losses = []
    for start in range(0, len(images), batch_size):
        xb, yb = images[start : start + batch_size], labels[start : start + batch_size]
        attacked = []
        for x0, y in zip(xb, yb):  # one face at a time
            x0 = tf.constant(x0[None], tf.float32)
            label = tf.constant([y], tf.int32)
            x = tf.clip_by_value(x0 + rng.uniform(-epsilon, epsilon, size=x0.shape).astype(np.float32), 0.0, 255.0)
            for _ in range(steps):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=model(x, training=False))
                grad = tape.gradient(loss, x)
                x = tf.clip_by_value(x + step_size * tf.sign(grad), x0 - epsilon, x0 + epsilon)
                x = tf.clip_by_value(x, 0.0, 255.0)
            attacked.append(x)
        x_adv = tf.concat(attacked, axis=0)
        with tf.GradientTape() as tape:
            logits = model(x_adv, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant(yb, tf.int32), logits=logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        losses.append(float(loss))
    return float(np.mean(losses))


def _course(plan: EpochPlan, x: np.ndarray, y: np.ndarray) -> tuple[Callable[[], float], AdversarialTraining]:
    trainer = AdversarialTraining(_fresh_model(), EPSILON, steps=plan.steps, seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(plan.batch)

    def run() -> float:
        history = trainer.fit(batches, epochs=1, shuffle=False, verbose=0)
        return float(history.history["loss"][-1])

    return run, trainer


def _baseline(plan: EpochPlan, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    model, optimizer = _fresh_model(), keras.optimizers.Adam(1e-3)
    return lambda: eager_adversarial_epoch(model, optimizer, x, y, epsilon=EPSILON, steps=plan.steps, batch_size=plan.batch)


def adversarial_training_workload(ctx: Context, plan: Plan) -> WorkloadResult:
    """Workload 5: one adversarial-training epoch of lesson 4's robust face CNN, both ways.

    The first call of each side is its warm-up (tracing for the course; the first eager calls
    for the baseline), as in the other workloads; later calls reuse the compiled step.
    """
    sizes = EPOCH_PLANS[plan.mode]
    x, y = _faces(sizes.faces)
    course, trainer = _course(sizes, x, y)
    baseline = _baseline(sizes, x, y)
    with PeakMemory() as memory:
        c_first, _ = timed(course) if plan.warmup else (None, None)
        b_first, _ = timed(baseline) if plan.warmup else (None, None)
        seconds, outputs = interleave({"course": course, "baseline": baseline}, plan.heavy_reps)
    batches = -(-sizes.faces // sizes.batch)
    return WorkloadResult(
        name="adversarial_training_epoch",
        title=(f"adversarial training, 1 epoch: {sizes.faces} faces, batch {sizes.batch}, PGD-{sizes.steps} at "
               f"epsilon={EPSILON:g}, {trainer.model.name} ({trainer.model.count_params():,} parameters)"),
        steps=batches, batch=sizes.batch, reps=plan.heavy_reps,
        course=Side("AdversarialTraining.fit: PGD inside the compiled train_step (tf.while_loop)", batches,
                    seconds["course"], c_first, batches if plan.warmup else None),
        baseline=Side("per-example eager GradientTape PGD loop, then an eager training step, per batch", batches,
                      seconds["baseline"], b_first, batches if plan.warmup else None),
        extra={"pgd_steps": sizes.steps, "faces": sizes.faces,
               "course_first_call_s": c_first, "baseline_first_call_s": b_first},
        check={"course_final_loss": outputs["course"][-1], "baseline_final_loss": outputs["baseline"][-1],
               "both_finite": bool(np.isfinite(outputs["course"][-1]) and np.isfinite(outputs["baseline"][-1]))},
    ).remember(memory)

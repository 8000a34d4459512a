"""Projected gradient descent (PGD) as a graph-level building block, and robust accuracy.

PGD (Madry et al., 2018) is lesson 2's iterative attack with a random start: begin at a random
point of the budget, then repeat "step along the normalised gradient of the loss, project back
into the budget, clip to valid pixels". Here it is written twice over:

- :func:`pgd_perturb` takes tensors and returns a tensor (the adversarial batch). It is a
  ``tf.while_loop`` with stateless, seeded randomness and no value sent back to Python, so it
  can be called eagerly, inside any ``tf.function`` and inside a Keras ``train_step``
  (adversarial training, :mod:`course_utils.defences`).
- :func:`pgd_attack` and :func:`robust_accuracy` are the NumPy-facing helpers for notebooks.
  They run one compiled function per model and structure (norm, random start, targeted,
  samples); the budget, step size, number of steps and seed enter as tensors, so a new epsilon
  never traces the graph again (:func:`compiled_pgd` exposes the trace count).

Units: pixels 0..255 everywhere; ``epsilon=4.0`` allows every pixel to move by four grey levels
(``norm="linf"``), or the whole change to have an L2 length of 4 grey levels (``norm="l2"``).
"""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.constraints import Norm, check_norm, clip_pixels, normalize, per_example, project
from course_utils.seeds import seed_offset

__all__ = [
    "pgd_perturb",
    "default_step_size",
    "resolve_labels",
    "PGDResult",
    "CompiledPGD",
    "compiled_pgd",
    "pgd_attack",
    "robust_accuracy",
]

Label = int | str | np.integer


def default_step_size(epsilon: Any, steps: Any) -> Any:
    """The MadryLab robustness library's step size (Engstrom et al., 2019), ``2.5 * epsilon / steps``:
    enough to cross the budget and come back."""
    return 2.5 * epsilon / steps


def _seed_pair(seed: Any) -> tf.Tensor:
    """An int or an int32 tensor of shape ``()`` or ``(2,)`` -> the ``(2,)`` seed of stateless ops."""
    s = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    if s.shape.rank == 0:
        s = tf.stack([s, tf.constant(0, tf.int32)])
    return tf.reshape(s, [2]) + tf.constant([seed_offset(), 0], tf.int32)  # COURSE_SEED, course_utils.seeds


def _random_start(x: tf.Tensor, eps: tf.Tensor, norm: str, seed: tf.Tensor) -> tf.Tensor:
    """A uniformly random point of the budget around ``x`` (per example), in valid pixels."""
    e = per_example(eps, x)
    if norm == "linf":
        noise = tf.random.stateless_uniform(tf.shape(x), seed=seed, minval=-1.0, maxval=1.0) * e
    else:  # a direction uniform on the sphere, a radius with the density of the ball
        direction = tf.random.stateless_normal(tf.shape(x), seed=seed)
        axes = list(range(1, x.shape.rank))
        direction /= tf.maximum(tf.sqrt(tf.reduce_sum(tf.square(direction), axis=axes, keepdims=True)), 1e-12)
        dims = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), tf.float32)
        u = tf.random.stateless_uniform(tf.shape(x)[:1], seed=seed + 1)
        radius = per_example(tf.pow(u, 1.0 / dims), x) * e
        noise = direction * radius
    return clip_pixels(x + noise)


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
    targeted: bool = False,
    samples: int = 1,
    stop_at_success: bool = False,
) -> tf.Tensor:
    """The PGD adversarial batch for ``x``: tensors in, a tensor out, no host sync.

    Untargeted (default), it climbs the cross-entropy of the true ``labels`` (away from them);
    targeted, it descends the cross-entropy to ``labels`` (towards them). Each step moves by
    ``step_size`` along :func:`course_utils.constraints.normalize` of the gradient, then
    projects into the budget around ``x`` and clips to pixels 0..255.

    Args:
        model: a callable ``pixels (N, H, W, C) -> logits (N, K)`` (a Keras model, a defended
            model, an ensemble); called with ``training=False``.
        x: float32 pixels 0..255, ``(N, H, W, C)``.
        labels: int ``(N,)`` class indices: the truth (untargeted) or the targets.
        epsilon: the budget in pixels, a scalar or one per example ``(N,)``.
        steps: number of steps, a Python int or an int32 scalar tensor (0 gives the start).
        step_size: pixels per step (scalar or ``(N,)``); ``None``: ``2.5 * epsilon / steps``.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start at a uniformly random point of the budget (seeded), else at ``x``.
        seed: an int or an int32 tensor of shape ``()`` or ``(2,)``; the same seed, the same start.
            Inside a training step pass something that changes per batch (e.g. the step count).
        targeted: towards ``labels`` instead of away from them.
        samples: expectation over transformation: average the loss over this many calls of
            ``model`` on copies of the batch (useful only when ``model`` is random). With
            ``stop_at_success`` an example counts as fooled only when every one of these calls is.
        stop_at_success: leave each example where it is from the first step at which the model
            is fooled (the smallest change that works, as a careful attacker would send), and
            stop the loop when all are. Without it every example takes all ``steps``.

    Returns:
        float32 tensor like ``x``: the adversarial batch, within the budget and 0..255. No
        gradient flows back through it (it is an input, not a function of the weights).

    A gradient that does not exist (a non-differentiable step in ``model``, such as rounding or
    JPEG) counts as zero, as TensorFlow defines it: the attack then only makes its random start.
    That is gradient masking, and :mod:`course_utils.defences` shows how an attacker gets around it.
    """
    norm = check_norm(norm)
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a whole number >= 1, got {samples!r}")
    x = tf.convert_to_tensor(x, tf.float32)
    labels = tf.cast(tf.convert_to_tensor(labels), tf.int32)
    n = tf.shape(x)[0]
    eps = tf.broadcast_to(tf.cast(epsilon, tf.float32), [n])
    steps_t = tf.cast(steps, tf.int32)
    if step_size is None:
        rate = default_step_size(eps, tf.cast(tf.maximum(steps_t, 1), tf.float32))
    else:
        rate = tf.broadcast_to(tf.cast(step_size, tf.float32), [n])
    rate4 = per_example(rate, x)
    seed2 = _seed_pair(seed)
    direction = -1.0 if targeted else 1.0  # climb the loss, or descend it towards the target

    def loss(xa: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if samples == 1:
            logits = model(xa, training=False)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            return tf.reduce_sum(ce), logits[None]
        logits = model(tf.concat([xa] * samples, axis=0), training=False)  # (tile's gradient logs oneDNN noise)
        logits = tf.reshape(logits, [samples, n, -1])  # (samples, N, classes)
        onehot = tf.one_hot(labels, tf.shape(logits)[-1])  # float maths only: no integer tiling
        ce = -tf.reduce_sum(onehot[None] * tf.nn.log_softmax(logits), axis=-1)
        # examples are independent: one sum gives every example its own gradient
        return tf.reduce_sum(ce) / float(samples), logits

    def fooled(logits: tf.Tensor) -> tf.Tensor:
        """(N,) bool: the model is fooled on every one of the ``samples`` calls (logits (samples, N, classes))."""
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        hit = tf.equal(predicted, labels[None]) if targeted else tf.not_equal(predicted, labels[None])
        return tf.reduce_all(hit, axis=0)

    def body(i: tf.Tensor, xa: tf.Tensor, done: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(xa)
            value, logits = loss(xa)
        grad = tape.gradient(value, xa, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        stepped = clip_pixels(project(xa + direction * rate4 * normalize(grad, norm), x, eps, norm))
        if not stop_at_success:
            return i + 1, stepped, done
        done = tf.logical_or(done, fooled(logits))  # judged before this step: those stay where they are
        return i + 1, tf.where(done[:, None, None, None], xa, stepped), done

    def more(i: tf.Tensor, xa: tf.Tensor, done: tf.Tensor) -> tf.Tensor:
        return tf.logical_and(i < steps_t, tf.logical_not(tf.reduce_all(done)))

    start = _random_start(x, eps, norm, seed2) if random_start else x
    _, adversarial, _ = tf.while_loop(more, body, (tf.constant(0), start, tf.zeros([n], tf.bool)), parallel_iterations=1)
    return tf.stop_gradient(adversarial)


# --------------------------------------------------------------------------- labels


def _num_classes(model: Any) -> int:
    return int(model.output_shape[-1])


def resolve_labels(model: Any, labels: Label | Sequence[Label] | np.ndarray, n: int) -> np.ndarray:
    """Class indices ``(n,)`` for ``model`` from one label or one per image.

    A label is an index, or one of the model's own class names (``model.class_names``, set by the
    course's loaders: ``"man"``/``"woman"`` for the face models, ImageNet labels for the ImageNet
    models); the course's one class resolution, :func:`course_utils.labels.resolve_classes`.
    """
    from course_utils.labels import resolve_classes

    if isinstance(labels, np.ndarray):
        labels = [x.item() if isinstance(x, np.generic) and not isinstance(x, np.str_) else x for x in labels.reshape(-1)]
    return np.asarray(resolve_classes(labels, model, n, name="labels"), dtype=np.int64)


# --------------------------------------------------------------------------- compiled helper


def _input_shape(model: Any) -> tuple:
    try:
        return tuple(model.input_shape[1:])
    except (AttributeError, ValueError, TypeError):
        return (None, None, None)


class CompiledPGD:
    """PGD for one model and one structure, compiled once.

    ``norm``, ``random_start``, ``targeted``, ``samples`` and ``stop_at_success`` are fixed here; images, labels,
    epsilon, step size, the number of steps and the seed are arguments of the compiled graph
    (batch size included), so new values run without tracing again. ``traces`` counts how often
    the Python function was traced into a graph.
    """

    def __init__(self, model: Any, *, norm: Norm = "linf", random_start: bool = True, targeted: bool = False, samples: int = 1,
                 stop_at_success: bool = False) -> None:
        self.model = model
        self.norm = check_norm(norm)
        self.random_start = bool(random_start)
        self.targeted = bool(targeted)
        self.samples = int(samples)
        self.stop_at_success = bool(stop_at_success)
        self.traces = 0
        signature = [
            tf.TensorSpec((None, *_input_shape(model)), tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([2], tf.int32),
        ]

        def graph(x, labels, eps, rate, steps, seed):  # one function per instance: TensorFlow counts
            return self._graph(x, labels, eps, rate, steps, seed)  # traces per function, not per model

        self._run = tf.function(graph, input_signature=signature)

    def _graph(self, x, labels, eps, rate, steps, seed):
        self.traces += 1  # runs only while tracing
        adversarial = pgd_perturb(
            self.model, x, labels, eps, steps=steps, step_size=rate, norm=self.norm,
            random_start=self.random_start, seed=seed, targeted=self.targeted, samples=self.samples,
            stop_at_success=self.stop_at_success,
        )
        predicted = tf.argmax(self.model(adversarial, training=False), axis=-1, output_type=tf.int32)
        return adversarial, predicted

    def __call__(self, x: np.ndarray, labels: np.ndarray, eps: np.ndarray, rate: np.ndarray, steps: int, seed: Sequence[int]):
        args = (tf.constant(x, tf.float32), tf.constant(labels, tf.int32), tf.constant(eps, tf.float32),
                tf.constant(rate, tf.float32), tf.constant(steps, tf.int32), tf.constant(seed, tf.int32))
        if self.traces:
            out = self._run(*args)
        else:
            # The first call traces. Every model gets its own graph, and TensorFlow warns about
            # "retracing" once a few models have been attacked: expected here, so not shown.
            logger = tf.get_logger()
            level = logger.level
            logger.setLevel("ERROR")
            try:
                out = self._run(*args)
            finally:
                logger.setLevel(level)
        return out[0].numpy(), out[1].numpy()


_COMPILED: "weakref.WeakKeyDictionary[Any, dict[Hashable, CompiledPGD]]" = weakref.WeakKeyDictionary()


def compiled_pgd(model: Any, *, norm: Norm = "linf", random_start: bool = True, targeted: bool = False, samples: int = 1,
                 stop_at_success: bool = False) -> CompiledPGD:
    """The :class:`CompiledPGD` for ``model`` and this structure, built the first time it is asked for.

    Kept as long as the model lives (only graphs, never results).
    """
    structure = dict(norm=check_norm(norm), random_start=bool(random_start), targeted=bool(targeted), samples=int(samples),
                     stop_at_success=bool(stop_at_success))
    key = tuple(structure.values())
    try:
        per_model = _COMPILED.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no memo
        return CompiledPGD(model, **structure)
    if key not in per_model:
        per_model[key] = CompiledPGD(model, **structure)
    return per_model[key]


# --------------------------------------------------------------------------- NumPy helpers


def _check_epsilons(values: Any) -> np.ndarray:
    eps = np.atleast_1d(np.asarray(values, dtype=np.float64)).reshape(-1)
    if eps.size == 0 or not np.all(np.isfinite(eps)) or np.any(eps < 0):
        raise ValueError(f"epsilon must be finite numbers >= 0 (pixels), got {values!r}")
    return eps.astype(np.float32)


def _check_whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _as_images(images: Any, model: Any) -> np.ndarray:
    from course_utils.images import as_batch

    return as_batch(images, model if _input_shape(model)[0] is not None else None)


def _progress(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stdout, leave=True, ncols=90, mininterval=0.2)


@dataclass(frozen=True)
class PGDResult:
    """What :func:`pgd_attack` returns (NumPy arrays, pixels 0..255).

    Attributes:
        original, adversarial: ``(N, H, W, C)`` float32.
        labels: ``(N,)`` the classes attacked (the truth, or the targets when ``targeted``).
        predicted: ``(N,)`` the model's top-1 on ``adversarial``.
        epsilon: ``(N,)`` the budget of each example, pixels.
        norm, targeted: the threat model.
    """

    original: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    epsilon: np.ndarray
    norm: str
    targeted: bool

    @property
    def delta(self) -> np.ndarray:
        return self.adversarial - self.original

    @property
    def success(self) -> np.ndarray:
        """``(N,)`` bool: top-1 is the target (targeted) or is no longer the label (untargeted)."""
        return self.predicted == self.labels if self.targeted else self.predicted != self.labels

    def __repr__(self) -> str:
        return (f"PGDResult({len(self.labels)} image(s), norm={self.norm}, epsilon={np.unique(self.epsilon).tolist()}, "
                f"{'targeted' if self.targeted else 'untargeted'}, success={np.mean(self.success):.0%})")


def pgd_attack(
    model: Any,
    images: Any,
    labels: Label | Sequence[Label] | np.ndarray | None,
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
) -> PGDResult:
    """PGD on a batch of photos (NumPy in, NumPy out), compiled once per model and structure.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: the true class of each image (untargeted), or the target (``targeted=True``);
            one or one per image, indices or names. ``None``: the model's own answer on the photo.
        epsilon: the budget in pixels, one or one per image.
        steps: number of steps (>= 0).
        step_size: pixels per step; default ``2.5 * epsilon / steps``.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start at a random point of the budget (seeded by ``seed``).
        seed: the same seed (and batch size) gives the same result.
        targeted: push towards ``labels`` instead of away from them.
        samples: expectation over transformation (see :func:`pgd_perturb`).
        stop_at_success: keep each image's first change that fools the model (see :func:`pgd_perturb`).
        batch_size: images per compiled call.
    """
    steps = _check_whole("steps", steps, 0)
    batch_size = _check_whole("batch_size", batch_size, 1)
    x = _as_images(images, model)
    n = len(x)
    if labels is None:
        if targeted:
            raise ValueError("a targeted attack needs its targets: pass labels")
        y = np.concatenate([np.asarray(model(x[i : i + batch_size], training=False)).argmax(-1) for i in range(0, n, batch_size)])
    else:
        y = resolve_labels(model, labels, n)
    eps = _check_epsilons(epsilon)
    if eps.size not in (1, n):
        raise ValueError(f"got {eps.size} epsilons for {n} images; give one, or one per image")
    eps = np.broadcast_to(eps, (n,)).astype(np.float32)
    rate = default_step_size(eps, max(steps, 1)) if step_size is None else np.full(n, _check_epsilons(step_size)[0])
    run = compiled_pgd(model, norm=norm, random_start=random_start, targeted=targeted, samples=samples,
                       stop_at_success=stop_at_success)
    adversarial, predicted = [], []
    for b, i in enumerate(range(0, n, batch_size)):
        sl = slice(i, i + batch_size)
        a, p = run(x[sl], y[sl], eps[sl], rate[sl].astype(np.float32), steps, (seed, b))
        adversarial.append(a)
        predicted.append(p)
    return PGDResult(x, np.concatenate(adversarial), y, np.concatenate(predicted).astype(np.int64), eps, norm, targeted)


def robust_accuracy(
    model: Any,
    images: Any,
    labels: Label | Sequence[Label] | np.ndarray,
    epsilons: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0),
    *,
    steps: int = 20,
    step_size: float | None = None,
    norm: Norm = "linf",
    random_start: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> pd.DataFrame:
    """Accuracy under an untargeted PGD attack, for each budget in ``epsilons``.

    One compiled function serves every epsilon (the budget is a tensor argument), so a sweep
    costs one tracing however many budgets it has.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(N, H, W, C)`` pixels 0..255.
        labels: the true classes: indices or names (``"man"``/``"woman"``, ImageNet names), one
            per image or one for all.
        epsilons: budgets in pixels (grey levels). ``0`` gives the clean accuracy.
        steps: PGD steps per budget (the course's default: PGD-20).
        step_size: pixels per step; default ``2.5 * epsilon / steps`` for each budget.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start each attack at a random point of the budget (seeded).
        seed: the same seed (and batch size) gives the same numbers.
        batch_size: images per compiled call.
        progress: show a text progress bar (one tick per budget and batch).

    Returns:
        A DataFrame with one row per epsilon: ``epsilon``, ``accuracy`` (0..1: the share of
        images still classified as their label after the attack) and ``n`` (images).
    """
    steps = _check_whole("steps", steps, 0)
    batch_size = _check_whole("batch_size", batch_size, 1)
    eps_list = _check_epsilons(epsilons)
    x = _as_images(images, model)
    n = len(x)
    if n == 0:
        raise ValueError("robust_accuracy needs at least one image")
    y = resolve_labels(model, labels, n)
    run = compiled_pgd(model, norm=norm, random_start=random_start)
    batches = list(range(0, n, batch_size))
    bar = _progress(len(eps_list) * len(batches), f"PGD-{steps} on {getattr(model, 'name', 'model')}") if progress else None
    rows = []
    try:
        for e in eps_list:
            rate = default_step_size(float(e), max(steps, 1)) if step_size is None else float(_check_epsilons(step_size)[0])
            correct = 0
            for b, i in enumerate(batches):
                sl = slice(i, i + batch_size)
                m = len(x[sl])
                # A zero budget leaves every image where it is: no steps needed (same graph, steps=0).
                _, predicted = run(x[sl], y[sl], np.full(m, e, np.float32), np.full(m, rate, np.float32),
                                   steps if e > 0 else 0, (seed, b))
                correct += int(np.sum(predicted == y[sl]))
                if bar is not None:
                    bar.update(1)
            rows.append({"epsilon": float(e), "accuracy": correct / n, "n": n})
    finally:
        if bar is not None:
            bar.close()
    return pd.DataFrame(rows)

"""The one gradient loop of the course.

Every lesson holds a network fixed and changes its *input* by gradient steps:

=====================  ===========================  ===============  ===========================
lesson                 objective (minimised)        step rule        after each step
=====================  ===========================  ===============  ===========================
01 noise filter        CE(target) + beta * l2(DX)   ``"plain"``      (optional) valid pixels
02 iterative attack    CE(target)                   ``"sign"``       L-inf ball, valid pixels
03 filters / classes   -activation or -logit        ``"rms"``        jitter, TV, decay, blur
=====================  ===========================  ===============  ===========================

:func:`run_gradient_loop` runs ``steps`` of::

    x_in        = transforms(x)                       # regularisers' random jitter etc.
    loss, track = objective(x_in)                     # per example, shapes (N,) and (N, K)
    loss       += penalties(x, x0)                    # regularisers' penalties
    x           = x - step_size * step_rule(d loss / d x)
    x           = after_step(x, x0)                   # constraints, decay, blur

inside one ``tf.function`` (a ``tf.while_loop``, history in ``tf.TensorArray``), so no value goes
back to Python between steps and the same code runs on a GPU. When a progress bar is wanted,
the loop runs in a few chunks and the bar moves between chunks: one host sync per chunk, never
one per step.

Pieces are small objects with one job, composed in a tuple (see :class:`Regularizer`); the
public functions of :mod:`course_utils.attacks` and :mod:`course_utils.visualize` pick them.
"""

from __future__ import annotations

import math
import sys
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Literal, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["Objective", "Regularizer", "LoopResult", "StepRule", "GradientLoop", "cached_loop", "run_gradient_loop", "step_direction", "check_steps"]

Objective = Callable[[tf.Tensor], "tuple[tf.Tensor, tf.Tensor]"]
"""``objective(x_in) -> (loss, tracked)``: ``x_in`` the (transformed) batch in pixel units,
``loss`` shape ``(N,)`` to minimise, ``tracked`` shape ``(N, K)``, recorded per step (e.g. class
probabilities or a filter's activation)."""

StepRule = Literal["plain", "sign", "rms"]


class Regularizer:
    """A composable piece of the loop. Override any of the three hooks; the defaults do nothing.

    - :meth:`transform` changes the input the model sees (differentiable; random jitter).
    - :meth:`penalty` adds a per-example term to the loss (total variation, L2 of the change).
    - :meth:`after_step` changes ``x`` after each step, outside the gradient (clipping to a
      budget or to valid pixels, decay, blur).

    All tensors are float32 batches in pixel units, ``(N, H, W, C)``; ``step`` is the global step
    number (int32 scalar tensor) and ``seed`` an int32 scalar tensor for stateless randomness.
    """

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return x

    def penalty(self, x: tf.Tensor, x0: tf.Tensor) -> tf.Tensor | None:
        return None

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        return x

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


@dataclass(frozen=True)
class LoopResult:
    """What :func:`run_gradient_loop` returns (NumPy arrays).

    Attributes:
        x: the final batch, same shape as the start, pixel units.
        losses: ``(steps + 1, N)``; row ``t`` is the loss at the start of step ``t`` and the last
            row the loss of the final ``x`` (penalties included).
        tracked: ``(steps + 1, N, K)``; the objective's tracked values, rows as for ``losses``.
        compile_seconds: time spent tracing the loop and the final evaluation into graphs
            (Python -> TensorFlow graph), before any step runs.
        seconds: total wall time of the loop.
    """

    x: np.ndarray
    losses: np.ndarray
    tracked: np.ndarray
    compile_seconds: float
    seconds: float

    @property
    def steps(self) -> int:
        return self.losses.shape[0] - 1


def check_steps(steps: int) -> int:
    """``steps`` as an int, or a clear error if it is not a whole number >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    return int(steps)


def step_direction(grad: tf.Tensor, rule: StepRule) -> tf.Tensor:
    """The direction to *subtract* from ``x`` for one step, per example.

    ``"plain"``: the gradient itself (gradient descent). ``"sign"``: its sign (an L-inf steepest
    step; every pixel moves by exactly the step size). ``"rms"``: the gradient divided by its
    root-mean-square over each example, so the step size is in pixels whatever the scale of the
    objective (the Keras blog's "normalised gradient").
    """
    if rule == "plain":
        return grad
    if rule == "sign":
        return tf.sign(grad)
    if rule == "rms":
        axes = tf.range(1, tf.rank(grad))
        rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=axes, keepdims=True))
        return grad / (rms + 1e-8)
    raise ValueError(f"unknown step rule {rule!r}; choose 'plain', 'sign' or 'rms'")


def _progress(total: int, description: str):
    from tqdm import tqdm

    # A plain text bar: it updates in place in JupyterLab and a terminal, and reads well in a
    # notebook's saved output (a widget bar shows as a blank box on code hosts).
    return tqdm(total=total, desc=description, file=sys.stdout, leave=True, ncols=90, mininterval=0.2)


class GradientLoop:
    """A compiled gradient loop, built once and run on any number of batches.

    Everything that changes from call to call (the batch, where it starts, the step size, the
    number of steps, the seed) is an *argument* of the compiled graph, so running the loop again
    on new photos costs no new tracing or XLA compilation. What defines the problem (the
    objective, the step rule, the regularisers) is fixed when the loop is built.

    Args:
        objective: ``x_in -> (loss (N,), tracked (N, K))``; see :data:`Objective`.
        step_rule: see :func:`step_direction`.
        regularizers: pieces applied in order (see :class:`Regularizer`).
        jit_compile: compile with XLA (faster per step for small models, slower to start).
    """

    def __init__(
        self,
        objective: Objective,
        *,
        step_rule: StepRule = "plain",
        regularizers: Sequence[Regularizer] = (),
        jit_compile: bool = False,
    ) -> None:
        step_direction(tf.zeros([1, 1]), step_rule)  # validates the rule name early
        self.objective = objective
        self.step_rule = step_rule
        self.regularizers = tuple(regularizers)
        self.jit_compile = jit_compile
        self._run_chunk = tf.function(self._chunk, jit_compile=jit_compile, reduce_retracing=True)
        self._evaluate = tf.function(self._total_loss, jit_compile=jit_compile, reduce_retracing=True)

    def _total_loss(self, x: tf.Tensor, x_in: tf.Tensor, x0: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        loss, tracked = self.objective(x_in)
        for r in self.regularizers:
            extra = r.penalty(x, x0)
            if extra is not None:
                loss = loss + extra
        return loss, tracked

    def _step(self, step, x, x0, rate, seed) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            x_in = x
            for r in self.regularizers:
                x_in = r.transform(x_in, step, seed)
            loss, tracked = self._total_loss(x, x_in, x0)
        grad = tape.gradient(loss, x)  # examples are independent, so this is per example
        x_new = x - rate * step_direction(grad, self.step_rule)
        for r in self.regularizers:
            x_new = r.after_step(x_new, x0, step)
        return x_new, loss, tracked

    def _chunk(self, x, x0, first, n, rate, seed) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        losses = tf.TensorArray(tf.float32, size=n, element_shape=x.shape[:1])
        tracked = tf.TensorArray(tf.float32, size=n)

        def body(i, x, losses, tracked):
            x, loss, track = self._step(first + i, x, x0, rate, seed)
            return i + 1, x, losses.write(i, loss), tracked.write(i, track)

        _, x, losses, tracked = tf.while_loop(
            lambda i, *_: i < n, body, (tf.constant(0), x, losses, tracked), parallel_iterations=1
        )
        return x, losses.stack(), tracked.stack()

    def run(
        self,
        x0: np.ndarray | tf.Tensor,
        *,
        steps: int,
        step_size: float,
        start: np.ndarray | tf.Tensor | None = None,
        seed: int = 0,
        progress: bool | None = None,
        description: str = "optimising",
    ) -> LoopResult:
        """Run ``steps`` steps from ``start`` (default ``x0``); see :func:`run_gradient_loop`."""
        steps = check_steps(steps)
        if not np.isfinite(step_size) or step_size <= 0:
            raise ValueError(f"step_size must be a positive number, got {step_size!r}")
        x0 = tf.convert_to_tensor(x0, tf.float32)
        x = x0 if start is None else tf.convert_to_tensor(start, tf.float32)
        rate = tf.constant(step_size, tf.float32)
        seed_t = tf.constant(seed, tf.int32)
        show = steps >= 50 if progress is None else bool(progress)
        chunk = max(1, math.ceil(steps / 20)) if show else steps
        t0 = time.perf_counter()
        self._run_chunk.get_concrete_function(x, x0, tf.constant(0), tf.constant(chunk), rate, seed_t)
        self._evaluate.get_concrete_function(x, x, x0)
        compile_seconds = time.perf_counter() - t0  # ~0 when this loop already ran on this shape
        bar = _progress(steps, description) if show else None
        all_losses, all_tracked = [], []
        try:
            done = 0
            while done < steps:
                n = min(chunk, steps - done)
                x, losses, tracked = self._run_chunk(x, x0, tf.constant(done), tf.constant(n), rate, seed_t)
                all_losses.append(losses.numpy())  # the one host sync per chunk
                all_tracked.append(tracked.numpy())
                done += n
                if bar is not None:
                    bar.update(n)
            final_loss, final_tracked = self._evaluate(x, x, x0)
            all_losses.append(final_loss.numpy()[None])
            all_tracked.append(final_tracked.numpy()[None])
        finally:
            if bar is not None:
                bar.close()
        return LoopResult(
            x=x.numpy(),
            losses=np.concatenate(all_losses),
            tracked=np.concatenate(all_tracked),
            compile_seconds=compile_seconds,
            seconds=time.perf_counter() - t0,
        )


_LOOPS: "weakref.WeakKeyDictionary[Any, dict[Hashable, GradientLoop]]" = weakref.WeakKeyDictionary()


def cached_loop(model: Any, key: Hashable, build: Callable[[], GradientLoop]) -> GradientLoop:
    """The :class:`GradientLoop` for ``(model, key)``, built by ``build()`` the first time.

    Calling an attack again with new photos, another step count or step size then reuses the
    compiled graph instead of tracing (and, with XLA, compiling) it again. ``key`` must name
    everything the loop bakes in (target classes, budget, penalty weights...). Only compiled
    graphs are kept, never results, and they are dropped with the model.
    """
    try:
        per_model = _LOOPS.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no memo, just build
        return build()
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def run_gradient_loop(
    objective: Objective,
    x0: np.ndarray | tf.Tensor,
    *,
    steps: int,
    step_size: float,
    step_rule: StepRule = "plain",
    regularizers: Sequence[Regularizer] = (),
    start: np.ndarray | tf.Tensor | None = None,
    seed: int = 0,
    progress: bool | None = None,
    description: str = "optimising",
    jit_compile: bool = False,
) -> LoopResult:
    """Run ``steps`` gradient steps on a batch of inputs, compiled, and return the history.

    A one-off :class:`GradientLoop`; build a ``GradientLoop`` yourself to run the same problem
    on many batches without compiling it again.

    Args:
        objective: ``x_in -> (loss (N,), tracked (N, K))``; see :data:`Objective`.
        x0: the reference batch ``(N, ...)`` in pixel units (the photo being attacked; for
            visualisation from noise, the noise). Penalties and constraints measure from it.
        steps: number of steps, >= 1.
        step_size: pixels per step for ``"sign"`` and ``"rms"``; the learning rate for ``"plain"``.
        step_rule: see :func:`step_direction`.
        regularizers: pieces applied in order (see :class:`Regularizer`).
        start: where ``x`` starts, default ``x0``.
        seed: seed for the regularisers' randomness (the same seed gives the same result).
        progress: show a text progress bar; ``None`` shows one for 50 steps or more.
        description: the bar's label.
        jit_compile: compile the loop with XLA (faster for small models, slower to start).
    """
    check_steps(steps)
    if not np.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")
    loop = GradientLoop(objective, step_rule=step_rule, regularizers=regularizers, jit_compile=jit_compile)
    return loop.run(x0, steps=steps, step_size=step_size, start=start, seed=seed, progress=progress, description=description)

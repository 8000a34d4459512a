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
back to Python between steps and the same code runs on a GPU.

The steps run in *chunks*: one call of the compiled loop each, one host sync per chunk, never one
per step. Python regains control only between chunks, and that is when Kernel -> Interrupt (a
``KeyboardInterrupt``) can stop a run and when the progress bar moves. So the chunks are kept
short in wall time: the first is one step, and each next one is as long as fits in
:attr:`GradientLoop.chunk_seconds` (0.25 s) at the pace just measured, at most twice the last.
The chunk length is an argument of the compiled graph, so changing it traces nothing again, and
the loop is deterministic: chunk boundaries do not change the result. An interrupted loop keeps
no state; run it again as it is.

The history (loss and tracked values of every step) is kept in memory, so a run whose history
would pass :data:`MAX_HISTORY_BYTES` is refused before anything is traced (:func:`check_history`).

Pieces are small objects with one job, composed in a tuple (see :class:`Regularizer`); the
public functions of :mod:`course_utils.attacks` and :mod:`course_utils.visualize` pick them.
"""

from __future__ import annotations

import sys
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Literal, Sequence

import numpy as np
import tensorflow as tf

from course_utils.checks import (
    check_batch, check_flag, check_number, check_regularizers, check_seed, check_steps, describe,
)

__all__ = [
    "Objective", "Regularizer", "LoopResult", "StepRule", "GradientLoop", "cached_loop", "run_gradient_loop",
    "step_direction", "check_steps", "check_history", "next_chunk_length", "MAX_HISTORY_BYTES",
]

MAX_HISTORY_BYTES = 1_000_000_000
"""The most memory (bytes) a run's history may take: 1 GB. Every step keeps a loss per image and
the tracked values per image (4 bytes each), so a careless ``steps=10**9`` would fill the
computer's memory long before it finished; such a run is refused up front."""

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
    - :meth:`check_input` refuses, before anything is traced, a batch shape the piece cannot
      work on (a blur wider than the picture).

    All tensors are float32 batches in pixel units, ``(N, H, W, C)``; ``step`` is the global step
    number (int32 scalar tensor) and ``seed`` an int32 scalar tensor for stateless randomness.
    """

    def transform(self, x: tf.Tensor, step: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return x

    def penalty(self, x: tf.Tensor, x0: tf.Tensor) -> tf.Tensor | None:
        return None

    def after_step(self, x: tf.Tensor, x0: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        return x

    def check_input(self, shape: tuple) -> None:
        """Raise ``ValueError`` if this piece cannot work on batches of ``shape`` ``(N, H, W, C)``."""

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
        chunks: the number of steps of each call of the compiled loop, in order (they add up to
            ``steps``); Python, and so Kernel -> Interrupt, gets control between them.
    """

    x: np.ndarray
    losses: np.ndarray
    tracked: np.ndarray
    compile_seconds: float
    seconds: float
    chunks: tuple[int, ...] = ()

    @property
    def steps(self) -> int:
        return self.losses.shape[0] - 1


def check_history(steps: int, batch: int, width: int, *, at_least: bool = False) -> None:
    """Refuse a run whose history would take more than :data:`MAX_HISTORY_BYTES`.

    The history is ``(steps + 1)`` rows of ``batch`` losses and ``batch x width`` tracked values
    (float32). The message gives the size and the most steps that fit. ``at_least``: ``width``
    is only a lower bound (before tracing, the objective's width is not known yet).
    """
    per_step = 4 * batch * (1 + width)
    need = (steps + 1) * per_step
    if need > MAX_HISTORY_BYTES:
        most = MAX_HISTORY_BYTES // per_step - 1
        raise ValueError(
            f"steps={steps:,} would keep {'at least ' if at_least else ''}{need / 1e9:,.1f} GB of history "
            f"({batch} image(s) x {1 + width}{'+' if at_least else ''} "
            f"values x 4 bytes per step, kept in memory to plot and report); the limit is "
            f"{MAX_HISTORY_BYTES / 1e9:g} GB so a run cannot fill the computer's memory. Use fewer "
            f"steps (at most {most:,} here) or fewer images"
        )


def next_chunk_length(last_steps: int, last_seconds: float, target_seconds: float) -> int:
    """Steps for the next chunk: as many as fit in ``target_seconds`` at the pace of the last
    chunk (``last_steps`` in ``last_seconds``), at most twice the last (a short chunk's pace is
    noisy, and the first includes one-time start-up), at least one."""
    fit = target_seconds * last_steps / last_seconds if last_seconds > 0 else float("inf")
    return max(1, min(2 * last_steps, int(min(fit, 2 * last_steps))))


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
    number of steps, the chunk length, the seed) is an *argument* of the compiled graph, so
    running the loop again on new photos costs no new tracing or XLA compilation. What defines
    the problem (the objective, the step rule, the regularisers) is fixed when the loop is built.

    Args:
        objective: ``x_in -> (loss (N,), tracked (N, K))``; see :data:`Objective`.
        step_rule: see :func:`step_direction`.
        regularizers: pieces applied in order (see :class:`Regularizer`).
        jit_compile: compile each step with XLA (faster per step for small models, slower to
            start). XLA needs fixed shapes, so it compiles the step, not the loop around it: the
            step is compiled once, whatever the chunk lengths.

    Attributes:
        chunk_seconds: the wall time each call of the compiled loop aims at (see the module's
            notes); a class attribute, 0.25 s.
    """

    chunk_seconds: float = 0.25

    def __init__(
        self,
        objective: Objective,
        *,
        step_rule: StepRule = "plain",
        regularizers: Sequence[Regularizer] = (),
        jit_compile: bool = False,
    ) -> None:
        if not callable(objective):
            raise TypeError(f"objective must be a function x -> (loss, tracked), got {describe(objective)}")
        step_direction(tf.zeros([1, 1]), step_rule)  # validates the rule name early
        self.objective = objective
        self.step_rule = step_rule
        self.regularizers = check_regularizers(regularizers)
        self.jit_compile = check_flag("jit_compile", jit_compile)
        self._step_fn = tf.function(self._step, jit_compile=True) if self.jit_compile else self._step
        self._run_chunk = tf.function(self._chunk, reduce_retracing=True)
        self._evaluate = tf.function(self._total_loss, jit_compile=self.jit_compile, reduce_retracing=True)

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
            x, loss, track = self._step_fn(first + i, x, x0, rate, seed)
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
        rate = tf.constant(check_number("step_size", step_size, minimum=0.0, above=True), tf.float32)
        seed_t = tf.constant(check_seed(seed), tf.int32)
        progress = check_flag("progress", progress, allow_none=True)
        x0 = tf.convert_to_tensor(x0, tf.float32)
        x = x0 if start is None else tf.convert_to_tensor(start, tf.float32)
        self._check_batch(x0, x)
        batch = int(x0.shape[0])
        check_history(steps, batch, 1, at_least=True)  # refuse absurd runs before tracing
        t0 = time.perf_counter()
        concrete = self._run_chunk.get_concrete_function(x, x0, tf.constant(0), tf.constant(1), rate, seed_t)
        self._evaluate.get_concrete_function(x, x, x0)
        compile_seconds = time.perf_counter() - t0  # ~0 when this loop already ran on this shape
        shape = concrete.structured_outputs[2].shape  # (steps, N, K): K is known unless the objective hides it
        known = shape.rank is not None and None not in shape[2:]
        check_history(steps, batch, int(np.prod(shape[2:])) if known else 1, at_least=not known)
        show = steps >= 50 if progress is None else progress
        bar = _progress(steps, description) if show else None
        losses_out = tracked_out = None
        chunks: list[int] = []
        done, n = 0, 1
        try:
            while done < steps:
                n = min(n, steps - done)
                tick = time.perf_counter()
                x, losses, tracked = self._run_chunk(x, x0, tf.constant(done), tf.constant(n), rate, seed_t)
                losses, tracked = losses.numpy(), tracked.numpy()  # the one host sync per chunk
                seconds = time.perf_counter() - tick
                if tracked_out is None:
                    check_history(steps, batch, int(np.prod(tracked.shape[2:])))
                    losses_out = np.empty((steps + 1, *losses.shape[1:]), np.float32)
                    tracked_out = np.empty((steps + 1, *tracked.shape[1:]), np.float32)
                losses_out[done : done + n], tracked_out[done : done + n] = losses, tracked
                done += n
                chunks.append(n)
                if bar is not None:
                    bar.update(n)
                n = next_chunk_length(n, seconds, self.chunk_seconds)
            final_loss, final_tracked = self._evaluate(x, x, x0)
            losses_out[steps], tracked_out[steps] = final_loss.numpy(), final_tracked.numpy()
        except KeyboardInterrupt:
            # Nothing of the loop's state changed: the compiled graph is kept and can run again.
            raise KeyboardInterrupt(f"stopped after {done:,} of {steps:,} steps (run it again any time)") from None
        finally:
            if bar is not None:
                bar.close()
        return LoopResult(
            x=x.numpy(),
            losses=losses_out,
            tracked=tracked_out,
            compile_seconds=compile_seconds,
            seconds=time.perf_counter() - t0,
            chunks=tuple(chunks),
        )

    def _check_batch(self, x0: tf.Tensor, x: tf.Tensor) -> None:
        """Clear errors, before tracing, for batches the loop cannot run on."""
        if x0.shape.rank is None or x0.shape.rank < 1:
            raise ValueError(f"x0 must be a batch (N, ...), got shape {tuple(x0.shape)}")
        check_batch(x0, "inputs")
        if tuple(x.shape) != tuple(x0.shape):
            raise ValueError(f"start must have the shape of x0 {tuple(x0.shape)}, got {tuple(x.shape)}")
        for r in self.regularizers:
            r.check_input(tuple(x0.shape))


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
        steps: number of steps, >= 1; refused when the history would pass :data:`MAX_HISTORY_BYTES`.
        step_size: pixels per step for ``"sign"`` and ``"rms"``; the learning rate for ``"plain"``.
        step_rule: see :func:`step_direction`.
        regularizers: pieces applied in order (see :class:`Regularizer`).
        start: where ``x`` starts, default ``x0``.
        seed: seed for the regularisers' randomness (the same seed gives the same result).
        progress: show a text progress bar; ``None`` shows one for long runs (50 steps or more).
            Whatever it is, Kernel -> Interrupt stops the run within about a chunk (see the
            module's notes) with a ``KeyboardInterrupt``.
        description: the bar's label.
        jit_compile: compile each step with XLA (faster for small models, slower to start).
    """
    loop = GradientLoop(objective, step_rule=step_rule, regularizers=regularizers, jit_compile=jit_compile)
    return loop.run(x0, steps=steps, step_size=step_size, start=start, seed=seed, progress=progress, description=description)

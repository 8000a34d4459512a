"""The one gradient loop of the course.

Every lesson holds a network fixed and changes its *input* by gradient steps:

=====================  ===========================  ===============  ===========================
lesson                 objective (minimised)        step rule        after each step
=====================  ===========================  ===============  ===========================
01 noise filter        CE(target) + beta * l2(DX)   ``"plain"``      (optional) valid pixels
02 iterative attack    CE(target)                   ``"sign"``       L-inf ball, valid pixels
03 filters / classes   -activation or -logit        ``"rms"``        jitter, TV, decay, blur
=====================  ===========================  ===============  ===========================

A :class:`GradientLoop` runs ``steps`` of::

    x_in        = transforms(x, step, seed)           # course_utils.core.transforms
    loss, track = objective(x_in, data)               # course_utils.core.objectives; (N,) and (N, K)
    loss       += penalties(x, x0, data)              # course_utils.core.penalties
    x           = x - step_size * step_rule(d loss / d x)
    x           = after_steps(x, x0, step, data)      # course_utils.core.steps

inside one ``tf.function`` (a ``tf.while_loop``), so no value goes back to Python between steps and
the same code runs on a GPU. The structure (objective kind, step rule, pieces, XLA, stopping at
success) is fixed when the loop is built; what changes per call is an *argument* of the compiled
graph: the batch, the per-call ``data`` (labels, epsilon, beta, one per example), the step size,
the seed, the number of steps. So a new epsilon, target or beta never traces the loop again
(:attr:`GradientLoop.traces` counts); a new batch shape traces once.

Two ways to run it:

- :meth:`GradientLoop.perturb` is the graph-level run: tensors in, the final batch out, no
  history, no host sync, no Python between steps. It works eagerly, inside any ``tf.function``
  and inside a Keras ``train_step`` (adversarial training, robust accuracy).
- :meth:`GradientLoop.run` is the notebook run: it keeps the loss and tracked values of every
  step (in a ``tf.TensorArray``) and returns NumPy (:class:`LoopResult`). Its steps run in
  *chunks*, one call of the compiled loop each and one host sync per chunk. Python regains
  control between chunks: that is when Kernel -> Interrupt (a ``KeyboardInterrupt``) can stop a
  run and when the progress bar moves. The first chunk is one step, each next one as long as
  fits in :attr:`GradientLoop.chunk_seconds` (0.25 s) at the pace just measured, at most twice
  the last. Chunk boundaries do not change the result; an interrupted run keeps no state. A
  history over :data:`~course_utils.core.history.MAX_HISTORY_BYTES` is refused up front.

Compiled loops are kept per model, by structure only (:mod:`course_utils.core.cache`); they hold
their model weakly, so a model the notebook lets go is freed with its loops.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from course_utils.checks import check_batch, check_flag, check_number, check_steps
from course_utils.core.loop import next_chunk_length
from course_utils.core.history import LoopResult, check_history, progress_bar
from course_utils.core.objectives import Objective, as_objective, merge_specs
from course_utils.core.ops import per_example
from course_utils.core.pieces import Regularizer, check_regularizers, hook
from course_utils.core.steps import StepRule, step_direction
from course_utils.seeds import effective_seed, seed_offset

__all__ = ["GradientLoop", "structure_key"]


class GradientLoop:
    """A compiled gradient loop, built once and run on any number of batches.

    Args:
        objective: an :class:`~course_utils.core.objectives.Objective`, or a function
            ``x_in -> (loss (N,), tracked (N, K))`` (or ``(x_in, data) -> ...``).
        step_rule: see :func:`step_direction`.
        regularizers: pieces applied in order: transforms, penalties, after-step operations
            (see :mod:`course_utils.core.pieces`).
        jit_compile: ``True`` compiles each step with XLA (faster per step for small models,
            slower to start); ``"loop"`` also compiles :meth:`perturb`'s whole while-loop with XLA
            (one XLA program for all steps; :meth:`run` keeps the XLA step, since its per-chunk
            history has a length XLA cannot know in advance). ``False``: no XLA.
        stop_at_success: leave each example where it is from the first step at which the
            objective says it succeeded (:meth:`~course_utils.core.objectives.Objective.evaluate`:
            judged on the picture before that step), as a careful attacker sends the smallest
            change that works; :meth:`perturb` stops when every example has.

    Attributes:
        chunk_seconds: the wall time each call of the compiled loop aims at in :meth:`run`
            (a class attribute, 0.25 s).
        data_spec: the per-call values the loop reads (name -> dtype), from its objective and pieces.
        traces: how often each compiled function was traced (a counter kept inside the traced
            Python functions): ``"chunk"`` (:meth:`run`), ``"final"`` (its last evaluation),
            ``"perturb"`` (:meth:`perturb`), ``"step"`` (the XLA step).
    """

    chunk_seconds: float = 0.25

    def __init__(
        self,
        objective: Objective | Callable,
        *,
        step_rule: StepRule = "plain",
        regularizers: Sequence[Regularizer] = (),
        jit_compile: bool = False,
        stop_at_success: bool = False,
    ) -> None:
        self.objective = as_objective(objective)
        step_direction(tf.zeros([1, 1]), step_rule)  # validates the rule name early
        self.step_rule = step_rule
        self.regularizers = check_regularizers(regularizers)
        if not (isinstance(jit_compile, bool) or jit_compile == "loop"):
            raise ValueError(f"jit_compile must be False, True (XLA per step) or 'loop' (the whole perturb loop), got {jit_compile!r}")
        self.jit_compile: bool | str = jit_compile
        self.stop_at_success = check_flag("stop_at_success", stop_at_success)
        if self.stop_at_success and type(self.objective).evaluate is Objective.evaluate:
            raise TypeError(f"stop_at_success needs an objective with a goal (a CrossEntropy), got {self.objective!r}")
        self.data_spec = merge_specs(self.objective.per_call, *(r.per_call for r in self.regularizers))
        self.defaults: dict[str, Any] = {}
        for r in self.regularizers:
            self.defaults.update(r.defaults())
        self._transforms = [f for f in (hook(r, "transform") for r in self.regularizers) if f]
        self._penalties = [f for f in (hook(r, "penalty") for r in self.regularizers) if f]
        self._after_steps = [f for f in (hook(r, "after_step") for r in self.regularizers) if f]
        self.traces = {"chunk": 0, "final": 0, "perturb": 0, "step": 0}
        self.objective.build()
        self._step_fn = tf.function(self._step, jit_compile=True) if self.jit_compile else self._step
        self._run_chunk = tf.function(self._chunk)
        self._final = tf.function(self._final_loss, jit_compile=bool(self.jit_compile))
        self._perturb = tf.function(self._perturb_loop, reduce_retracing=True,  # a new batch size: once
                                    jit_compile=self.jit_compile == "loop")
        # TensorFlow counts traces per method over *all* loops and warns at five; each loop traces once
        # per model and shape by design (self.traces counts them), as Keras' own train functions do.
        for f in (self._run_chunk, self._final, self._perturb) + ((self._step_fn,) if self.jit_compile else ()):
            f._omit_frequent_tracing_warning = True

    @property
    def key(self) -> Hashable:
        """The loop's structure (see :func:`structure_key`): what :func:`loop_for` caches it by."""
        return structure_key(self.objective, self.step_rule, self.regularizers, self.jit_compile, self.stop_at_success)

    @property
    def trace_count(self) -> int:
        """All traces of this loop's compiled functions so far."""
        return sum(self.traces.values())

    # ------------------------------------------------------------------ the graph

    def _add_penalties(self, loss, x, x0, data) -> tf.Tensor:
        for penalty in self._penalties:
            extra = penalty(x, x0, data)
            if extra is not None:
                loss = loss + extra
        return loss

    def _total_loss(self, x, x_in, x0, data) -> tuple[tf.Tensor, tf.Tensor]:
        loss, tracked = self.objective(x_in, data)
        return self._add_penalties(loss, x, x0, data), tracked

    def _step(self, step, x, x0, rate, seed, data, done) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        if self.jit_compile:
            self.traces["step"] += 1
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            x_in = x
            for transform in self._transforms:
                x_in = transform(x_in, step, seed)
            if self.stop_at_success:
                loss, tracked, success = self.objective.evaluate(x_in, data)
                loss = self._add_penalties(loss, x, x0, data)
            else:
                loss, tracked = self._total_loss(x, x_in, x0, data)
        # Examples are independent, so this is per example. No path to x (rounding, JPEG in the model)
        # is a zero gradient, as TensorFlow defines it: gradient masking, which lesson 4 shows.
        grad = tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        x_new = x - per_example(rate, x) * step_direction(grad, self.step_rule)
        for after_step in self._after_steps:
            x_new = after_step(x_new, x0, step, data)
        if self.stop_at_success:  # judged before this step: those that made it stay where they are
            done = tf.logical_or(done, success)
            x_new = tf.where(per_example(tf.cast(done, tf.float32), x) > 0.5, x, x_new)
        return x_new, loss, tracked, done

    def _chunk(self, x, x0, first, n, rate, seed, data, done) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        self.traces["chunk"] += 1  # runs while tracing only
        losses = tf.TensorArray(tf.float32, size=n, element_shape=x.shape[:1])
        tracked = tf.TensorArray(tf.float32, size=n)

        def body(i, x, done, losses, tracked):
            x, loss, track, done = self._step_fn(first + i, x, x0, rate, seed, data, done)
            return i + 1, x, done, losses.write(i, loss), tracked.write(i, track)

        _, x, done, losses, tracked = tf.while_loop(
            lambda i, *_: i < n, body, (tf.constant(0), x, done, losses, tracked), parallel_iterations=1
        )
        return x, losses.stack(), tracked.stack(), done

    def _final_loss(self, x, x0, data) -> tuple[tf.Tensor, tf.Tensor]:
        self.traces["final"] += 1
        return self._total_loss(x, x, x0, data)

    def _perturb_loop(self, x, x0, steps, rate, seed, data) -> tf.Tensor:
        self.traces["perturb"] += 1

        def body(i, x, done):
            x, _, _, done = self._step_fn(i, x, x0, rate, seed, data, done)
            return i + 1, x, done

        def more(i, x, done):
            return tf.logical_and(i < steps, tf.logical_not(tf.reduce_all(done))) if self.stop_at_success else i < steps

        done = tf.zeros(tf.shape(x)[:1], tf.bool)
        return tf.while_loop(more, body, (tf.constant(0), x, done), parallel_iterations=1)[1]

    # ------------------------------------------------------------------ per-call values

    def _values(self, data: Mapping[str, Any] | None) -> dict[str, Any]:
        values = {**self.defaults, **dict(data or {})}
        unknown = sorted(set(values) - set(self.data_spec))
        reads = ", ".join(repr(k) for k in self.data_spec) or "none"
        if unknown:
            raise ValueError(f"this loop reads no per-call value {unknown[0]!r}; it reads: {reads}")
        missing = [k for k in self.data_spec if k not in values]
        if missing:
            raise ValueError(f"this loop needs the per-call value {missing[0]!r} (one for the batch or one per "
                             f"example, e.g. data={{{missing[0]!r}: ...}}); it reads: {reads}")
        return values

    def host_data(self, data: Mapping[str, Any] | None, batch: int) -> dict[str, tf.Tensor]:
        """The per-call values as ``(batch,)`` tensors of their dtype, checked (numbers, shapes)
        before anything is traced. One value for the batch is repeated for every example."""
        out = {}
        for name, value in self._values(data).items():
            a = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
            if a.ndim == 0:
                a = np.full(batch, a)
            if a.shape != (batch,) or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
                raise ValueError(f"the per-call value {name!r} must be one number or one per example ({batch}), "
                                 f"got {a.dtype} of shape {a.shape}")
            dtype = self.data_spec[name]
            if dtype.is_integer and not np.all(np.equal(np.mod(a, 1), 0)):
                raise ValueError(f"the per-call value {name!r} must hold whole numbers, got {a.tolist()}")
            if dtype.is_floating and not np.all(np.isfinite(a)):
                raise ValueError(f"the per-call value {name!r} must be finite, got {a.tolist()}")
            out[name] = tf.constant(a, dtype)
        return out

    def graph_data(self, data: Mapping[str, Any] | None, x0: tf.Tensor) -> dict[str, tf.Tensor]:
        """The per-call values as ``(N,)`` tensors in the graph (eagerly: concrete tensors)."""
        n = tf.shape(x0)[:1]
        values = self._values(data)
        return {name: tf.broadcast_to(tf.cast(values[name], dtype), n) for name, dtype in self.data_spec.items()}

    # ------------------------------------------------------------------ running

    def perturb(
        self,
        x0: tf.Tensor,
        data: Mapping[str, Any] | None = None,
        *,
        steps: int | tf.Tensor,
        step_size: float | tf.Tensor,
        seed: int | tf.Tensor = 0,
        start: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Run ``steps`` steps from ``start`` (default ``x0``) and return the final batch, a tensor.

        The graph-level run: no history, no progress bar, no host sync, no Python between steps,
        so it can be called eagerly, inside a ``tf.function`` or a Keras ``train_step``. Every
        argument may be a tensor: ``steps`` (int), ``step_size`` (one, or one per example),
        ``seed`` (an int32 scalar: inside a training step, something that changes per batch) and
        the per-call ``data`` (e.g. ``{"labels": y, "epsilon": 8.0}``, one value or one per
        example). New values never trace the loop again. No gradient flows back through the
        result (it is an input, not a function of the weights).
        """
        x0 = tf.convert_to_tensor(x0, tf.float32)
        x = x0 if start is None else tf.convert_to_tensor(start, tf.float32)
        n = tf.shape(x0)[:1]
        rate = tf.broadcast_to(tf.cast(step_size, tf.float32), n)
        seed_t = tf.reshape(tf.cast(seed, tf.int32), []) + seed_offset()  # COURSE_SEED, course_utils.seeds
        steps_t = tf.cast(steps, tf.int32)
        return tf.stop_gradient(self._perturb(x, x0, steps_t, rate, seed_t, self.graph_data(data, x0)))

    def run(
        self,
        x0: np.ndarray | tf.Tensor,
        data: Mapping[str, Any] | None = None,
        *,
        steps: int,
        step_size: float | Sequence[float],
        start: np.ndarray | tf.Tensor | None = None,
        seed: int = 0,
        progress: bool | None = None,
        description: str = "optimising",
    ) -> LoopResult:
        """Run ``steps`` gradient steps from ``start`` (default ``x0``) and return the history.

        Args:
            x0: the reference batch ``(N, ...)`` in pixel units (the photo being attacked; for
                visualisation from noise, the noise). Penalties and constraints measure from it.
            data: the per-call values the objective and pieces read (labels, epsilon, beta...).
            steps: number of steps, >= 1; refused when the history would pass
                :data:`~course_utils.core.history.MAX_HISTORY_BYTES`.
            step_size: pixels per step for ``"sign"``, ``"rms"`` and ``"l2"``; the learning rate
                for ``"plain"``. One number, or one per example.
            start: where ``x`` starts, default ``x0``.
            seed: seed for the pieces' randomness (the same seed gives the same result).
            progress: show a text progress bar; ``None`` shows one for long runs (50 steps or
                more). Whatever it is, Kernel -> Interrupt stops the run within about a chunk
                with a ``KeyboardInterrupt``.
            description: the bar's label.
        """
        steps = check_steps(steps)
        seed_t = tf.constant(effective_seed(seed), tf.int32)
        progress = check_flag("progress", progress, allow_none=True)
        x0 = tf.convert_to_tensor(x0, tf.float32)
        x = x0 if start is None else tf.convert_to_tensor(start, tf.float32)
        self._check_batch(x0, x)
        x_start = x
        batch = int(x0.shape[0])
        rate = self._rate(step_size, batch)
        data_t = self.host_data(data, batch)
        check_history(steps, batch, 1, at_least=True)  # refuse absurd runs before tracing
        traced = self.trace_count
        t0 = time.perf_counter()
        done = tf.zeros([batch], tf.bool)
        concrete = self._run_chunk.get_concrete_function(x, x0, tf.constant(0), tf.constant(1), rate, seed_t, data_t, done)
        self._final.get_concrete_function(x, x0, data_t)
        compile_seconds = time.perf_counter() - t0  # ~0 when this loop already ran on this shape
        shape = concrete.structured_outputs[2].shape  # (steps, N, K): K is known unless the objective hides it
        known = shape.rank is not None and None not in shape[2:]
        check_history(steps, batch, int(np.prod(shape[2:])) if known else 1, at_least=not known)
        show = steps >= 50 if progress is None else progress
        bar = progress_bar(steps, description) if show else None
        losses_out = tracked_out = None
        chunks: list[int] = []
        steps_done, n = 0, 1
        try:
            while steps_done < steps:
                n = min(n, steps - steps_done)
                tick = time.perf_counter()
                x, losses, tracked, done = self._run_chunk(x, x0, tf.constant(steps_done), tf.constant(n), rate, seed_t,
                                                           data_t, done)
                losses, tracked = losses.numpy(), tracked.numpy()  # the one host sync per chunk
                seconds = time.perf_counter() - tick
                if tracked_out is None:
                    check_history(steps, batch, int(np.prod(tracked.shape[2:])))
                    losses_out = np.empty((steps + 1, *losses.shape[1:]), np.float32)
                    tracked_out = np.empty((steps + 1, *tracked.shape[1:]), np.float32)
                losses_out[steps_done : steps_done + n], tracked_out[steps_done : steps_done + n] = losses, tracked
                steps_done += n
                chunks.append(n)
                if bar is not None:
                    bar.update(n)
                n = next_chunk_length(n, seconds, self.chunk_seconds)
            final_loss, final_tracked = self._final(x, x0, data_t)
            losses_out[steps], tracked_out[steps] = final_loss.numpy(), final_tracked.numpy()
            if self._transforms:  # step 0 was seen through random transforms: measure the start as the final
                start_loss, start_tracked = self._final(x_start, x0, data_t)
                losses_out[0], tracked_out[0] = start_loss.numpy(), start_tracked.numpy()
        except KeyboardInterrupt:
            # Nothing of the loop's state changed: the compiled graph is kept and can run again.
            raise KeyboardInterrupt(f"stopped after {steps_done:,} of {steps:,} steps (run it again any time)") from None
        finally:
            if bar is not None:
                bar.close()
        return LoopResult(
            x=x.numpy(), losses=losses_out, tracked=tracked_out, compile_seconds=compile_seconds,
            seconds=time.perf_counter() - t0, chunks=tuple(chunks), traces=self.trace_count - traced,
        )

    @staticmethod
    def _rate(step_size: Any, batch: int) -> tf.Tensor:
        """The step size, one number > 0 or one per example, as ``(batch,)`` float32."""
        if np.ndim(step_size) == 0:
            return tf.fill([batch], tf.constant(check_number("step_size", step_size, minimum=0.0, above=True), tf.float32))
        sizes = [check_number("step_size", s, minimum=0.0, above=True) for s in np.ravel(step_size)]
        if len(sizes) != batch:
            raise ValueError(f"got {len(sizes)} step sizes for a batch of {batch}; give one, or one per example")
        return tf.constant(sizes, tf.float32)

    def _check_batch(self, x0: tf.Tensor, x: tf.Tensor) -> None:
        """Clear errors, before tracing, for batches the loop cannot run on."""
        if x0.shape.rank is None or x0.shape.rank < 1:
            raise ValueError(f"x0 must be a batch (N, ...), got shape {tuple(x0.shape)}")
        check_batch(x0, "inputs")
        if tuple(x.shape) != tuple(x0.shape):
            raise ValueError(f"start must have the shape of x0 {tuple(x0.shape)}, got {tuple(x.shape)}")
        for r in self.regularizers:
            r.check_input(tuple(x0.shape))


def structure_key(objective: Objective, step_rule: str, regularizers: Sequence[Regularizer], jit_compile: bool | str,
                  stop_at_success: bool = False) -> Hashable:
    """What a compiled loop bakes in, and nothing it takes per call: the objective's kind, the step
    rule, each piece's kind and settings (not its per-call values), XLA and stopping at success."""
    return ("loop", objective.key(), step_rule, tuple(r.key() for r in regularizers), jit_compile,
            bool(stop_at_success))

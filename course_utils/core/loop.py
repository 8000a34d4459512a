"""The driver: runs a lesson's step, compiled, many times. Nothing of any algorithm lives here.

Each gradient method writes its *step* in its own module, as straight TensorFlow, the few lines the
lesson writes by hand (for PGD, :func:`course_utils.attacks.pgd.pgd_step`)::

    def step(model, x, x0, i, seed, data, **settings):
        # x: the batch now (N, H, W, C); x0: where it started; i: the step number (int32);
        # seed: an int32 (2,) seed; data: the per-call tensors, one value per example ({"labels": ..., "epsilon": ...})
        ...
        return x_next, loss, tracked, success   # (N, ...), (N,), (N, K), (N,) bool or None

This module only does what is not the algorithm:

- **compile** it: :func:`compiled` gives the :class:`Loop` of ``(step, model, settings)``, traced once
  and kept per model (:func:`course_utils.models.forward.cached`). The per-call ``data`` and the seed
  are arguments of the graph, so a new epsilon, target or beta never traces it again
  (:attr:`Loop.traces` counts); a new batch shape traces once.
- **run** it: :meth:`Loop.perturb` graph-level (tensors in, the final batch out, no host sync: it works
  inside a ``tf.function`` or a Keras ``train_step``); :meth:`Loop.advance` the same for notebooks, and
  :meth:`Loop.run` with every step's loss and tracked values. These two run the steps in *chunks*, one
  call of the compiled ``tf.while_loop`` each, so the progress bar moves and Kernel -> Interrupt stops
  the run between them (nothing is kept; the same call can run again). The first chunk is one step,
  each next as long as fits in :attr:`Loop.chunk_seconds`, at most twice the last. Chunks never
  change the result.
- **stop at success** (``stop_at_success=True``): an example whose step says it has succeeded (judged
  on the picture before that step) stays where it is, as a careful attacker sends the smallest change
  that works; :meth:`Loop.perturb` ends when every example has.
- **give back**: :class:`LoopResult`, :func:`history_frame` (the per-step table every result shows)
  and :func:`progress_bar`.
"""

from __future__ import annotations

import sys
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping

import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import check_flag, check_int, check_steps, effective_seed
from course_utils.models.forward import cached

__all__ = ["Loop", "compiled", "LoopResult", "history_frame", "progress_bar"]

Step = Callable[..., tuple]


def compiled(step: Step, model: Any, *, stop_at_success: bool = False, measure: Step | None = None,
             **settings: Hashable) -> "Loop":
    """The compiled :class:`Loop` of ``step`` on ``model`` with these ``settings`` (fixed for the
    graph: a norm, targeted or not, a loss), built the first time and kept while ``model`` lives.

    ``measure``: for a step that sees the picture through random transforms (EOT, feature
    visualisation), what :meth:`Loop.run` records for the start and the end instead, on the picture
    itself: a function with the step's arguments returning ``(loss (N,), tracked (N, K))``.
    """
    key = ("loop", step, bool(stop_at_success), measure, tuple(sorted(settings.items())))
    return cached(model, key, lambda: Loop(step, model, stop_at_success=stop_at_success, measure=measure, **settings))


class Loop:
    """``step`` on ``model``, compiled: see the module's text. Build it with :func:`compiled`.

    Attributes:
        traces: how often each compiled function was traced: ``"chunk"`` (:meth:`run`), ``"final"``
            (its last evaluation), ``"perturb"`` (:meth:`perturb`).
        chunk_seconds: the wall time each compiled call of :meth:`run` aims at (0.25 s).
    """

    chunk_seconds: float = 0.25

    def __init__(self, step: Step, model: Any, *, stop_at_success: bool = False, measure: Step | None = None,
                 **settings: Any) -> None:
        try:
            self._model = weakref.ref(model)  # the cache is keyed by the model: hold it weakly
        except TypeError:
            self._model = lambda m=model: m
        self.step, self.measure, self.settings = step, measure, settings
        self.stop_at_success = check_flag("stop_at_success", stop_at_success)
        self.traces = {"chunk": 0, "final": 0, "perturb": 0}
        self._chunk = tf.function(self._chunk_graph)
        self._final = tf.function(self._final_graph)
        self._perturb = tf.function(self._perturb_graph, reduce_retracing=True)
        for f in (self._chunk, self._final, self._perturb):  # one trace per model and shape, by design
            f._omit_frequent_tracing_warning = True

    def __repr__(self) -> str:
        return f"Loop({getattr(self.step, '__name__', self.step)}, {self.settings})"

    @staticmethod
    def next_chunk_length(last_steps: int, last_seconds: float, target_seconds: float) -> int:
        """Steps for the next chunk: as many as fit in ``target_seconds`` at the pace of the last
        chunk (``last_steps`` in ``last_seconds``), at most twice the last, at least one."""
        fit = target_seconds * last_steps / last_seconds if last_seconds > 0 else float("inf")
        return max(1, int(min(fit, 2 * last_steps)))

    # ------------------------------------------------------------------ the graph

    def _one(self, i, x, x0, seed, data, done):
        x_next, loss, tracked, success = self.step(self._model(), x, x0, i, seed, data, **self.settings)
        x_next = tf.ensure_shape(x_next, x.shape)  # the batch size, which a gradient through compiled_forward loses
        if self.stop_at_success:  # judged before this step: those that made it stay where they are
            done = tf.logical_or(done, success)
            keep = tf.reshape(done, tf.concat([tf.shape(done), tf.ones([x.shape.rank - 1], tf.int32)], 0))
            x_next = tf.where(keep, x, x_next)
        return x_next, loss, tracked, done

    def _chunk_graph(self, x, x0, first, n, seed, data, done):
        self.traces["chunk"] += 1  # runs while tracing only
        losses = tf.TensorArray(tf.float32, size=n, element_shape=x.shape[:1])
        tracked = tf.TensorArray(tf.float32, size=n)

        def body(i, x, done, losses, tracked):
            x, loss, track, done = self._one(first + i, x, x0, seed, data, done)
            return i + 1, x, done, losses.write(i, loss), tracked.write(i, track)

        _, x, done, losses, tracked = tf.while_loop(
            lambda i, *_: i < n, body, (tf.constant(0), x, done, losses, tracked), parallel_iterations=1)
        return x, losses.stack(), tracked.stack(), done

    def _final_graph(self, i, x, x0, seed, data):
        self.traces["final"] += 1
        if self.measure is not None:
            return self.measure(self._model(), x, x0, i, seed, data, **self.settings)
        _, loss, tracked, _ = self.step(self._model(), x, x0, i, seed, data, **self.settings)
        return loss, tracked

    def _perturb_graph(self, x, x0, first, steps, seed, data, done):
        self.traces["perturb"] += 1
        last = first + steps

        def more(i, x, done):
            return tf.logical_and(i < last, tf.logical_not(tf.reduce_all(done))) if self.stop_at_success else i < last

        def body(i, x, done):
            x, _, _, done = self._one(i, x, x0, seed, data, done)
            return i + 1, x, done

        _, x, done = tf.while_loop(more, body, (first, x, done), parallel_iterations=1)
        return x, done

    # ------------------------------------------------------------------ running

    def perturb(self, x0: Any, data: Mapping[str, Any], *, steps: int | tf.Tensor, seed: Any = 0,
                start: Any = None) -> tf.Tensor:
        """Run ``steps`` steps from ``start`` (default ``x0``); return the final batch, a tensor.

        Tensors in, a tensor out, no host sync: callable eagerly, inside a ``tf.function`` or a
        Keras ``train_step``. ``data``: the per-call values (one, or one per example); ``seed``: an
        int or int32 tensor (``COURSE_SEED`` moves it). No gradient flows back through the result.
        """
        x0, x, data_t, seed_t = self._inputs(x0, data, seed, start)
        done = tf.zeros(tf.shape(x0)[:1], tf.bool)
        return tf.stop_gradient(self._perturb(x, x0, tf.constant(0), tf.cast(steps, tf.int32), seed_t, data_t, done)[0])

    def _inputs(self, x0: Any, data: Mapping[str, Any], seed: Any, start: Any) -> tuple:
        x0 = tf.convert_to_tensor(x0, tf.float32)
        x = x0 if start is None else tf.convert_to_tensor(start, tf.float32)
        n = tf.shape(x0)[:1]
        data_t = {k: tf.broadcast_to(tf.convert_to_tensor(v), n) for k, v in data.items()}
        seed_t = tf.stack([tf.reshape(tf.cast(seed, tf.int32), []) + effective_seed(0), 0])  # COURSE_SEED
        return x0, x, data_t, seed_t

    def advance(self, x0: Any, data: Mapping[str, Any], *, steps: int, seed: Any = 0, start: Any = None) -> np.ndarray:
        """:meth:`perturb` for notebooks: the same final batch (NumPy), run in chunks (see the module's
        text) so that Kernel -> Interrupt stops it. No history is kept: any number of steps fits in
        memory. The step number runs on, and an example that succeeded stays done, across chunks."""
        steps = check_int("steps", steps, minimum=0)
        x0, x, data_t, seed_t = self._inputs(x0, data, seed, start)
        done = tf.zeros(tf.shape(x0)[:1], tf.bool)
        steps_done, n = 0, 1
        try:
            while steps_done < steps:
                n = min(n, steps - steps_done)
                tick = time.perf_counter()
                x, done = self._perturb(x, x0, tf.constant(steps_done), tf.constant(n), seed_t, data_t, done)
                if self.stop_at_success and bool(tf.reduce_all(done)):  # the one host sync per chunk
                    break
                x = tf.identity(x.numpy())
                steps_done += n
                n = self.next_chunk_length(n, time.perf_counter() - tick, self.chunk_seconds)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"stopped after {steps_done:,} of {steps:,} steps (run it again any time)") from None
        return x.numpy()

    def run(self, x0: np.ndarray, data: Mapping[str, np.ndarray], *, steps: int, start: Any = None, seed: int = 0,
            progress: bool | None = None, description: str = "optimising") -> LoopResult:
        """Run ``steps`` steps from ``start`` (default ``x0``) and return the history (NumPy).

        Args:
            x0: the reference batch ``(N, ...)``, pixels: what budgets and penalties measure from.
            data: the per-call values, each a NumPy array ``(N,)`` of its dtype (checked by the caller).
            steps: number of steps, >= 1; refused when the history would not fit in memory.
            seed: the same seed gives the same result (``COURSE_SEED`` moves it).
            progress: a text progress bar (``None``: for runs of 50 steps or more), ``description`` its label.
        """
        steps = check_steps(steps)
        progress = check_flag("progress", progress, allow_none=True)
        x0 = tf.convert_to_tensor(x0, tf.float32)
        x = x_start = x0 if start is None else tf.convert_to_tensor(start, tf.float32)
        batch = int(x0.shape[0])
        check_steps(steps, batch, 1, at_least=True)  # refuse absurd runs before tracing
        data_t = {k: tf.constant(v) for k, v in data.items()}
        seed_t = tf.constant([effective_seed(seed), 0], tf.int32)
        done = tf.zeros([batch], tf.bool)
        traced = sum(self.traces.values())
        t0 = time.perf_counter()
        concrete = self._chunk.get_concrete_function(x, x0, tf.constant(0), tf.constant(1), seed_t, data_t, done)
        compile_seconds = time.perf_counter() - t0  # ~0 when this loop already ran on this shape
        shape = concrete.structured_outputs[2].shape  # (steps, N, K...): K is known unless the step hides it
        if shape.rank is not None and None not in shape[2:]:
            check_steps(steps, batch, int(np.prod(shape[2:])))
        bar = progress_bar(steps, description, show=steps >= 50 if progress is None else progress)
        losses_out = np.empty((steps + 1, batch), np.float32)
        tracked_out = None
        chunks: list[int] = []
        steps_done, n = 0, 1
        try:
            while steps_done < steps:
                n = min(n, steps - steps_done)
                tick = time.perf_counter()
                x, losses, tracked, done = self._chunk(x, x0, tf.constant(steps_done), tf.constant(n), seed_t, data_t, done)
                losses, tracked = losses.numpy(), tracked.numpy()
                if tracked_out is None:  # the width is known for certain now
                    check_steps(steps, batch, int(np.prod(tracked.shape[2:])))
                    tracked_out = np.empty((steps + 1, *tracked.shape[1:]), np.float32)
                losses_out[steps_done:steps_done + n], tracked_out[steps_done:steps_done + n] = losses, tracked
                seconds = time.perf_counter() - tick  # the one host sync per chunk is above
                steps_done += n
                chunks.append(n)
                bar.update(n)
                n = self.next_chunk_length(n, seconds, self.chunk_seconds)
            final_loss, final_tracked = self._final(tf.constant(steps), x, x0, seed_t, data_t)
            losses_out[steps], tracked_out[steps] = final_loss.numpy(), final_tracked.numpy()
            if self.measure is not None:  # the start too, on the picture itself
                start_loss, start_tracked = self._final(tf.constant(0), x_start, x0, seed_t, data_t)
                losses_out[0], tracked_out[0] = start_loss.numpy(), start_tracked.numpy()
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"stopped after {steps_done:,} of {steps:,} steps (run it again any time)") from None
        finally:
            bar.close()
        return LoopResult(x=x.numpy(), losses=losses_out, tracked=tracked_out, compile_seconds=compile_seconds,
                          seconds=time.perf_counter() - t0, chunks=tuple(chunks),
                          traces=sum(self.traces.values()) - traced)


# ------------------------------------------------------------------ what a run gives back

@dataclass(frozen=True)
class LoopResult:
    """What :meth:`Loop.run` returns (NumPy arrays).

    Attributes:
        x: the final batch, same shape as the start, pixel units.
        losses: ``(steps + 1, N)``; row ``t`` is the loss at the start of step ``t``, the last row the
            final ``x``'s. The first and last rows are measured on ``x`` itself, the others on what
            the model saw at that step (after a step's random transforms, if it has any).
        tracked: ``(steps + 1, N, K)``; the step's tracked values, rows as for ``losses``.
        compile_seconds: time spent tracing graphs before any step ran (~0 when nothing was traced).
        seconds: total wall time of the run.
        chunks: the steps of each compiled call, in order (they add up to ``steps``).
        traces: how many graphs this run traced (0 when it reused the compiled loop).
    """

    x: np.ndarray
    losses: np.ndarray
    tracked: np.ndarray
    compile_seconds: float
    seconds: float
    chunks: tuple[int, ...] = ()
    traces: int = 0

    @property
    def steps(self) -> int:
        return self.losses.shape[0] - 1


def history_frame(steps: int, **columns: Any) -> pd.DataFrame:
    """The tidy per-step history every result shows: one row per step and item, step by step.

    Columns: ``step``, then ``columns`` in the order given. Each is either per item (length
    ``M``, the same at every step: the image, the class, a label) or per step and item (shape
    ``(steps, M)``: a loss, a probability).
    """
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    widths = {a.shape[-1] for a in arrays.values()}
    if len(widths) != 1 or any(a.ndim == 2 and a.shape[0] != steps for a in arrays.values()):
        raise ValueError(f"history columns must be (M,) or ({steps}, M) for one M, got "
                         + ", ".join(f"{k} {a.shape}" for k, a in arrays.items()))
    (m,) = widths
    data = {"step": np.repeat(np.arange(steps), m)}
    data.update({k: np.tile(a, steps) if a.ndim == 1 else a.reshape(-1) for k, a in arrays.items()})
    return pd.DataFrame(data)


def progress_bar(total: int, description: str, *, show: bool = True) -> Any:
    """A text progress bar of ``total`` ticks (tqdm): it updates in place in JupyterLab and a
    terminal, and reads well in a notebook's saved output (a widget bar shows as a blank box on
    code hosts). ``show=False``: a bar that shows nothing (its ``update`` and ``close`` do nothing)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stdout, leave=True, ncols=90, mininterval=0.2, disable=not show)

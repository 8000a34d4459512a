"""Long loops stop when the student presses Stop, and absurd ones are refused before they start.

The compiled loop hands control back to Python only between chunks, so a chunk's wall time is
how long Kernel -> Interrupt may wait. These tests use a tiny model; the one timing assertion
(an interrupt lands within 5 s, when a chunk aims at 0.25 s) keeps a wide margin.
"""

from __future__ import annotations

import signal
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.pgd import iterative_attack
from course_utils.core.history import MAX_HISTORY_BYTES
from course_utils.core.gradient_loop import GradientLoop, next_chunk_length
from course_utils.core.steps import Blur, L2Decay
from course_utils.core.transforms import Jitter
from course_utils.core.penalties import TotalVariation
from course_utils.core.steps import PixelRange


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    """8x8x1 pixels -> 3 logits, a few hundred weights: one step takes about a millisecond."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x), name="tiny")


def _logit_objective(model: keras.Model, traces: list | None = None):
    """Maximise logit 0; track the three logits. ``traces`` counts how often it is traced."""

    def objective(x):
        if traces is not None:
            traces.append(1)  # runs while tracing only
        logits = model(x, training=False)
        return -logits[:, 0], logits

    return objective


X0 = np.full((2, 8, 8, 1), 127.5, np.float32) + np.arange(2, dtype=np.float32)[:, None, None, None]


def test_chunk_length_rule():
    assert next_chunk_length(1, 0.001, 0.25) == 2  # fast: grow, but at most double
    assert next_chunk_length(512, 1.0, 0.25) == 128  # too slow: shrink to fit 0.25 s
    assert next_chunk_length(1, 5.0, 0.25) == 1  # never below one step
    assert next_chunk_length(4, 0.0, 0.25) == 8


def test_chunks_start_at_one_step_and_never_more_than_double(tiny_model):
    loop = GradientLoop(_logit_objective(tiny_model), step_rule="rms")
    r = loop.run(X0, steps=300, step_size=1.0, progress=False)
    assert r.chunks[0] == 1 and sum(r.chunks) == 300 and len(r.chunks) > 1
    assert all(b <= 2 * a for a, b in zip(r.chunks, r.chunks[1:-1]))  # the last one is what is left
    assert r.losses.shape == (301, 2) and r.tracked.shape == (301, 2, 3)


def test_a_slow_step_keeps_chunks_within_the_time_target():
    # Every step sleeps 20 ms, so at most 0.25 / 0.02 = 12 steps fit in a chunk, whatever the machine.
    def slow(x):
        pause = tf.py_function(lambda: time.sleep(0.02) or np.float32(0), [], tf.float32)
        loss = tf.reduce_sum(tf.square(x), axis=[1, 2, 3]) + 0 * pause
        return loss, loss[:, None]

    r = GradientLoop(slow).run(np.ones((1, 2, 2, 1), np.float32), steps=40, step_size=0.01, progress=False)
    assert sum(r.chunks) == 40 and max(r.chunks) <= 12 and len(r.chunks) >= 4


def test_chunk_boundaries_do_not_change_the_result(tiny_model):
    regs = (Jitter(2), TotalVariation(0.5), L2Decay(0.05), Blur(0.5, every=3), PixelRange())
    loop = GradientLoop(_logit_objective(tiny_model), step_rule="rms", regularizers=regs)
    loop.chunk_seconds = 0.0  # every chunk one step
    one_by_one = loop.run(X0, steps=40, step_size=2.0, seed=7, progress=False)
    loop.chunk_seconds = float("inf")  # chunks of 1, 2, 4, 8, 16 and the rest
    doubling = loop.run(X0, steps=40, step_size=2.0, seed=7, progress=False)
    assert set(one_by_one.chunks) == {1} and doubling.chunks == (1, 2, 4, 8, 16, 9)
    np.testing.assert_array_equal(one_by_one.x, doubling.x)
    np.testing.assert_array_equal(one_by_one.losses, doubling.losses)
    np.testing.assert_array_equal(one_by_one.tracked, doubling.tracked)
    assert loop._run_chunk.experimental_get_tracing_count() == 1  # the chunk length never re-traces


def test_absurd_step_counts_are_refused_before_any_tracing(tiny_model):
    traces: list = []
    loop = GradientLoop(_logit_objective(tiny_model, traces))
    with pytest.raises(ValueError, match=r"steps=1,000,000,000 would keep at least 16\.0 GB of history") as err:
        loop.run(X0, steps=10**9, step_size=1.0)
    assert "at most" in str(err.value) and f"{MAX_HISTORY_BYTES / 1e9:g} GB" in str(err.value)
    assert traces == []  # refused before the objective was ever traced
    with pytest.raises(ValueError, match="GB of history"):  # the attacks know their width (1000 for ImageNet)
        iterative_attack(tiny_model, X0, 0, epsilon=2.0, steps=10**8, progress=False)


def test_the_exact_width_is_checked_once_known(tiny_model):
    def wide(x):  # tracks 1000 values per image: 10**6 steps x 2 images x 1001 x 4 bytes = 8 GB
        logits = tiny_model(x, training=False)
        return -logits[:, 0], tf.tile(logits[:, :1], [1, 1000])

    with pytest.raises(ValueError, match="8.0 GB of history"):
        GradientLoop(wide).run(X0, steps=10**6, step_size=1.0)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_an_interrupt_lands_quickly_and_the_loop_runs_again(tiny_model):
    loop = GradientLoop(_logit_objective(tiny_model), step_rule="sign", regularizers=(PixelRange(),))
    expected = GradientLoop(_logit_objective(tiny_model), step_rule="sign", regularizers=(PixelRange(),)).run(
        X0, steps=30, step_size=1.0, progress=False
    )
    loop.run(X0, steps=1, step_size=1.0, progress=False)  # traced: what follows only runs the graph
    traced = loop._run_chunk.experimental_get_tracing_count()
    fired: list[float] = []

    def stop(signum, frame):  # what Kernel -> Interrupt does: a KeyboardInterrupt in the main thread
        fired.append(time.perf_counter())
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, stop)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt, match="stopped after .* of 100,000 steps"):
            loop.run(X0, steps=10**5, step_size=1.0, progress=True)  # minutes of work
        landed = time.perf_counter()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired and landed - fired[0] < 5.0, f"the interrupt took {landed - fired[0]:.1f} s to land"
    again = loop.run(X0, steps=30, step_size=1.0, progress=False)
    assert loop._run_chunk.experimental_get_tracing_count() == traced  # reused, not traced again
    np.testing.assert_array_equal(again.x, expected.x)
    np.testing.assert_array_equal(again.tracked, expected.tracked)


def test_long_runs_show_a_progress_bar(tiny_model, capsys):
    loop = GradientLoop(_logit_objective(tiny_model))
    loop.run(X0, steps=60, step_size=1.0, description="long run")  # progress=None: shown from 50 steps
    out = capsys.readouterr().out
    assert "long run" in out and "60/60" in out
    loop.run(X0, steps=5, step_size=1.0, description="short run")
    assert "short run" not in capsys.readouterr().out

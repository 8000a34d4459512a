"""Long runs stop when the student presses Stop, and absurd ones are refused before they start.

The driver (:mod:`course_utils.core.loop`) hands control back to Python only between chunks, so a
chunk's wall time is how long Kernel -> Interrupt may wait. These tests use a tiny model and small
steps written here; the one timing assertion (an interrupt lands within 5 s, when a chunk aims at
0.25 s) keeps a wide margin.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_utils.attacks.pgd import iterative_attack
from course_utils.core import ops
from course_utils.checks import MAX_WORKING_BYTES
from course_utils.core.loop import Loop, compiled


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    """8x8x1 pixels -> 3 logits, a few hundred weights: one step takes about a millisecond."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x), name="tiny")


def logit_step(model, x, x0, i, seed, data, *, rule: str = "rms"):
    """Raise logit 0 by ``data["step_size"]`` pixels along ``rule``; keep pixels 0..255; track the logits."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        loss = -logits[:, 0]
    x_next = x - ops.per_example(data["step_size"], x) * ops.direction(tape.gradient(loss, x), rule)
    return tf.clip_by_value(x_next, 0.0, 255.0), loss, logits, None


def jitter_step(model, x, x0, i, seed, data):
    """:func:`logit_step` seen through a random shift of up to 2 pixels (drawn from the seed and the
    step), blurred every third step: the randomness and step-number logic a chunk boundary could break."""
    shift = tf.random.stateless_uniform([2], seed=ops.seed_pair(seed, i), minval=-2, maxval=3, dtype=tf.int32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(tf.roll(x, shift, axis=[1, 2]), training=False)
        loss = -logits[:, 0] + 1e-4 * tf.reduce_sum(tf.square(x - x0), axis=[1, 2, 3])
    x_next = x - ops.per_example(data["step_size"], x) * ops.direction(tape.gradient(loss, x), "rms")
    blurred = tf.nn.avg_pool2d(x_next, 3, 1, "SAME")
    x_next = tf.cond(tf.equal(i % 3, 2), lambda: blurred, lambda: x_next)
    return tf.clip_by_value(x_next, 0.0, 255.0), loss, logits, None


X0 = np.full((2, 8, 8, 1), 127.5, np.float32) + np.arange(2, dtype=np.float32)[:, None, None, None]


def _rate(value: float) -> dict:
    return {"step_size": np.full(len(X0), value, np.float32)}


def test_chunk_length_rule():
    assert Loop.next_chunk_length(1, 0.001, 0.25) == 2  # fast: grow, but at most double
    assert Loop.next_chunk_length(512, 1.0, 0.25) == 128  # too slow: shrink to fit 0.25 s
    assert Loop.next_chunk_length(1, 5.0, 0.25) == 1  # never below one step
    assert Loop.next_chunk_length(4, 0.0, 0.25) == 8


def test_chunks_start_at_one_step_and_never_more_than_double(tiny_model):
    r = compiled(logit_step, tiny_model).run(X0, _rate(1.0), steps=300, progress=False)
    assert r.chunks[0] == 1 and sum(r.chunks) == 300 and len(r.chunks) > 1
    assert all(b <= 2 * a for a, b in zip(r.chunks, r.chunks[1:-1]))  # the last one is what is left
    assert r.losses.shape == (301, 2) and r.tracked.shape == (301, 2, 3)
    assert r.losses[-1].mean() < r.losses[0].mean()  # it did climb logit 0


def test_a_slow_step_keeps_chunks_within_the_time_target():
    # Every step sleeps 20 ms, so at most 0.25 / 0.02 = 12 steps fit in a chunk, whatever the machine.
    def slow(model, x, x0, i, seed, data):
        pause = tf.ensure_shape(tf.py_function(lambda: time.sleep(0.02) or np.float32(0), [], tf.float32), [])
        loss = tf.reduce_sum(tf.square(x), axis=[1, 2, 3]) + 0 * pause
        return x * 0.99, loss, loss[:, None], None

    loop = compiled(slow, None)
    assert loop.chunk_seconds == 0.25
    r = loop.run(np.ones((1, 2, 2, 1), np.float32), {}, steps=40, progress=False)
    assert sum(r.chunks) == 40 and max(r.chunks) <= 12 and len(r.chunks) >= 4


def test_a_step_whose_tracked_values_have_no_static_shape_still_runs():
    # tf.py_function's result has no static shape, and neither has anything computed from it.
    def unshaped(model, x, x0, i, seed, data):
        zero = tf.py_function(lambda: np.float32(0), [], tf.float32)
        loss = tf.reduce_sum(tf.square(x), axis=[1, 2, 3]) + zero
        return x * 0.5, loss, loss[:, None], None

    r = compiled(unshaped, None).run(np.ones((1, 2, 2, 1), np.float32), {}, steps=3, progress=False)
    np.testing.assert_allclose(r.tracked[:, 0, 0], [4.0, 1.0, 0.25, 0.0625])


def test_chunk_boundaries_do_not_change_the_result(tiny_model):
    loop = compiled(jitter_step, tiny_model)
    loop.chunk_seconds = 0.0  # every chunk one step
    one_by_one = loop.run(X0, _rate(2.0), steps=40, seed=7, progress=False)
    traced = dict(loop.traces)
    loop.chunk_seconds = float("inf")  # chunks of 1, 2, 4, 8, 16 and the rest
    doubling = loop.run(X0, _rate(2.0), steps=40, seed=7, progress=False)
    assert set(one_by_one.chunks) == {1} and doubling.chunks == (1, 2, 4, 8, 16, 9)
    np.testing.assert_array_equal(one_by_one.x, doubling.x)
    np.testing.assert_array_equal(one_by_one.losses, doubling.losses)
    np.testing.assert_array_equal(one_by_one.tracked, doubling.tracked)
    assert traced["chunk"] == 1 and loop.traces == traced and doubling.traces == 0  # the chunk length never re-traces
    other = loop.run(X0, _rate(2.0), steps=40, seed=8, progress=False)
    assert not np.array_equal(other.x, doubling.x)  # the step's randomness is really there


def test_absurd_step_counts_are_refused_before_any_tracing(tiny_model):
    loop = compiled(logit_step, tiny_model, rule="sign")
    with pytest.raises(ValueError, match=r"steps=1,000,000,000 would keep at least 16\.0 GB of history") as err:
        loop.run(X0, _rate(1.0), steps=10**9)
    assert "at most" in str(err.value) and f"{MAX_WORKING_BYTES / 1e9:g} GB" in str(err.value)
    assert loop.traces == {"chunk": 0, "final": 0, "perturb": 0}  # refused before the step was ever traced
    with pytest.raises(ValueError, match="GB of history"):  # the attacks know their width (1000 for ImageNet)
        iterative_attack(tiny_model, X0, 0, epsilon=2.0, steps=10**8, progress=False)


def test_the_exact_width_is_checked_once_known(tiny_model):
    def wide(model, x, x0, i, seed, data):  # tracks 1000 values per image: 10**6 steps x 2 images x 1001 x 4 bytes = 8 GB
        logits = model(x, training=False)
        return x, -logits[:, 0], tf.tile(logits[:, :1], [1, 1000]), None

    with pytest.raises(ValueError, match="8.0 GB of history"):
        compiled(wide, tiny_model).run(X0, {}, steps=10**6)


def test_an_interrupt_lands_quickly_and_the_loop_runs_again(tiny_model):
    loop = compiled(logit_step, tiny_model, rule="sign")
    expected = loop.run(X0, _rate(1.0), steps=30, progress=False)  # traced: what follows only runs the graph
    traced = dict(loop.traces)
    fired: list[float] = []

    def stop(signum, frame):  # what Kernel -> Interrupt does: SIGINT, a KeyboardInterrupt in the main thread
        fired.append(time.perf_counter())
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt, match="stopped after .* of 100,000 steps"):
            loop.run(X0, _rate(1.0), steps=10**5, progress=True)  # minutes of work
        landed = time.perf_counter()
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert fired and landed - fired[0] < 5.0, f"the interrupt took {landed - fired[0]:.1f} s to land"
    again = loop.run(X0, _rate(1.0), steps=30, progress=False)
    assert loop.traces == traced and again.traces == 0  # reused, not traced again
    np.testing.assert_array_equal(again.x, expected.x)
    np.testing.assert_array_equal(again.losses, expected.losses)
    np.testing.assert_array_equal(again.tracked, expected.tracked)


def test_long_runs_show_a_progress_bar(tiny_model, capsys):
    loop = compiled(logit_step, tiny_model)
    loop.run(X0, _rate(1.0), steps=60, description="long run")  # progress=None: shown from 50 steps
    out = capsys.readouterr().out
    assert "long run" in out and "60/60" in out
    loop.run(X0, _rate(1.0), steps=5, description="short run")
    assert "short run" not in capsys.readouterr().out
    loop.run(X0, _rate(1.0), steps=5, progress=True, description="asked for")
    assert "asked for" in capsys.readouterr().out

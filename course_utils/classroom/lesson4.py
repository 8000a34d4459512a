"""Lesson 4's exercise checks (``04_defences``), graded as :mod:`course_utils.classroom.grading` says."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from course_utils.classroom.grading import Exercise

__all__ = [
    "LESSON4_EPSILONS", "lesson4_worst_case_accuracy", "lesson4_project_l2", "lesson4_smallest_epsilon_robust",
    "lesson4_random_start", "lesson4_straight_through", "lesson4_eot_gradient",
]

#: The budgets (grey levels) exercise 4.3 chooses from: each one doubles the one before.
LESSON4_EPSILONS: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0, 24.0, 48.0)


def _worst_case_cases() -> list[np.ndarray]:
    """Exercise 4.1's hidden (attacks, pictures) tables of "still right", on which the per-picture worst
    case, the mean, the weakest attack's accuracy and "right under any attack" all differ."""
    rng = Exercise.hidden_rng(41)
    cases = [np.array([[1, 1, 0, 1, 0, 1], [1, 0, 1, 1, 0, 1], [0, 1, 1, 1, 1, 1]], bool)]
    for attacks, pictures in [(2, 9), (4, 13), (5, 40)]:
        while True:
            table = rng.random((attacks, pictures)) < 0.7
            worst, mean = table.all(axis=0).mean(), table.mean()
            weakest, best = table.mean(axis=1).min(), table.any(axis=0).mean()
            if len({round(v, 9) for v in (worst, mean, weakest, best)}) == 4:
                cases.append(table)
                break
    return cases


@Exercise.graded
def lesson4_worst_case_accuracy(worst_case_accuracy: Any) -> None:
    """Exercise 4.1: ``worst_case_accuracy(still_right)`` is the robust accuracy against several
    attacks at once. ``still_right`` is a boolean array of shape (attacks, pictures), True where
    the picture's answer is still right after that attack; the answer is the share (0..1) of
    pictures still right after *every* attack (a picture counts as fooled if any attack fools it).
    """
    ex = Exercise("Exercise 1")
    ex.function(worst_case_accuracy)
    for table in _worst_case_cases():
        got = float(ex.answer_array(ex.run_answer(worst_case_accuracy, table.copy()), (), "one number"))
        want = float(table.all(axis=0).mean())
        if np.isclose(got, want, atol=1e-9):
            continue
        where = f"on a hidden table of {table.shape[0]} attacks x {table.shape[1]} pictures"
        if np.isclose(got, table.mean()):
            raise ex.wrong(f"{where} you return the average over attacks and pictures ({got:.3f}). "
                           "Robust accuracy is not an average: a picture that any one attack fools is lost.")
        if np.isclose(got, table.mean(axis=1).min()):
            raise ex.wrong(f"{where} you return the strongest single attack's accuracy ({got:.3f}). "
                           "Different attacks fool different pictures: decide per picture first.")
        if np.isclose(got, table.any(axis=0).mean()):
            raise ex.wrong(f"{where} you count a picture as right if it survives *some* attack "
                           f"({got:.3f}); the attacker picks the attack that works, so it must survive all.")
        raise ex.wrong(f"{where} you return {got:.3f}. Per picture: is it still right after every "
                       "attack? Then the share of such pictures.")
    return ex.correct(f"Per picture, the worst attack, then the share: right on {len(_worst_case_cases())} hidden "
                       "tables (on them, the average and the best single attack would have been too high).")


@Exercise.graded
def lesson4_project_l2(project_l2: Any) -> None:
    """Exercise 4.2: ``project_l2(delta, epsilon)`` projects a batch of changes ``delta`` (shape
    (n, height, width, channels), grey levels) onto the L2 ball of radius ``epsilon``: each
    picture's change whose L2 norm exceeds epsilon is scaled down to norm epsilon (its direction
    kept); a change already inside the ball is returned unchanged."""
    ex = Exercise("Exercise 2")
    ex.function(project_l2)
    rng = Exercise.hidden_rng(42)
    cases = []
    for shape, epsilon in [((3, 8, 8, 1), 20.0), ((4, 5, 7, 3), 6.5)]:
        delta = rng.normal(0.0, 4.0, shape)
        delta[0] *= 0.1          # one change well inside the ball
        delta[-1] *= 3.0         # one far outside
        cases.append((delta, epsilon))
    for delta, epsilon in cases:
        got = ex.answer_array(ex.run_answer(project_l2, delta.copy(), epsilon), delta.shape, "a batch of delta's shape")
        norms = np.sqrt((delta.reshape(len(delta), -1) ** 2).sum(axis=1))
        want = delta * np.minimum(1.0, epsilon / norms)[:, None, None, None]
        if np.allclose(got, want, rtol=1e-4, atol=1e-4):
            continue
        got_norms = np.sqrt((got.reshape(len(got), -1) ** 2).sum(axis=1))
        batch_norm = float(np.sqrt((delta ** 2).sum()))
        if np.allclose(got, delta * min(1.0, epsilon / batch_norm), rtol=1e-4, atol=1e-4):
            raise ex.wrong("you took one norm over the whole batch; each picture has its own ball "
                           "(the norm over its height, width and channels).")
        if np.allclose(got, np.clip(delta, -epsilon, epsilon), atol=1e-4):
            raise ex.wrong("clipping each value to ±epsilon is the L-inf box of section 1, not the "
                           "L2 ball: scale the whole change down instead.")
        if np.allclose(got_norms, epsilon, rtol=1e-3) and norms.min() < epsilon:
            raise ex.wrong("every change now has norm exactly epsilon, even one that was inside the "
                           f"ball (norm {norms.min():.2f} < {epsilon:g}): leave those unchanged.")
        if np.any(got_norms > epsilon * (1 + 1e-3)):
            raise ex.wrong(f"a change still has L2 norm {got_norms.max():.2f} > epsilon = {epsilon:g} "
                           "after your projection.")
        raise ex.wrong("your changes are inside the ball but not the projection: keep each change's "
                       "direction and scale it by epsilon / its norm when that is below 1.")
    return ex.correct("Each picture's change is scaled into its own ball, and changes inside it are left alone "
                       f"({sum(len(d) for d, _ in cases)} hidden changes, two radii).")


@Exercise.graded
def lesson4_smallest_epsilon_robust(answer: Any, model: Any, face: np.ndarray, target: str = "man", *, steps: int = 20,
                                    candidates: Sequence[float] = LESSON4_EPSILONS) -> None:
    """Exercise 4.3: the smallest budget in ``candidates`` at which a targeted PGD-``steps``
    attack (no random start) makes ``model`` answer ``target`` for ``face``.

    Runs the attack at the answer and at the next smaller candidate (two short runs).
    """
    from course_utils.attacks.pgd import pgd_attack

    def works(e: float) -> tuple[bool, float]:
        r = pgd_attack(model, face, target, e, steps=steps, targeted=True, random_start=False)
        logits = np.asarray(model(r.adversarial, training=False), np.float64)[0]
        p = np.exp(logits - logits.max())
        return bool(r.success[0]), float(p[r.labels[0]] / p.sum())

    Exercise("Exercise 3").smallest_that_works(answer, candidates, works, budget="epsilon = {:g}",
                        failing=f"{steps} steps do not make the model say {target!r}", reached=f"p({target})")


@Exercise.graded
def lesson4_random_start(random_start: Any) -> None:
    """Exercise 4.4: ``random_start(x, epsilon, seed)`` is PGD's start: a point drawn uniformly from
    the ±epsilon box around the batch ``x`` (grey levels), then clipped to 0..255; the same seed
    gives the same point."""
    ex = Exercise("Exercise 4")
    ex.function(random_start)
    mid, edges = np.full((2, 32, 32, 3), 128.0, np.float32), np.zeros((1, 16, 16, 3), np.float32)
    edges[..., 1:] = 255.0
    for x, eps, seed in [(mid, 4.0, 3), (mid, 0.5, 7), (edges, 8.0, 3)]:
        got = ex.answer_array(ex.run_answer(random_start, x, eps, seed), x.shape, "a batch of x's shape")
        d = got - x
        if got.min() < -1e-4 or got.max() > 255 + 1e-4:
            raise ex.wrong("your start has pixels outside 0..255: clip it to valid pixels.")
        if np.abs(d).max() > eps + 1e-4:
            raise ex.wrong(f"your start leaves the box: a pixel moved {np.abs(d).max():.2f} grey levels "
                           f"with epsilon = {eps:g}.")
        again = ex.answer_array(ex.run_answer(random_start, x, eps, seed), x.shape, "a batch of x's shape")
        if not np.array_equal(again, got):
            raise ex.wrong("the same seed gave two different starts: draw from a generator made "
                           "from `seed` (np.random.default_rng(seed), or a stateless TensorFlow op).")
        if x is edges:
            continue
        other = ex.answer_array(ex.run_answer(random_start, x, eps, seed + 1), x.shape, "a batch")
        if np.array_equal(other, got):
            raise ex.wrong("another seed gave the same start: the seed should choose the random numbers.")
        if np.mean(np.isclose(np.abs(d), eps, atol=1e-4)) > 0.5:
            raise ex.wrong("most of your changes sit exactly at ±epsilon, the corners of the box. "
                           "A uniform draw fills the whole box.")
        if abs(float(d.mean())) > 0.1 * eps or min(np.mean(d > 0), np.mean(d < 0)) < 0.3:
            raise ex.wrong(f"your changes lean to one side (mean {float(d.mean()):+.2f}); they should "
                           "go up and down equally, from -epsilon to +epsilon.")
        if not 0.4 * eps < float(np.abs(d).mean()) < 0.6 * eps:
            raise ex.wrong("your changes are not spread evenly over -epsilon..epsilon (a uniform draw "
                           "has a mean size of epsilon / 2).")
    return ex.correct("Your start is uniform in the box, valid pixels, repeatable with its seed.")


@Exercise.graded
def lesson4_straight_through(straight_through: Any) -> None:
    """Exercise 4.5: ``straight_through(x, transform)`` is BPDA's line: the value of ``transform(x)``
    forwards, the identity's gradient backwards."""
    import tensorflow as tf

    ex = Exercise("Exercise 5")
    ex.function(straight_through)
    rng = Exercise.hidden_rng(45)
    x = tf.constant(rng.uniform(0, 255, (2, 5, 5, 3)), tf.float32)
    w = tf.constant(rng.normal(size=(2, 5, 5, 3)), tf.float32)
    transforms = {"rounding": tf.round, "8-level quantising": lambda v: tf.round(v / 32.0) * 32.0,
                  "a contrast change": lambda v: 0.5 * v + 64.0}
    for name, transform in transforms.items():
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = ex.run_answer(straight_through, x, transform)
            if not isinstance(out, tf.Tensor):
                raise ex.wrong("return a TensorFlow tensor (the gradient has to flow through it), "
                               f"got {type(out).__name__}.")
            total = tf.reduce_sum(w * out)
        grad = tape.gradient(total, x)
        if not np.allclose(out.numpy(), transform(x).numpy(), atol=1e-3):
            raise ex.wrong(f"forwards, your output is not the transformed picture (tried with {name}): "
                           "the network must see exactly what the defence gives it.")
        if grad is None or not np.any(grad.numpy()):
            raise ex.wrong(f"no gradient reaches x through your line (tried with {name}): the backward "
                           "pass must go around the transform, not through it.")
        if not np.allclose(grad.numpy(), w.numpy(), atol=1e-4):
            raise ex.wrong(f"backwards, your line uses the transform's own gradient (tried with {name}); "
                           "BPDA takes the gradient as if the transform were the identity.")
    return ex.correct("Forwards the transform, backwards the identity, for three hidden transforms.")


@Exercise.graded
def lesson4_eot_gradient(eot_gradient: Any) -> None:
    """Exercise 4.6: ``eot_gradient(loss_fn, x, transforms)`` is EOT's gradient: the average over
    ``transforms`` of the gradient of ``loss_fn(t(x))`` with respect to ``x``."""
    import tensorflow as tf

    ex = Exercise("Exercise 6")
    ex.function(eot_gradient)
    rng = Exercise.hidden_rng(46)
    x = tf.constant(rng.uniform(0, 255, (1, 6, 6, 3)), tf.float32)
    w = tf.constant(rng.normal(size=(1, 6, 6, 3)), tf.float32)

    def loss_fn(v: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(w * tf.sin(v / 40.0))

    transforms = [lambda v: v, lambda v: tf.roll(v, 1, axis=2), lambda v: 0.8 * v + 20.0,
                  lambda v: tf.image.flip_left_right(v)]
    grads = []
    for t in transforms:
        with tf.GradientTape() as tape:
            tape.watch(x)
            grads.append(tape.gradient(loss_fn(t(x)), x).numpy())
    want = np.mean(grads, axis=0)
    out = ex.run_answer(eot_gradient, loss_fn, x, list(transforms))
    got = ex.answer_array(out, tuple(x.shape), "a gradient of x's shape")
    if np.allclose(got, want, atol=1e-5):
        return ex.correct(f"Your gradient is the mean over the {len(transforms)} hidden transforms.")
    if np.allclose(got, len(transforms) * want, atol=1e-5):
        raise ex.wrong(f"your gradient is {len(transforms)} times too large for {len(transforms)} transforms: "
                       "the expectation is an average, not a sum.")
    if any(np.allclose(got, g, atol=1e-5) for g in grads):
        raise ex.wrong("your gradient is that of one transform only; EOT averages over all of them.")
    raise ex.wrong("your gradient differs from the average over the transforms; differentiate "
                   "loss_fn(t(x)) with respect to x (watch x, not t(x)), for each t.")

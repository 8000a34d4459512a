"""Black-box attacks: the model seen only through its answers, every query counted (lesson 5).

- :class:`BlackBox` -- a Keras classifier behind a counter: it answers probabilities or only the top label,
  counts the queries of each example and refuses any beyond its budget;
- :func:`square_attack` -- the L-inf Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020),
  scores only;
- :func:`hop_skip_jump` -- HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020), L2, the top label only.

Lesson 5 (sections 2 and 4) teaches both algorithms; both return an
:class:`~course_utils.attacks.gradient.AttackResult` with the queries of each example. Units: pixels 0..255,
``epsilon`` and distances in grey levels; queries are pictures sent per example, the clean one included.
"""

from __future__ import annotations

import time
import weakref
from typing import Any, Literal

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up)
import tensorflow as tf

from course_utils.attacks.gradient import AttackResult
from course_utils.checks import MAX_WORKING_BYTES, check_flag, check_int, check_memory, check_number, effective_seed
from course_utils.io.images import as_batch
from course_utils.models.forward import cached, compiled_forward
from course_utils.models.imagenet import ClassNames

__all__ = ["BlackBox", "square_attack", "hop_skip_jump"]

Output = Literal["scores", "label"]


class _QueryBudgetExceeded(RuntimeError):
    """A black box was asked more questions about an example than its budget allows."""


MAX_QUERIES = 10**9
"""The largest query budget per example (a billion pictures is days of work for one photo)."""
_BATCH = 256  # pictures per compiled forward pass


def _check_budget(budget: Any, name: str = "queries", minimum: int = 1) -> int:
    """A query budget per example: a whole number in ``minimum..MAX_QUERIES``, or a clear error quoting the value."""
    return check_int(name, budget, minimum=minimum, maximum=MAX_QUERIES)


def _check_history(budget: int, n: int, values: int, name: str = "queries") -> None:
    """Refuse a budget whose per-iteration history (``values`` numbers of 8 bytes per example, at
    most one iteration per query) could pass :data:`~course_utils.checks.MAX_WORKING_BYTES`."""
    per = 8 * n * values
    check_memory(name, budget, per * (budget + 1), f"{max(1, MAX_WORKING_BYTES // per - 1):,}",
                 f"a history of {values} numbers per example and iteration, {n} example(s), "
                 "up to one iteration per query")


class BlackBox:
    """A classifier seen only through its answers, with a query counter per example.

    Args:
        model: a classifier ``pixels (N, H, W, C) 0..255 -> logits (N, K)`` (a Keras model).
        n: how many examples the attacker works on; queries are counted for each of them.
        output: ``"scores"`` (the softmax probabilities, a score-based attacker) or ``"label"``
            (only the top-1 class, a decision-based attacker).
        budget: the most queries allowed per example (a whole number >= 1), or ``None``.

    ``box.queries`` is a copy of the ``(n,)`` counts. Each picture sent is one query of the example
    it belongs to; a call that would take any example over its budget is refused whole, before
    the model runs (:class:`_QueryBudgetExceeded`).
    """

    def __init__(self, model: Any, n: int, *, output: Output = "scores", budget: int | None = None) -> None:
        if output not in ("scores", "label"):
            raise ValueError(f"output must be 'scores' (probabilities) or 'label' (top-1 only), got {output!r}")
        self.n = check_int("n", n, minimum=1)
        self.budget = None if budget is None else _check_budget(budget, "budget")
        self.output = output
        self._model = model
        self._counts = np.zeros(self.n, np.int64)

    @property
    def queries(self) -> np.ndarray:
        """``(n,)`` int64: the queries each example has used so far."""
        return self._counts.copy()

    @property
    def remaining(self) -> np.ndarray:
        """``(n,)`` int64: the queries each example has left (a very large number without a budget)."""
        if self.budget is None:
            return np.full(self.n, np.iinfo(np.int64).max // 2, np.int64)
        return self.budget - self._counts

    def _charge(self, which: Any, m: int) -> np.ndarray:
        which = np.asarray(which, np.int64).reshape(-1)
        if which.shape != (m,):
            raise ValueError(f"give one example index per picture: {m} picture(s), {which.size} index(es)")
        if m and (which.min() < 0 or which.max() >= self.n):
            raise ValueError(f"example indices must be in 0..{self.n - 1}, got {which.min()}..{which.max()}")
        asked = np.bincount(which, minlength=self.n)
        if self.budget is not None and np.any(self._counts + asked > self.budget):
            worst = int(np.argmax(self._counts + asked - self.budget))
            raise _QueryBudgetExceeded(
                f"example {worst} would use {int(self._counts[worst] + asked[worst])} queries, over its budget of "
                f"{self.budget}; ask only for the examples with queries left (box.remaining)")
        self._counts += asked
        return which

    def _ask(self, kind: str, x: Any, which: Any) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or len(x):  # NaN/inf, pixels 0..255, the model's input size: refused, not charged
            x = as_batch(x, self._model)
        self._charge(which, len(x))
        if len(x) == 0:
            return np.zeros((0,), np.int64) if kind == "label" else np.zeros((0, 0), np.float64)
        fn = compiled_forward(self._model, "probabilities" if kind == "scores" else "label")
        out = [fn(tf.constant(x[i : i + _BATCH])).numpy() for i in range(0, len(x), _BATCH)]
        return np.concatenate(out).astype(np.int64 if kind == "label" else np.float64)

    def probabilities(self, x: Any, which: Any) -> np.ndarray:
        """The class probabilities ``(M, K)`` float64 of the pictures ``x`` ``(M, H, W, C)``, 0..255;
        ``which`` ``(M,)`` names the example each picture is a query of. Score-based boxes only."""
        if self.output != "scores":
            raise PermissionError("this black box answers only the top label (output='label'); "
                                  "use box.label(x, which), or make it with output='scores'")
        return self._ask("scores", x, which)

    def label(self, x: Any, which: Any) -> np.ndarray:
        """The top-1 class ``(M,)`` int64 of the pictures ``x``; one query each, like :meth:`probabilities`."""
        if self.output == "scores":
            return self.probabilities(x, which).argmax(-1)
        return self._ask("label", x, which)

    def __repr__(self) -> str:
        used = f"{int(self._counts.sum())} queries used"
        cap = "" if self.budget is None else f", budget {self.budget} per example"
        return f"BlackBox({self.output}, {self.n} example(s), {used}{cap})"


def _p_schedule(p_init: float, iteration: int, iterations: int) -> float:
    """The paper's share ``p`` of the pixels one square covers: ``p_init`` halved at 10, 50, 200, 500, 1000,
    2000, 4000, 6000 and 8000 of 10000 iterations (rescaled to ``iterations``), as in the authors' code."""
    it = int(iteration / iterations * 10000)
    for i, edge in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if it <= edge:
            return p_init / 2**i
    return p_init / 2**9


def _margin(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The margin loss ``log p_y - max_{k != y} log p_k`` ``(M,)`` (negative = fooled) and ``p`` of class ``y``."""
    logp, rows = np.log(np.maximum(p, 1e-30)), np.arange(len(p))
    other = logp.copy()
    other[rows, y] = -np.inf
    return logp[rows, y] - other.max(1), p[rows, y]


def _squares(rng: np.random.Generator, m: int, h: int, w: int, s: int) -> np.ndarray:
    """``(m, H, W)`` bool: one random ``s`` x ``s`` square per example."""
    h0, w0 = rng.integers(0, h - s + 1, m), rng.integers(0, w - s + 1, m)
    rows, cols = np.arange(h), np.arange(w)
    rmask = (rows >= h0[:, None]) & (rows < h0[:, None] + s)
    cmask = (cols >= w0[:, None]) & (cols < w0[:, None] + s)
    return rmask[:, :, None] & cmask[:, None, :]


def square_attack(
    model: Any,
    images: Any,
    labels: Any = None,
    epsilon: float = 8.0,
    *,
    queries: int = 1000,
    seed: int = 0,
    keep_clean: bool = True,
) -> AttackResult:
    """The L-inf Square Attack (untargeted) with probabilities only, every query counted per example.

    1. Ask about the clean photo (query 1; its top-1 is the label when ``labels`` is ``None``).
    2. Start from vertical stripes: every column of every channel moved by +epsilon or -epsilon
       (kept only if they lower the margin, unless ``keep_clean=False``).
    3. Repeat: in one random square (side ``sqrt(p * H * W)`` pixels, ``p`` from :func:`_p_schedule`,
       starting at the paper's 0.05) set the change to +epsilon or -epsilon per channel, ask, and keep the
       new picture if its margin loss (:func:`_margin`) is lower. An example stops as soon as it is fooled.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: the true classes, indices or names, one or one per image; ``None``: the model's answer
            on the clean photo.
        epsilon: L-inf budget in grey levels (> 0).
        queries: query budget per example (a whole number >= 2: the clean photo and the start).
        seed: the same seed gives the same result (moved by ``COURSE_SEED``).
        keep_clean: start from the clean photo where the stripes make the margin larger (as ART
            does; it costs no query). ``False``: always start from the stripes, as the paper's code.

    Returns:
        :class:`~course_utils.attacks.gradient.AttackResult` with ``history`` keys ``"queries"``, ``"loss"``,
        ``"probability"`` (of the true class).
    """
    eps = check_number("epsilon", epsilon, minimum=0.0, above=True)
    budget = _check_budget(queries, minimum=2)
    keep_clean = check_flag("keep_clean", keep_clean)
    rng = np.random.default_rng(effective_seed(seed))
    x = as_batch(images, model)
    _check_history(budget, len(x), 3)
    n, h, w, c = x.shape
    y = None if labels is None else np.asarray(ClassNames.of(model).indices(labels, n, name="labels"), dtype=np.int64)
    start = time.perf_counter()
    box = BlackBox(model, n, output="scores", budget=budget)
    everyone = np.arange(n)
    p = box.probabilities(x, everyone)
    if y is None:
        y = p.argmax(-1)
    margin, prob = _margin(p, y)
    best = x.copy()
    todo = everyone[margin >= 0]  # margin < 0: fooled before any change (a wrong answer, or already the target)
    if len(todo):
        stripes = eps * rng.choice(np.array([-1.0, 1.0], np.float32), size=(len(todo), 1, w, c))
        striped = np.clip(x[todo] + stripes, 0.0, 255.0)
        p_s = box.probabilities(striped, todo)
        m_s, pr_s = _margin(p_s, y[todo])
        better = m_s < margin[todo] if keep_clean else np.ones(len(todo), bool)
        keep = todo[better]
        best[keep], p[keep], margin[keep], prob[keep] = striped[better], p_s[better], m_s[better], pr_s[better]
    hist = {"queries": [box.queries], "loss": [margin.copy()], "probability": [prob.copy()]}
    iteration = 0
    while True:
        active = everyone[(margin >= 0) & (box.remaining > 0)]
        if not len(active):
            break
        iteration += 1
        s = int(round(np.sqrt(_p_schedule(0.05, iteration, budget) * h * w)))
        s = min(max(s, 1), h - 1, w - 1)
        m = len(active)
        delta = best[active] - x[active]
        mask = _squares(rng, m, h, w, s)[..., None]
        signs = eps * rng.choice(np.array([-1.0, 1.0], np.float32), size=(m, 1, 1, c))
        for _ in range(10):  # redraw a square that would change nothing (the same signs, or clipped away)
            new = np.clip(x[active] + np.where(mask, signs, delta), 0.0, 255.0)
            same = np.all(np.abs(new - best[active]) < 1e-7, axis=(1, 2, 3))
            if not same.any():
                break
            signs[same] = eps * rng.choice(np.array([-1.0, 1.0], np.float32), size=(int(same.sum()), 1, 1, c))
            mask[same] = _squares(rng, int(same.sum()), h, w, s)[..., None]
        p_new = box.probabilities(new, active)
        m_new, pr_new = _margin(p_new, y[active])
        better = m_new < margin[active]
        keep = active[better]
        best[keep], margin[keep], prob[keep], p[keep] = new[better], m_new[better], pr_new[better], p_new[better]
        hist["queries"].append(box.queries)
        hist["loss"].append(margin.copy())
        hist["probability"].append(prob.copy())
    return AttackResult(
        "square", x, best, y, False, p.argmax(-1), np.full(len(y), eps, np.float32), "linf", fooled=margin < 0,
        queries=box.queries, budget=budget, history={k: np.stack(v) for k, v in hist.items()},
        seconds=time.perf_counter() - start)


_PUSH = 1.002  # the returned picture sits this factor further from the photo than the boundary point found
_INIT_TRIES = 100  # random pictures tried as a start, per example
_HALVINGS = 10  # the most steps of a geometric step search


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.square(a - b, dtype=np.float64).reshape(len(a), -1).sum(1))


def _hsj_graphs(model: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """HopSkipJump's compiled pieces for ``model`` (cached): ``search``, the binary search alone, and
    ``iteration``: direction estimate, step search and binary search in one call. They work on the examples
    given, pictures in 0..1, and count every picture they send per example (``used``), never beyond ``left``."""
    ref, f32, f64 = weakref.ref(model), tf.float32, tf.float64

    def ask(u: tf.Tensor, send: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Send the pictures ``u[send]`` (``_BATCH`` per forward pass): (adversarial, top label), False/0 elsewhere."""
        k = tf.where(send)[:, 0]
        out = tf.TensorArray(tf.int64, 0, dynamic_size=True, infer_shape=False, element_shape=[None])
        for i in tf.range(0, tf.size(k), _BATCH):
            out = out.write(out.size(), tf.argmax(ref()(tf.gather(u, k[i: i + _BATCH]) * 255.0, training=False), -1))
        top = tf.scatter_nd(k[:, None], out.concat(), tf.shape(send, out_type=tf.int64))
        return send & (top != labels), top

    def where4(c: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:  # per example, over whole pictures
        return tf.where(tf.reshape(c, [-1, 1, 1, 1]), a, b)

    def binary_search(x, adv, labels, last, left, used, theta):
        """Bisect each segment photo -> adversarial picture to the boundary, to ``min(d * theta, theta)``."""
        d = tf.sqrt(tf.reduce_sum(tf.reshape(tf.cast(adv - x, f64) ** 2, [tf.shape(x)[0], -1]), 1))
        threshold, low, high = tf.minimum(d * theta, theta), tf.zeros_like(d), tf.ones_like(d)

        def blend(a):
            a = tf.reshape(a, [-1, 1, 1, 1])
            return tf.cast((1.0 - a) * tf.cast(x, f64) + a * tf.cast(adv, f64), f32)

        def body(low, high, used, last):
            go = (high - low > threshold) & (used < left)
            mid = (low + high) / 2.0
            ok, top = ask(blend(mid), go, labels)
            return (tf.where(go & ~ok, mid, low), tf.where(ok, mid, high), used + tf.cast(go, tf.int32),
                    tf.where(ok, top, last))

        low, high, used, last = tf.while_loop(lambda low, high, used, last: tf.reduce_any(
            (high - low > threshold) & (used < left)), body, (low, high, used, last))
        return blend(high), used, last

    def estimate(adv, labels, evals, delta, seed):
        """Unit directions that leave the true class: ``evals`` probes of radius ``delta`` around each point,
        +1 where the model is still fooled, -1 where not, averaged with Chen et al.'s baseline."""
        m, owners = tf.shape(adv)[0], tf.repeat(tf.range(tf.shape(adv)[0]), evals)
        s_frv, s_rv, s_f = tf.zeros_like(adv), tf.zeros_like(adv), tf.zeros((m,), f32)
        for start in tf.range(0, tf.shape(owners)[0], _BATCH):
            who = owners[start: start + _BATCH]
            base, r = tf.gather(adv, who), tf.reshape(tf.gather(delta, who), [-1, 1, 1, 1])
            rv = tf.random.stateless_normal(tf.shape(base), seed=seed + tf.cast([0, start], tf.int64))
            length = tf.reshape(tf.norm(tf.reshape(rv, [tf.shape(rv)[0], -1]), axis=1), [-1, 1, 1, 1])
            rv = tf.clip_by_value(base + r * rv / length, 0.0, 1.0)
            hit = tf.equal(tf.argmax(ref()(rv * 255.0, training=False), axis=-1), tf.gather(labels, who))
            f, rv = tf.where(hit, -1.0, 1.0), (rv - base) / r
            s_frv += tf.math.unsorted_segment_sum(tf.reshape(f, [-1, 1, 1, 1]) * rv, who, m)
            s_rv, s_f = s_rv + tf.math.unsorted_segment_sum(rv, who, m), s_f + tf.math.unsorted_segment_sum(f, who, m)
        n = tf.reshape(tf.cast(evals, f64), [-1, 1, 1, 1])
        mean, s_rv = tf.reshape(tf.cast(s_f, f64), [-1, 1, 1, 1]) / n, tf.cast(s_rv, f64)
        # every probe on one side: the mean probe direction, signed; else the baseline-corrected estimate
        g = tf.where(tf.abs(mean) == 1.0, mean * s_rv, tf.cast(s_frv, f64) - mean * s_rv) / n
        norm = tf.sqrt(tf.reduce_sum(tf.reshape(g * g, [m, -1]), 1))
        return tf.cast(g / tf.reshape(tf.maximum(norm, 1e-12), [-1, 1, 1, 1]), f32)

    def search(x, adv, labels, last, left, theta):
        return binary_search(x, adv, labels, last, left, tf.zeros_like(left), theta)

    def iteration(x, adv, labels, last, left, theta, evals, delta, step, seed):
        grad = estimate(adv, labels, evals, delta, seed)

        def halve(i, new, pending, step, used, last):  # geometric step search: halve until adversarial again
            pending &= used < left
            trial = tf.cast(tf.clip_by_value(tf.cast(adv, f64) + tf.reshape(step, [-1, 1, 1, 1]) * tf.cast(grad, f64),
                                             0.0, 1.0), f32)
            ok, top = ask(trial, pending, labels)
            return (i + 1, where4(ok, trial, new), pending & ~ok, tf.where(pending & ~ok, step / 2.0, step),
                    used + tf.cast(pending, tf.int32), tf.where(ok, top, last))

        state = (0, adv, tf.ones_like(left, tf.bool), step, tf.zeros_like(left), last)
        _, moved, _, _, used, last = tf.while_loop(
            lambda i, new, pending, step, used, last: (i < _HALVINGS) & tf.reduce_any(pending & (used < left)),
            halve, state)
        return binary_search(x, moved, labels, last, left, used, theta)  # where no step worked: from the old point

    pictures = [tf.TensorSpec((None, *shape), f32)] * 2
    common = [tf.TensorSpec((None,), tf.int64)] * 2 + [tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), f64)]
    more = [tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), f32), tf.TensorSpec((None,), f64),
            tf.TensorSpec((2,), tf.int64)]
    return cached(model, ("hopskipjump", tuple(shape)), lambda: (
        tf.function(search, input_signature=pictures + common),
        tf.function(iteration, input_signature=pictures + common + more)))


def hop_skip_jump(
    model: Any,
    images: Any,
    labels: Any = None,
    *,
    queries: int = 2000,
    iterations: int | None = None,
    init_evals: int = 100,
    max_evals: int = 1000,
    seed: int = 0,
) -> AttackResult:
    """HopSkipJump (untargeted), L2, with the top label only; every query counted per example.

    Start from uniform noise the model gets wrong (up to 100 tries per example) and walk it towards the
    photo along the decision boundary; each iteration: estimate the direction that leaves the true class
    from probes around the boundary point, step along it (halving the step until the picture is wrong
    again), and binary search back to the boundary. Inside, pixels are 0..1, so that the paper's constants
    apply as written (``gamma`` = 1: the binary search stops at ``theta = 1 / d**1.5``). Each iteration runs
    as one compiled call.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: the true classes, indices or names, one or one per image; ``None``: the model's top
            label on the clean photo (one query each).
        queries: query budget per example (a whole number >= 1), every query included: the clean
            photo, the search for a start, the binary searches, probes and step searches.
        iterations: stop after this many iterations (>= 1) even with queries left; ``None``: run
            until the budget is spent.
        init_evals: probes for the first direction estimate; iteration ``t`` uses
            ``init_evals * sqrt(t)``, at most ``max_evals``.
        seed: the same seed gives the same result (moved by ``COURSE_SEED``).

    Returns:
        :class:`~course_utils.attacks.gradient.AttackResult` (``epsilon`` ``None``); ``success`` says the
        result fools the model (False only where no start was found), ``history`` has
        ``"queries"`` and ``"l2"`` (grey levels) after the start and after each iteration.
    """
    budget = _check_budget(queries)
    init_evals = check_int("init_evals", init_evals, minimum=1)
    max_evals = check_int("max_evals", max_evals, minimum=init_evals)
    if iterations is not None:
        iterations = check_int("iterations", iterations, minimum=1)
    rng = np.random.default_rng(effective_seed(seed))
    x255 = as_batch(images, model)
    n = len(x255)
    _check_history(budget if iterations is None else min(budget, iterations), n, 2)
    y = None if labels is None else np.asarray(ClassNames.of(model).indices(labels, n, name="labels"), dtype=np.int64)
    t0 = time.perf_counter()
    box = BlackBox(model, n, output="label", budget=budget)
    everyone = np.arange(n)
    if y is None:
        y = box.label(x255, everyone)
    x = x255 / 255.0
    d = x[0].size
    theta = 1.0 / (d * np.sqrt(d))
    adv, found, last = x.copy(), np.zeros(n, bool), y.copy()  # last: the answer on each latest adversarial picture
    for _ in range(_INIT_TRIES):
        need = everyone[~found & (box.remaining > 0)]
        if not len(need):
            break
        noise = rng.uniform(0.0, 1.0, (len(need), *x.shape[1:])).astype(np.float32)
        top = box.label(noise * 255.0, need)
        ok = top != y[need]
        adv[need[ok]], found[need[ok]], last[need[ok]] = noise[ok], True, top[ok]
    search, iteration = _hsj_graphs(model, x.shape[1:])

    def run(fn: Any, idx: np.ndarray, left: np.ndarray, *more: Any) -> None:
        """One compiled piece on the examples ``idx``; the pictures it sent are charged to them."""
        new, used, top = (t.numpy() for t in fn(x[idx], adv[idx], y[idx], last[idx], left.astype(np.int32),
                                               tf.constant(theta, tf.float64), *more))
        box._charge(np.repeat(idx, used), int(used.sum()))
        adv[idx], last[idx] = new, top

    if found.any():
        run(search, everyone[found], box.remaining[found])
    dist = np.where(found, _dist(x, adv), 0.0)
    hist = {"queries": [box.queries], "l2": [dist * 255.0]}
    t = 0
    while iterations is None or t < iterations:
        t += 1
        evals = min(int(init_evals * np.sqrt(t)), max_evals)
        reserve = 12 + int(np.ceil(np.log2(max(1.0 / theta, 2.0))))  # a step search and a binary search
        remaining = box.remaining
        idx = everyone[found & (remaining >= reserve + 2)]
        if not len(idx):
            break
        n_evals = np.minimum(evals, remaining[idx] - reserve - 1).astype(np.int32)  # 1 kept for the end
        delta = (np.full(len(idx), 0.1) if t == 1 else np.sqrt(d) * theta * dist[idx]).astype(np.float32)
        box._charge(np.repeat(idx, n_evals), int(n_evals.sum()))  # the probes, charged before they are sent
        run(iteration, idx, remaining[idx] - n_evals, n_evals, np.maximum(delta, 1e-6), dist[idx] / np.sqrt(t),
            rng.integers(0, 2**62, size=2, dtype=np.int64))
        dist[idx] = _dist(x[idx], adv[idx])
        hist["queries"].append(box.queries)
        hist["l2"].append(dist * 255.0)
    # A boundary point is wrong by a hair: another batch size or thread count may answer otherwise.
    # Step 0.2% further from the photo, and keep that where one more query confirms it.
    end = everyone[found & (box.remaining > 0)]
    if len(end):
        pushed = np.clip(x[end] + _PUSH * (adv[end] - x[end]), 0.0, 1.0).astype(np.float32)
        top = box.label(pushed * 255.0, end)
        ok = top != y[end]
        adv[end[ok]], last[end[ok]] = pushed[ok], top[ok]
        dist[end] = _dist(x[end], adv[end])
        hist["queries"][-1], hist["l2"][-1] = box.queries, dist * 255.0
    out = np.clip(adv * 255.0, 0.0, 255.0).astype(np.float32)
    out[~found] = x255[~found]
    return AttackResult(
        "hopskipjump", x255, out, y, False, last, None, "l2", fooled=found, queries=box.queries,
        budget=budget, history={k: np.stack(v) for k, v in hist.items()}, seconds=time.perf_counter() - t0)

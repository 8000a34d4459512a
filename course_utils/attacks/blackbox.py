"""Black-box attacks: the model seen only through its answers, every query counted.

A black-box attacker cannot take a gradient. It sends a picture and reads the answer: the
probabilities of the classes (*score-based*) or only the top label (*decision-based*). What such
an attack costs is the number of pictures it has to send, its *queries*, and a real service
counts (and bills) them.

- :class:`BlackBox` -- a Keras classifier behind a counter: it answers probabilities or only the
  top label, counts the queries of each example and refuses any beyond its budget. The forward
  passes run batched through one compiled ``tf.function`` per model.
- :func:`square_attack` -- the L-inf Square Attack (Andriushchenko, Croce, Flammarion & Hein,
  ECCV 2020), scores only: start from vertical stripes of +-epsilon, then try one random square
  of +-epsilon at a time and keep it when the margin loss drops; stop each example at success.
- :func:`hop_skip_jump` -- HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020), the top label
  only: start from any picture the model already gets wrong (random noise, or a photo of the
  target class) and walk it towards the original photo along the decision boundary:

  1. **binary search** on the segment between the photo and the wrong picture, to a point just
     on the wrong side of the boundary;
  2. **gradient direction estimate** at that point: send it with many small random changes; the
     changes that stay wrong, minus those that do not, average to the direction that leaves the
     true class (a Monte-Carlo estimate of the sign of the gradient, in one batch of queries);
  3. **geometric step search**: step along that direction by ``distance / sqrt(t)``, halving the
     step until the picture is wrong again; then binary search back to the boundary.

  The distance to the photo (L2, grey levels) falls iteration after iteration. Inside, pixels
  are scaled to 0..1 so that the paper's constants (``theta``, ``delta``) apply as written.
- :class:`~course_utils.attacks.gradient.AttackResult` -- what both attacks return (success, queries used, history).

Units: pixels 0..255; ``epsilon`` and distances in grey levels; queries are pictures sent, per
example, the first (clean) one included.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up)
import tensorflow as tf

from course_utils.attacks.gradient import AttackResult
from course_utils.checks import MAX_WORKING_BYTES, check_flag, check_int, check_memory, check_number, effective_seed
from course_utils.io.images import as_batch
from course_utils.models.forward import compiled_forward
from course_utils.models.imagenet import ClassNames

__all__ = ["BlackBox", "square_attack", "hop_skip_jump"]

Output = Literal["scores", "label"]


class _QueryBudgetExceeded(RuntimeError):
    """A black box was asked more questions about an example than its budget allows."""


MAX_QUERIES = 10**9
"""The largest query budget per example: a billion pictures sent is days of work for one photo,
and larger numbers overflow the counters (and the history an attack keeps per iteration)."""


def _check_budget(budget: Any, name: str = "queries", minimum: int = 1) -> int:
    """A query budget per example: a whole number in ``minimum..MAX_QUERIES``, or a clear error quoting the value."""
    return check_int(name, budget, minimum=minimum, maximum=MAX_QUERIES)


def _check_history(budget: int, n: int, values: int, name: str = "queries") -> None:
    """Refuse a budget whose per-iteration history (``values`` numbers of 8 bytes per example, at
    most one iteration per query) could pass :data:`~course_utils.checks.MAX_WORKING_BYTES`."""
    per = 8 * n * values
    check_memory(name, budget, per * (budget + 1), f"{max(1, MAX_WORKING_BYTES // per - 1):,}",
                 f"a history of {values} numbers per example and iteration, {n} example(s), up to one iteration per query")


class BlackBox:
    """A classifier seen only through its answers, with a query counter per example.

    Args:
        model: a classifier ``pixels (N, H, W, C) 0..255 -> logits (N, K)`` (a Keras model).
        n: how many examples the attacker works on; queries are counted for each of them.
        output: ``"scores"`` (the softmax probabilities, a score-based attacker) or ``"label"``
            (only the top-1 class, a decision-based attacker).
        budget: the most queries allowed per example (a whole number >= 1), or ``None``.
        batch_size: pictures per compiled forward pass.

    ``box.queries`` is a copy of the ``(n,)`` counts. Each picture sent is one query of the example
    it belongs to; a call that would take any example over its budget is refused whole, before
    the model runs (:class:`_QueryBudgetExceeded`).
    """

    def __init__(self, model: Any, n: int, *, output: Output = "scores", budget: int | None = None,
                 batch_size: int = 256) -> None:
        if output not in ("scores", "label"):
            raise ValueError(f"output must be 'scores' (probabilities) or 'label' (top-1 only), got {output!r}")
        self.n = check_int("n", n, minimum=1)
        self.budget = None if budget is None else _check_budget(budget, "budget")
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
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
        out = [fn(tf.constant(x[i : i + self.batch_size])).numpy() for i in range(0, len(x), self.batch_size)]
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
    """The paper's schedule for ``p``, the fraction of pixels one square covers: ``p_init`` halved
    at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10000 iterations (rescaled to
    ``iterations``), as in the authors' code."""
    it = int(iteration / iterations * 10000)
    for i, edge in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if it <= edge:
            return p_init / 2**i
    return p_init / 2**9


def _margin(p: np.ndarray, y: np.ndarray, targeted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Margin loss on log-probabilities ``(M,)`` (negative = success) and ``p`` of class ``y``."""
    logp = np.log(np.maximum(p, 1e-30))
    rows = np.arange(len(p))
    own = logp[rows, y]
    other = logp.copy()
    other[rows, y] = -np.inf
    best_other = other.max(1)
    return (best_other - own if targeted else own - best_other), p[rows, y]


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
    targeted: bool = False,
    p_init: float = 0.05,
    seed: int = 0,
    keep_clean: bool = True,
    batch_size: int = 64,
) -> AttackResult:
    """The L-inf Square Attack with probabilities only, every query counted per example.

    1. Ask about the clean photo (query 1; its top-1 is the label when ``labels`` is ``None``).
    2. Start from vertical stripes: every column of every channel moved by +epsilon or -epsilon
       (kept only if they lower the margin, unless ``keep_clean=False``).
    3. Repeat: in one random square (side ``sqrt(p * H * W)`` pixels, ``p`` from
       :func:`_p_schedule`) set the change to +epsilon or -epsilon per channel, ask, and keep the
       new picture if its margin loss is lower. An example stops as soon as it fools the model.

    The margin loss is on log-probabilities: untargeted ``log p_y - max_{k != y} log p_k``
    (the paper's), targeted ``max_{k != t} log p_k - log p_t`` (the paper used cross-entropy for
    targeted attacks); below 0 is success.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: true classes (untargeted) or targets (``targeted``), indices or names, one or
            one per image; ``None``: the model's answer on the clean photo (untargeted only).
        epsilon: L-inf budget in grey levels (> 0).
        queries: query budget per example (a whole number >= 2: the clean photo and the start).
        targeted: push towards ``labels`` instead of away from them.
        p_init: the fraction of the pixels the first squares cover (0 < p_init <= 1; the paper
            used 0.05 on ImageNet).
        seed: the same seed gives the same result (moved by ``COURSE_SEED``).
        keep_clean: start from the clean photo where the stripes make the margin larger (as ART
            does; it costs no query). ``False``: always start from the stripes, as the paper's code.
        batch_size: pictures per compiled forward pass.

    Returns:
        :class:`~course_utils.attacks.gradient.AttackResult` with ``history`` keys ``"queries"``, ``"loss"``, ``"probability"``
        (of the true class, or of the target).
    """
    eps = check_number("epsilon", epsilon, minimum=0.0, above=True)
    budget = _check_budget(queries, minimum=2)
    targeted = check_flag("targeted", targeted)
    keep_clean = check_flag("keep_clean", keep_clean)
    p_init = check_number("p_init", p_init, minimum=0.0, maximum=1.0, above=True)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    rng = np.random.default_rng(effective_seed(seed))
    x = as_batch(images, model)
    _check_history(budget, len(x), 3)
    if targeted and labels is None:
        raise ValueError("a targeted attack needs its targets: pass labels")
    n, h, w, c = x.shape
    y = None if labels is None else np.asarray(ClassNames.of(model).indices(labels, n, name="labels"), dtype=np.int64)
    start = time.perf_counter()
    box = BlackBox(model, n, output="scores", budget=budget, batch_size=batch_size)
    everyone = np.arange(n)
    p = box.probabilities(x, everyone)
    if y is None:
        y = p.argmax(-1)
    margin, prob = _margin(p, y, targeted)
    best = x.copy()
    todo = everyone[margin >= 0]  # margin < 0: fooled before any change (a wrong answer, or already the target)
    if len(todo):
        stripes = eps * rng.choice(np.array([-1.0, 1.0], np.float32), size=(len(todo), 1, w, c))
        striped = np.clip(x[todo] + stripes, 0.0, 255.0)
        p_s = box.probabilities(striped, todo)
        m_s, pr_s = _margin(p_s, y[todo], targeted)
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
        s = int(round(np.sqrt(_p_schedule(p_init, iteration, budget) * h * w)))
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
        m_new, pr_new = _margin(p_new, y[active], targeted)
        better = m_new < margin[active]
        keep = active[better]
        best[keep], margin[keep], prob[keep], p[keep] = new[better], m_new[better], pr_new[better], p_new[better]
        hist["queries"].append(box.queries)
        hist["loss"].append(margin.copy())
        hist["probability"].append(prob.copy())
    return AttackResult(
        "square", x, best, y, targeted, p.argmax(-1), np.full(len(y), eps, np.float32), "linf", fooled=margin < 0,
        queries=box.queries, budget=budget, history={k: np.stack(v) for k, v in hist.items()},
        seconds=time.perf_counter() - start)


_PUSH = 1.002
"""The returned picture sits this factor further from the photo than the boundary point found."""


class _Oracle:
    """The label-only box seen in 0..1 units: ``adversarial(u, which)`` -> bool per picture."""

    def __init__(self, box: BlackBox, y: np.ndarray, targeted: bool) -> None:
        self.box, self.y, self.targeted = box, y, targeted
        self.last = y.copy()  # the answer on each example's latest adversarial candidate

    def adversarial(self, u: np.ndarray, which: np.ndarray, record: bool = True) -> np.ndarray:
        top = self.box.label((u * 255.0).astype(np.float32), which)
        ok = top == self.y[which] if self.targeted else top != self.y[which]
        if record:
            self.last[which[ok]] = top[ok]
        return ok


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.square(a - b, dtype=np.float64).reshape(len(a), -1).sum(1))


def _binary_search(oracle: _Oracle, x: np.ndarray, adv: np.ndarray, idx: np.ndarray, theta: float,
                   remaining: np.ndarray) -> np.ndarray:
    """Bisect between ``x[idx]`` (clean) and ``adv[idx]`` (adversarial) to the boundary; returns the
    adversarial end (in place in ``adv``). Stops when the blend interval is below ``min(d*theta, theta)``
    or an example's queries run out (``remaining`` is kept up to date)."""
    if not len(idx):
        return adv
    d = _dist(x[idx], adv[idx])
    threshold = np.minimum(d * theta, theta)
    low, high = np.zeros(len(idx)), np.ones(len(idx))
    while True:
        go = ((high - low) > threshold) & (remaining[idx] > 0)
        if not go.any():
            break
        k = np.flatnonzero(go)
        mid = (low[k] + high[k]) / 2.0
        a = mid.reshape(-1, 1, 1, 1)
        blend = ((1.0 - a) * x[idx[k]] + a * adv[idx[k]]).astype(np.float32)
        ok = oracle.adversarial(blend, idx[k])
        remaining[idx[k]] -= 1
        high[k] = np.where(ok, mid, high[k])
        low[k] = np.where(ok, low[k], mid)
    a = high.reshape(-1, 1, 1, 1)
    adv[idx] = ((1.0 - a) * x[idx] + a * adv[idx]).astype(np.float32)
    return adv


def _estimate_direction(oracle: _Oracle, point: np.ndarray, idx: np.ndarray, evals: np.ndarray, delta: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """Unit directions ``(len(idx), ...)`` that leave the true class, from ``evals[i]`` random probes of
    radius ``delta[i]`` around each boundary point: one compiled call draws them, asks the model
    (top label only, ``box.batch_size`` per pass) and sums per example; each probe is charged first."""
    import weakref

    from course_utils.models.forward import cached

    box, evals, shape = oracle.box, np.asarray(evals, np.int64), point.shape[1:]
    owner = np.repeat(np.arange(len(idx)), evals).astype(np.int32)
    box._charge(idx[owner], len(owner))
    ref, targeted, chunk = weakref.ref(box._model), oracle.targeted, box.batch_size

    def sums(points: tf.Tensor, radius: tf.Tensor, owners: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        e, zeros = tf.shape(points)[0], tf.zeros_like(points)
        s_frv, s_rv, s_f = zeros, zeros, tf.zeros((tf.shape(points)[0],), tf.float32)
        for start in tf.range(0, tf.shape(owners)[0], chunk):
            who = owners[start: start + chunk]
            base, r = tf.gather(points, who), tf.reshape(tf.gather(radius, who), [-1, 1, 1, 1])
            rv = tf.random.stateless_normal(tf.shape(base), seed=seed + tf.cast([0, start], tf.int64))
            probes = tf.clip_by_value(base + r * rv / tf.norm(tf.reshape(rv, [tf.shape(rv)[0], -1]), axis=1)[:, None, None, None], 0.0, 1.0)
            rv = (probes - base) / r
            hit = tf.equal(tf.argmax(ref()(probes * 255.0, training=False), axis=-1), tf.gather(labels, who))
            f = tf.where(hit if targeted else tf.logical_not(hit), 1.0, -1.0)
            s_frv += tf.math.unsorted_segment_sum(tf.reshape(f, [-1, 1, 1, 1]) * rv, who, e)
            s_rv, s_f = s_rv + tf.math.unsorted_segment_sum(rv, who, e), s_f + tf.math.unsorted_segment_sum(f, who, e)
        return s_frv, s_rv, s_f

    spec = [tf.TensorSpec((None, *shape), tf.float32), tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None,), tf.int64), tf.TensorSpec((2,), tf.int64)]
    fn = cached(box._model, ("hsj probe sums", bool(targeted), tuple(shape), int(chunk)), lambda: tf.function(sums, input_signature=spec))
    s_frv, s_rv, s_f = (t.numpy().astype(np.float64) for t in fn(
        point[idx].astype(np.float32), delta.astype(np.float32), owner, oracle.y[idx].astype(np.int64),
        rng.integers(0, 2**62, size=2, dtype=np.int64)))
    mean = (s_f / evals).reshape(-1, *[1] * len(shape))
    # every probe on one side: the mean probe direction, signed; else the baseline-corrected estimate
    g = np.where(np.abs(mean) == 1.0, mean * s_rv, s_frv - mean * s_rv) / evals.reshape(mean.shape)
    return (g / np.maximum(np.sqrt(np.square(g).reshape(len(g), -1).sum(1)), 1e-12).reshape(mean.shape)).astype(np.float32)


def hop_skip_jump(
    model: Any,
    images: Any,
    labels: Any = None,
    *,
    queries: int = 2000,
    iterations: int | None = None,
    targeted: bool = False,
    starts: Any = None,
    init_evals: int = 100,
    max_evals: int = 1000,
    gamma: float = 1.0,
    init_tries: int = 100,
    seed: int = 0,
    batch_size: int = 256,
) -> AttackResult:
    """HopSkipJump, L2, with the top label only; every query counted per example.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        labels: true classes (untargeted) or targets (``targeted``), indices or names, one or
            one per image; ``None``: the model's top label on the clean photo (one query each).
        queries: query budget per example (a whole number >= 1), every query included: the clean
            photo, the search for a start, the binary searches, probes and step searches.
        iterations: stop after this many iterations (>= 1) even with queries left; ``None``: run
            until the budget is spent.
        targeted: make the model answer ``labels`` instead of leaving them.
        starts: optional starting pictures ``(N, H, W, C)`` 0..255 that are already adversarial
            (for a targeted attack: photos the model calls the target). Default: uniform random
            noise, redrawn up to ``init_tries`` times until the model's answer is wrong (or the target).
        init_evals: probes for the first gradient estimate; iteration ``t`` uses
            ``init_evals * sqrt(t)``, at most ``max_evals``.
        gamma: the paper's ``gamma``; the binary search stops at ``theta = gamma / d**1.5`` (0..1 units).
        init_tries: the most random pictures tried as a start, per example.
        seed: the same seed gives the same result (moved by ``COURSE_SEED``).
        batch_size: pictures per compiled forward pass.

    Returns:
        :class:`~course_utils.attacks.gradient.AttackResult` (``epsilon`` ``None``); ``success`` says the
        result fools the model (False only where no start was found), ``history`` has
        ``"queries"`` and ``"l2"`` (grey levels) after the start and after each iteration.
    """
    budget = _check_budget(queries)
    targeted = check_flag("targeted", targeted)
    init_evals = check_int("init_evals", init_evals, minimum=1)
    max_evals = check_int("max_evals", max_evals, minimum=init_evals)
    gamma = check_number("gamma", gamma, minimum=0.0, above=True)
    init_tries = check_int("init_tries", init_tries, minimum=1)
    if iterations is not None:
        iterations = check_int("iterations", iterations, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    rng = np.random.default_rng(effective_seed(seed))
    x255 = as_batch(images, model)
    n = len(x255)
    _check_history(budget if iterations is None else min(budget, iterations), n, 2)
    if targeted and labels is None:
        raise ValueError("a targeted attack needs its targets: pass labels")
    y = None if labels is None else np.asarray(ClassNames.of(model).indices(labels, n, name="labels"), dtype=np.int64)
    s255 = None
    if starts is not None:
        s255 = as_batch(starts, model)
        if s255.shape != x255.shape:
            raise ValueError(f"starts must have the images' shape {x255.shape}, got {s255.shape}")
    t0 = time.perf_counter()
    box = BlackBox(model, n, output="label", budget=budget, batch_size=batch_size)
    everyone = np.arange(n)
    if y is None:
        y = box.label(x255, everyone)
    oracle = _Oracle(box, y, targeted)
    x = x255 / 255.0
    d = x[0].size
    theta = gamma / (d * np.sqrt(d))
    adv = x.copy()
    found = np.zeros(n, bool)
    if s255 is not None:
        adv = (s255 / 255.0).astype(np.float32)
        found = oracle.adversarial(adv, everyone)
    for _ in range(init_tries):
        need = everyone[~found & (box.remaining > 0)]
        if not len(need):
            break
        noise = rng.uniform(0.0, 1.0, (len(need), *x.shape[1:])).astype(np.float32)
        ok = oracle.adversarial(noise, need)
        adv[need[ok]], found[need[ok]] = noise[ok], True
    remaining = box.remaining
    adv = _binary_search(oracle, x, adv, everyone[found], theta, remaining)
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
        n_evals = np.minimum(evals, remaining[idx] - reserve - 1).astype(np.int64)  # 1 kept for the end
        delta = (np.full(len(idx), 0.1) if t == 1 else np.sqrt(d) * theta * dist[idx]).astype(np.float32)
        delta = np.maximum(delta, 1e-6)
        grad = _estimate_direction(oracle, adv, idx, n_evals, delta, rng)
        remaining = box.remaining
        step = (dist[idx] / np.sqrt(t)).reshape(-1, *[1] * (x.ndim - 1))
        new = adv[idx].copy()
        pending = np.arange(len(idx))
        for _ in range(10):  # geometric step search: halve until the step lands on the wrong side
            pending = pending[remaining[idx[pending]] > 0]
            if not len(pending):
                break
            trial = np.clip(adv[idx[pending]] + step[pending] * grad[pending], 0.0, 1.0).astype(np.float32)
            ok = oracle.adversarial(trial, idx[pending])
            remaining[idx[pending]] -= 1
            new[pending[ok]] = trial[ok]
            pending = pending[~ok]
            step[pending] /= 2.0
        adv[idx] = new  # where no step worked, stay at the boundary point
        adv = _binary_search(oracle, x, adv, idx, theta, remaining)
        dist[idx] = _dist(x[idx], adv[idx])
        hist["queries"].append(box.queries)
        hist["l2"].append(dist * 255.0)
    # A boundary point is wrong by a hair: another batch size or thread count may answer otherwise.
    # Step 0.2% further from the photo, and keep that where one more query confirms it.
    last = everyone[found & (box.remaining > 0)]
    if len(last):
        pushed = np.clip(x[last] + _PUSH * (adv[last] - x[last]), 0.0, 1.0).astype(np.float32)
        ok = oracle.adversarial(pushed, last)
        adv[last[ok]] = pushed[ok]
        dist[last] = _dist(x[last], adv[last])
        hist["queries"][-1], hist["l2"][-1] = box.queries, dist * 255.0
    out = np.clip(adv * 255.0, 0.0, 255.0).astype(np.float32)
    out[~found] = x255[~found]
    return AttackResult(
        "hopskipjump", x255, out, y, targeted, oracle.last, None, "l2", fooled=found, queries=box.queries,
        budget=budget, history={k: np.stack(v) for k, v in hist.items()}, seconds=time.perf_counter() - t0)

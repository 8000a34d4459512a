"""A decision-based black-box attack: HopSkipJump, with only the model's top label.

HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020) starts from any picture the model already
gets wrong (random noise, or a photo of the target class) and walks it towards the original photo
along the decision boundary, asking only "which class is this?":

1. **binary search** on the segment between the photo and the wrong picture, to a point just on
   the wrong side of the boundary;
2. **gradient direction estimate** at that point: send it with many small random changes; the
   changes that stay wrong, minus those that do not, average to the direction that leaves the
   true class (a Monte-Carlo estimate of the sign of the gradient, in one batch of queries);
3. **geometric step search**: step along that direction by ``distance / sqrt(t)``, halving the
   step until the picture is wrong again; then binary search back to the boundary.

The distance to the photo (L2, grey levels) falls iteration after iteration; every question
counts as one query of its example, within a budget (:class:`~course_utils.attacks.query.BlackBox`).
Inside, pixels are scaled to 0..1 so that the paper's constants (``theta``, ``delta``) apply as
written; inputs, outputs and distances are in grey levels 0..255.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from course_utils.io.images import as_batch
from course_utils.models.labels import ClassNames
from course_utils.attacks.query import BlackBox, QueryResult, check_budget
from course_utils.checks import check_batch, check_flag, check_int, check_number
from course_utils.seeds import effective_seed

__all__ = ["hop_skip_jump"]

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
    """Unit directions ``(len(idx), ...)`` that leave the true class, from ``evals[i]`` random
    probes of radius ``delta[i]`` around each boundary point, all sent as one batch."""
    shape = point.shape[1:]
    owner = np.repeat(np.arange(len(idx)), evals)
    rv = rng.standard_normal((len(owner), *shape), dtype=np.float32)
    rv /= np.sqrt(np.square(rv).reshape(len(rv), -1).sum(1)).reshape(-1, *[1] * len(shape))
    probes = np.clip(point[idx][owner] + delta[owner].reshape(-1, *[1] * len(shape)) * rv, 0.0, 1.0)
    rv = (probes - point[idx][owner]) / delta[owner].reshape(-1, *[1] * len(shape))
    f = np.where(oracle.adversarial(probes.astype(np.float32), idx[owner], record=False), 1.0, -1.0)
    out = np.zeros((len(idx), *shape), np.float64)
    for i in range(len(idx)):
        fi, ri = f[owner == i], rv[owner == i]
        mean = fi.mean()
        if abs(mean) == 1.0:  # every probe on one side: the mean probe direction, signed
            g = mean * ri.mean(0)
        else:  # baseline-corrected estimate (the paper's variance reduction)
            g = np.tensordot(fi - mean, ri, axes=1) / len(fi)
        out[i] = g / max(np.linalg.norm(g), 1e-12)
    return out.astype(np.float32)


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
) -> QueryResult:
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
        :class:`~course_utils.attacks.query.QueryResult` (``epsilon`` ``None``); ``success`` says the
        result fools the model (False only where no start was found), ``history`` has
        ``"queries"`` and ``"l2"`` (grey levels) after the start and after each iteration.
    """
    budget = check_budget(queries)
    targeted = check_flag("targeted", targeted)
    init_evals = check_int("init_evals", init_evals, minimum=1)
    max_evals = check_int("max_evals", max_evals, minimum=init_evals)
    gamma = check_number("gamma", gamma, minimum=0.0, above=True)
    init_tries = check_int("init_tries", init_tries, minimum=1)
    if iterations is not None:
        iterations = check_int("iterations", iterations, minimum=1)
    rng = np.random.default_rng(effective_seed(seed))
    x255 = check_batch(as_batch(images, model))
    n = len(x255)
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
    return QueryResult(
        method="hopskipjump", original=x255, adversarial=out, labels=y,
        predicted=oracle.last, targeted=targeted, success=found,
        queries=box.queries, budget=budget, epsilon=None,
        history={k: np.stack(v) for k, v in hist.items()}, seconds=time.perf_counter() - t0)

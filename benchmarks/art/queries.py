"""Query attacks: course_utils' Square Attack and HopSkipJump against ART's, same model, images, budget.

- **Square Attack** (L-inf, untargeted, labels = the model's clean answers): EfficientNet-Lite0 on
  the sample photos and one seeded variant of each (8 pictures; quick: 2), epsilon 4 grey levels
  (ART's units are the same: ``clip_values=(0, 255)``), ``p_init`` 0.05, a budget of 200 queries
  per picture (quick: 20); both keep the clean photo as the start where the stripes raise the
  margin (``square_attack``'s default ``keep_clean=True``, ART's behaviour). course_utils counts
  every picture sent, the clean one and the stripes included, so ART gets
  ``max_iter = budget - 2`` (one new picture per iteration, after its clean prediction and stripes).
  ART re-asks the model about the current best picture twice per
  iteration (its adversarial check and the loss of the old point), so its model calls per picture
  are about three times its queries: reported as "model calls per picture".
- **HopSkipJump** (L2, untargeted): lesson 1's gender CNN on the two sample faces and their mirror
  images, 10 iterations (quick: 2) for both, ``init_eval`` 100, ``max_eval`` 1000, up to 100 random
  starts; compared on the median L2 distance (grey levels) after those iterations and on the model
  calls each made per picture (counted by wrapping the model); and the floor under both: the model
  alone on as many pictures as the course sent, in full batches of 256 (a lower bound: the step and
  binary searches send a few pictures at a time, which costs more per picture).

Wall times are one call each after one warm-up call of each tool (tracing, ART's set-up); for
HopSkipJump, whose calls take 0.6-2 s, the median of ``HSJ_ROUNDS`` interleaved calls after one
whole untimed call of each (the course's first whole call was about 15% slower than the rest).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import course_utils  # noqa: F401
import tensorflow as tf

HSJ_ROUNDS = 5  # HopSkipJump's timed calls per tool (0.6-2 s each: one call is noisy)


class _Counted:
    """Counts the pictures ART's classifier is asked about (its ``predict``, wrapped)."""

    def __init__(self) -> None:
        self.pictures = 0


def _art_classifier(model: Any, counted: _Counted) -> Any:
    """ART's wrapper of ``model`` (compiled forward pass, pixels 0..255), its ``predict`` counted."""
    from art.estimators.classification import TensorFlowV2Classifier

    classifier = TensorFlowV2Classifier(model, nb_classes=int(model.output_shape[-1]), input_shape=tuple(model.input_shape[1:]),
                                        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                        clip_values=(0.0, 255.0))
    predict = classifier.predict

    def counting(x: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        counted.pictures += len(x)
        return predict(x, *args, **kwargs)

    classifier.predict = counting
    return classifier


def _row(comparison: str, tool: str, setting: str, metric: str, value: float, queries: int | None, wall: float) -> dict:
    return {"comparison": comparison, "tool": tool, "setting": setting, "metric": metric, "value": float(value),
            "queries": queries, "wall_s": float(wall)}


def _square(quick: bool) -> list[dict]:
    from art.attacks.evasion import SquareAttack

    from course_utils.attacks.blackbox import square_attack
    from course_utils.attacks.transfer import photo_variants, top1
    from course_utils.models.imagenet import load_imagenet_model

    model = load_imagenet_model("efficientnet_lite0", verbose=False)
    x, _ = photo_variants(("astronaut", "chelsea") if quick else None, extra=0 if quick else 1, seed=0)
    eps, budget = 4.0, 20 if quick else 200
    y = top1(model, x)
    counted = _Counted()
    classifier = _art_classifier(model, counted)
    attack = SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=budget - 2, p_init=0.05, nb_restarts=1,
                          batch_size=64, verbose=False)
    square_attack(model, x[:1], y[:1], eps, queries=2)  # warm-up: trace the compiled forward pass
    classifier.predict(x)  # warm-up: trace ART's compiled forward pass at this batch size
    t = time.perf_counter()
    ours = square_attack(model, x, y, eps, queries=budget, seed=0)
    ours_s = time.perf_counter() - t
    np.random.seed(0)
    counted.pictures = 0
    t = time.perf_counter()
    adv = attack.generate(x.astype(np.float32))
    art_s = time.perf_counter() - t
    art_ok = (top1(model, adv) != y) & (np.abs(adv - x).reshape(len(x), -1).max(1) <= eps + 1e-3)
    setting = f"EfficientNet-Lite0, {len(x)} photos, L-inf eps={eps:g} grey levels, {budget} queries"
    name = "Square Attack (score-based)"
    return [
        _row(name, "course_utils", setting, "success rate", ours.success.mean(), budget, ours_s),
        _row(name, "ART", setting, "success rate", art_ok.mean(), budget, art_s),
        _row(name, "course_utils", setting, "model calls per picture", ours.queries.mean(), budget, ours_s),
        _row(name, "ART", setting, "model calls per picture", counted.pictures / len(x), budget, art_s),
    ]


def _faces() -> np.ndarray:
    from course_utils.io.images import sample_face

    faces = np.stack([sample_face(n) for n in ("astronaut", "grace_hopper")])
    return np.concatenate([faces, faces[:, :, ::-1]]).astype(np.float32)


def _hsj(quick: bool) -> list[dict]:
    from art.attacks.evasion import HopSkipJump

    from benchmarks.art import FLOOR, forward_floor
    from benchmarks.measure import interleave, median
    from course_utils.attacks.blackbox import hop_skip_jump
    from course_utils.attacks.transfer import top1
    from course_utils.models.faces import load_gender_cnn

    model = load_gender_cnn()
    x = _faces()[:2] if quick else _faces()
    iterations = 2 if quick else 10
    y = top1(model, x)
    counted = _Counted()
    classifier = _art_classifier(model, counted)
    attack = HopSkipJump(classifier, targeted=False, norm=2, max_iter=iterations, max_eval=1000, init_eval=100,
                         init_size=100, batch_size=64, verbose=False)

    def art_call() -> np.ndarray:
        np.random.seed(0)  # ART draws from NumPy's global generator: every round the same pictures
        counted.pictures = 0
        return attack.generate(x)

    calls = {"course": lambda: hop_skip_jump(model, x, y, queries=1_000_000, iterations=iterations, init_evals=100,
                                             max_evals=1000, seed=0),
             "ART": art_call}
    interleave(calls, 1)  # warm-up, not timed: one whole call each
    seconds, outputs = interleave(calls, HSJ_ROUNDS)
    ours, adv = outputs["course"][-1], outputs["ART"][-1]
    ours_s, art_s = median(seconds["course"]), median(seconds["ART"])
    # the floor: as many pictures as the course sent, all in full batches of 256 (its probes' batch); its
    # step and binary searches send a few pictures at a time, slower per picture: this bounds from below
    near = np.clip(x[np.arange(256) % len(x)] + np.random.default_rng(0).normal(0.0, 16.0, (256, *x.shape[1:])), 0.0, 255.0)
    floor_s = median([forward_floor(model, near, int(ours.queries.sum()), 256) for _ in range(HSJ_ROUNDS)])
    art_calls = counted.pictures / len(x)
    art_l2 = np.sqrt(np.square(adv - x, dtype=np.float64).reshape(len(x), -1).sum(1))
    art_ok = top1(model, adv) != y
    setting = f"gender CNN, {len(x)} faces, L2, {iterations} iterations"
    name = "HopSkipJump (decision-based)"
    return [
        _row(name, "course_utils", setting, f"{FLOOR} (s), a lower bound: the course's pictures in full batches of 256",
             floor_s, int(ours.queries.sum()), floor_s),
        _row(name, "course_utils", setting, "median L2 (grey levels)", np.median(ours.l2), round(ours.queries.mean()), ours_s),
        _row(name, "ART", setting, "median L2 (grey levels)", np.median(np.where(art_ok, art_l2, np.inf)), round(art_calls), art_s),
        _row(name, "course_utils", setting, "success rate", ours.success.mean(), round(ours.queries.mean()), ours_s),
        _row(name, "ART", setting, "success rate", art_ok.mean(), round(art_calls), art_s),
    ]


def rows(quick: bool) -> list[dict]:
    """The comparison's rows (see the module's docstring); ``quick``: tiny budgets, 2 pictures."""
    return _square(quick) + _hsj(quick)

"""Optional workload ``lucid_vs_tf_keras_vis``: a Lucid-style sea snake vs tf-keras-vis.

Course side: :func:`course_utils.vis.visualize.maximize_class` with ``style="lucid"`` ("sea snake",
Fourier parameterisation, Lucid's transforms) for :data:`LUCID_STEPS` steps, enough for p >= 0.99
on the untransformed picture on both numeric paths (10 steps are not: 0.984 with oneDNN off); the
probability is checked and reported. Baseline: tf-keras-vis' ``ActivationMaximization`` with all its defaults (200 steps
of RMSprop, jitter, rotate, total variation and norm), timed until the step where its probability
was best (and, for information, until its first step at p >= 0.99).

Both sides are timed twice: the **first call** in a fresh process (the course traces its loop;
tf-keras-vis clones the model and builds its optimiser), then a **warm** call (the course reuses
its compiled loop; tf-keras-vis reuses its visualiser). The headline ratio is first call vs first
call; the warm ratio is in ``extra``. Same model, same machine, one run; nothing is asserted.

tf-keras-vis is an optional extra (``pip install -e .[bench]``); without it the workload is
skipped with a note. It is not in the default set: run ``python -m benchmarks --only
lucid_vs_tf_keras_vis``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow as tf

from benchmarks.common import Context, Plan, Side, WorkloadResult, log
from course_utils.vis.visualize import maximize_class
from course_utils.models.imagenet import ClassNames

NAME = "lucid_vs_tf_keras_vis"
TARGET = "sea snake"
LUCID_STEPS = 15
MISSING_NOTE = ("lucid_vs_tf_keras_vis skipped: tf-keras-vis is not installed "
                "(pip install -e '.[bench]' to compare with it)")


def available() -> bool:
    """Whether tf-keras-vis can be imported."""
    try:
        import tf_keras_vis  # noqa: F401
    except ImportError:
        return False
    return True


def _tf_keras_vis_runs(model: Any, index: int, steps: int) -> list[dict[str, float]]:
    """tf-keras-vis' default ActivationMaximization for class ``index``, a first call (with the
    visualiser's construction) and a warm call of the same visualiser. Per call: ``total_s``,
    ``to_best_s`` (until the best step), ``best_p``, ``best_step``, ``to_099_s`` and ``step_099``
    (until the first step at p >= 0.99; ``nan`` / -1 if never)."""
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.callbacks import Callback
    from tf_keras_vis.utils.scores import CategoricalScore

    class Track(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.probs: list[float] = []

        def __call__(self, i, values, grads, scores, model_outputs, **kwargs) -> None:
            self.times.append(time.perf_counter())
            self.probs.append(float(tf.nn.softmax(model_outputs[0])[0, index]))

    runs = []
    visualizer = None
    for _ in range(2):
        track = Track()
        t0 = time.perf_counter()
        if visualizer is None:
            visualizer = ActivationMaximization(model, clone=True)
        visualizer(CategoricalScore(index), steps=steps, callbacks=[track])
        total = time.perf_counter() - t0
        best = int(np.argmax(track.probs))
        hits = [i for i, p in enumerate(track.probs) if p >= 0.99]
        runs.append({"total_s": total, "to_best_s": track.times[best] - t0, "best_p": track.probs[best],
                     "best_step": best + 1, "to_099_s": track.times[hits[0]] - t0 if hits else float("nan"),
                     "step_099": hits[0] + 1 if hits else -1})
    return runs


def lucid_workload(ctx: Context, plan: Plan) -> WorkloadResult | None:
    """The workload, or ``None`` (with a note in ``ctx.notes``) without tf-keras-vis."""
    if not available():
        log(MISSING_NOTE)
        ctx.notes.append(MISSING_NOTE)
        return None
    model = ctx.imagenet
    steps = LUCID_STEPS if plan.mode == "full" else 2
    baseline_steps = 200 if plan.mode == "full" else 2
    t0 = time.perf_counter()
    first = maximize_class(model, TARGET, steps=steps, style="lucid", progress=False)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vis = maximize_class(model, TARGET, steps=steps, style="lucid", progress=False)  # the compiled loop is reused
    warm_s = time.perf_counter() - t0
    index = ClassNames.of(model).index(TARGET)
    p_lucid = float(tf.nn.softmax(model(vis.pixels, training=False))[0, index])
    cold, warm = _tf_keras_vis_runs(model, index, baseline_steps)
    course = Side(f"course_utils.vis.visualize.maximize_class(style='lucid'), {steps} steps (first call incl. tracing)",
                  steps, [first_s])
    baseline = Side(f"tf-keras-vis ActivationMaximization defaults, first call until its best step "
                    f"({cold['best_step']} of {baseline_steps})", cold["best_step"], [cold["to_best_s"]])
    return WorkloadResult(
        name=NAME, title=f"'{TARGET}' Lucid-style to p >= 0.99 vs tf-keras-vis to its best, {model.name}",
        steps=steps, batch=1, reps=1, course=course, baseline=baseline,
        extra={"course_warm_s": warm_s, "baseline_total_s": cold["total_s"], "baseline_best_step": cold["best_step"],
               "baseline_to_099_s": cold["to_099_s"], "baseline_step_099": cold["step_099"],
               "baseline_warm_to_best_s": warm["to_best_s"], "baseline_warm_best_step": warm["best_step"],
               "ratio_warm": warm["to_best_s"] / warm_s, "first_call_compile_s": first.compile_seconds},
        check={"course_final_probability": p_lucid, "baseline_best_probability": cold["best_p"],
               "baseline_warm_best_probability": warm["best_p"]},
    )

"""Optional workload ``lucid_vs_tf_keras_vis``: a Lucid-style sea snake vs tf-keras-vis.

Course side: :func:`course_utils.lucid.render_class` ("sea snake", Fourier parameterisation,
Lucid's transforms) for :data:`LUCID_STEPS` steps, enough for p >= 0.99 on the untransformed
picture (checked and reported). Baseline: tf-keras-vis' ``ActivationMaximization`` with all its
defaults (200 steps of RMSprop, jitter, rotate, total variation and norm), timed until the step
where its probability was best. Same model, same machine, one run; nothing is asserted.

tf-keras-vis is an optional extra (``pip install -e .[bench]``); without it the workload is
skipped with a note. It is not in the default set: run ``python -m benchmarks --only
lucid_vs_tf_keras_vis``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tensorflow as tf

from benchmarks.workloads import Context, Plan, Side, WorkloadResult, log
from course_utils.lucid import render_class
from course_utils.models import class_name

NAME = "lucid_vs_tf_keras_vis"
TARGET = "sea snake"
LUCID_STEPS = 30
MISSING_NOTE = ("lucid_vs_tf_keras_vis skipped: tf-keras-vis is not installed "
                "(pip install -e '.[bench]' to compare with it)")


def available() -> bool:
    """Whether tf-keras-vis can be imported."""
    try:
        import tf_keras_vis  # noqa: F401
    except ImportError:
        return False
    return True


def _tf_keras_vis_run(model: Any, index: int, steps: int) -> tuple[float, float, float, int]:
    """tf-keras-vis' default ActivationMaximization for class ``index``: (wall seconds of the
    call, seconds until the best step, best probability, best step)."""
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

    track = Track()
    t0 = time.perf_counter()
    visualizer = ActivationMaximization(model, clone=True)
    visualizer(CategoricalScore(index), steps=steps, callbacks=[track])
    total = time.perf_counter() - t0
    best = int(np.argmax(track.probs))
    return total, track.times[best] - t0, track.probs[best], best + 1


def lucid_workload(ctx: Context, plan: Plan) -> WorkloadResult | None:
    """The workload, or ``None`` (with a note in ``ctx.notes``) without tf-keras-vis."""
    if not available():
        log(MISSING_NOTE)
        ctx.notes.append(MISSING_NOTE)
        return None
    model = ctx.imagenet
    num_classes = int(model.output_shape[-1])
    steps = LUCID_STEPS if plan.mode == "full" else 2
    baseline_steps = 200 if plan.mode == "full" else 2
    t0 = time.perf_counter()
    first = render_class(model, TARGET, steps=steps, progress=False)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vis = render_class(model, TARGET, steps=steps, progress=False)  # the compiled loop is reused
    warm_s = time.perf_counter() - t0
    index = [i for i in range(num_classes) if class_name(i, num_classes) == TARGET][0]
    p_lucid = float(tf.nn.softmax(model(vis.pixels, training=False))[0, index])
    total_s, to_best_s, p_best, best_step = _tf_keras_vis_run(model, index, baseline_steps)
    course = Side(f"course_utils.lucid.render_class, {steps} steps (first call incl. tracing)", steps, [first_s])
    baseline = Side(f"tf-keras-vis ActivationMaximization defaults, until its best step ({best_step} of "
                    f"{baseline_steps})", best_step, [to_best_s])
    return WorkloadResult(
        name=NAME, title=f"'{TARGET}' Lucid-style to p >= 0.99 vs tf-keras-vis to its best, {model.name}",
        steps=steps, batch=1, reps=1, course=course, baseline=baseline,
        extra={"course_warm_s": warm_s, "baseline_total_s": total_s, "baseline_best_step": best_step,
               "ratio_warm": to_best_s / warm_s, "first_call_compile_s": first.compile_seconds},
        check={"course_final_probability": p_lucid, "baseline_best_probability": p_best},
    )

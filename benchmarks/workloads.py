"""The workloads of lessons 1-3 (and the hook for lesson 4's, :mod:`benchmarks.adversarial_training`), and the two scaling series.

Each workload times the course's function and a tutorial-style loop (:mod:`benchmarks.baselines`)
on the same model, input and step count: first one warm-up call of each side (its wall time is
the "first call", tracing included), then interleaved timed rounds (course, tutorial-style,
course, ...: ``Plan.reps``, or ``Plan.heavy_reps`` where the tutorial-style side takes about half
a minute a call). Reported values are medians of the timed calls.

========================== ======================================= ===========================================
workload                   course                                  tutorial-style baseline
========================== ======================================= ===========================================
noise_filter               ``noise_filter`` (gender CNN)           eager GradientTape + SGD, one step per loop
iterative_attack_b1 / _b8  ``iterative_attack`` (ImageNet model)   eager forward/backward + ``.numpy()`` per step
filters_batched_vs_serial  ``maximize_filters``, 16 filters, once  16 ``maximize_filters`` calls, one filter each
class_maximization         ``maximize_class("sea snake")``         backend-function style: NumPy in/out per step
========================== ======================================= ===========================================
"""


from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from benchmarks.baselines import (
    BackendFunctionClassMaximizer,
    BlogFilterVisualizer,
    compiled_input_gradient,
    eager_iterative_attack,
    eager_noise_filter,
)
from benchmarks.adversarial_training import adversarial_training_workload
from benchmarks.common import (
    Context, Plan, Side, WorkloadResult, first_trace, log, max_diff, steps_if, traces_of, warm_up,
)
from benchmarks.lucid_workload import lucid_workload
from benchmarks.measure import PeakMemory, interleave, median, timed
from course_utils.attacks.gradient import noise_filter, noise_filter_step
from course_utils.attacks.pgd import iterative_attack
from course_utils.core.loop import compiled
from course_utils.models.faces import GENDER_CLASSES
from course_utils.models.imagenet import ClassNames
from course_utils.models.forward import conv_layers
from course_utils.vis.param import gray_noise
from course_utils.vis.visualize import maximize_class, maximize_filters

__all__ = ["WORKLOADS", "OPTIONAL_WORKLOADS", "run_workloads"]

# The lessons' settings.
NOISE_TARGET, NOISE_BETA, NOISE_LR = "man", 3e-4, 30.0  # lesson 1: make the astronaut "man"
ATTACK_TARGET, ATTACK_EPSILON = "king penguin", 4.0  # lesson 2: the cat becomes a king penguin
FILTER_STEP, CLASS_TARGET, CLASS_STEP = 3.0, "sea snake", 2.0  # lesson 3
SEED, NOISE_AMPLITUDE = 0, 2.0  # the course's default start noise for visualisation


# --------------------------------------------------------------------------- workload 1


def _noise_course(ctx: Context, steps: int) -> Callable[[], Any]:
    model, _ = ctx.gender
    return lambda: noise_filter(model, ctx.face, NOISE_TARGET, beta=NOISE_BETA, steps=steps, learning_rate=NOISE_LR,
                                progress=False)


def _noise_tutorial(ctx: Context, steps: int) -> Callable[[], np.ndarray]:
    model, _ = ctx.gender
    target = ClassNames.of(GENDER_CLASSES).index(NOISE_TARGET)
    return lambda: eager_noise_filter(model, ctx.face, target, beta=NOISE_BETA, steps=steps, learning_rate=NOISE_LR)


def _noise_parts(ctx: Context, steps: int) -> dict[str, Callable[[], Any]]:
    """Where the noise filter's time goes: the same compiled loop (the one ``noise_filter`` uses,
    ``compiled(noise_filter_step, model, clip=True)``, from the cache, with the same per-call data)
    run two ways: ``loop_run`` (:meth:`Loop.run`) with its history, chunks and host syncs but
    without building the result; ``perturb`` (:meth:`Loop.perturb`) the graph-level run, no
    history and one call."""
    model, _ = ctx.gender
    data = {"labels": np.array([ClassNames.of(GENDER_CLASSES).index(NOISE_TARGET)], np.int32),
            "learning_rate": np.array([NOISE_LR], np.float32), "beta": np.array([NOISE_BETA], np.float32)}
    loop = compiled(noise_filter_step, model, clip=True)
    x = tf.constant(ctx.face, tf.float32)
    return {
        "loop_run": lambda: loop.run(ctx.face, data, steps=steps, progress=False),
        "perturb": lambda: loop.perturb(x, data, steps=steps).numpy(),
    }


def noise_filter_workload(ctx: Context, plan: Plan) -> WorkloadResult:
    """Workload 1: lesson 1's noise filter on the gender CNN, compiled loop vs eager loop.

    A profile of the compiled loop is timed alongside (``extra``, see :func:`_noise_parts`): the
    history, the chunks and the result cost what ``course`` takes beyond ``perturb``.
    """
    steps, warm, reps = plan.noise_steps, plan.noise_warmup_steps, plan.heavy_reps
    _, model_label = ctx.gender
    with PeakMemory() as memory:
        c_first, c_warm = warm_up(plan, _noise_course(ctx, warm))
        b_first, _ = warm_up(plan, _noise_tutorial(ctx, warm))
        candidates = {"course": _noise_course(ctx, steps), "baseline": _noise_tutorial(ctx, steps)}
        seconds, outputs = interleave(candidates, reps)
        # a second a round: more rounds than the eager loop allows, among themselves
        parts = {"noise_filter": candidates["course"], **_noise_parts(ctx, steps)}
        for part in parts.values():
            part()  # traced here (perturb's graph; the rest is noise_filter's, from the cache), not in the timed rounds
        part_s, part_out = interleave(parts, plan.reps + 2)
        profile = {f"{name}_s": median(part_s[name]) for name in parts}
    result = outputs["course"][-1]
    baseline_x = outputs["baseline"][-1]
    model, _ = ctx.gender
    p_baseline = float(tf.nn.softmax(model(baseline_x, training=False))[0, ClassNames.of(GENDER_CLASSES).index(NOISE_TARGET)])
    return WorkloadResult(
        name="noise_filter",
        title=f"noise filter, {model_label}, beta={NOISE_BETA:g}, lr={NOISE_LR:g}",
        steps=steps, batch=1, reps=reps,
        course=Side("course_utils.attacks.noise_filter (one compiled while_loop)", steps, seconds["course"],
                    c_first, steps_if(plan, warm), [r.compile_seconds for r in outputs["course"]],
                    [r.traces for r in outputs["course"]], traces_of(c_warm)),
        baseline=Side("eager GradientTape step + keras SGD.apply_gradients per Python iteration", steps,
                      seconds["baseline"], b_first, steps_if(plan, warm)),
        extra={"course_first_call_trace_s": first_trace(c_warm, outputs["course"]),
               **profile,
               "ratio_vs_perturb": median(seconds["baseline"]) / profile["perturb_s"]},
        check={"max_abs_pixel_diff": max_diff(result.adversarial, baseline_x),
               "max_abs_pixel_diff_perturb": max_diff(result.adversarial, part_out["perturb"][-1]),
               "course_p_target": float(result.final_probability()[0]),
               "baseline_p_target": p_baseline},
    ).remember(memory)


def noise_filter_scaling(ctx: Context, plan: Plan, w1: WorkloadResult) -> list[dict[str, Any]]:
    """Time vs steps for workload 1, run right after it (its compiled loop is reused: the step
    count is an argument of the graph, so no step count traces again). The tutorial-style loop
    runs only up to ``plan.noise_scaling_baseline_max`` steps (longer runs would dominate the
    benchmark); larger step counts are course-only, and nothing is extrapolated."""
    rows = []
    for steps in plan.noise_scaling:
        if steps == w1.steps:
            course_s, baseline_s, reps = w1.course.median_s, w1.baseline.median_s, w1.reps
        else:
            candidates = {"course": _noise_course(ctx, steps)}
            with_baseline = steps <= plan.noise_scaling_baseline_max
            if with_baseline:
                candidates["baseline"] = _noise_tutorial(ctx, steps)
            reps = plan.reps if with_baseline else 1
            seconds, _ = interleave(candidates, reps)
            course_s = median(seconds["course"])
            baseline_s = median(seconds["baseline"]) if with_baseline else None
        rows.append({
            "steps": steps, "reps": reps, "course_s": course_s, "course_step_s": course_s / steps,
            "baseline_s": baseline_s, "baseline_step_s": None if baseline_s is None else baseline_s / steps,
            "ratio": None if baseline_s is None else baseline_s / course_s,
        })
        log(f"noise filter scaling: {steps} steps: course {course_s:.3f} s"
            + ("" if baseline_s is None else f", tutorial-style {baseline_s:.3f} s"))
    return rows


# --------------------------------------------------------------------------- workload 2


def _attack_inputs(ctx: Context, batch: int) -> tuple[np.ndarray, int]:
    return np.repeat(ctx.cat[None], batch, axis=0), ClassNames.of(ctx.imagenet).index(ATTACK_TARGET)


def _attack_course(ctx: Context, images: np.ndarray, steps: int, step_size: float) -> Callable[[], Any]:
    return lambda: iterative_attack(ctx.imagenet, images, ATTACK_TARGET, ATTACK_EPSILON, steps=steps,
                                    step_size=step_size, progress=False)


def _attack_tutorial(ctx: Context, images: np.ndarray, target: int, steps: int, step_size: float) -> Callable[[], Any]:
    return lambda: eager_iterative_attack(ctx.imagenet, images, target, epsilon=ATTACK_EPSILON, steps=steps,
                                          step_size=step_size)


def _bare(ctx: Context, images: np.ndarray, target: int, calls: int) -> tuple[float, Callable[[], None]]:
    """``(first call seconds, a callable making `calls` bare forward+backward calls)``. The first
    call (tracing) always runs here: the bare number is meant as a steady-state floor."""
    one = compiled_input_gradient(ctx.imagenet, images, target)
    first, _ = timed(one)
    return first, lambda: [one() for _ in range(calls)]


SWEEP_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)


def _epsilon_sweep(ctx: Context, images: np.ndarray, steps: int = 2) -> dict[str, Any]:
    """Lesson 2's budget sweep, untargeted (a structure no other workload uses, so its first call
    traces): the graphs each of the five calls traced, and their wall seconds."""
    runs = [timed(lambda e=e: iterative_attack(ctx.imagenet, images, None, e, steps=steps, targeted=False, progress=False))
            for e in SWEEP_EPSILONS]
    return {"sweep_epsilons": list(SWEEP_EPSILONS), "sweep_traces": [r.traces for _, r in runs],
            "sweep_s": [wall for wall, _ in runs]}


def iterative_attack_workload(ctx: Context, plan: Plan, batch: int) -> WorkloadResult:
    """Workload 2: lesson 2's iterative targeted attack on a batch of ``batch`` cats."""
    steps = plan.attack_steps
    reps = plan.reps if batch == 1 else plan.heavy_reps
    step_size = 2.5 * ATTACK_EPSILON / plan.attack_steps  # the course's default for the workload's steps
    images, target = _attack_inputs(ctx, batch)
    with PeakMemory() as memory:
        c_first, c_warm = warm_up(plan, _attack_course(ctx, images, 1, step_size))
        b_first, b_warm = warm_up(plan, _attack_tutorial(ctx, images, target, 1, step_size))
        bare_first, bare = _bare(ctx, images, target, plan.bare_calls)
        seconds, outputs = interleave(
            {"course": _attack_course(ctx, images, steps, step_size),
             "baseline": _attack_tutorial(ctx, images, target, steps, step_size), "bare": bare},
            reps,
        )
        # the goal's two sides take seconds a call, the eager loop far longer: more rounds of them, among themselves
        goal_s, goal_out = interleave(
            {"course": _attack_course(ctx, images, steps, step_size), "bare": bare}, 2 * reps - 1)
        sweep = _epsilon_sweep(ctx, images) if batch == 1 else {}
    bare_s = median(seconds["bare"] + goal_s["bare"]) / plan.bare_calls
    goal_step_s = median(seconds["course"] + goal_s["course"]) / steps
    result, (adversarial, probabilities) = outputs["course"][-1], outputs["baseline"][-1]
    course_side = Side("course_utils.attacks.iterative_attack (one compiled while_loop)", steps, seconds["course"],
                       c_first, steps_if(plan, 1), [r.compile_seconds for r in outputs["course"]],
                       [r.traces for r in outputs["course"]], traces_of(c_warm))
    loop_step_s = median([r.seconds / steps for r in outputs["course"] + goal_out["course"]])
    if c_warm is not None:  # the warm-ups made one step each: do the two agree after one step?
        one_step = float(np.mean(np.abs(c_warm.adversarial - b_warm[0]) > 1e-3))
    else:
        one_step = float(np.mean(np.abs(result.adversarial - adversarial) > 1e-3)) if steps == 1 else None
    return WorkloadResult(
        name=f"iterative_attack_b{batch}",
        title=f"iterative attack to '{ATTACK_TARGET}', {ctx.imagenet.name}, epsilon={ATTACK_EPSILON:g}, batch {batch}",
        steps=steps, batch=batch, reps=reps,
        course=course_side,
        baseline=Side("eager GradientTape forward/backward + sign step + .numpy() of the probabilities per step",
                      steps, seconds["baseline"], b_first, steps_if(plan, 1)),
        extra={
            "bare_fwd_bwd_s": bare_s,
            "bare_first_call_s": bare_first,
            "course_goal_step_s": goal_step_s,
            "course_step_over_bare": goal_step_s / bare_s,
            "course_loop_step_s": loop_step_s,
            "course_loop_step_over_bare": loop_step_s / bare_s,
            "course_first_call_trace_s": first_trace(c_warm, outputs["course"]),
            **sweep,
        },
        check={"max_abs_pixel_diff": max_diff(result.adversarial, adversarial),
               "pixels_differing_fraction": float(np.mean(np.abs(result.adversarial - adversarial) > 1e-3)),
               "pixels_differing_fraction_after_one_step": one_step,
               "course_success": float(np.mean(result.success)),
               "baseline_success": float(np.mean(probabilities[-1].argmax(-1) == target))},
    ).remember(memory)


def attack_batch_scaling(ctx: Context, plan: Plan, done: dict[int, WorkloadResult]) -> list[dict[str, Any]]:
    """Time vs batch for workload 2 (course and bare forward+backward; the eager loop is timed in
    the workloads only). Batches a workload measured are reused; others run
    ``plan.attack_scaling_steps`` steps once, after a one-step warm-up."""
    rows = []
    for batch in plan.attack_batches:
        if batch in done:
            w = done[batch]
            steps, bare_s, reps = w.steps, w.extra["bare_fwd_bwd_s"], 3 * w.reps - 1
            course_s = w.extra["course_goal_step_s"] * steps
        else:
            steps, reps = plan.attack_scaling_steps, 1
            step_size = 2.5 * ATTACK_EPSILON / plan.attack_steps
            images, target = _attack_inputs(ctx, batch)
            with PeakMemory():
                warm_up(plan, _attack_course(ctx, images, 1, step_size))  # traces the loop for this batch
                _, bare = _bare(ctx, images, target, plan.bare_calls)
                seconds, _ = interleave({"course": _attack_course(ctx, images, steps, step_size), "bare": bare}, reps)
            course_s, bare_s = median(seconds["course"]), median(seconds["bare"]) / plan.bare_calls
        rows.append({
            "batch": batch, "steps": steps, "reps": reps, "course_s": course_s, "course_step_s": course_s / steps,
            "course_step_per_image_s": course_s / steps / batch, "bare_fwd_bwd_s": bare_s,
            "course_step_over_bare": course_s / steps / bare_s,
        })
        log(f"attack scaling: batch {batch}: course {course_s:.2f} s for {steps} steps, bare {bare_s:.3f} s")
    return rows


# --------------------------------------------------------------------------- workload 3


def filters_workload(ctx: Context, plan: Plan) -> WorkloadResult:
    """Workload 3: 16 filters of one layer, one batched ``maximize_filters`` call vs 16 serial
    calls; the Keras blog's per-step loop is timed alongside (``extra``).

    The course keeps one compiled loop per model, layer and regularisers (the filters come per
    call) with the network cut at the layer, so only the very first call traces and cuts; the
    first calls are reported apart, with the graphs each side traced.
    """
    model = ctx.imagenet
    layer = conv_layers(model, 5)[2]
    filters = list(range(plan.n_filters))
    steps, size, reps = plan.filter_steps, plan.filter_size, plan.heavy_reps
    kwargs = dict(steps=steps, step_size=FILTER_STEP, size=(size, size), seed=SEED, noise=NOISE_AMPLITUDE, progress=False)
    batched = lambda: maximize_filters(model, layer, filters, **kwargs)  # noqa: E731
    serial = lambda: [maximize_filters(model, layer, [f], **kwargs) for f in filters]  # noqa: E731
    blog = BlogFilterVisualizer(model, layer)
    starts = np.stack([gray_noise((size, size, model.input_shape[-1]), seed=[SEED, f], amplitude=NOISE_AMPLITUDE) for f in filters])
    with PeakMemory() as memory:
        c_first, c_warm = warm_up(plan, batched)
        s_first, s_warm = warm_up(plan, serial)
        blog_first, _ = warm_up(plan, lambda: blog.run(filters, starts, 1, FILTER_STEP))  # traces once per filter
        seconds, outputs = interleave(
            {"course": batched, "baseline": serial, "blog": lambda: blog.run(filters, starts, steps, FILTER_STEP)},
            reps,
        )
    vis, singles = outputs["course"][-1], outputs["baseline"][-1]
    first_batched = c_warm if c_warm is not None else outputs["course"][0]
    first_serial = s_warm if s_warm is not None else outputs["baseline"][0]
    serial_trace = [sum(s.compile_seconds for s in run) for run in outputs["baseline"]]
    serial_loop = [sum(s.seconds - s.compile_seconds for s in run) for run in outputs["baseline"]]
    batched_loop = [v.seconds - v.compile_seconds for v in outputs["course"]]
    blog_s = median(seconds["blog"])
    course_side = Side(f"one maximize_filters call, {len(filters)} filters as one batch", steps, seconds["course"],
                       c_first, steps_if(plan, steps), [v.compile_seconds for v in outputs["course"]],
                       [v.traces for v in outputs["course"]], traces_of(c_warm))
    serial_side = Side(f"{len(filters)} maximize_filters calls, one filter each", steps * len(filters),
                       seconds["baseline"], s_first, steps_if(plan, steps * len(filters)), serial_trace,
                       [traces_of(run) for run in outputs["baseline"]], traces_of(s_warm))
    return WorkloadResult(
        name="filters_batched_vs_serial",
        title=f"{len(filters)} filters of {layer} ({model.name}), {size}x{size}, step {FILTER_STEP:g} px",
        steps=steps, batch=len(filters), reps=reps,
        course=course_side,
        baseline=serial_side,
        extra={
            "layer": layer,
            "first_call_ratio": (s_first / c_first) if plan.warmup else None,
            "course_first_call_trace_s": first_batched.compile_seconds,
            "serial_first_call_trace_s": sum(s.compile_seconds for s in first_serial),
            "course_loop_s": median(batched_loop),
            "serial_loop_s": median(serial_loop),
            "loop_only_ratio": median(serial_loop) / median(batched_loop),
            "blog_style_s": blog_s,
            "blog_style_step_s": blog_s / (steps * len(filters)),
            "blog_style_over_batched": blog_s / course_side.median_s,
            "blog_style_first_call_s": blog_first,
        },
        check={"max_abs_pixel_diff_serial": max(max_diff(s.pixels[0], vis.pixels[i]) for i, s in enumerate(singles)),
               "max_abs_pixel_diff_blog": max_diff(outputs["blog"][-1], vis.pixels),
               "course_filters_rose_10x": int(np.sum(vis.rose))},
    ).remember(memory)


# --------------------------------------------------------------------------- workload 4


def class_workload(ctx: Context, plan: Plan) -> WorkloadResult:
    """Workload 4: draw "sea snake" from noise, ``maximize_class`` vs a backend-function loop."""
    model = ctx.imagenet
    index = ClassNames.of(model).index(CLASS_TARGET)
    steps, reps = plan.class_steps, plan.reps
    start = gray_noise(model.input_shape[1:], seed=[SEED, index], amplitude=NOISE_AMPLITUDE)[None]
    keras_function = BackendFunctionClassMaximizer(model)

    def course(n: int) -> Callable[[], Any]:
        return lambda: maximize_class(model, CLASS_TARGET, steps=n, step_size=CLASS_STEP, seed=SEED,
                                      noise=NOISE_AMPLITUDE, progress=False)

    def tutorial(n: int) -> Callable[[], np.ndarray]:
        return lambda: keras_function.run(index, start, n, CLASS_STEP)

    with PeakMemory() as memory:
        c_first, c_warm = warm_up(plan, course(1))
        b_first, _ = warm_up(plan, tutorial(1))
        seconds, outputs = interleave({"course": course(steps), "baseline": tutorial(steps)}, reps)
    vis, baseline_x = outputs["course"][-1], outputs["baseline"][-1]
    p_baseline = float(tf.nn.softmax(model(baseline_x, training=False))[0, index])
    course_loop = [v.seconds - v.compile_seconds for v in outputs["course"]]
    baseline_side = Side("Python loop: compiled (loss, grads) -> NumPy per step, NumPy update", steps,
                         seconds["baseline"], b_first, steps_if(plan, 1))
    return WorkloadResult(
        name="class_maximization",
        title=f"class '{CLASS_TARGET}' from noise, {model.name}, step {CLASS_STEP:g} px",
        steps=steps, batch=1, reps=reps,
        course=Side("course_utils.vis.visualize.maximize_class (one compiled while_loop)", steps, seconds["course"],
                    c_first, steps_if(plan, 1), [v.compile_seconds for v in outputs["course"]],
                    [v.traces for v in outputs["course"]], traces_of(c_warm)),
        baseline=baseline_side,
        extra={"course_first_call_trace_s": first_trace(c_warm, outputs["course"]),
               "course_loop_s": median(course_loop),
               "loop_only_ratio": baseline_side.median_s / median(course_loop)},
        check={"max_abs_pixel_diff": max_diff(vis.pixels, baseline_x),
               "course_final_probability": float(vis.final[0]),
               "baseline_final_probability": p_baseline},
    ).remember(memory)


# --------------------------------------------------------------------------- running them

WORKLOADS = ("noise_filter", "iterative_attack_b1", "iterative_attack_b8", "filters_batched_vs_serial", "class_maximization",
             "adversarial_training_epoch")
OPTIONAL_WORKLOADS = ("lucid_vs_tf_keras_vis",)
"""Run only when named in ``--only`` (they need an optional extra, see :mod:`benchmarks.lucid_workload`)."""


def run_workloads(ctx: Context, plan: Plan, only: tuple[str, ...] = WORKLOADS) -> tuple[list[WorkloadResult], dict[str, list]]:
    """Run the chosen workloads in order, then the scaling series of workloads 1 and 2 when
    those ran. Returns ``(results, {"noise_filter_steps": rows, "iterative_attack_batch": rows})``."""
    results: list[WorkloadResult] = []
    scaling: dict[str, list] = {}
    attacks: dict[int, WorkloadResult] = {}
    runners: dict[str, Callable[[], WorkloadResult]] = {
        "noise_filter": lambda: noise_filter_workload(ctx, plan),
        "iterative_attack_b1": lambda: iterative_attack_workload(ctx, plan, 1),
        "iterative_attack_b8": lambda: iterative_attack_workload(ctx, plan, 8),
        "filters_batched_vs_serial": lambda: filters_workload(ctx, plan),
        "class_maximization": lambda: class_workload(ctx, plan),
        "lucid_vs_tf_keras_vis": lambda: lucid_workload(ctx, plan),
        "adversarial_training_epoch": lambda: adversarial_training_workload(ctx, plan),  # lesson 4
    }
    for name in WORKLOADS + OPTIONAL_WORKLOADS:
        if name not in only:
            continue
        log(f"{name}: running ({plan.mode} mode)")
        start = time.perf_counter()
        result = runners[name]()
        if result is None:  # skipped (an optional extra is missing; the note says so)
            continue
        log(f"{name}: course {result.course.median_s:.3f} s, tutorial-style {result.baseline.median_s:.3f} s, "
            f"ratio {result.ratio:.2f} ({time.perf_counter() - start:.0f} s)")
        results.append(result)
        if name.startswith("iterative_attack_b"):
            attacks[result.batch] = result
        if name == "noise_filter":
            scaling["noise_filter_steps"] = noise_filter_scaling(ctx, plan, result)
    if attacks:
        scaling["iterative_attack_batch"] = attack_batch_scaling(ctx, plan, attacks)
    return results, scaling

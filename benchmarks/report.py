"""Turn the measurements into ``latest.json`` and ``latest.md`` (the Markdown is also printed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import WorkloadResult
from tools.facetrain.outputs import write_files_together

__all__ = ["goals", "build_report", "markdown", "write_report"]

NOTEBOOK_BUDGET_S = 300.0


def goals(results: Sequence[WorkloadResult], notebooks: dict[str, Any] | None, judge: bool = True) -> list[dict[str, Any]]:
    """The issue's speed goals with the measured value of each. ``met`` is ``None`` when the value
    was not measured in this run, or when ``judge`` is false (quick mode: the numbers mean nothing)."""
    by_name = {r.name: r for r in results}
    rows: list[dict[str, Any]] = []

    def add(goal: str, target: str, value: float | None, met: bool | None) -> None:
        rows.append({"goal": goal, "target": target, "measured": value, "met": met if judge else None})

    if "noise_filter" in by_name:
        w = by_name["noise_filter"]
        add("workload 1: noise filter, course vs eager loop (speed-up)", ">= 25", w.ratio, w.ratio >= 25)
    for batch in (1, 8):
        w = by_name.get(f"iterative_attack_b{batch}")
        if w is not None:
            v = w.extra["course_step_over_bare"]
            add(f"workload 2: attack batch {batch}, course s/step / bare compiled fwd+bwd", "<= 1.1", v, v <= 1.1)
    sweep = by_name.get("iterative_attack_b1")
    if sweep is not None and sweep.extra.get("sweep_traces"):
        traced = sum(1 for t in sweep.extra["sweep_traces"] if t)
        add("workload 2: calls of a 5-epsilon sweep that traced a graph", "1", traced, traced == 1)
    if "filters_batched_vs_serial" in by_name:
        r = by_name["filters_batched_vs_serial"].ratio
        add("workload 3: filters, batched throughput / serial throughput", ">= 3", r, r >= 3)
    steady = [t for w in results for side in (w.course, w.baseline) if side.traces for t in side.traces]
    if steady:
        add("graphs traced by any steady-state call of the course", "0", max(steady), max(steady) == 0)
    if notebooks is not None:
        total = notebooks["total_s"]
        add("all notebooks executed (seconds)", f"< {NOTEBOOK_BUDGET_S:.0f}", total,
            notebooks["all_ok"] and total < NOTEBOOK_BUDGET_S)
    else:
        add("all notebooks executed (seconds)", f"< {NOTEBOOK_BUDGET_S:.0f}", None, None)
    return rows


def build_report(
    *,
    device: str,
    environment: dict[str, Any],
    mode: str,
    results: Sequence[WorkloadResult],
    scaling: dict[str, list],
    notebooks: dict[str, Any] | None,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """The JSON document: ``device``, ``workloads`` (each with ``name``, ``course_s``,
    ``baseline_s``, ``ratio`` and details), ``scaling``, ``goals``, ``notebooks`` and run metadata."""
    return {
        "device": device,
        "mode": mode,
        **meta,
        "environment": environment,
        "workloads": [r.to_json() for r in results],
        "scaling": scaling,
        "goals": goals(results, notebooks, judge=mode != "quick"),
        "notebooks": notebooks,
    }


def _s(x: float | None, digits: int = 3) -> str:
    """Seconds with ``digits`` significant figures, ``-`` for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.3g}"


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{x:.3%}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _main_table(workloads: list[dict[str, Any]]) -> list[str]:
    rows = []
    for w in workloads:
        rows.append([
            f"`{w['name']}`", w["title"], f"{w['steps']} x {w['batch']}", _s(w["course_s"]), _s(w["baseline_s"]),
            f"**{_ratio(w['ratio'])}**",
        ])
    return _table(["workload", "what", "steps x batch", "course s", "tutorial-style s", "ratio"], rows)


def _goal_table(goal_rows: list[dict[str, Any]]) -> list[str]:
    rows = []
    for g in goal_rows:
        value = "not measured" if g["measured"] is None else f"{g['measured']:.3g}"
        met = "-" if g["met"] is None else ("yes" if g["met"] else "**NO**")
        rows.append([g["goal"], g["target"], value, met])
    return _table(["goal", "target", "measured", "met"], rows)


def _detail_table(workloads: list[dict[str, Any]]) -> list[str]:
    rows = []
    for w in workloads:
        for side in ("course", "baseline"):
            s = w[side]
            rows.append([
                f"`{w['name']}`" if side == "course" else "", "course" if side == "course" else "tutorial-style",
                s["label"], " / ".join(_s(x) for x in s["samples_s"]), _ms(s["step_s"]), _s(s["first_call_s"]),
                _s(s["one_time_s"]), _s(s["trace_s_per_call"]), _traces(s),
                f"{w['peak_rss_mib']:.0f}" if side == "course" else "",
            ])
    return _table(
        ["workload", "side", "implementation", "timed calls s", "ms/step", "first call s", "one-time s",
         "tracing s per call", "graphs traced: first call / timed calls", "peak RSS MiB"],
        rows,
    )


def _traces(side: dict[str, Any]) -> str:
    """``first / a, b, c``: the graphs the course traced in its warm-up call and in each timed call."""
    if side.get("traces_per_call") is None:
        return "-"
    first = "-" if side.get("first_call_traces") is None else str(side["first_call_traces"])
    return f"{first} / {', '.join(str(t) for t in side['traces_per_call'])}"


def _extra_lines(workloads: list[dict[str, Any]]) -> list[str]:
    lines = []
    for w in workloads:
        e, c = w["extra"], w["check"]
        if w["name"] == "noise_filter":
            profile = (
                f"Where the time goes (the same compiled loop, `compiled(noise_filter_step, model, clip=True)`, "
                f"steady state, medians of their own interleaved rounds): `noise_filter` {_s(e['noise_filter_s'])} s; "
                f"`Loop.run` {_s(e['loop_run_s'])} s (history in a TensorArray, chunks, one host sync per chunk; no "
                f"result built); `Loop.perturb` (no history, one call) {_s(e['perturb_s'])} s (eager / that = "
                f"{_ratio(e['ratio_vs_perturb'])}; max pixel difference to `noise_filter`'s "
                f"{c['max_abs_pixel_diff_perturb']:.3g}). ")
            lines.append(
                f"- `{w['name']}`: {profile}"
                f"p(target): course {c['course_p_target']:.3f}, tutorial-style "
                f"{c['baseline_p_target']:.3f}; max pixel difference {c['max_abs_pixel_diff']:.3g}."
            )
        elif w["name"].startswith("iterative_attack_b"):
            lines.append(
                f"- `{w['name']}`: bare compiled forward+backward {_ms(e['bare_fwd_bwd_s'])} ms; course "
                f"{_ms(e['course_goal_step_s'])} ms/step (wall per call / steps, the workload's rounds and "
                f"{2 * w['reps'] - 1} more of course and bare alone) = **{e['course_step_over_bare']:.2f}x** "
                f"bare; the loop alone (`.seconds`, no result building) {_ms(e['course_loop_step_s'])} ms/step = "
                f"{e['course_loop_step_over_bare']:.2f}x bare. Success: course {c['course_success']:.0%}, "
                f"tutorial-style {c['baseline_success']:.0%}. Pixels that differ between the two: "
                f"{_percent(c['pixels_differing_fraction_after_one_step'])} after one step, "
                f"{c['pixels_differing_fraction']:.1%} after {w['steps']} (a sign step turns a last-bit difference in "
                f"a near-zero gradient into a full step, and the paths then part), by at most "
                f"{c['max_abs_pixel_diff']:.3g} grey levels."
                + ("" if not e.get("sweep_traces") else
                   f" Untargeted sweep over epsilon {', '.join(f'{x:g}' for x in e['sweep_epsilons'])} ({len(e['sweep_s'])} "
                   f"calls): graphs traced per call {e['sweep_traces']}, seconds per call "
                   f"{' / '.join(_s(x) for x in e['sweep_s'])} (epsilon enters the compiled loop as a tensor).")
            )
        elif w["name"] == "filters_batched_vs_serial":
            first = "" if e["first_call_ratio"] is None else (
                f"First calls (each side traces its loops): batched {_s(w['course']['first_call_s'])} s vs serial "
                f"{_s(w['baseline']['first_call_s'])} s = **{e['first_call_ratio']:.2f}x**; tracing "
                f"{_s(e['course_first_call_trace_s'])} s vs {_s(e['serial_first_call_trace_s'])} s. ")
            lines.append(
                f"- `{w['name']}` (layer `{e['layer']}`): {first}Loops only (`.seconds - .compile_seconds`, steady "
                f"state): batched {_s(e['course_loop_s'])} s vs serial {_s(e['serial_loop_s'])} s = "
                f"{e['loop_only_ratio']:.2f}x. Keras-blog loop (a compiled step called from Python per step, one "
                f"filter at a time; its first call, 1 step per filter, traces it once per filter: "
                f"{_s(e['blog_style_first_call_s'])} s): {_s(e['blog_style_s'])} s = "
                f"**{e['blog_style_over_batched']:.2f}x** the batched call. Max pixel difference vs batched: serial "
                f"{c['max_abs_pixel_diff_serial']:.3g}, blog {c['max_abs_pixel_diff_blog']:.3g}."
            )
        elif w["name"] == "adversarial_training_epoch":
            lines.append(
                f"- `{w['name']}`: {e['faces']} faces, PGD-{e['pgd_steps']} per batch; ratio **{_ratio(w['ratio'])}** "
                f"per epoch (steady state; first calls: course {_s(e['course_first_call_s'])} s with tracing, "
                f"tutorial-style {_s(e['baseline_first_call_s'])} s). Final training loss on attacked faces: course "
                f"{c['course_final_loss']:.3f}, tutorial-style {c['baseline_final_loss']:.3f} (different random "
                f"starts, so only roughly alike)."
            )
        elif w["name"] == "lucid_vs_tf_keras_vis":
            at_099 = ("never reached p >= 0.99" if e["baseline_step_099"] < 0 else
                      f"first reached p >= 0.99 at step {e['baseline_step_099']} ({_s(e['baseline_to_099_s'])} s)")
            lines.append(
                f"- `{w['name']}`: first calls **{_ratio(w['ratio'])}** (course {_s(w['course_s'])} s, of which "
                f"tracing {_s(e['first_call_compile_s'])} s; tf-keras-vis {_s(w['baseline_s'])} s to its best step "
                f"{e['baseline_best_step']}, {_s(e['baseline_total_s'])} s for all its steps). Warm calls: course "
                f"{_s(e['course_warm_s'])} s vs tf-keras-vis {_s(e['baseline_warm_to_best_s'])} s to its best step "
                f"{e['baseline_warm_best_step']} = **{_ratio(e['ratio_warm'])}**. tf-keras-vis {at_099}. "
                f"p(sea snake): course {c['course_final_probability']:.6f} on the untransformed picture; "
                f"tf-keras-vis best {c['baseline_best_probability']:.6f} (warm {c['baseline_warm_best_probability']:.6f})."
            )
        elif w["name"] == "class_maximization":
            diff = c["max_abs_pixel_diff"]
            agree = (f"the pictures agree (max pixel difference {diff:.3g})" if diff < 1e-2 else
                     f"the pictures agree to float round-off for the first steps, then drift apart (max pixel "
                     f"difference {diff:.3g}): the RMS-normalised ascent from noise amplifies last-bit differences")
            lines.append(
                f"- `{w['name']}`: course loop alone (`.seconds - .compile_seconds`) {_s(e['course_loop_s'])} s, "
                f"loop-only ratio {e['loop_only_ratio']:.2f}x. Final p(sea snake): course "
                f"{c['course_final_probability']:.3f}, tutorial-style {c['baseline_final_probability']:.3f}; {agree}."
            )
    return lines


def _scaling_lines(scaling: dict[str, list]) -> list[str]:
    lines: list[str] = []
    steps_rows = scaling.get("noise_filter_steps")
    if steps_rows:
        lines += ["", "### Noise filter (workload 1): time vs steps", ""]
        lines += _table(
            ["steps", "reps", "course s", "course ms/step", "tutorial-style s", "tutorial-style ms/step", "ratio"],
            [[r["steps"], r["reps"], _s(r["course_s"]), _ms(r["course_step_s"]), _s(r["baseline_s"]),
              _ms(r["baseline_step_s"]), _ratio(r["ratio"])] for r in steps_rows],
        )
        lines.append("")
        lines.append("`-`: not run (the eager loop at that length would dominate the benchmark); nothing is extrapolated.")
    batch_rows = scaling.get("iterative_attack_batch")
    if batch_rows:
        lines += ["", "### Iterative attack (workload 2): time vs batch", ""]
        lines += _table(
            ["batch", "steps", "reps", "course s", "course ms/step", "ms/step per image", "bare fwd+bwd ms",
             "course step / bare"],
            [[r["batch"], r["steps"], r["reps"], _s(r["course_s"]), _ms(r["course_step_s"]),
              _ms(r["course_step_per_image_s"]), _ms(r["bare_fwd_bwd_s"]), _ratio(r["course_step_over_bare"])]
             for r in batch_rows],
        )
    return lines


def _notebook_lines(notebooks: dict[str, Any] | None, device: str, started: str) -> list[str]:
    """The lessons' Run All table (:func:`benchmarks.lessons.lessons_table`, the one ``make time-lessons``
    prints), or a line saying the notebooks were not timed."""
    if notebooks is None:
        return ["", "Notebooks were not timed in this run (`python -m benchmarks --notebooks` times them)."]
    from benchmarks.lessons import lessons_table

    return ["", "### Notebooks: each lesson's Run All", "",
            lessons_table(notebooks["runs"], device, started).rstrip("\n")]


COLUMNS = """\
How to read this:

- **course s / tutorial-style s**: median wall seconds of one call, steady state (after one
  warm-up call of each side), over interleaved repetitions (course, tutorial-style, course, ...).
  For the course that is the public function as a learner calls it (results and history
  included); the tutorial-style side is the same computation written as the tutorials loop.
- **ratio** = tutorial-style s / course s: above 1 the course is faster. For
  `filters_batched_vs_serial` the two sides are both the course: 16 one-filter calls / one
  16-filter call, i.e. the batched call's throughput gain.
- **ms/step** = wall per call / gradient steps per call (a batched step counts once; serial
  filters count every filter's steps).
- **first call s**: the warm-up call, i.e. what a learner waits for the first time (10 steps for
  the noise filter, 1 for the attack and class loops, the full workload for `filters`).
  **one-time s** = first call - its steps x steady ms/step: tracing Python into a graph, graph
  optimisation, first-run allocation. That is the compile cost; steady-state columns exclude it.
- **tracing s per call**: the tracing time the course reports itself (`compile_seconds`) inside
  each *steady-state* call: about 0 when a call reuses its compiled loop; the whole tracing again
  if a function built a new loop on every call.
- **graphs traced**: how many graphs the course traced in its warm-up call and in each timed call,
  counted inside the traced functions (a loop and its final evaluation count 2). Compiled loops are
  kept per model by structure only, so only a call with a new structure (or a new batch size, once)
  traces; a new epsilon, target, beta, step size or filter does not.
- **peak RSS**: peak resident memory of the process during the workload (Linux high-water mark,
  reset per workload), model weights included.
"""


def markdown(report: dict[str, Any]) -> str:
    """The Markdown summary of a report built by :func:`build_report`."""
    env = report["environment"]
    load = report.get("load_average", {})
    lines = [
        "# Benchmarks: the course's compiled loops vs tutorial-style loops",
        "",
        f"- device: **{report['device']}**",
        f"- mode: {report['mode']}; {report['reps_note']}; wall time of the run {report['wall_s']:.0f} s",
        f"- TensorFlow {env['tensorflow']}, Keras {env['keras']}, Python {env['python']}; run {report['started_utc']}",
        f"- 1-minute load average at start / end: {load.get('start')} / {load.get('end')} on {env['cores']} cores"
        + (" (above the core count, other processes competed for the CPU: timings are noisy)"
           if max(load.get("start") or 0, load.get("end") or 0) > env["cores"] else ""),
        f"- process peak RSS: {report['process_peak_rss_mib']:.0f} MiB",
    ]
    if report["mode"] == "quick":
        lines.append("- **quick mode**: one step, one call, no warm-up: it proves the benchmark runs; its "
                     "numbers say nothing about speed and no goal is judged")
    lines += [f"- note: {n}" for n in report.get("notes", [])]
    if report["workloads"]:
        lines += ["", "## Ratios (tutorial-style / course)", ""] + _main_table(report["workloads"])
    else:
        lines += ["", "## Ratios (tutorial-style / course)", "", "No workload was run (`--only`)."]
    lines += ["", "## Goals", ""] + _goal_table(report["goals"])
    if report["workloads"]:
        lines += ["", "## Details", ""] + _detail_table(report["workloads"]) + [""] + _extra_lines(report["workloads"])
    lines += ["", "## Scaling"] + _scaling_lines(report["scaling"]) + _notebook_lines(report["notebooks"], report["device"],
                                                                                      report["started_utc"])
    lines += ["", "## Columns", "", COLUMNS]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path, str]:
    """Write ``latest.json`` and ``latest.md`` into ``out_dir``, both or neither (a failure leaves
    the previous pair as it was); return their paths and the Markdown."""
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    document = json.dumps(report, indent=2, default=_jsonable) + "\n"
    text = markdown(report)
    write_files_together({
        json_path: lambda temp: temp.write_text(document, encoding="utf-8"),
        md_path: lambda temp: temp.write_text(text, encoding="utf-8"),
    })
    return json_path, md_path, text


def _jsonable(value: Any) -> Any:
    """NumPy scalars and other oddities as plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)

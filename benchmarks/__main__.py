"""``python -m benchmarks``: time the course's compiled loops against tutorial-style loops.

Writes ``<out>/latest.json`` and ``<out>/latest.md`` (default ``benchmarks/results/``), both or
neither, and prints the Markdown; ``--out`` is checked before anything runs. ``--quick`` runs every workload with tiny step counts, once: it proves the
benchmark runs and says nothing about speed.

``python -m benchmarks lessons`` (``make time-lessons``) times each lesson's Run All instead (see
:mod:`benchmarks.lessons`).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import course_utils  # noqa: F401  (quiets TensorFlow's start-up; must come before tensorflow)

if TYPE_CHECKING:
    from benchmarks.common import Plan

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options; ``--only`` becomes a tuple of workload names."""
    from benchmarks.workloads import OPTIONAL_WORKLOADS, WORKLOADS

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny step counts, one repetition (CI: proves it runs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for latest.json/latest.md (default {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--reps", type=int, default=None, help="timed interleaved repetitions for every workload (default: 3, or 2 for the slowest three; quick: 1)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads to run (default: all but the optional "
                        f"{', '.join(OPTIONAL_WORKLOADS)}, which needs the [bench] extra)")
    parser.add_argument("--imagenet-model", default="efficientnet_lite0", choices=["efficientnet_lite0", "vgg16", "auto"],
                        help="ImageNet model for workloads 2-4 (default: the offline EfficientNet-Lite0)")
    parser.add_argument("--notebooks", action="store_true", help="also execute every notebook and time it (goal: < 5 minutes in all)")
    args = parser.parse_args(argv)
    args.only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = [name for name in args.only if name not in WORKLOADS + OPTIONAL_WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS + OPTIONAL_WORKLOADS)}")
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be >= 1")
    from tools.facetrain.outputs import OutputPathError, check_writable

    try:  # before anything runs: a typo in --out must not cost a whole benchmark run
        check_writable(args.out, "--out", folder=True)
    except OutputPathError as err:
        parser.error(str(err))
    return args


def make_plan(quick: bool, reps: int | None) -> "Plan":
    """The full or quick plan, with ``reps`` overriding the repetitions if given."""
    from dataclasses import replace

    from benchmarks.common import FULL, QUICK

    plan = QUICK if quick else FULL
    if reps is not None:
        plan = replace(plan, reps=reps, heavy_reps=reps)
    return plan


def _reps_note(plan: "Plan") -> str:
    """How many timed repetitions each workload got, in words."""
    warm = "after one warm-up call of each side" if plan.warmup else "no warm-up"
    if plan.heavy_reps == plan.reps:
        return f"{plan.reps} interleaved timed repetition(s), {warm}"
    return (f"{plan.reps} interleaved timed repetitions ({plan.heavy_reps} for noise_filter, iterative_attack_b8 "
            f"and filters, whose tutorial-style side takes about half a minute a call), {warm}")


def main(argv: list[str] | None = None) -> int:
    """The command line: run, write ``latest.json``/``latest.md`` under ``--out``, print the table."""
    args = parse_args(argv)
    import tensorflow as tf

    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the blog-style loop retraces per filter on purpose: no warning for it
    try:
        return _run(args)
    finally:
        logger.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    """Run the benchmark as ``args`` says, write the report, print it."""
    from benchmarks.measure import describe_device, load_average, process_peak_rss_mib
    from benchmarks.report import write_report, build_report
    from benchmarks.common import Context, log
    from benchmarks.workloads import run_workloads

    plan = make_plan(args.quick, args.reps)
    device, environment = describe_device()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = load_average()
    log(f"device: {device}; mode {plan.mode}; output to {args.out}")
    t0 = time.perf_counter()
    ctx = Context(args.imagenet_model)
    results, scaling = run_workloads(ctx, plan, args.only)
    notebooks = None
    if args.notebooks:
        from benchmarks.lessons import time_lessons

        log("executing the notebooks")
        runs = time_lessons(sorted((REPO / "notebooks").glob("*.ipynb")))
        notebooks = {"runs": runs, "total_s": sum(r["seconds"] for r in runs), "all_ok": all(r["ok"] for r in runs)}
    meta = {
        "started_utc": started,
        "wall_s": time.perf_counter() - t0,
        "reps_note": _reps_note(plan),
        "load_average": {"start": load_start, "end": load_average()},
        "process_peak_rss_mib": process_peak_rss_mib(),
        "notes": ctx.notes,
    }
    report = build_report(device=device, environment=environment, mode=plan.mode, results=results,
                          scaling=scaling, notebooks=notebooks, meta=meta)
    json_path, md_path, text = write_report(report, args.out)
    print(text)
    log(f"wrote {json_path} and {md_path} in {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["lessons"]:  # the per-lesson Run All table; no TensorFlow in this process
        from benchmarks.lessons import main as lessons_main

        sys.exit(lessons_main(sys.argv[2:]))
    sys.exit(main())

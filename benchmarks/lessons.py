"""``python -m benchmarks lessons`` (``make time-lessons``): how long each lesson's Run All takes.

Every ``notebooks/*.ipynb`` (a new lesson is picked up by the glob) is copied into a temporary
folder next to ``notebooks/`` (so the lessons' ``../`` paths still resolve) and executed there with
``jupyter nbconvert --execute``, each in its own kernel, one after the other; the committed
notebooks are not touched. The table gives each lesson's wall seconds, the 1-minute load average
just before and just after it, and the CPU: on a shared machine the load says how far the
figures are from a quiet one. This module does not import TensorFlow (the kernels do).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["LESSON_BUDGET_S", "time_lessons", "lessons_table", "main"]

REPO = Path(__file__).resolve().parent.parent
#: Issue 30's goal for one lesson's Run All on 2 cores.
LESSON_BUDGET_S = 90.0


def _load() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu() -> str:
    """The CPU's model name and the number of cores this process may use."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return f"{model}, {cores} cores"


def time_lessons(paths: list[Path], kernel: str = "cnn-course", timeout: int = 1200) -> list[dict[str, Any]]:
    """Execute each notebook in ``paths`` (copies; one kernel each, in order) and time it.

    Returns one dict per notebook: ``lesson`` (file name), ``seconds`` (wall, float),
    ``load_before`` / ``load_after`` (1-minute load average), ``ok`` (bool) and ``error`` (the
    last line of nbconvert's error output, or None).
    """
    runs = []
    with tempfile.TemporaryDirectory(prefix=".time-lessons-", dir=REPO) as tmp:
        for path in paths:
            copy = Path(tmp) / path.name
            shutil.copyfile(path, copy)
            command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                       f"--ExecutePreprocessor.kernel_name={kernel}", f"--ExecutePreprocessor.timeout={timeout}", str(copy)]
            before = _load()
            start = time.perf_counter()
            done = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            error = None
            if done.returncode != 0:
                lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
                error = lines[-1] if lines else f"nbconvert exited with {done.returncode}"
            runs.append({"lesson": path.name, "seconds": seconds, "load_before": before, "load_after": _load(),
                         "ok": error is None, "error": error})
            print(f"  {path.name}: {seconds:.0f} s" + ("" if error is None else f" FAILED: {error}"), file=sys.stderr, flush=True)
    return runs


def lessons_table(runs: list[dict[str, Any]], machine: str, started: str) -> str:
    """The Markdown table of :func:`time_lessons`'s ``runs`` with a total row; ``machine`` names where
    they ran (e.g. ``"CPU: AMD EPYC, 2 cores"``)."""
    def load(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [f"Run All of each lesson, {started}; {machine}; goal < {LESSON_BUDGET_S:.0f} s per lesson.", "",
             "| lesson | seconds | load before | load after | ok |", "|---|---:|---:|---:|---|"]
    for run in runs:
        flag = "yes" if run["ok"] else f"no: {run['error']}"
        if run["ok"] and run["seconds"] >= LESSON_BUDGET_S:
            flag = "yes (over the goal)"
        lines.append(f"| {run['lesson']} | {run['seconds']:.0f} | {load(run['load_before'])} | {load(run['load_after'])} | {flag} |")
    total = sum(run["seconds"] for run in runs)
    lines.append(f"| all ({len(runs)}) | {total:.0f} | {load(runs[0]['load_before']) if runs else '-'} | "
                 f"{load(runs[-1]['load_after']) if runs else '-'} | {'yes' if all(r['ok'] for r in runs) else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """The command line; exit status 1 if a lesson failed to run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks lessons", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to time (default: notebooks/*.ipynb)")
    parser.add_argument("--kernel", default="cnn-course", help="Jupyter kernel to run them in (default: cnn-course, as `make venv` installs)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell (default 1200)")
    parser.add_argument("--json", type=Path, default=None, help="also write the runs to this JSON file")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((REPO / "notebooks").glob("*.ipynb"))
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json: no folder {args.json.parent}")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = _cpu()
    runs = time_lessons([Path(p).resolve() for p in paths], kernel=args.kernel, timeout=args.timeout)
    print(lessons_table(runs, f"CPU: {cpu}", started), end="")
    if args.json is not None:
        args.json.write_text(json.dumps({"started_utc": started, "cpu": cpu, "runs": runs}, indent=1) + "\n")
    return 0 if all(run["ok"] for run in runs) else 1

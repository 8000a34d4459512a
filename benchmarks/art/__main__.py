"""``python -m benchmarks.art [--quick] [--only name,...] [--out DIR]``: course_utils against IBM ART.

Finds every comparison module in ``benchmarks/art/`` (each exposes ``rows(quick) -> list[dict]``),
runs those asked for, and writes ``<out>/art.json`` and ``<out>/art.md`` (default
``benchmarks/results/``), both or neither; then prints the Markdown table. ``--quick`` runs tiny
budgets: it proves the comparisons run, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import pkgutil
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import course_utils  # noqa: F401  (quiets TensorFlow's start-up; must come before tensorflow)
from benchmarks.art import FLOOR

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "results"
KEYS = ("comparison", "tool", "setting", "metric", "value", "queries", "wall_s")


def comparisons() -> list[str]:
    """The comparison modules in this folder, sorted (every ``*.py`` but ``__init__``/``__main__``)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--only`` becomes a tuple of module names, checked before anything runs."""
    found = comparisons()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.art", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (CI: proves the comparisons run)")
    parser.add_argument("--only", default=",".join(found), help=f"comma-separated comparisons (default: all of {', '.join(found)})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for art.json/art.md (default benchmarks/results)")
    args = parser.parse_args(argv)
    args.only = tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = [n for n in args.only if n not in found]
    if unknown or not args.only:
        parser.error(f"unknown comparison(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(found)}")
    from tools.facetrain.outputs import OutputPathError, check_writable

    try:  # before anything runs: a typo in --out must not cost a whole run
        check_writable(args.out, "--out", folder=True)
    except OutputPathError as err:
        parser.error(str(err))
    return args


def check_row(row: Any, module: str) -> dict[str, Any]:
    """``row`` with exactly the expected keys and types, or a ``ValueError`` naming the module."""
    if not isinstance(row, dict) or set(row) != set(KEYS):
        raise ValueError(f"benchmarks/art/{module}.py gave a row without exactly the keys {KEYS}: {row!r}")
    if row["tool"] not in ("course_utils", "ART"):
        raise ValueError(f"benchmarks/art/{module}.py: tool must be 'course_utils' or 'ART', got {row['tool']!r}")
    out = dict(row, value=float(row["value"]), wall_s=float(row["wall_s"]))
    out["queries"] = None if row["queries"] is None else int(row["queries"])
    return {k: out[k] for k in KEYS}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return str(v)


#: Per comparison (by the start of its name): the metric that says whether the tool succeeded.
SUCCESS = {"adversarial patch": "toaster rate, held-out photos, own paste", "Square Attack": "success rate",
           "HopSkipJump": "success rate", "randomized smoothing": "certified accuracy at L2 radius 0"}


def speed_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: per comparison, each tool's wall seconds and success, and ART's time over the
    course's (the goal: at least ART's success in at most a third of its time). Where a comparison
    measured the forward-pass floor (time neither tool can go below), a second line compares the
    time each tool spends above it."""
    lines = ["| comparison | course s | ART s | ART s / course s | course success | ART success | success metric |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["comparison"] for r in rows):
        metric = next((m for key, m in SUCCESS.items() if name.startswith(key)), None)
        mine = [r for r in rows if r["comparison"] == name]
        wall = {t: next((r["wall_s"] for r in mine if r["tool"] == t and not r["metric"].startswith(FLOOR)), None)
                for t in ("course_utils", "ART")}
        success = {t: next((r["value"] for r in mine if r["tool"] == t and metric and r["metric"].startswith(metric)), None)
                   for t in ("course_utils", "ART")}
        if None in wall.values():
            continue
        lines.append(f"| {name} | {_fmt(wall['course_utils'])} | {_fmt(wall['ART'])} | "
                     f"**{wall['ART'] / wall['course_utils']:.1f}x** | {_fmt(success['course_utils'])} | "
                     f"{_fmt(success['ART'])} | {metric or '-'} |")
        floor = next((r["wall_s"] for r in mine if r["metric"].startswith(FLOOR)), None)
        if floor is not None and wall["course_utils"] > floor:
            lines.append(f"| {name}, time above the floor ({_fmt(floor)} s of forward passes) | "
                         f"{_fmt(wall['course_utils'] - floor)} | {_fmt(wall['ART'] - floor)} | "
                         f"**{(wall['ART'] - floor) / (wall['course_utils'] - floor):.1f}x** | | | |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a header, the speed table (:func:`speed_table`) and one table of every row."""
    load = report.get("load_average") or {}
    lines = [f"# course_utils vs IBM ART ({report['mode']})", "",
             f"{report['started_utc']}; {report['device']}; ART {report['art_version']}; "
             f"{report['wall_s']:.0f} s in all; 1-minute load average at start / end: "
             f"{_fmt(load.get('start'))} / {_fmt(load.get('end'))}. "
             f"Command: `{report.get('command', 'python -m benchmarks.art')}`.", ""]
    if report["mode"] == "quick":
        lines += ["Quick mode: tiny budgets; the numbers only prove that the comparisons run.", ""]
    lines += ["## Speed", ""] + speed_table(report["rows"]) + ["", "## Every row", ""]
    lines += ["| comparison | tool | setting | metric | value | queries | wall s |", "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append("| " + " | ".join(_fmt(r[k]) for k in KEYS) + " |")
    for name, err in report["errors"].items():
        lines += ["", f"**{name} failed:** `{err}`"]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path) -> tuple[Path, Path, str]:
    """Write ``art.json`` and ``art.md`` under ``out``, both or neither; return the paths and the text."""
    from tools.facetrain.outputs import write_files_together

    text = markdown(report)
    paths = out / "art.json", out / "art.md"
    write_files_together({
        paths[0]: lambda p: p.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8"),
        paths[1]: lambda p: p.write_text(text, encoding="utf-8"),
    })
    return paths[0], paths[1], text


def main(argv: list[str] | None = None) -> int:
    """Run the comparisons, write the report, print it; exit status 1 if any comparison failed."""
    args = parse_args(argv)
    import art

    from benchmarks.measure import describe_device, load_average

    device, _ = describe_device()
    load_start = load_average()
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.perf_counter()
    rows, errors = [], {}
    for name in args.only:
        print(f"[art] {name} ({'quick' if args.quick else 'full'})", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"benchmarks.art.{name}")
            rows += [check_row(r, name) for r in module.rows(args.quick)]
        except Exception as err:  # one failing comparison must not lose the others' rows
            traceback.print_exc()
            errors[name] = f"{type(err).__name__}: {err}"
    report = {"started_utc": started, "device": device, "art_version": art.__version__,
              "mode": "quick" if args.quick else "full", "wall_s": time.perf_counter() - t0,
              "comparisons": list(args.only), "rows": rows, "errors": errors,
              "load_average": {"start": load_start, "end": load_average()},
              "command": " ".join(["python -m benchmarks.art", *(sys.argv[1:] if argv is None else argv)])}
    json_path, md_path, text = write(report, args.out)
    print(text)
    print(f"[art] wrote {json_path} and {md_path}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""The stability harness: every notebook and test under several perturbations, one table of claims.

Feature visualisation and attacks are chaotic: a different CPU changes the last bits of a
reduction, and after 60 steps that is a different picture, like a different seed or thread count.
A lesson's claim is a fact only if it holds under all of them with room to spare. This tool runs
pytest (unit tests and notebooks, or what ``--targets`` names) once per perturbation:

    default      nothing changed
    onednn-off   TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's other CPU code path)
    threads-1    TF_NUM_INTRAOP_THREADS=1 (another reduction order)
    seed-1       COURSE_SEED=1 (every random start, jitter and noise moved; course_utils.checks)
    seed-2       COURSE_SEED=2
    ci-perturbed all three at once, as `make test-perturbed` in CI (not run unless named)

Every ``claim(...)`` in a notebook and every passing numeric ``assert a < b`` in a test is recorded
(``course_utils.classroom.grading``; ``tests/conftest.py``); the report gives each claim's value under each
perturbation and its worst margin, and flags a claim that failed anywhere or whose worst margin is
under 10% (0.5 in log-odds for probabilities).

    python tools/stability.py                                # everything, every perturbation
    python tools/stability.py --targets notebooks --perturbations default,seed-1
    python tools/stability.py --report-only --markdown docs/stability.md   # re-table the last logs

Exit status: 0 when every run passed and no claim is thin, 1 otherwise, 2 for bad arguments.
Logs (one JSON line per claim, a JUnit file per run) go to ``--out`` (default build/stability/).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PERTURBATIONS: dict[str, dict[str, str]] = {
    "default": {},
    "onednn-off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "threads-1": {"TF_NUM_INTRAOP_THREADS": "1"},
    "seed-1": {"COURSE_SEED": "1"},
    "seed-2": {"COURSE_SEED": "2"},
    "ci-perturbed": {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "1", "COURSE_SEED": "1"},
}
DEFAULT_PERTURBATIONS = ("default", "onednn-off", "threads-1", "seed-1", "seed-2")
PERTURBED_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "COURSE_SEED")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--perturbations", default=",".join(DEFAULT_PERTURBATIONS),
                    help=f"comma-separated, from {', '.join(PERTURBATIONS)} (default: {', '.join(DEFAULT_PERTURBATIONS)})")
    ap.add_argument("--targets", nargs="+", default=["tests", "notebooks"], help="what pytest runs (default: tests notebooks)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "stability", help="folder for the logs")
    ap.add_argument("--report-only", action="store_true", help="run nothing; table the logs already in --out")
    ap.add_argument("--markdown", type=Path, help="also write the report as Markdown to this file")
    ap.add_argument("--pytest-args", default="", help="extra arguments for pytest, e.g. \"-k lucid\"")
    args = ap.parse_args(argv)
    names = [p.strip() for p in args.perturbations.split(",") if p.strip()]
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown or not names:
        ap.error(f"unknown perturbation(s) {unknown or args.perturbations!r}: choose from {', '.join(PERTURBATIONS)}")
    args.names = names
    return args


def run_one(name: str, args: argparse.Namespace) -> dict:
    """One pytest run under perturbation ``name``; returns its exit code and time."""
    log, junit = (args.out / f"{name}.jsonl").resolve(), (args.out / f"{name}.xml").resolve()
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in PERTURBED_VARIABLES}
    env.update(PERTURBATIONS[name])
    env["COURSE_CLAIMS_LOG"] = str(log)
    cmd = [sys.executable, "-m", "pytest", *args.targets, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
           *args.pytest_args.split()]
    print(f"[{name}] {' '.join(f'{k}={v}' for k, v in PERTURBATIONS[name].items()) or '(no change)'}: {' '.join(cmd[2:])}",
          flush=True)
    t0 = time.perf_counter()
    with open(args.out / f"{name}.log", "w") as out:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    print(f"[{name}] pytest exit {rc} after {seconds:.0f} s", flush=True)
    return {"rc": rc, "seconds": seconds}


def read_claims(path: Path) -> dict[str, dict]:
    """Claims of one run, keyed by name (a name seen twice in a run gets ``#2``, ``#3``...)."""
    claims: dict[str, dict] = {}
    if not path.exists():
        return claims
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        key, k = r["claim"], 1
        while key in claims:
            k += 1
            key = f"{r['claim']} #{k}"
        claims[key] = r
    return claims


def read_failures(path: Path) -> list[str]:
    """Test ids that failed or errored in one run's JUnit file."""
    if not path.exists():
        return ["(no JUnit file: the run did not finish)"]
    failed = []
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return failed


def fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def report(names: list[str], out: Path, runs: dict[str, dict] | None = None) -> tuple[str, bool]:
    """The Markdown report of the logs in ``out`` and whether everything is stable."""
    from course_utils.classroom.grading import MIN_MARGIN

    per_run = {n: read_claims(out / f"{n}.jsonl") for n in names}
    failures = {n: read_failures(out / f"{n}.xml") for n in names}
    keys = list(dict.fromkeys(k for n in names for k in per_run[n]))
    notebook_keys = [k for k in keys if not k.startswith("tests/")]
    test_keys = [k for k in keys if k.startswith("tests/")]
    bad: list[str] = []
    lines = [f"Perturbations: {', '.join(f'`{n}`' + (' (' + ', '.join(f'{k}={v}' for k, v in PERTURBATIONS[n].items()) + ')' if PERTURBATIONS[n] else '') for n in names)}.",
             f"A claim is **thin** when its worst margin is under {MIN_MARGIN['relative']:.0%} of its threshold "
             f"(relative) or {MIN_MARGIN['log-odds']} in log-odds (probabilities and rates); **exact** when it "
             "sits that close to its bound by construction (a clip, a count, a uint8 value) with the same value "
             "under every perturbation.", ""]
    lines += ["| run | tests failed | claims recorded | time |", "|---|---|---|---|"]
    for n in names:
        t = f"{runs[n]['seconds']:.0f} s" if runs and n in runs else ""
        lines.append(f"| {n} | {len(failures[n])} | {len(per_run[n])} | {t} |")
    for n in names:
        for f in failures[n]:
            lines.append(f"\n- **{n}: failed** `{f}`")
            bad.append(f"{n}: {f}")

    def table(title: str, ks: list[str]) -> list[str]:
        rows = [f"\n### {title} ({len(ks)})\n", "| claim | holds when | " + " | ".join(names) + " | worst margin | status |",
                "|---|---|" + "---|" * len(names) + "---|---|"]
        for k in ks:
            recs = [per_run[n].get(k) for n in names]
            known = [r for r in recs if r is not None]
            first = known[0]
            margins = [r["margin"] for r in known if r["margin"] is not None]
            worst = min(margins) if margins else None
            held = all(r["held"] for r in known)
            floor = MIN_MARGIN[first["scale"]]
            if not held:
                status = "FAILED"
            elif worst is not None and worst < floor:
                # at its bound by construction (a clip, a count, a uint8 value) and the same under
                # every perturbation: nothing here moves, so nothing can cross
                same = len(known) > 1 and len({r["value"] for r in known}) == 1
                status = "exact" if same else "thin"
            elif len(known) < len(names):
                status = "missing in a run"
            else:
                status = "ok"
            if status not in ("ok", "exact"):
                bad.append(f"{k}: {status}")
            unit = " (log-odds)" if first["scale"] == "log-odds" else ""
            cells = [fmt(r["value"]) if r else "—" for r in recs]
            name = k.replace("|", "\\|")
            rows.append(f"| {name} | {first['op']} {fmt(first['threshold'])} | " + " | ".join(cells)
                        + f" | {fmt(worst)}{unit} | {status} |")
        return rows

    lines += table("Notebook claims", notebook_keys)
    lines += table("Numeric assertions in the unit tests", test_keys)
    return "\n".join(lines) + "\n", not bad


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = None
    if not args.report_only:
        runs = {n: run_one(n, args) for n in args.names}
        (args.out / "runs.json").write_text(json.dumps(runs, indent=1))
    elif (args.out / "runs.json").exists():
        runs = json.loads((args.out / "runs.json").read_text())
    text, stable = report(args.names, args.out, runs)
    if args.markdown:
        tmp = args.markdown.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.markdown)   # all or nothing
    summary = [l for l in text.splitlines()
               if l.endswith(("| FAILED |", "| thin |", "| missing in a run |")) or l.startswith("- **")]
    print("\n".join(summary) if summary else "every claim held under every perturbation with its margin")
    print("stable" if stable else "NOT stable: see the rows above")
    return 0 if stable else 1


if __name__ == "__main__":
    sys.exit(main())

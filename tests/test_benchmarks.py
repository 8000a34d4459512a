"""The benchmark runs end to end and writes its table and JSON.

Nothing here asserts a speed: timings on a shared machine are noisy, and the speed goals live in
the benchmark's own output (``benchmarks/results/latest.md``), never in timed tests.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = ("noise_filter", "iterative_attack_b1", "iterative_attack_b8", "filters_batched_vs_serial", "class_maximization")


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """``python -m benchmarks --quick --out <tmp>``, run once for the module."""
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,  # a guard against hangs, not a speed test
    )
    assert proc.returncode == 0, f"benchmark failed:\n{proc.stderr[-4000:]}"
    return out, proc


def test_quick_mode_writes_json_with_every_workload(quick_run):
    out, _ = quick_run
    data = json.loads((out / "latest.json").read_text())
    assert isinstance(data["device"], str) and data["device"]
    assert data["mode"] == "quick"
    assert [w["name"] for w in data["workloads"]] == list(WORKLOADS)
    for w in data["workloads"]:
        for key in ("course_s", "baseline_s", "ratio"):
            assert _positive(w[key]), f"{w['name']}: {key} = {w[key]!r}"
        assert math.isclose(w["ratio"], w["baseline_s"] / w["course_s"], rel_tol=1e-9)
    assert data["scaling"]["noise_filter_steps"] and data["scaling"]["iterative_attack_batch"]
    assert {g["goal"].split(":")[0] for g in data["goals"]} >= {"workload 1", "workload 2", "workload 3"}


def test_quick_mode_writes_and_prints_the_markdown(quick_run):
    out, proc = quick_run
    text = (out / "latest.md").read_text()
    assert "## Ratios" in text and "## Goals" in text and "## Scaling" in text
    for name in WORKLOADS:
        assert f"`{name}`" in text
    assert "## Ratios" in proc.stdout  # the table is printed too


def test_default_output_is_not_touched_by_the_quick_run(quick_run):
    out, _ = quick_run
    assert out.resolve() != (REPO / "benchmarks" / "results").resolve()


def test_interleave_alternates_candidates():
    from benchmarks.measure import interleave

    calls: list[str] = []
    seconds, outputs = interleave({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}, reps=3)
    assert calls == ["a", "b"] * 3
    assert len(seconds["a"]) == len(seconds["b"]) == 3 and all(s >= 0 for s in seconds["a"])
    assert outputs == {"a": [1, 1, 1], "b": [2, 2, 2]}


def test_unknown_workload_is_refused(capsys):
    from benchmarks.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--only", "no_such_workload"])
    assert "unknown workload" in capsys.readouterr().err

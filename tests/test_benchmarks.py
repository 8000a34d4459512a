"""The benchmark runs end to end and writes its table and JSON.

Nothing here asserts a speed: timings on a shared machine are noisy, and the speed goals live in
the benchmark's own output (``benchmarks/results/latest.md``), never in timed tests. The quick
mode runs in this process (TensorFlow is already imported), writing to a temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `benchmarks/` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

WORKLOADS = ("noise_filter", "iterative_attack_b1", "iterative_attack_b8", "filters_batched_vs_serial", "class_maximization",
             "adversarial_training_epoch")


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``python -m benchmarks --quick --out <tmp>``, run once for the module: (folder, printed text)."""
    from benchmarks.__main__ import main

    out = tmp_path_factory.mktemp("bench")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["--quick", "--out", str(out)]) == 0
    return out, printed.getvalue()


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
        assert _positive(w["peak_rss_mib"])
    assert data["scaling"]["noise_filter_steps"] and data["scaling"]["iterative_attack_batch"]
    assert {g["goal"].split(":")[0] for g in data["goals"]} >= {"workload 1", "workload 2", "workload 3"}


def test_quick_mode_writes_and_prints_the_markdown(quick_run):
    out, printed = quick_run
    text = (out / "latest.md").read_text()
    assert "## Ratios" in text and "## Goals" in text and "## Scaling" in text
    for name in WORKLOADS:
        assert f"`{name}`" in text
    assert text.strip() in printed  # the same report is printed


def test_the_report_shows_each_timed_lesson_and_judges_their_total(quick_run):
    from benchmarks.report import goals, markdown

    out, _ = quick_run
    runs = [{"lesson": "01_a.ipynb", "seconds": 20.0, "load_before": 0.5, "load_after": 1.0, "ok": True, "error": None},
            {"lesson": "02_b.ipynb", "seconds": 95.0, "load_before": 1.0, "load_after": 1.5, "ok": True, "error": None}]
    notebooks = {"runs": runs, "total_s": 115.0, "all_ok": True}  # the shape `--notebooks` gives
    report = dict(json.loads((out / "latest.json").read_text()), notebooks=notebooks)
    text = markdown(report)
    assert "| 01_a.ipynb | 20 | 0.50 | 1.00 | yes |" in text
    assert "| 02_b.ipynb | 95 | 1.00 | 1.50 | yes (over the goal) |" in text and "| all (2) | 115 |" in text
    assert goals([], notebooks)[-1] == {"goal": "all notebooks executed (seconds)", "target": "< 300",
                                        "measured": 115.0, "met": True}
    assert goals([], dict(notebooks, all_ok=False))[-1]["met"] is False  # a lesson that failed fails the goal


def test_default_results_are_not_touched(quick_run):
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


def test_lessons_table_gives_every_lesson_its_seconds_and_load():
    """``python -m benchmarks lessons`` prints one row per lesson, a total, and flags a failure."""
    from benchmarks.lessons import lessons_table

    runs = [{"lesson": "00_a.ipynb", "seconds": 12.4, "load_before": 0.5, "load_after": 1.0, "ok": True, "error": None},
            {"lesson": "01_b.ipynb", "seconds": 95.0, "load_before": 1.0, "load_after": None, "ok": False, "error": "CellExecutionError"}]
    text = lessons_table(runs, "Some CPU, 2 cores", "2026-01-01 00:00 UTC")
    assert "Some CPU, 2 cores" in text
    assert "| 00_a.ipynb | 12 | 0.50 | 1.00 | yes |" in text
    assert "| 01_b.ipynb | 95 | 1.00 | - | no: CellExecutionError |" in text
    assert "| all (2) | 107 | 0.50 | - | no |" in text


def test_lessons_refuses_a_missing_notebook_before_running(tmp_path, capsys):
    from benchmarks.lessons import main

    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing.ipynb")])
    assert "no such notebook" in capsys.readouterr().err


# --------------------------------------------------------------------------- lesson 3 vs Xplique (no Xplique run)


def test_vis_libraries_refuses_bad_arguments_and_says_how_to_get_xplique(tmp_path, capsys):
    from benchmarks.vis_libraries import main, parse_args

    with pytest.raises(SystemExit):
        parse_args(["--methods", "plain,deepdream", "--out", str(tmp_path)])
    assert "unknown method(s) deepdream" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--xplique-steps", "0", "--out", str(tmp_path)])
    try:
        import xplique  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit, match="(?s)xplique is not installed.*pip install --no-deps xplique==2.0.2"):
            main(["--quick", "--out", str(tmp_path)])
        assert not any(tmp_path.iterdir())  # stopped before anything was written


def test_vis_libraries_writes_its_table_json_and_picture_grid(tmp_path):
    import numpy as np

    from benchmarks.vis_libraries import write

    classes = ["sea snake", "goldfish"]
    pictures = {"plain": np.zeros((2, 224, 224, 3), np.uint8), "xplique": np.full((2, 512, 512, 3), 200, np.uint8)}
    rows = [{"class": c, "clipped": 0.5, "slope": -1.25, "p_model": 0.99, "lite2_rank": 3} for c in classes]
    report = {"started_utc": "now", "device": "CPU: x, 2 cores", "cores": 2, "tensorflow": "2", "keras": "3",
              "xplique": "2.0.2", "commit": "abc", "mode": "quick", "wall_s": 1.0, "complete": False,
              "classes": classes, "png": "vis_libraries.png",
              "photos": {"clipped_min": 0.0, "clipped_max": 0.1, "slope_min": -1.44, "slope_max": -1.36},
              "methods": [{"method": m, "settings": "s", "size": int(p.shape[1]), "wall_s": 2.0,
                           "seconds_per_picture": 1.0, "load_before": 0.5, "load_after": 1.5, "pictures": rows}
                          for m, p in pictures.items()]}
    text = write(report, pictures, classes, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vis_libraries.json", "vis_libraries.md", "vis_libraries.png"]
    assert "**partial**" in text and "| xplique | s | 0.5000 | -1.25 | 3, 3 | 1.0 | 0.5 / 1.5 |" in text
    assert "| plain | goldfish | 0.9900 | 3 | 0.5000 | -1.25 |" in text
    assert json.loads((tmp_path / "vis_libraries.json").read_text())["methods"][1]["size"] == 512


def test_vis_libraries_shows_shipped_pictures_first_and_leaves_their_live_twins_out_of_the_grid(tmp_path, monkeypatch):
    import numpy as np

    import benchmarks.vis_libraries as vl

    drawn = {}
    monkeypatch.setattr(vl, "grid_png", lambda path, pictures, classes: drawn.update(pictures) or path.write_bytes(b""))
    rows = [{"class": "teapot", "clipped": 0.0, "slope": -1.0, "p_model": 1.0, "lite2_rank": 1}]
    methods = [{"method": m, "settings": m, "size": 8, "wall_s": 1.0, "seconds_per_picture": 1.0, "load_before": None,
                "load_after": None, "pictures": rows} for m in ("xplique", "plain", "shipped-plain")]
    report = {"started_utc": "now", "device": "cpu", "cores": 2, "tensorflow": "2", "keras": "3", "xplique": "2.0.2",
              "commit": "abc", "mode": "full", "wall_s": 1.0, "complete": True, "classes": ["teapot"],
              "png": "vis_libraries.png", "photos": {"clipped_min": 0.0, "clipped_max": 0.1, "slope_min": -1.4,
                                                     "slope_max": -1.3}, "methods": methods}
    text = vl.write(report, {m["method"]: np.zeros((1, 8, 8, 3), np.uint8) for m in methods}, ["teapot"], tmp_path)
    summary = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ") and "settings" not in line]
    assert summary[:3] == ["| shipped-plain", "| plain", "| xplique"]
    assert list(drawn) == ["shipped-plain", "xplique"] and "| - / - |" in text

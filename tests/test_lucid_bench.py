"""The optional benchmark workload lucid_vs_tf_keras_vis: off by default, skipped with a note
without tf-keras-vis, accepted by --only. Nothing is timed here."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `benchmarks/` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))


def test_the_lucid_workload_is_optional_and_named_by_only():
    from benchmarks.__main__ import parse_args
    from benchmarks.workloads import OPTIONAL_WORKLOADS, WORKLOADS

    assert "lucid_vs_tf_keras_vis" in OPTIONAL_WORKLOADS and "lucid_vs_tf_keras_vis" not in WORKLOADS
    assert "lucid_vs_tf_keras_vis" not in parse_args([]).only
    assert parse_args(["--only", "lucid_vs_tf_keras_vis"]).only == ("lucid_vs_tf_keras_vis",)


def test_without_tf_keras_vis_the_workload_is_skipped_with_a_note(monkeypatch):
    import benchmarks.lucid_workload as lw
    from benchmarks.common import QUICK, Context
    from benchmarks.workloads import run_workloads

    monkeypatch.setattr(lw, "available", lambda: False)
    ctx = Context()
    results, _ = run_workloads(ctx, QUICK, ("lucid_vs_tf_keras_vis",))
    assert results == []
    assert any("tf-keras-vis is not installed" in note for note in ctx.notes)

"""Time the lessons: execute every notebook top to bottom (opt-in: ``python -m benchmarks --notebooks``).

The notebooks run in memory with ``nbclient`` in a fresh kernel each, from the ``notebooks/``
folder; nothing is written back to them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["EXPECTED_LESSONS", "time_notebooks"]

#: The course's lessons; a missing one makes the total incomplete (and the goal unmet).
EXPECTED_LESSONS = ("00_setup_check", "01_noise_filter", "02_iterative_attack", "03_feature_visualization", "04_defences",
                    "05_black_box", "06_physical_world", "07_hidden_gradients")


def _run_one(path: Path, timeout: int) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        error = None
    except Exception as err:  # noqa: BLE001 - a failing cell is reported, not raised
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    return {"notebook": path.name, "seconds": time.perf_counter() - start, "ok": error is None, "error": error}


def time_notebooks(folder: Path, timeout: int = 600) -> dict[str, Any]:
    """Execute ``folder/*.ipynb`` in name order; return per-notebook seconds, the total and
    whether every expected lesson was there and ran without error."""
    paths = sorted(folder.glob("*.ipynb"))
    runs = [_run_one(p, timeout) for p in paths]
    present = {p.stem for p in paths}
    missing = [name for name in EXPECTED_LESSONS if name not in present]
    return {
        "runs": runs,
        "total_s": sum(r["seconds"] for r in runs),
        "all_ok": all(r["ok"] for r in runs),
        "complete": not missing,
        "missing": missing,
    }

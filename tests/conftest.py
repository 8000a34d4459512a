"""Shared fixtures. Importing course_utils first keeps TensorFlow's start-up chatter out of the log."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import course_utils  # noqa: E402,F401  (silences TensorFlow before it is imported)
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def imagenet_model():
    """EfficientNet-Lite0, loaded once for the whole session (offline)."""
    from course_utils.models.imagenet import load_imagenet_model

    return load_imagenet_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def cat_224() -> np.ndarray:
    """skimage's chelsea (a cat), 224x224x3 float pixels 0..255."""
    from course_utils.io.images import load_image
    from course_utils.io.images import sample_image

    return load_image(sample_image("chelsea"), size=224)


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every network access (DNS lookups included) and record the attempts.

    Yields the list of attempts; a test asserts it stayed empty where nothing may touch the network.
    """
    import socket

    attempts: list[tuple[str, tuple]] = []

    def refuse(what):
        def refused(*args, **kwargs):
            attempts.append((what, args))
            raise OSError(f"network refused by the test ({what})")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    return attempts


# --- the stability harness (tools/stability.py) -----------------------------------------------
# With COURSE_CLAIMS_LOG set, every passing `assert a < b` (or <=, >, >=) between two numbers in a
# test is recorded like a notebook's claim: test, line, value, threshold and margin. The hook is
# registered only then, so an ordinary run pays nothing for it.

class _AssertionRecorder:
    """Appends one JSON line per passing numeric comparison to the claims log."""

    import re as _re

    _NUMBER = r"(?:np\.float\d+\(|np\.int\d+\(|tensor\()?\s*(-?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf|nan))\s*\)?"
    _COMPARISON = _re.compile(rf"^{_NUMBER}\s*(<=|>=|<|>)\s*{_NUMBER}$", _re.IGNORECASE)
    _LITERAL = _re.compile(r"^\s*-?\(?\s*[\d.]+(?:e[-+]?\d+)?")

    def __init__(self, path: str) -> None:
        self.path = path

    def pytest_assertion_pass(self, item, lineno, orig, expl):
        from course_utils.classroom.grading import _margin

        first = expl.splitlines()[0].strip() if expl else ""
        found = self._COMPARISON.match(first)
        if not found:
            return
        left, op, right = float(found.group(1)), found.group(2), float(found.group(3))
        if len(self._re.findall(r"\s(?:<=|>=|<|>)\s", orig.split("#")[0])) != 1:
            return  # a chained comparison (`0 < a <= b`): no single threshold
        lhs = self._re.split(r"\s(?:<=|>=|<|>)\s", orig, maxsplit=1)[0]
        if self._LITERAL.match(lhs) and not self._LITERAL.match(orig[len(lhs):].lstrip("<>= ")):
            flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]   # `0.9 < x`: the threshold is on the left
            value, threshold, op = right, left, flipped
        else:
            value, threshold = left, right
        # `p >= 0.95` between probabilities: log-odds, as in the notebooks; everything else relative
        scale = "log-odds" if op.startswith(">") and 0 < threshold < 1 and 0 <= value <= 1 else "relative"
        m = _margin(value, op, threshold, scale)
        record = {"claim": f"{item.nodeid}:{lineno} {orig.split('#')[0].strip()}"[:200], "value": value, "op": op,
                  "threshold": threshold, "scale": scale, "margin": m if m is None or abs(m) != float("inf") else None, "held": True}
        import json

        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def pytest_configure(config):
    from course_utils.classroom.grading import CLAIMS_LOG_VARIABLE

    path = os.environ.get(CLAIMS_LOG_VARIABLE, "").strip()
    if path:
        config.pluginmanager.register(_AssertionRecorder(path), "course-claims-recorder")


# --- which CI pass runs what (Makefile, .ci/run) -------------------------------------------------
# The perturbed pass (oneDNN off, one thread, COURSE_SEED=1) exists for claims whose numbers move
# with the CPU's reduction order and the seed. These files check no such number: argument errors,
# layout, packaging, parsing, file readers, downloads, the Stop button, the benchmark's plumbing.
# Their tests get the marker `plain`, and `make test-perturbed` runs `-m "not plain"`. A new test
# file is perturbed unless it is added here; add one only if none of its asserts depends on the
# model's numbers.
PLAIN_FILES = frozenset({
    "test_benchmarks.py", "test_bounded_loading.py", "test_browser.py", "test_cache.py", "test_careless_inputs.py",
    "test_fetch.py", "test_images.py", "test_interrupts.py", "test_labels.py", "test_layout.py", "test_lucid_bench.py", "test_measure_layout.py",
    "test_package_data.py", "test_packaging.py", "test_plotting.py", "test_pth.py", "test_pth_hostile.py",
    "test_tool_outputs.py", "test_validation.py", "test_versions.py", "test_widgets.py",
})


def pytest_collection_modifyitems(config, items):
    """Mark the tests of :data:`PLAIN_FILES` ``plain`` (see above)."""
    for item in items:
        if item.path.name in PLAIN_FILES:
            item.add_marker(pytest.mark.plain)

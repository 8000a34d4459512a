"""The import-time version check (course_utils.checks): bounds from the installed metadata."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import course_utils as _env

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_runtime_bounds() -> dict[str, str]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    matches = [_env._REQUIREMENT.match(d) for d in dependencies]
    return {m.group(1): m.group(2).removeprefix(">=") for m in matches}


def test_installed_metadata_carries_pyprojects_runtime_bounds():
    bounds = _env._runtime_lower_bounds()
    if not bounds:
        pytest.skip("course-utils is not installed (imported from the source tree)")
    assert bounds == _pyproject_runtime_bounds(), "reinstall the course (pip install -e .): its metadata is older than pyproject.toml"
    assert "pytest" not in bounds and "nbval" not in bounds and "tf-keras-vis" not in bounds


def test_this_environment_passes():
    # Every runtime dependency is found under its requirement's name (Pillow as "pillow", ...).
    assert [p for p in _env._runtime_lower_bounds() if _env._installed_version(p) is None] == []
    assert _env._too_old() == []
    _env._check_versions()


def test_an_old_version_stops_with_package_found_and_needed(monkeypatch):
    real = _env._installed_version
    monkeypatch.setattr(_env, "_installed_version", lambda p: "3.0.0" if p == "keras" else real(p))
    monkeypatch.setattr(_env, "_runtime_lower_bounds", lambda: {"keras": "3.4.0", "numpy": "1.26.0"})
    monkeypatch.delenv(_env._SKIP_VARIABLE, raising=False)
    with pytest.raises(ImportError) as info:
        _env._check_versions()
    message = str(info.value)
    assert "course_utils needs keras >= 3.4.0, found 3.0.0" in message
    assert "pip install -U 'keras>=3.4.0'" in message
    assert "numpy" not in message


def test_skip_variable_and_missing_packages(monkeypatch):
    monkeypatch.setattr(_env, "_runtime_lower_bounds", lambda: {"keras": "99.0.0", "no-such-package-xyz": "1.0"})
    monkeypatch.setenv(_env._SKIP_VARIABLE, "1")
    _env._check_versions()  # skipped on request
    monkeypatch.setenv(_env._SKIP_VARIABLE, "0")
    with pytest.raises(ImportError, match="keras >= 99.0.0"):
        _env._check_versions()
    assert [p for p, _, _ in _env._too_old()] == ["keras"]  # a missing package is not "too old"


def test_extras_and_markers_are_not_runtime(monkeypatch):
    requires = ['keras>=3.4.0', 'numpy >=1.26.0, <3', 'pytest>=8.0.0; extra == "dev"', "requests"]
    monkeypatch.setattr(_env.metadata, "requires", lambda name: requires)
    assert _env._runtime_lower_bounds() == {"keras": "3.4.0", "numpy": "1.26.0"}


@pytest.mark.parametrize(
    "found, needed, older",
    [("3.0.0", "3.4.0", True), ("3.4", "3.4.0", False), ("3.10.0", "3.4.0", False), ("1.26.0", "1.26.0", False),
     ("2.16.0rc0", "2.16.1", True), ("2.0.2", "1.26.0", False)],
)
def test_comparison(found, needed, older, monkeypatch):
    monkeypatch.setattr(_env, "_installed_version", lambda p: found)
    assert _env._too_old({"keras": needed}) == ([("keras", found, needed)] if older else [])


def test_import_stops_before_tensorflow(tmp_path):
    """A real interpreter: course_utils with a too-old keras raises before TensorFlow is imported."""
    code = (
        "import sys, importlib.metadata as m\n"
        "real = m.version\n"
        "m.version = lambda p: '0.0.1' if p == 'keras' else real(p)\n"
        "try:\n"
        "    import course_utils\n"
        "except ImportError as e:\n"
        "    print('STOPPED', 'tensorflow' in sys.modules, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    if not _env._runtime_lower_bounds():
        pytest.skip("course-utils is not installed (imported from the source tree)")
    assert out.stdout.startswith("STOPPED False course_utils needs keras >= "), out.stdout + out.stderr


def test_lowest_versions_tool_pins_every_bound_exactly():
    """tools/lowest_versions.py (make test-lowest) pins each runtime and dev bound, nothing else."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lowest_versions", ROOT / "tools" / "lowest_versions.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    pins = dict(p.split("==") for p in tool.pins())
    assert pins["keras"] == _pyproject_runtime_bounds()["keras"] and "pytest" in pins and "nbval" in pins
    assert "tf-keras-vis" not in pins
    with pytest.raises(ValueError, match="no single '>=' lower bound"):
        tool.lower_bound("keras<4")

"""pyproject.toml (pip) and environment.yml (conda) must list the same packages and bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name_and_bound(requirement: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*?)\s*$", requirement)
    assert m, requirement
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_name_and_bound(r) for r in reqs)


def _environment() -> dict[str, str]:
    entries: list[str] = []
    in_dependencies = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        line = line.split("#", 1)[0].rstrip()
        if re.match(r"^\S", line):  # a top-level key
            in_dependencies = line.startswith("dependencies:")
            continue
        m = re.match(r"^\s+-\s+(.+)$", line)
        if in_dependencies and m and not m.group(1).endswith(":"):
            entries.append(m.group(1))
    out = dict(_name_and_bound(e.replace("=", "==", 1) if re.match(r"^[\w.\-]+=[^=]", e) else e) for e in entries)
    out.pop("pip", None)
    out.pop("python", None)
    return out


def test_pip_and_conda_lists_agree():
    pip, conda = _pyproject(), _environment()
    assert sorted(pip) == sorted(conda), f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: {set(conda) - set(pip)}"
    for name, bound in pip.items():
        assert conda[name] == bound, f"{name}: pyproject says {bound!r}, environment.yml says {conda[name]!r}"


def test_torch_is_not_a_dependency():
    assert "torch" not in _pyproject()

"""The installed package carries its own data, and is laid out by role with dependencies one way.

(`make test-wheel` checks the same from a wheel installed in a fresh venv, running every notebook.)
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import pkgutil
import tomllib
from collections import defaultdict
from pathlib import Path

import course_utils
from course_utils.models import faces

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(course_utils.__file__).resolve().parent
#: The subpackages in dependency order: a module may import from its own subpackage, from the
#: top-level helpers and from subpackages *before* its own, never after.
LAYERS = ("io", "models", "core", "attacks", "vis", "classroom")


def test_the_face_models_data_lives_inside_the_package_and_is_packaged():
    shipped = [faces.DEFAULT_WEIGHTS, faces.MODEL_CARD, faces.ROBUST_WEIGHTS, faces.ROBUST_CARD, faces.ROBUSTNESS_JSON]
    for path in shipped:
        assert path.is_file(), f"{path} is missing"
        assert path.parent == PACKAGE / "data", f"{path} is not package data: a wheel would not carry it"
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["course_utils"]
    for path in shipped:
        relative = path.relative_to(PACKAGE).as_posix()
        assert any(fnmatch.fnmatch(relative, g) for g in globs), f"pyproject.toml's package-data does not include {relative}"


def _internal_imports() -> dict[str, set[str]]:
    """module -> the course_utils modules it imports (at any depth of the file, lazy imports too)."""
    out: dict[str, set[str]] = defaultdict(set)
    for info in pkgutil.walk_packages(course_utils.__path__, "course_utils."):
        path = Path(importlib.util.find_spec(info.name).origin)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_utils"):
                out[info.name].add(node.module)
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 and parts[1] in LAYERS else None


def test_dependencies_run_one_way_between_subpackages():
    wrong = []
    for module, imports in _internal_imports().items():
        mine = _layer(module)
        for target in imports:
            theirs = _layer(target)
            if mine is None and theirs is not None:
                wrong.append(f"{module} (a top-level helper) imports {target}")
            elif mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{module} imports {target}, a later layer")
    assert not wrong, "imports against the order io < models < core < attacks, vis < classroom:\n" + "\n".join(wrong)


def test_no_import_circles_and_no_name_exported_twice():
    imports = _internal_imports()
    state: dict[str, int] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        state[module] = 1
        for target in imports.get(module, ()):
            assert state.get(target) != 1, "import circle: " + " -> ".join(path + (module, target))
            if target not in state:
                visit(target, path + (module,))
        state[module] = 2

    for module in list(imports):
        if module not in state:
            visit(module, ())
    owners: dict[str, list[str]] = defaultdict(list)
    for info in pkgutil.walk_packages(course_utils.__path__, "course_utils."):
        for name in getattr(importlib.import_module(info.name), "__all__", ()):
            owners[name].append(info.name)
    twice = {name: mods for name, mods in owners.items() if len(mods) > 1}
    assert not twice, f"names exported by more than one module: {twice}"


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"

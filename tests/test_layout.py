"""The package's layout by role (issue 19): every public name has one home, no module imports in
a circle, the lower layers never import the upper ones (not even lazily, inside a function), and
the visualisation and core modules stay short. Read from the source with ``ast``; nothing is run."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"
LAYERS = {"io": 0, "models": 1, "core": 2, "attacks": 3, "vis": 3, "classroom": 4}
"""A module may import its own layer and those below it (``attacks`` and ``vis`` not each other)."""


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


MODULES = _modules()


def _imports(tree: ast.Module) -> set[str]:
    """Every ``course_utils`` module ``tree`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_utils"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("course_utils"))
    return {m for m in found if m in MODULES}


def _all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def _is_face(name: str) -> bool:
    """A package's ``__init__`` (``course_utils`` or a subpackage): it re-exports, it defines nothing."""
    return (PACKAGE.parent / Path(*name.split(".")) / "__init__.py").exists()


def test_no_name_is_defined_by_two_modules():
    owners = defaultdict(list)
    for name, tree in MODULES.items():
        if not _is_face(name):
            for exported in _all(tree):
                owners[exported].append(name)
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}


@pytest.mark.parametrize("face", sorted(m for m in MODULES if _is_face(m)))
def test_each_face_re_exports_names_defined_once_below_it(face):
    """A subpackage's face lists names its own modules define (course_utils' face: any module's)."""
    owners = {n: m for m, t in MODULES.items() if not _is_face(m) for n in _all(t)}
    for exported in _all(MODULES[face]):
        assert exported in owners, f"{face} exports {exported!r}, which no module defines in its __all__"
        assert owners[exported].startswith(face + "."), f"{face} exports {exported!r} from {owners[exported]}"


def test_each_lesson_imports_the_package_in_six_lines_or_fewer():
    """The faces carry what the lessons use: one import line per subpackage, six at most per lesson."""
    import json

    for path in sorted((PACKAGE.parent / "notebooks").glob("*.ipynb")):
        statements = 0
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                for node in ast.walk(ast.parse("".join(cell["source"]))):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                        statements += 1
                    elif isinstance(node, ast.Import) and any(a.name.startswith("course_utils") for a in node.names):
                        statements += 1
        assert statements <= 6, f"{path.name} imports course_utils in {statements} statements"


def test_no_module_imports_in_a_circle():
    def parents(m: str) -> set[str]:
        parts = m.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    graph = {m: _imports(t) - parents(m) - {m} for m, t in MODULES.items()}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        assert m not in path, " -> ".join(path[path.index(m):] + [m])
        if m not in done:
            for d in sorted(graph[m]):
                visit(d, path + [m])
            done.add(m)

    for m in sorted(graph):
        visit(m, [])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.count(".") >= 1 and m.split(".")[1] in LAYERS))
def test_no_module_imports_a_layer_above_its_own(module):
    own = module.split(".")[1]
    for dep in _imports(MODULES[module]):
        role = dep.split(".")[1] if dep.count(".") >= 1 else None
        if role in LAYERS and role != own:
            assert LAYERS[role] < LAYERS[own], f"{module} imports {dep}"


@pytest.mark.parametrize("package", ["vis", "core"])
def test_visualisation_and_core_modules_stay_short(package):
    long = {p.name: n for p in (PACKAGE / package).glob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}

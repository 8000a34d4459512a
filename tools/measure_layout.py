"""The package's layout in figures (issue 27's before/after table), read from the source with ``ast``.

    python tools/measure_layout.py                  # this checkout
    python tools/measure_layout.py --rev ce0de85    # any commit, read with git (nothing checked out)
    python tools/measure_layout.py --json           # the same figures, machine-readable

Nothing is imported or run. The figures:

- ``course_utils/``: files, lines, names in the ``__all__`` of non-face modules, public top-level
  functions and classes, result types (classes named ``*Result``/``*Score``), compiled caches
  (module-level cache dicts, weak dictionaries, caches stored on a model), private names imported
  from another module, and the longest module;
- import lines of ``course_utils`` per lesson notebook;
- for each lesson function that runs a gradient loop, the step it hands to the driver
  (``course_utils.core.loop.compiled(step, ...)``), the file that holds that step, and the call
  frames from the public function to the step: a public function that names its step in its own
  module is 1 file and 1 frame; each function in between adds a frame.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADIENT_FUNCTIONS = ("noise_filter", "fgsm", "iterative_attack", "pgd_attack", "robust_accuracy", "eot_attack",
                      "train_patch", "adaptive_attack", "maximize_filters", "maximize_class",
                      "maximize_class_maco")
DRIVER = ("course_utils.core.loop", "compiled")
_CACHE = re.compile(r"WeakKeyDictionary\(\)|^_[A-Z_]+: .*dict.* = (\{\}|dict\(\))|object\.__setattr__\(model", re.M)


def read_tree(root: Path, rev: str | None) -> dict[str, str]:
    """``{path: text}`` of the package's modules and the notebooks, at ``rev`` (git) or on disk."""
    if rev is None:
        paths = [*sorted((root / "course_utils").rglob("*.py")), *sorted((root / "notebooks").glob("*.ipynb"))]
        return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in paths}
    listing = subprocess.run(["git", "-C", str(root), "ls-tree", "-r", "--name-only", rev, "course_utils", "notebooks"],
                             check=True, capture_output=True, text=True).stdout.split()
    wanted = [p for p in listing if (p.startswith("course_utils/") and p.endswith(".py"))
              or (p.startswith("notebooks/") and p.endswith(".ipynb") and p.count("/") == 1)]
    return {p: subprocess.run(["git", "-C", str(root), "show", f"{rev}:{p}"], check=True, capture_output=True,
                              text=True).stdout for p in wanted}


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def _all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


class Package:
    """The modules of ``course_utils`` as ASTs, with what each top-level name and import refers to."""

    def __init__(self, files: dict[str, str]) -> None:
        self.text = {_module(p): t for p, t in files.items() if p.endswith(".py")}
        self.path = {_module(p): p for p in files if p.endswith(".py")}
        self.trees = {m: ast.parse(t) for m, t in self.text.items()}
        self.faces = {m for m, p in self.path.items() if p.endswith("__init__.py")}
        self.functions = {m: {n.name: n for n in t.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
                          for m, t in self.trees.items()}
        self.imports: dict[str, dict[str, tuple[str, str | None]]] = {}
        for m, tree in self.trees.items():
            names: dict[str, tuple[str, str | None]] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                    for a in node.names:
                        full = f"{node.module}.{a.name}"
                        names[a.asname or a.name] = (full, None) if full in self.trees else (node.module, a.name)
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name.startswith("course_utils") and a.asname:
                            names[a.asname] = (a.name, None)
            self.imports[m] = names

    def owner(self, name: str) -> str | None:
        """The non-face module that defines the top-level function ``name`` (or assigns it)."""
        for m in sorted(self.trees):
            if m in self.faces:
                continue
            if name in self.functions[m]:
                return m
            for node in self.trees[m].body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                    return m
        return None

    def resolve(self, module: str, func: ast.expr) -> tuple[str, str] | None:
        """``(module, name)`` of the top-level function a call's ``func`` names, if in the package."""
        if isinstance(func, ast.Name):
            if func.id in self.functions.get(module, {}):
                return module, func.id
            target = self.imports[module].get(func.id)
            if target and target[1] is not None:
                owner = target[0] if target[0] not in self.faces else self.owner(target[1])
                return (owner, target[1]) if owner else None
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = self.imports[module].get(func.value.id)
            if target and target[1] is None:
                return target[0], func.attr
        return None

    def step_of(self, name: str, depth: int = 6) -> dict[str, object] | None:
        """The step ``name`` hands to the driver: its function, file, and the frames and files on the way."""
        start = self.owner(name)
        if start is None:
            return None
        queue = deque([((start, name), [(start, name)])])
        seen = {(start, name)}
        while queue:
            (module, fn), chain = queue.popleft()
            node = self.functions.get(module, {}).get(fn)
            if node is None or len(chain) > depth:
                continue
            for call in (c for c in ast.walk(node) if isinstance(c, ast.Call)):
                target = self.resolve(module, call.func)
                if target == DRIVER and call.args:
                    step = self.resolve(module, call.args[0])
                    if step:
                        files = {self.path[m] for m, _ in chain} | {self.path[step[0]]}
                        return {"function": name, "module": self.path[start], "step": step[1],
                                "step_file": self.path[step[0]], "frames": len(chain), "files": len(files),
                                "via": " -> ".join(f for _, f in chain)}
                if target and target not in seen and target[0] in self.functions and target != DRIVER:
                    seen.add(target)
                    queue.append((target, chain + [target]))
        return None


def measure(files: dict[str, str]) -> dict[str, object]:
    """Every figure of the table, from ``{path: text}`` (see :func:`read_tree`)."""
    pkg = Package(files)
    exported: set[str] = set()
    public_defs, results, caches, private_imports = 0, [], [], []
    for m, tree in pkg.trees.items():
        if m not in pkg.faces:
            exported.update(_all(tree))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                public_defs += 1
            if isinstance(node, ast.ClassDef) and re.search(r"(Result|Score)$", node.name):
                results.append(f"{pkg.path[m]}:{node.name}")
        caches += [pkg.path[m]] * len(_CACHE.findall(pkg.text[m]))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils") and node.module != m:
                private_imports += [f"{pkg.path[m]}: {node.module}.{a.name}" for a in node.names
                                    if a.name.startswith("_") and not a.name.startswith("__")]
    lines = {pkg.path[m]: len(t.splitlines()) for m, t in pkg.text.items()}
    subpackages: dict[str, list[int]] = {}
    for path, n in lines.items():
        key = path.split("/")[1] if path.count("/") > 1 else "(top level)"
        subpackages.setdefault(key, [0, 0])
        subpackages[key][0] += 1
        subpackages[key][1] += n
    imports = {}
    for path, text in files.items():
        if path.endswith(".ipynb"):
            count = 0
            for cell in json.loads(text)["cells"]:
                if cell["cell_type"] == "code":
                    source = "".join(cell["source"])
                    source = "\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!")))
                    for node in ast.walk(ast.parse(source)):
                        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                            count += 1
                        elif isinstance(node, ast.Import) and any(a.name.startswith("course_utils") for a in node.names):
                            count += 1
            imports[Path(path).name[:2]] = count
    longest = max(lines, key=lines.get)
    return {
        "files": len(lines), "lines": sum(lines.values()), "exported_names": len(exported),
        "public_top_level_defs": public_defs, "result_types": sorted(results), "compiled_caches": sorted(caches),
        "private_names_imported_across_modules": sorted(private_imports),
        "longest_module": [longest, lines[longest]],
        "subpackages": {k: {"files": v[0], "lines": v[1]} for k, v in sorted(subpackages.items())},
        "import_lines_per_lesson": dict(sorted(imports.items())),
        "gradient_loops": [pkg.step_of(f) or {"function": f, "step": None} for f in GRADIENT_FUNCTIONS],
    }


def report(figures: dict[str, object], label: str) -> str:
    """The figures as a short Markdown report."""
    out = [f"## course_utils at {label}", "", "| figure | value |", "|---|---|"]
    for key in ("files", "lines", "exported_names", "public_top_level_defs"):
        out.append(f"| {key.replace('_', ' ')} | {figures[key]:,} |")
    for key in ("result_types", "compiled_caches", "private_names_imported_across_modules"):
        items = figures[key]
        shown = ", ".join(items) if len(items) <= 8 else ", ".join(items[:8]) + ", ..."
        out.append(f"| {key.replace('_', ' ')} | {len(items)}{': ' + shown if items else ''} |")
    out.append(f"| longest module | {figures['longest_module'][0]} ({figures['longest_module'][1]} lines) |")
    subs = ", ".join(f"{k} {v['files']}/{v['lines']:,}" for k, v in figures["subpackages"].items())
    out.append(f"| files/lines per subpackage | {subs} |")
    per = ", ".join(f"{k}: {v}" for k, v in figures["import_lines_per_lesson"].items())
    out.append(f"| import lines per lesson | {per} (most {max(figures['import_lines_per_lesson'].values(), default=0)}) |")
    out += ["", "| lesson function | step | step's file | files | frames | via |", "|---|---|---|---|---|---|"]
    for row in figures["gradient_loops"]:
        if row.get("step") is None:
            out.append(f"| {row['function']} | (not found) | | | | |")
        else:
            out.append(f"| {row['function']} | {row['step']} | {row['step_file']} | {row['files']} | {row['frames']} "
                       f"| {row['via']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a git commit to measure instead of the files on disk")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: this one)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    figures = measure(read_tree(args.root, args.rev))
    print(json.dumps(figures, indent=1) if args.json else report(figures, args.rev or "the working tree"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

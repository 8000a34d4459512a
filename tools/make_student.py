"""Write the student copies of the lessons: outputs cleared, solutions replaced by placeholders.

In the committed (teacher's) notebooks every exercise's answer cell is tagged ``solution`` and
holds a worked solution. Its lines of the form ``name = ...  # your answer...`` name the answers;
in the student copy the cell becomes one placeholder per answer,
``name = None  # your answer...`` (the comment is kept: it says what kind of answer is expected),
and everything else in the cell (the solution's working) is dropped. A coding answer is a function
whose ``def`` line carries the comment (``def name(...):  # your answer...``); it keeps its ``def``
line and docstring, and its body becomes ``return None``. The check cells see ``None``
and say "not answered yet" without failing, so a student copy runs from top to bottom; a check
shows nothing before it but a progress bar (no result that would answer the question).

Usage:
    python tools/make_student.py [--out student] [notebooks/*.ipynb]   write the copies
    python tools/make_student.py --verify student/*.ipynb              check executed copies
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOT_ANSWERED = "not answered yet"
PROGRESS_BAR = re.compile(r"\d+%\|.*\|")   # a text progress bar's line: "noise filter:  40%|████   | 400/1000"
ANSWER = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*=\s*.+?(?P<comment>#\s*your answer.*)$")
DEF_ANSWER = re.compile(r"^def\s+[A-Za-z_]\w*\s*\(.*\).*:\s*#\s*your answer.*$")


class StudentCopyError(ValueError):
    """A notebook's solution cell cannot be turned into placeholders."""


def _docstring(body: list[str]) -> list[str]:
    """The docstring lines at the top of a function's ``body`` (none if it has no docstring)."""
    first = body[0].strip() if body else ""
    quote = first[:3]
    if quote not in ('"""', "'''"):
        return []
    if len(first) >= 6 and first.endswith(quote):
        return body[:1]
    for i, line in enumerate(body[1:], 1):
        if quote in line:
            return body[:i + 1]
    return body


def placeholders(source: str, where: str) -> str:
    """The student version of a solution cell's ``source``: one ``name = None`` line per answer, and
    for a coding answer (``def name(...):  # your answer...``) the ``def`` line, its docstring and
    ``return None``, so the student fills in the body."""
    lines = []
    source_lines = source.splitlines()
    for i, line in enumerate(source_lines):
        m = ANSWER.match(line.strip())
        if m and not line.startswith((" ", "\t")):
            lines.append(f"{m['name']} = None  {m['comment']}")
        elif DEF_ANSWER.match(line):
            lines += [line, *_docstring(source_lines[i + 1:]), "    return None  # replace this line with your code"]
    if not lines:
        raise StudentCopyError(
            f"{where}: a cell tagged 'solution' has no line 'name = ...  # your answer' "
            "(or 'def name(...):  # your answer'): "
            "mark each answer with that comment so the student copy can leave it blank"
        )
    return "\n".join(lines)


def student_copy(notebook: nbformat.NotebookNode, where: str) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``notebook`` with outputs cleared and solutions replaced; also the number replaced."""
    nb = nbformat.from_dict(notebook)
    replaced = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
        if "solution" in cell.metadata.get("tags", []):
            cell.source = placeholders(cell.source, f"{where}, cell {i}")
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != "solution"] + ["answer"]
            replaced += 1
    return nb, replaced


def shown_before_not_answered(outputs: list) -> str:
    """What a check cell's ``outputs`` show before its first "not answered yet", progress bars
    left out (a bar says only that a run is going): text, or the kind of a rich output."""
    shown = []
    for out in outputs:
        if out.output_type != "stream":
            shown.append(f"[{out.output_type}]")
            continue
        text, found, _ = out.text.partition(NOT_ANSWERED)
        if found:
            text = text[:text.rfind("\n") + 1]   # the line that says it starts with "Exercise N: "
        lines = re.split(r"[\r\n]+", text)
        shown += [line.strip() for line in lines if line.strip() and not PROGRESS_BAR.search(line)]
        if found:
            break
    return "\n".join(shown)


def verify(paths: list[Path]) -> list[str]:
    """Problems in executed student copies: an error output anywhere, or an answer cell whose check
    (the next code cell) did not say "not answered yet" exactly once, or showed anything but a
    progress bar before it (that could answer the question before the student does). An empty list
    means all is well."""
    problems = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        for i, cell in enumerate(code):
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    problems.append(f"{path.name}: a cell raised {out.ename}: {out.evalue}")
            if "answer" in cell.metadata.get("tags", []):
                check = code[i + 1] if i + 1 < len(code) else None
                outputs = [] if check is None else check.get("outputs", [])
                where = f"{path.name}: the check after answer cell {cell.source.splitlines()[0]!r}"
                said = "".join(o.get("text", "") for o in outputs).count(NOT_ANSWERED)
                early = shown_before_not_answered(outputs)
                if said != 1:
                    problems.append(f"{where} said '{NOT_ANSWERED}' {said} times (once is right)")
                elif early:
                    problems.append(f"{where} showed {early[:120]!r} before '{NOT_ANSWERED}' "
                                    "(nothing but a progress bar may come first)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--out", type=Path, default=REPO / "student", help="folder for the copies (default: student/)")
    parser.add_argument("--verify", action="store_true", help="check executed student copies instead of writing them")
    args = parser.parse_args(argv)
    if args.verify:
        if not args.notebooks:
            print("make_student --verify: name the executed student notebooks", file=sys.stderr)
            return 2
        problems = verify(args.notebooks)
        for p in problems:
            print(f"make_student --verify: {p}", file=sys.stderr)
        answers = sum("answer" in c.metadata.get("tags", []) for p in args.notebooks
                      for c in nbformat.read(p, as_version=4).cells)
        print(f"student copies: {answers - len(problems)} passed, {len(problems)} failed")
        return 1 if problems else 0
    paths = args.notebooks or sorted((REPO / "notebooks").glob("*.ipynb"))
    if not paths:
        print("make_student: no notebooks found", file=sys.stderr)
        return 2
    try:
        copies = []
        for path in paths:
            nb, n = student_copy(nbformat.read(path, as_version=4), path.name)
            copies.append((path.name, nb, n))
    except (OSError, nbformat.reader.NotJSONError, StudentCopyError) as err:
        print(f"make_student: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, nb, n in copies:
        # Write to a temporary file first, so an interrupted run never leaves half a notebook.
        fd, tmp = tempfile.mkstemp(dir=args.out, suffix=".ipynb.tmp")
        os.close(fd)
        nbformat.write(nb, tmp)
        os.replace(tmp, args.out / name)
        print(f"{args.out / name}: {n} answer(s) left blank")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tidy executed notebooks before committing them: merge each cell's consecutive stream outputs
and apply carriage returns, so a progress bar is saved as its final line, not as twenty.

Usage: python tools/tidy_notebook_outputs.py notebooks/*.ipynb
"""

from __future__ import annotations

import re
import sys

import nbformat


def _apply_carriage_returns(text: str) -> str:
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r") for line in text.split("\n"))


def tidy(path: str) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged: list = []
        for out in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if out.output_type == "stream" and last is not None and last.output_type == "stream" and last.name == out.name:
                last.text += out.text
            else:
                merged.append(out)
        for out in merged:
            if out.output_type == "stream":
                out.text = re.sub(r"\n{3,}", "\n\n", _apply_carriage_returns(out.text))
        cell.outputs = merged
    nbformat.write(nb, path)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        tidy(p)

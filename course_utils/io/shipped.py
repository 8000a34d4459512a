"""Where the files the course ships live: the face models' weights, model cards and JSON facts,
lesson 6's patch and the fooling genomes, all made by the tools in ``tools/``.

In the repository they are the top-level ``data/`` folder. ``pyproject.toml`` maps that folder onto
the package as ``course_utils/data/``, so a wheel (``pip install git+...``, a hosted notebook
service) installs the same files inside the package and never needs the checkout. An editable
install (``pip install -e .``, what ``make venv`` does) and a checkout on ``sys.path`` import the
package from the checkout, where the files are its neighbour ``data/``.

Every module that reads a shipped file finds it through :data:`DATA_DIR`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR"]

_PACKAGE = Path(__file__).resolve().parents[1]

DATA_DIR: Path = _PACKAGE / "data" if (_PACKAGE / "data").is_dir() else _PACKAGE.parent / "data"
"""The folder of the shipped files: ``course_utils/data/`` in an installed wheel, else the
checkout's top-level ``data/`` (the package's own folder wins when both exist)."""

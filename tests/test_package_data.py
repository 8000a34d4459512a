"""The installed package carries the top-level ``data/`` folder, and no module of it grows past
400 lines (four named exceptions: merged modules that hold one topic each).

(`make test-wheel` checks the data from a wheel installed in a fresh venv, running every notebook;
tests/test_layout.py checks the layout by role.)
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import course_utils
from course_utils.io.images import DATA_DIR
from course_utils.models import faces

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(course_utils.__file__).resolve().parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_shipped_files_live_in_the_top_level_data_folder():
    """In a checkout (what the tests run on) the package reads the repository's ``data/``."""
    assert DATA_DIR == ROOT / "data", f"the package reads its data from {DATA_DIR}, not the checkout's data/"
    assert not (PACKAGE / "data").exists(), "course_utils/data/ in a checkout would shadow data/"
    shipped = [faces.DEFAULT_WEIGHTS, faces.MODEL_CARD, faces.ROBUST_WEIGHTS, faces.ROBUST_CARD, faces.ROBUSTNESS_JSON]
    for variant in faces.FACE_VARIANTS.values():
        shipped += [variant.weights, variant.card, variant.facts]
    for path in shipped:
        assert path.is_file(), f"{path} is missing"
        assert path.parent == DATA_DIR, f"{path} is not in data/: a wheel would not carry it"


def test_pyproject_maps_data_onto_the_package_and_lists_every_subpackage():
    """A wheel installs ``data/`` as ``course_utils/data/`` with every file in it; the packages are
    listed by hand (because of that mapping), so none may be forgotten."""
    assert SETUPTOOLS["package-dir"] == {"course_utils.data": "data"}
    globs = SETUPTOOLS["package-data"]["course_utils.data"]
    for path in sorted(DATA_DIR.iterdir()):
        assert any(fnmatch.fnmatch(path.name, g) for g in globs), f"pyproject.toml's package-data leaves out data/{path.name}"
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert set(SETUPTOOLS["packages"]) == on_disk | {"course_utils.data"}


# One home per concept beats the cap: the photo loader with its sample photos and the one
# downloader (photos, and the weights files it fetches), and the weights reader with its restricted
# unpickler (kept whole: the hostile-file tests guard it line by line).
LONGER = {  # one topic each, merged by issue 27 (things in; the safe weight reader; black boxes; transfer + substitute)
    "course_utils/io/images.py": 590, "course_utils/io/pth.py": 410,
    "course_utils/attacks/blackbox.py": 625, "course_utils/attacks/transfer.py": 445, "course_utils/attacks/pgd.py": 420,
}


def test_no_module_over_400_lines():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    long = {name: n for name, n in sizes.items() if n > LONGER.get(name, 400)}
    assert not long, f"modules over 400 lines: {long}"

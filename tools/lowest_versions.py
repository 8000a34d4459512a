"""Run the tests on the lowest versions the course claims to support.

pyproject.toml is the one source: every runtime and ``dev`` dependency there has a lower bound
``name>=X.Y.Z``, and this tool pins each to exactly ``X.Y.Z`` in a separate virtual environment
(``.venv-lowest``), installs the course into it without its dependencies, and runs pytest there
(the repository's pytest configuration: unit tests, notebooks through nbval).

    python3 tools/lowest_versions.py                  # unit tests + lessons 01 and 03
    python3 tools/lowest_versions.py tests            # only what is named (pytest arguments)
    python3 tools/lowest_versions.py --print          # only print the pins
    python3 tools/lowest_versions.py --fresh ...      # rebuild .venv-lowest even if its pins match

The environment is rebuilt from scratch whenever the pins change (a stamp file inside it records
them), so an upgraded lower bound is never tested on top of an older installation.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    sys.exit("tools/lowest_versions.py needs Python >= 3.11 (tomllib); run it with python3.11 or newer")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = ROOT / ".venv-lowest"
DEFAULT_TARGETS = ["tests", "notebooks/01_noise_filter.ipynb", "notebooks/03_feature_visualization.ipynb"]
STAMP_NAME = ".lowest-pins"

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*(;.*)?$")


def lower_bound(requirement: str) -> tuple[str, str]:
    """``(name, version)`` of ``requirement``'s ``>=`` bound, e.g. ``("keras", "3.4.0")``.

    Raises ValueError for a requirement without a ``>=`` bound: every dependency must state the
    lowest version it is tested on.
    """
    m = _REQUIREMENT.match(requirement)
    if not m:
        raise ValueError(f"cannot read the requirement {requirement!r} in pyproject.toml")
    name, specifiers = m.group(1), m.group(3)
    bounds = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip().startswith(">=")]
    if len(bounds) != 1:
        raise ValueError(
            f"{requirement!r} in pyproject.toml has no single '>=' lower bound: write it as "
            f"'{name}>=X.Y.Z' with the lowest release the tests pass on"
        )
    return name, bounds[0]


def pins(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``name==version`` for every runtime and ``dev`` dependency's lower bound in ``pyproject``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = project["dependencies"] + project.get("optional-dependencies", {}).get("dev", [])
    return [f"{name}=={version}" for name, version in map(lower_bound, requirements)]


def _run(command: list[str], **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def ensure_venv(venv: Path, wanted: list[str], fresh: bool = False) -> Path:
    """Python of ``venv`` with exactly ``wanted`` installed and the course on top (``--no-deps``).

    The environment is reused only when its stamp lists the same pins; otherwise it is removed
    and created again.
    """
    python = venv / "bin" / "python"
    stamp = venv / STAMP_NAME
    text = "\n".join(wanted) + "\n"
    if not fresh and python.exists() and stamp.exists() and stamp.read_text() == text:
        print(f"{venv.name}: pins unchanged, reusing it", flush=True)
    else:
        if venv.exists():
            shutil.rmtree(venv)
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        _run([str(python), "-m", "pip", "install", "--quiet", *wanted])
        stamp.write_text(text)
    # The course itself, always (its files may have changed); its dependencies are the pins above.
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(ROOT)])
    return python


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the lowest-versions environment and run pytest in it; pytest's exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="where the environment lives (default .venv-lowest)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the environment even if its pins match")
    parser.add_argument("--print", dest="print_only", action="store_true", help="print the pins and stop")
    args, pytest_args = parser.parse_known_args(argv)
    wanted = pins()
    if args.print_only:
        print("\n".join(wanted))
        return 0
    start = time.monotonic()
    python = ensure_venv(args.venv.resolve(), wanted, fresh=args.fresh)
    built = time.monotonic()
    status = subprocess.run([str(python), "-m", "pytest", *(pytest_args or DEFAULT_TARGETS)], cwd=ROOT).returncode
    done = time.monotonic()
    print(
        f"lowest versions: environment {built - start:.0f} s, tests {done - built:.0f} s "
        f"(pytest exit {status}); pins: {' '.join(wanted)}",
        flush=True,
    )
    return status


if __name__ == "__main__":
    sys.exit(main())

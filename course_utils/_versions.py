"""Stop at import when an installed dependency is older than the course supports.

The lower bounds are read from the installed ``course-utils`` distribution's metadata, which pip
wrote from pyproject.toml: pyproject.toml stays the one place they are stated (and
``make test-lowest`` tests exactly them). Only runtime dependencies are checked, and only those
that are installed: extras such as ``dev`` (pytest, nbval) are left alone, and a missing package
fails at its own import with its own message.

Set ``COURSE_UTILS_SKIP_VERSION_CHECK=1`` to skip the check (e.g. to try an older release on purpose).
"""

from __future__ import annotations

import os
import re
from importlib import metadata

DISTRIBUTION = "course-utils"
SKIP_VARIABLE = "COURSE_UTILS_SKIP_VERSION_CHECK"

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")


def runtime_lower_bounds(distribution: str = DISTRIBUTION) -> dict[str, str]:
    """``{package: lowest version}`` of ``distribution``'s runtime dependencies with a ``>=`` bound.

    Requirements behind an ``extra == ...`` marker (the ``dev`` and ``bench`` extras) are left
    out. An empty dict where ``distribution`` is not installed (course_utils imported from a
    source tree on ``sys.path``): there are no installed bounds to check against.
    """
    try:
        requirements = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return {}
    bounds: dict[str, str] = {}
    for requirement in requirements:
        m = _REQUIREMENT.match(requirement)
        if not m or (m.group(3) and "extra" in m.group(3)):
            continue
        for specifier in m.group(2).split(","):
            specifier = specifier.strip()
            if specifier.startswith(">="):
                bounds[m.group(1)] = specifier[2:].strip()
    return bounds


def installed_version(package: str) -> str | None:
    """The installed version of ``package``, or None where it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of ``version`` without trailing zeros: ``"3.4.0rc1"`` -> ``(3, 4)``.

    The fallback comparison where ``packaging`` is not installed; a pre-release counts as its release.
    """
    parts = []
    for piece in re.split(r"[.+!-]", version.strip().lstrip("vV")):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:  # "0rc1": the release ends here
            break
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def is_older(found: str, needed: str) -> bool:
    """Whether version ``found`` is below version ``needed`` (``packaging`` where installed)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return _release(found) < _release(needed)
    try:
        return Version(found) < Version(needed)
    except InvalidVersion:
        return _release(found) < _release(needed)


def too_old(bounds: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """``(package, found, needed)`` for every installed runtime dependency below its lower bound."""
    bounds = runtime_lower_bounds() if bounds is None else bounds
    old = []
    for package, needed in bounds.items():
        found = installed_version(package)
        if found is not None and is_older(found, needed):
            old.append((package, found, needed))
    return old


def check_versions() -> None:
    """Raise ImportError naming each package that is too old, the version found and the one needed.

    Called by ``course_utils/__init__.py`` before TensorFlow is imported; does nothing when
    ``COURSE_UTILS_SKIP_VERSION_CHECK`` is set to a non-empty value other than ``0``.
    """
    if os.environ.get(SKIP_VARIABLE, "") not in ("", "0"):
        return
    old = too_old()
    if not old:
        return
    lines = [f"course_utils needs {package} >= {needed}, found {found}" for package, found, needed in old]
    upgrade = " ".join(f"'{package}>={needed}'" for package, _, needed in old)
    raise ImportError(
        "\n".join(lines) + f": upgrade with `pip install -U {upgrade}` (then restart the kernel)"
    )

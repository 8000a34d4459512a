"""The environment of the process: what ``import course_utils`` does first, and the one seed knob.

- :func:`check_versions` stops at import when an installed dependency is older than the course
  supports. The lower bounds are read from the installed ``course-utils`` distribution's metadata,
  which pip wrote from pyproject.toml: pyproject.toml stays the one place they are stated (and
  ``make test-lowest`` tests exactly them). Only runtime dependencies are checked, and only those
  that are installed: extras such as ``dev`` (pytest, nbval) are left alone, and a missing package
  fails at its own import with its own message. Set ``COURSE_UTILS_SKIP_VERSION_CHECK=1`` to skip
  the check (e.g. to try an older release on purpose).
- :func:`import_tensorflow_quietly` imports TensorFlow without its C++ start-up chatter on the
  notebook's stderr.
- :func:`effective_seed`: the course-wide seed offset, one knob that moves every random start,
  jitter and noise. Every seeded call in the course (``seed=`` of the loops, the
  parameterisations' start pictures, lesson 3's noise, PGD's random starts, the random blur,
  lesson 4's photo variants) draws its random numbers from ``effective_seed(seed)``: the seed it
  was given plus the offset in the environment variable ``COURSE_SEED`` (0 when unset). So

      COURSE_SEED=1 make test

  runs every lesson and test as if each seed had been one more, which is what the stability
  harness (``tools/stability.py``) does to check that a claim holds for the lesson's reason and
  not for one lucky picture. With ``COURSE_SEED`` unset nothing changes, and the same call always
  gives the same numbers: the offset is read from the environment of the process, never set by
  the course.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from importlib import metadata

__all__ = ["seed_offset", "effective_seed"]

# ---------------------------------------------------------------- versions

_DISTRIBUTION = "course-utils"
SKIP_VARIABLE = "COURSE_UTILS_SKIP_VERSION_CHECK"

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")


def _runtime_lower_bounds(distribution: str = _DISTRIBUTION) -> dict[str, str]:
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


def _installed_version(package: str) -> str | None:
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


def _is_older(found: str, needed: str) -> bool:
    """Whether version ``found`` is below version ``needed`` (``packaging`` where installed)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return _release(found) < _release(needed)
    try:
        return Version(found) < Version(needed)
    except InvalidVersion:
        return _release(found) < _release(needed)


def _too_old(bounds: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """``(package, found, needed)`` for every installed runtime dependency below its lower bound."""
    bounds = _runtime_lower_bounds() if bounds is None else bounds
    old = []
    for package, needed in bounds.items():
        found = _installed_version(package)
        if found is not None and _is_older(found, needed):
            old.append((package, found, needed))
    return old


def check_versions() -> None:
    """Raise ImportError naming each package that is too old, the version found and the one needed.

    Called by ``course_utils/__init__.py`` before TensorFlow is imported; does nothing when
    ``COURSE_UTILS_SKIP_VERSION_CHECK`` is set to a non-empty value other than ``0``.
    """
    if os.environ.get(SKIP_VARIABLE, "") not in ("", "0"):
        return
    old = _too_old()
    if not old:
        return
    lines = [f"course_utils needs {package} >= {needed}, found {found}" for package, found, needed in old]
    upgrade = " ".join(f"'{package}>={needed}'" for package, _, needed in old)
    raise ImportError(
        "\n".join(lines) + f": upgrade with `pip install -U {upgrade}` (then restart the kernel)"
    )


# ---------------------------------------------------------------- quiet TensorFlow

def import_tensorflow_quietly() -> None:
    """Import ``tensorflow`` and list its devices once, with stderr (file descriptor 2) muted.

    TensorFlow 2.2x writes lines such as "Could not find cuda drivers" straight to file
    descriptor 2 before any logging setting applies, and Jupyter shows them in the first cell.
    What TensorFlow prints is kept in a temporary file and replayed if the import fails, so a
    broken installation still explains itself.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (some embedded interpreters)
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            # The first device query probes CUDA and logs its failure on a CPU-only machine.
            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# ---------------------------------------------------------------- the seed offset

_SEED_VARIABLE = "COURSE_SEED"
"""The environment variable that holds the course-wide seed offset (a whole number >= 0)."""


def seed_offset() -> int:
    """The course-wide seed offset: ``int($COURSE_SEED)``, or 0 when it is unset or empty.

    Raises:
        ValueError: the variable is set to something other than a whole number in ``0..2**31 - 1``
            (the message quotes it and says how to fix it).
    """
    from course_utils.checks import MAX_SEED  # not at the top: the version check runs before numpy is imported

    text = os.environ.get(_SEED_VARIABLE, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"{_SEED_VARIABLE}={text!r} is not a seed offset: set it to a whole number such as 0, 1 or 2 "
            f"(or unset it for the course's own seeds)"
        )
    return value


def effective_seed(seed: object, name: str = "seed") -> int:
    """The seed a call really uses: ``seed`` (checked, ``0..2**31 - 1``) plus :func:`seed_offset`,
    wrapped into the same range. With ``COURSE_SEED`` unset it is ``seed`` itself."""
    from course_utils.checks import MAX_SEED, check_seed

    return (check_seed(seed, name) + seed_offset()) % (MAX_SEED + 1)

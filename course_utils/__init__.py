"""Helpers for the course "Fooling and seeing inside CNNs", in subpackages by role: :mod:`~course_utils.io`
(photos in, downloads, safe weight files), :mod:`~course_utils.models` (the classifiers, class names,
layers), :mod:`~course_utils.core` (the driver and tensor ops), :mod:`~course_utils.attacks`,
:mod:`~course_utils.vis` and :mod:`~course_utils.classroom` (plots, claims, exercise checks), with
:mod:`course_utils.checks` (argument checks, the seed knob ``COURSE_SEED``) shared by all.
Dependencies run one way, in that order; each subpackage's ``__init__`` re-exports the names the
lessons use. Every image is in *pixel units*: float32 in 0..255 (or uint8), channels last; models
do their own preprocessing, so ``epsilon=4.0`` means four grey levels everywhere.

Importing the package first checks the installed runtime dependencies against pyproject.toml's
lower bounds (from the installed metadata; ``COURSE_UTILS_SKIP_VERSION_CHECK=1`` skips it), then
imports TensorFlow without its C++ start-up chatter on the notebook's stderr.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from importlib import metadata

# TensorFlow prints start-up chatter to stderr (CUDA probing, oneDNN notes). Quieten it before
# the first import of TensorFlow so notebooks stay readable; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_DISTRIBUTION = "course-utils"
_SKIP_VARIABLE = "COURSE_UTILS_SKIP_VERSION_CHECK"

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")


def _runtime_lower_bounds(distribution: str = _DISTRIBUTION) -> dict[str, str]:
    """``{package: lowest version}`` of ``distribution``'s runtime dependencies (no extras) with a
    ``>=`` bound; empty where it is not installed (imported from a source tree)."""
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


def _too_old(bounds: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """``(package, found, needed)`` for every installed runtime dependency below its lower bound
    (PEP 440; a version that cannot be read is not "too old")."""
    from packaging.version import InvalidVersion, Version  # installed with matplotlib and scikit-image

    bounds = _runtime_lower_bounds() if bounds is None else bounds
    old = []
    for package, needed in bounds.items():
        found = _installed_version(package)
        try:
            if found is not None and Version(found) < Version(needed):
                old.append((package, found, needed))
        except InvalidVersion:
            pass
    return old


def _check_versions() -> None:
    """Raise ImportError naming each package that is too old, the version found and the one needed.

    Does nothing when ``COURSE_UTILS_SKIP_VERSION_CHECK`` is set to a non-empty value other than ``0``.
    """
    if os.environ.get(_SKIP_VARIABLE, "") not in ("", "0"):
        return
    old = _too_old()
    if not old:
        return
    lines = [f"course_utils needs {package} >= {needed}, found {found}" for package, found, needed in old]
    upgrade = " ".join(f"'{package}>={needed}'" for package, _, needed in old)
    raise ImportError(
        "\n".join(lines) + f": upgrade with `pip install -U {upgrade}` (then restart the kernel)"
    )


def _import_tensorflow_quietly() -> None:
    """Import ``tensorflow`` and list its devices once with file descriptor 2 muted (TensorFlow
    writes "Could not find cuda drivers" there before any logging setting applies); what it
    printed is replayed if the import fails, so a broken installation still explains itself."""
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


_check_versions()  # a dependency below pyproject.toml's lower bounds stops here, before TensorFlow
_import_tensorflow_quietly()

from course_utils.checks import effective_seed  # noqa: E402  (after the version check)

__all__ = ["effective_seed"]

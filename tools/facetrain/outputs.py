"""Output files of the course's tools: checked before the work starts, written all or nothing.

The training command writes weights and a model card; the benchmark writes ``latest.json`` and
``latest.md``. Each pair must match, so :func:`write_files_together` writes every file to a
temporary name next to its target first and only then moves them into place; a failure on the
way leaves the old files as they were. :func:`check_writable` runs before any long job, so a
typo in an output path costs seconds, not a whole training run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["OutputPathError", "check_writable", "write_files_together", "write_text"]


class OutputPathError(OSError):
    """An output location cannot be written; the message names it and says what to do."""


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | Path, what: str, *, folder: bool = False) -> Path:
    """Check, without writing to ``path`` itself, that it can be written; return it as a ``Path``.

    Args:
        path: the file (or, with ``folder=True``, the folder) a tool will write.
        what: how to name it in the message, e.g. ``"--out (the weights file)"``.
        folder: ``path`` is a folder the tool writes into (created if missing).

    Raises:
        OutputPathError: ``path`` is a folder where a file is wanted (or a file where a folder is
            wanted), a parent is a file, or the folder that would hold it is not writable.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is a file; give a folder to write into")
    if not folder and path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name inside it")
    holder = path if folder else path.parent
    existing = _nearest_existing(holder.absolute())
    if not existing.is_dir():
        raise OutputPathError(f"cannot write {what} {path}: {existing} is a file, not a folder")
    try:  # a real probe: permission bits do not tell the whole story (read-only mounts, root)
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputPathError(f"cannot write {what} {path}: folder {existing} is not writable ({err.strerror}); choose another location") from None
    return path


def _usual_permissions(path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # temporary files are private (0600); targets get the usual mode


def write_files_together(writers: Mapping[str | Path, Callable[[Path], None]]) -> list[Path]:
    """Write several files so that either all of them change or none does.

    Args:
        writers: target path -> a function that writes the new content to the path it is given
            (a fresh name in the target's folder, ending like the target, e.g. ``.weights.h5``).

    Returns:
        The target paths, in the order given.

    Every file is written to its temporary name first; only when all are written do they replace
    their targets (``os.replace``, one step each). If a replacement fails midway, the targets
    already replaced get their old content back (or are removed if they did not exist).
    """
    targets = [Path(t) for t in writers]
    staging: dict[Path, Path] = {}
    try:
        for target, write in zip(targets, writers.values()):
            target.parent.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
            staging[target] = folder / target.name
            write(staging[target])
            if not staging[target].is_file():
                raise OSError(f"nothing was written for {target}")
            _usual_permissions(staging[target])
        _replace_all(staging)
    finally:
        for temp in staging.values():
            shutil.rmtree(temp.parent, ignore_errors=True)
    return targets


def _replace_all(staging: dict[Path, Path]) -> None:
    """Move every staged file onto its target; on failure, put back what was there before."""
    backups: dict[Path, Path | None] = {}
    try:
        for target, temp in staging.items():
            backup = None
            if target.exists():
                backup = temp.parent / (".old-" + target.name)
                shutil.copy2(target, backup)
            backups[target] = backup
            os.replace(temp, target)
    except BaseException:
        for target, backup in backups.items():
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` in one step: readers see the old file or the new one."""
    path = Path(path)
    write_files_together({path: lambda temp: temp.write_text(text, encoding="utf-8")})
    return path

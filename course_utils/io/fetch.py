"""Download a large weights file once, safely: ``python -m course_utils.io.fetch vgg16``.

A teacher runs this (or ``make fetch-vgg16``) before a class, so the lessons find VGG16's weights
in the Keras cache and never download inside a cell. :func:`fetch_file` (also used by
``load_imagenet_model("vgg16")``; photos go to memory, with their own bounds, in
:func:`course_utils.io.images.load_image`) streams into ``<destination>.part`` with a progress bar,
checks the MD5 and the length while streaming, and only then moves the file into place with
:func:`os.replace`, so a failed or killed download never leaves a file that could pass for the real
one. It is bounded: connect/read timeouts, a total time limit and a size cap.

The small files the course *ships* (the face models' weights, cards and facts, lesson 6's patch,
the fooling genomes, made by ``tools/``) need no download: they are the repository's top-level
``data/``, which ``pyproject.toml`` maps into a wheel as ``course_utils/data/``. Every module that
reads one finds it through :data:`DATA_DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["DATA_DIR", "FetchError", "WeightsUnavailableError", "KNOWN_FILES", "fetch_file"]

_PACKAGE = Path(__file__).resolve().parents[1]

DATA_DIR: Path = _PACKAGE / "data" if (_PACKAGE / "data").is_dir() else _PACKAGE.parent / "data"
"""The folder of the shipped files: ``course_utils/data/`` in an installed wheel, else the
checkout's top-level ``data/`` (the package's own folder wins when both exist)."""

_CHUNK_BYTES = 1 << 20
"""Bytes read from the network (and hashed) at a time."""


class FetchError(RuntimeError):
    """A download failed (offline, refused, too slow, too large, cut short, the wrong file); the
    message says what to do, and no file is left at the destination."""


class WeightsUnavailableError(RuntimeError):
    """A model's pretrained weights are neither installed, cached nor downloadable; the message
    says how to get them. (Raised by :mod:`course_utils.models.imagenet` and
    :mod:`course_utils.models.efficientnet_lite`, defined here so both can share it.)"""


@dataclass(frozen=True)
class _KnownFile:
    """A file the course can fetch: where from, its name in the Keras cache, its MD5 and size."""

    url: str
    filename: str
    md5: str
    size: int  # bytes

    @property
    def dest(self) -> Path:
        """Where Keras (and ``load_imagenet_model("vgg16")``) looks for it."""
        return _keras_cache_dir() / self.filename


def _keras_cache_dir() -> Path:
    """Keras' cache of model weights: ``$KERAS_HOME/models``, else ``~/.keras/models``. Read at
    call time, so a changed ``KERAS_HOME`` counts."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


_VGG16_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
KNOWN_FILES: dict[str, _KnownFile] = {
    "vgg16": _KnownFile(
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + _VGG16_FILE,
        filename=_VGG16_FILE,
        md5="64373286793e3c8b2b4e3219cbf3544b",  # Keras' published hash (keras.applications.vgg16)
        size=553_467_096,
    ),
}
"""What ``python -m course_utils.io.fetch NAME`` knows: ``vgg16``, Keras' VGG16 ImageNet weights (528 MiB)."""


def _file_md5(path: str | Path) -> str:
    """The MD5 of a file as 32 lowercase hex digits, read in chunks (a 528 MiB file takes ~1 s)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(err: Exception) -> str:
    """The useful end of a requests error, e.g. ``[Errno 111] Connection refused``."""
    found = re.findall(r"\[Errno -?\d+\] [^'\")\]]+", str(err))
    return found[-1].strip() if found else type(err).__name__


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _stream(response, tmp: Path, url: str, max_bytes: int, deadline: float, progress: bool, description: str) -> tuple[int, str]:
    """Write the body of ``response`` to ``tmp``; returns (bytes written, MD5 hex)."""
    from tqdm.auto import tqdm

    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
    expected = int(length) if length.isdigit() and not encoded else None  # else it counts compressed bytes
    if expected is not None and expected > max_bytes:
        raise FetchError(f"{url} is {_mib(expected)}, more than the {_mib(max_bytes)} allowed; nothing was saved.")
    digest, written = hashlib.md5(usedforsecurity=False), 0
    bar = tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=description,
               disable=not progress, file=sys.stderr)
    try:
        with open(tmp, "wb") as out:
            for chunk in response.iter_content(_CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    raise FetchError(f"{url} sent more than the {_mib(max_bytes)} allowed; the download was stopped and nothing was saved.")
                if time.monotonic() > deadline:
                    raise FetchError(
                        f"downloading {url} took longer than the time limit ({_mib(written)} received); nothing "
                        "was saved. Try again on a faster connection, or allow more time (the command's --time-limit)."
                    )
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
    if expected is not None and written != expected:
        raise FetchError(f"the download of {url} was cut short ({written} of {expected} bytes); nothing was saved. Try again.")
    return written, digest.hexdigest()


def fetch_file(
    url: str,
    dest: str | Path,
    md5: str,
    *,
    max_bytes: int = 1 << 30,
    time_limit: float = 3600.0,
    timeout: float = 30.0,
    progress: bool = True,
    description: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (via ``dest.part``) if and only if its MD5 is ``md5``; returns ``dest``.

    Args:
        url: http(s) address of the file.
        dest: final path; its folder is created if needed.
        md5: expected MD5, 32 hex digits.
        max_bytes: size cap in bytes; a larger ``Content-Length``, or more bytes, stop the download.
        time_limit: seconds the whole download may take.
        timeout: seconds to wait for the connection and for each piece of data.
        progress: show a progress bar (tqdm, on stderr; a widget in Jupyter).
        description: the bar's label (default: the file name).

    Raises:
        FetchError: offline, an HTTP error, too slow, too large, cut short, the wrong MD5, or the
            destination cannot be written; an older file at ``dest`` is kept, the ``.part`` removed.
    """
    import requests

    from course_utils.checks import check_number

    time_limit = check_number("time_limit", time_limit, minimum=0.0)
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".part")
    deadline = time.monotonic() + time_limit
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise FetchError(f"{url} answered HTTP {response.status_code} {response.reason}; nothing was saved. "
                                 "Check the address, or try again later.")
            dest.parent.mkdir(parents=True, exist_ok=True)  # only once there is something to save
            written, got = _stream(response, tmp, url, max_bytes, deadline, progress, description or dest.name)
        if got != md5.lower():
            raise FetchError(
                f"the file downloaded from {url} ({written} bytes) has MD5 {got}, not the expected {md5}; it "
                "was deleted. The server sent something else (an error page, a proxy's notice, a changed "
                "file): try again later or from another network."
            )
        os.replace(tmp, dest)
    except requests.Timeout:  # before ConnectionError: ConnectTimeout is both
        raise FetchError(f"{url} did not answer within {timeout:g} s; nothing was saved. Check the connection and try again.") from None
    except requests.exceptions.ChunkedEncodingError:
        raise FetchError(f"the connection broke during the download of {url}; nothing was saved. Try again.") from None
    except requests.ConnectionError as err:
        raise FetchError(
            f"could not download {url}: the connection failed ({_reason(err)}). Check that this machine is "
            "online (and any proxy setting), then try again; nothing was saved."
        ) from None
    except requests.RequestException as err:
        raise FetchError(f"downloading {url} failed ({type(err).__name__}: {err}); nothing was saved. Try again.") from None
    except OSError as err:
        raise FetchError(
            f"cannot write {dest} ({err.strerror or err}); free some disk space, or choose another folder "
            "(--dest, or the environment variable KERAS_HOME for the Keras cache)."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)  # gone after os.replace; otherwise a failed or interrupted download
    return dest


def _seconds(text: str) -> float:
    """``--time-limit``: a finite number of seconds > 0 (``nan``, ``inf`` and ``0`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds > 0 (e.g. 3600)")
    return value


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_utils.io.fetch vgg16 [--force] [--dest PATH] [--url URL]``; returns the exit code.

    0: the file is in place with the right MD5 (downloaded now, or already there). 1: it could
    not be fetched (one paragraph on stderr says why). 130: interrupted.
    """
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.io.fetch",
        description="Download a model's weights into the Keras cache, checked against their MD5, so the lessons need no network.",
    )
    parser.add_argument("name", choices=sorted(KNOWN_FILES), help="which weights (vgg16: Keras' VGG16 ImageNet weights, 528 MiB)")
    parser.add_argument("--force", action="store_true", help="download again even if a valid file is already there")
    parser.add_argument("--dest", type=Path, help="where to save it (default: the Keras cache, where the course looks)")
    parser.add_argument("--url", help="download from this address instead (e.g. a local mirror); the MD5 must still match")
    parser.add_argument("--time-limit", type=_seconds, default=3600.0, help="seconds the whole download may take (default 3600)")
    args = parser.parse_args(argv)
    known = KNOWN_FILES[args.name]
    dest = args.dest or known.dest
    if dest.is_file() and not args.force:
        if _file_md5(dest) == known.md5:
            print(f"{args.name}: already present and verified (MD5 {known.md5}) at {dest}; nothing to do. "
                  "Use --force to download it again.")
            return 0
        print(f"{args.name}: {dest} is there but damaged or incomplete (wrong MD5); downloading it again.")
    try:
        fetch_file(args.url or known.url, dest, known.md5, max_bytes=known.size + (1 << 20),
                   time_limit=args.time_limit, description=args.name)
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; nothing was saved.", file=sys.stderr)
        return 130
    print(f"{args.name}: saved and verified (MD5 {known.md5}) at {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())

"""``make fetch-vgg16``: download a model's weights once into the Keras cache, MD5-checked, so the
lessons need no network (``python tools/fetch_weights.py vgg16 [--force]``)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from course_utils.io.images import KNOWN_FILES, WeightsUnavailableError  # noqa: E402


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """``make fetch-vgg16`` (``vgg16 [--force]``): 0 when the file is in place with the right MD5
    (downloaded now, or already there), 1 when it could not be fetched (one paragraph on stderr
    says why), 130 when interrupted."""
    parser = argparse.ArgumentParser(
        prog="make fetch-vgg16",
        description="Download a model's weights into the Keras cache, checked against their MD5, so the lessons need no network.",
    )
    parser.add_argument("name", choices=sorted(KNOWN_FILES), help="which weights (vgg16: Keras' VGG16 ImageNet weights, 528 MiB)")
    parser.add_argument("--force", action="store_true", help="download again even if a valid file is already there")
    args = parser.parse_args(argv)
    known = KNOWN_FILES[args.name]
    dest = known.dest
    if dest.is_file() and not args.force:
        if _md5(dest) == known.md5:
            print(f"{args.name}: already present and verified (MD5 {known.md5}) at {dest}; nothing to do. "
                  "Use --force to download it again.")
            return 0
        print(f"{args.name}: {dest} is there but damaged or incomplete (wrong MD5); downloading it again.")
    try:
        known.fetch(args.name)
    except WeightsUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; nothing was saved.", file=sys.stderr)
        return 130
    print(f"{args.name}: saved and verified (MD5 {known.md5}) at {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

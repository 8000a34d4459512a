"""Train lesson 6's adversarial "toaster" patch for EfficientNet-Lite0, and measure it.

Only the course's developers need this: the patch ships as ``data/patch_toaster.png``
(an 80x80 PNG), read by :func:`course_utils.attacks.patch.load_patch`. Run from the repository root::

    nice python tools/train_patch.py [--steps 240] [--seed 0]

It writes two files, both or neither:

- ``data/patch_toaster.png``  the patch, whole grey levels;
- ``data/patch_toaster.md``   its card: the recipe, the command, the time, and its
  success on photos and placements the training never saw.

The optimisation is the notebook's own (:func:`course_utils.attacks.patch.train_patch`, on the
course's one gradient loop), only longer: a first phase of large sign steps, then a second of
small ones, each with its own placements. Training photos: random crops of three of the sample
photos (``chelsea``, ``coffee``, ``astronaut``; :func:`course_utils.attacks.transfer.photo_variants`).
Held out: ``grace_hopper`` and its crops, never seen in training, at fresh placements. Everything
is seeded, so the same seed and library versions give the same patch on the same machine.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import course_utils  # noqa: E402,F401  (quiets TensorFlow's start-up)
import tensorflow as tf  # noqa: E402

from course_utils.attacks.patch import PATCH_DEGREES, PATCH_SIDES, SHIPPED_PATCH, patch_success, train_patch  # noqa: E402
from course_utils.attacks.transfer import photo_variants  # noqa: E402
from course_utils.models.imagenet import load_imagenet_model  # noqa: E402
from tools.facetrain.outputs import write_files_together  # noqa: E402
from tools.facetrain.training import deterministic_ops  # noqa: E402

DATA = REPO / "data"
TRAIN_PHOTOS = ("chelsea", "coffee", "astronaut")
HELD_OUT_PHOTOS = ("grace_hopper",)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=240, help="steps in all (three quarters large, a quarter small)")
    parser.add_argument("--size", type=int, default=80, help="the patch's side in pixels")
    parser.add_argument("--placements", type=int, default=8, help="patched photos per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DATA, help="folder for the PNG and its card")
    args = parser.parse_args(argv)
    with deterministic_ops():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    model = load_imagenet_model("efficientnet_lite0", verbose=False)
    photos, _ = photo_variants(TRAIN_PHOTOS, extra=3, seed=args.seed)
    held_out, _ = photo_variants(HELD_OUT_PHOTOS, extra=3, seed=args.seed + 100)
    t0 = time.perf_counter()
    big = (3 * args.steps) // 4
    first = train_patch(model, photos, "toaster", args.size, big, 4.0, placements=args.placements, seed=args.seed,
                        progress=True)
    second = train_patch(model, photos, "toaster", args.size, args.steps - big, 1.0, placements=args.placements,
                         seed=args.seed + 1, start=first.patch, progress=True)
    seconds = time.perf_counter() - t0
    patch = np.round(second.patch).astype(np.uint8)

    scores = {
        "training photos, new placements": patch_success(model, patch, photos, "toaster", 8, seed=args.seed + 1000),
        "held-out photos (grace_hopper and its crops)": patch_success(model, patch, held_out, "toaster", 16,
                                                                      seed=args.seed + 2000),
    }
    noise = np.random.default_rng(args.seed).uniform(0, 255, patch.shape)
    baseline = patch_success(model, noise, held_out, "toaster", 16, seed=args.seed + 2000)
    for name, score in scores.items():
        print(f"{name}: {score.rate:.1%} toaster")
    print(f"noise patch, held-out photos: {baseline.rate:.1%}; {seconds:.0f} s")

    def write_png(path: Path) -> None:
        tf.io.write_file(str(path), tf.io.encode_png(patch))

    def write_card(path: Path) -> None:
        rows = "\n".join(f"| {name} | {len(s.success)} x {s.success.shape[1]} | {s.rate:.1%} |" for name, s in scores.items())
        path.write_text(f"""# Adversarial patch "toaster" for EfficientNet-Lite0 (lesson 6)

A patch of {args.size}x{args.size} pixels (whole grey levels, PNG) optimised so that EfficientNet-Lite0 answers
"toaster" when it is pasted on a photo at a random place, side {PATCH_SIDES[0]:g}..{PATCH_SIDES[1]:g} pixels of
a 224-pixel photo (about 10% to 22% of its area), turned up to {PATCH_DEGREES:g} degrees either way (Brown,
Mané, Roy, Abadi and Gilmer, "Adversarial Patch", 2017).

**Recipe.** `python tools/train_patch.py --steps {args.steps} --size {args.size} --placements {args.placements} --seed {args.seed}`:
`course_utils.attacks.patch.train_patch` (the course's one gradient loop: the patch pasted on
{args.placements} photos per step at new random placements, the cross-entropy to "toaster" averaged
over them, sign steps), {big} steps of 4 grey levels, then {args.steps - big} of 1, from seeded noise.
Training photos: `photo_variants({list(TRAIN_PHOTOS)}, extra=3, seed={args.seed})` ({len(photos)} pictures).
Wall time {seconds:.0f} s on {platform.machine()} ({platform.system()}), TensorFlow {tf.__version__}.

**Measured** (top-1 is "toaster"):

| photos | photos x placements | success |
|---|---|---|
{rows}
| the same held-out photos with a noise patch | {len(baseline.success)} x {baseline.success.shape[1]} | {baseline.rate:.1%} |

Placements here are drawn with seeds the training did not use. This is a digital paste, not a
printed sticker photographed in a room; a patch that works here may do worse on paper.
""")

    written = write_files_together({args.out / SHIPPED_PATCH: write_png,
                                    args.out / SHIPPED_PATCH.replace(".png", ".md"): write_card})
    print("wrote", ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())

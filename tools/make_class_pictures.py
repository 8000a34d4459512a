"""Make lesson 3's class pictures three ways (plain, Lucid-style, MaCo) for the five judged classes
on EfficientNet-Lite0, and measure them. Too slow to run live in the lesson, so they are shipped.

Only the course's developers need this. Run from the repository root::

    nice python tools/make_class_pictures.py [--maco-steps 128] [--seed 0]

It writes two files, both or neither:

- ``data/class_pictures.npz``  ``uint8`` pictures as shown: ``plain`` and ``lucid`` ``(5, 224, 224, 3)``,
  ``maco`` ``(5, S, S, 3)`` and its transparency map ``maco_alpha`` ``(5, S, S)`` (0..255), the
  classes (``classes``), and the seconds per picture of each method (``seconds``, in that order);
- ``data/class_pictures.md``   its card: the recipe, the command, the time and the measures
  (:func:`course_utils.vis.picture_stats`, Lite2's rank of the class).

Everything is seeded, so the same seed and library versions give the same pictures on the same machine.
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

from course_utils.io.images import DATA_DIR  # noqa: E402
from course_utils.io.images import to_uint8  # noqa: E402
from course_utils.models import load_imagenet_model  # noqa: E402
from course_utils.vis import JUDGED_CLASSES, judge_classes, maximize_class, maximize_class_maco, picture_stats  # noqa: E402
from tools.facetrain.outputs import check_writable, write_files_together  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lucid-steps", type=int, default=128)
    parser.add_argument("--maco-steps", type=int, default=128)
    parser.add_argument("--maco-size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    check_writable(args.out, "--out (the folder for class_pictures.npz and .md)", folder=True)
    model = load_imagenet_model("efficientnet_lite0", verbose=False)
    judge = load_imagenet_model("efficientnet_lite2", verbose=False)
    classes = list(JUDGED_CLASSES)
    made, seconds = {}, {}
    t_all = time.perf_counter()
    for name, make in {
        "plain": lambda: maximize_class(model, classes, steps=40, step_size=2.0, seed=args.seed, progress=False),
        "lucid": lambda: maximize_class(model, classes, steps=args.lucid_steps, style="lucid", seed=args.seed,
                                        progress=False),
        "maco": lambda: maximize_class_maco(model, classes, steps=args.maco_steps, size=args.maco_size, seed=args.seed),
    }.items():
        t0 = time.perf_counter()
        made[name] = make()
        seconds[name] = (time.perf_counter() - t0) / len(classes)
        print(f"{name}: {seconds[name]:.1f} s per picture", flush=True)
    wall = time.perf_counter() - t_all
    table = judge_classes(model, judge, classes, made)
    stats = {name: picture_stats(v.images) for name, v in made.items()}
    arrays = dict(plain=made["plain"].images, lucid=made["lucid"].images, maco=made["maco"].images,
                  maco_alpha=to_uint8(255.0 * made["maco"].alpha), classes=np.asarray(classes),
                  seconds=np.asarray([seconds[k] for k in made], np.float32))
    rows = "\n".join(
        f"| {name} | {c} | {table.loc[(c, name), 'p_model']:.4f} | {table.loc[(c, name), 'judge_rank']} | "
        f"{stats[name].clipped[i]:.4f} | {stats[name].slope[i]:.2f} | {seconds[name]:.1f} |"
        for name in made for i, c in enumerate(classes)
    )
    card = f"""# Lesson 3's class pictures, three ways (EfficientNet-Lite0)

The five classes of `course_utils.vis.JUDGED_CLASSES` drawn from noise on EfficientNet-Lite0:
**plain** (lesson 3's loop on the pixels: 40 steps of 2 grey levels), **Lucid-style** (Olah et al.,
2017: 1/f Fourier coefficients, decorrelated colour, standardised before a sigmoid, Lucid's
transforms; {args.lucid_steps} steps) and **MaCo** (Fel et al., NeurIPS 2023: only the phase of the
Fourier transform is optimised, its magnitude fixed to the sample photos'; random crops;
{args.maco_steps} steps at {args.maco_size}x{args.maco_size}), with MaCo's transparency map.

**Recipe.** `python tools/make_class_pictures.py --lucid-steps {args.lucid_steps} --maco-steps {args.maco_steps} --maco-size {args.maco_size} --seed {args.seed}`.
Wall time {wall:.0f} s on {platform.machine()} ({platform.system()}), TensorFlow {tf.__version__}, on a shared machine
(seconds per picture depend on its load).

**Measured** (`p_model`: the class's probability on Lite0; Lite2 rank: 1 = Lite2's top class;
clipped: share of colour values at 0 or 255 as shown; slope: of the amplitude spectrum, the sample
photos about -1.4):

| method | class | p_model | Lite2 rank | clipped | slope | s per picture |
|---|---|---|---|---|---|---|
{rows}
"""
    args.out.mkdir(parents=True, exist_ok=True)

    def write_npz(path: Path) -> None:
        with open(path, "wb") as f:  # a file object: savez adds no ".npz" to the temporary name
            np.savez_compressed(f, **arrays)

    write_files_together({args.out / "class_pictures.npz": write_npz,
                          args.out / "class_pictures.md": lambda path: path.write_text(card)})
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Evolve lesson 5's fooling images for EfficientNet-Lite0 and ship their genomes.

Only the course's developers need this: the genomes ship as ``data/fooling_genomes.npz``
(a few kilobytes; the lesson renders the pictures again from them and asks Lite0 live). Run from the
repository root (about 20 minutes on 2 busy CPU cores)::

    python tools/evolve_fooling_images.py

The search is the lesson's own, :func:`course_utils.attacks.evolution.evolve_fooling_images`:

1. MAP-Elites over all 1000 classes from random genomes (the elite of every class kept), to find
   the classes Lite0 is most easily sure of;
2. for each of the best of those classes, a (1 + lambda) strategy started from its elite, in rounds
   until p >= ``--stop-at`` (or ``--rounds`` are spent);
3. every candidate is then checked on a second numeric path, in a fresh process with
   ``TF_ENABLE_ONEDNN_OPTS=0 TF_NUM_INTRAOP_THREADS=1``; a genome is kept only if Lite0 gives its
   class p >= ``--keep-above`` on both paths.

It writes two files, both or neither: the genomes (``.npz``) and a card (``.md``) saying how they were
made. Everything is seeded (NumPy generators; the forward passes are deterministic on a CPU), so the
same seed and library versions give the same genomes. ``COURSE_SEED`` must be unset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np

OTHER_PATH = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "1"}


def _probabilities_here(genomes: np.ndarray, classes: np.ndarray, encoding: tuple[int, int, int, int]) -> np.ndarray:
    from course_utils.attacks.evolution import GridEncoding, fooling_probabilities
    from course_utils.models.imagenet import load_imagenet_model

    model = load_imagenet_model("efficientnet_lite0", verbose=False)
    probs = fooling_probabilities(model, genomes, GridEncoding(*encoding))
    return probs[np.arange(len(classes)), classes]


def _probabilities_other_path(genomes: np.ndarray, classes: np.ndarray, encoding: tuple[int, int, int, int]) -> np.ndarray:
    """The same probabilities from a fresh process on the other numeric path (no oneDNN, 1 thread)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.npz", Path(tmp) / "out.npy"
        np.savez(src, genomes=genomes, classes=classes, encoding=np.array(encoding))
        env = {**os.environ, **OTHER_PATH}
        subprocess.run([sys.executable, __file__, "--probabilities", str(src), str(out)], env=env, check=True)
        return np.load(out)


def _card(rows: list[dict], args: argparse.Namespace, seconds: float, queries: int) -> str:
    import tensorflow as tf

    table = "\n".join(
        f"| {r['class']} | {r['name']} | {r['default']:.5f} | {r['other']:.5f} |" for r in rows
    )
    return f"""# Fooling genomes for EfficientNet-Lite0 (lesson 5)

`fooling_genomes.npz` holds {len(rows)} genomes (`genomes`, float32 `(K, {args.grid}, {args.grid}, 3)` in 0..1),
their classes (`classes`), Lite0's probabilities on two numeric paths (`p_default`, `p_other`) and the
encoding (`encoding` = grid, tiles, size, channels). Render a picture with
`GridEncoding(*encoding).render(genomes)` (pixels 0..255, 224 x 224 x 3): an {args.grid} x {args.grid} grid of
colours, smoothly upsampled into a tile repeated {args.tiles} x {args.tiles} times.

**How they were made.** `python tools/evolve_fooling_images.py` (seed {args.seed}): MAP-Elites over all
1000 classes ({args.map_generations} generations of {args.population}), then a (1 + {args.lam}) strategy from the elite of each of the {args.candidates} best classes, in up to
{args.rounds} rounds of {args.refine_generations} generations (stopping once p >= {args.stop_at}), with
`course_utils.attacks.evolution.evolve_fooling_images`. Only Lite0's probabilities were used (no gradients).
A genome is kept when Lite0 gives its class p >= {args.keep_above} both on the default path and with
`TF_ENABLE_ONEDNN_OPTS=0 TF_NUM_INTRAOP_THREADS=1` (fresh process). {queries} queries, {seconds / 60:.1f} min
on {os.cpu_count()} CPU cores; TensorFlow {tf.__version__}, NumPy {np.__version__}, Python {platform.python_version()}.

| class | name | p (default) | p (no oneDNN, 1 thread) |
|---|---|---|---|
{table}

**What they are.** Pictures no person would call any of these classes, made for this model: the
lesson shows them as Nguyen, Yosinski & Clune (2015)'s finding that a network can be sure of
pictures that look like nothing it was trained on. No data set was used to make them.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probabilities", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "fooling_genomes.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=int, default=8)
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--map-generations", type=int, default=40)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--lam", type=int, default=16)
    parser.add_argument("--refine-generations", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stop-at", type=float, default=0.999)
    parser.add_argument("--keep-above", type=float, default=0.995)
    parser.add_argument("--keep", type=int, default=8)
    args = parser.parse_args(argv)
    if args.probabilities:
        data = np.load(args.probabilities[0])
        enc = tuple(int(v) for v in data["encoding"])
        np.save(args.probabilities[1], _probabilities_here(data["genomes"], data["classes"], enc))
        return 0
    if os.environ.get("COURSE_SEED", "").strip():
        sys.exit("unset COURSE_SEED: the shipped genomes are made with the course's own seeds")

    from course_utils.attacks.evolution import GridEncoding, evolve_fooling_images
    from course_utils.models.imagenet import load_imagenet_model
    from course_utils.models.imagenet import imagenet_label
    from tools.facetrain.outputs import write_files_together

    t0 = time.time()
    model = load_imagenet_model("efficientnet_lite0", verbose=False)
    enc = GridEncoding(args.grid, args.tiles, 224, 3)
    found = evolve_fooling_images(model, encoding=enc, population=args.population,
                                  generations=args.map_generations, keep=args.candidates, seed=args.seed)
    queries = found.queries
    print(f"MAP-Elites: {found.queries} queries, best classes:\n{found.table()}", flush=True)
    genomes, classes = [], []
    for k, (genome, cls) in enumerate(zip(found.genomes, found.classes)):
        p = found.probabilities[k]
        for round_ in range(args.rounds):  # rounds of the (1 + lambda) strategy until p is high enough
            r = evolve_fooling_images(model, target=int(cls), encoding=enc, population=args.lam,
                                      generations=args.refine_generations, sigma=0.1, start=genome[None],
                                      seed=args.seed + 1 + k + 1000 * round_)
            queries += r.queries
            genome, p = r.genomes[0], r.probabilities[0]
            if p >= args.stop_at:
                break
        print(f"  {imagenet_label(int(cls))}: {found.probabilities[k]:.4f} -> {p:.5f} "
              f"({round_ + 1} rounds, {time.time() - t0:.0f} s)", flush=True)
        genomes.append(genome)
        classes.append(int(cls))
    genomes, classes = np.stack(genomes), np.array(classes)
    spec = (enc.grid, enc.tiles, enc.size, enc.channels)
    p_default = _probabilities_here(genomes, classes, spec)
    p_other = _probabilities_other_path(genomes, classes, spec)
    good = np.flatnonzero(np.minimum(p_default, p_other) >= args.keep_above)
    good = good[np.argsort(-np.minimum(p_default, p_other)[good])][: args.keep]
    if len(good) == 0:
        sys.exit("no genome reached the threshold on both paths: run longer (--refine-generations)")
    rows = [{"class": int(classes[i]), "name": imagenet_label(int(classes[i])), "default": float(p_default[i]),
             "other": float(p_other[i])} for i in good]
    print(json.dumps(rows, indent=1))
    seconds = time.time() - t0
    card = _card(rows, args, seconds, queries)
    write_files_together({
        args.out: lambda p: np.savez(p, genomes=genomes[good], classes=classes[good], p_default=p_default[good],
                                     p_other=p_other[good], encoding=np.array(spec)),
        args.out.with_suffix(".md"): lambda p: p.write_text(card),
    })
    print(f"wrote {args.out} and its card ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

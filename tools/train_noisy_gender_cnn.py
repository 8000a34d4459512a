"""Train lesson 6's noise-trained face CNN, the base classifier of randomized smoothing, and certify it.

Only the course's developers need this: the weights ship as ``course_utils/data/gender_cnn_noisy.weights.h5``
(load them with ``course_utils.models.load_face_model("noisy")``). Retraining needs the
shared face set ``../shared/data/faces48.npz`` (UTKFace adults, 48x48 grayscale; non-commercial
research and education only, never shipped). Run from the repository root::

    python tools/train_noisy_gender_cnn.py --data ../shared/data/faces48.npz

Cohen, Rosenfeld & Kolter (2019) train the base classifier on inputs with the same Gaussian noise
(standard deviation ``sigma``) that the smoothed classifier adds, so that it still answers well on
noisy faces. Here every training face (after lesson 1's augmentation) gets fresh noise
``N(0, sigma^2)`` per pixel, in grey levels, without clipping, exactly what
:func:`course_utils.attacks.smoothing.certify` adds.

It writes three files, all of them or none:

- ``course_utils/data/gender_cnn_noisy.weights.h5``  the weights;
- ``course_utils/data/gender_cnn_noisy.md``          the model card;
- ``course_utils/data/gender_cnn_noisy.json``        sigma, accuracy of the base model on clean and on noisy
  held-out faces, and the certified accuracy of the smoothed classifier at several L2 radii (the
  curve lesson 6 plots), with n0, n and alpha.

Everything is seeded and TensorFlow's deterministic ops are on, so the same seed, data and library
versions give the same weights and numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: I001  (course_utils first: it quiets TensorFlow's start-up)

import course_utils  # noqa: F401
import keras
import tensorflow as tf

from course_utils.attacks.smoothing import certified_accuracy, certify
from course_utils.models.faces import (
    FACE_VARIANTS,
    GENDER_CLASSES,
    build_gender_cnn,
    check_finite_weights,
)
from tools.facetrain.data import read_face_set
from tools.facetrain.outputs import write_files_together
from tools.facetrain.training import (
    DEFAULT_DATA,
    astronaut_probabilities,
    check_weights_name,
    evaluate,
    fit_epochs,
    split_faces,
    weights_writer,
)

VARIANT = FACE_VARIANTS["noisy"]
#: The shipped recipe. sigma in grey levels (pixels 0..255); 24 is 0.094 on a 0..1 scale.
DEFAULTS = {"sigma": 24.0, "epochs": 30, "batch_size": 32, "learning_rate": 1e-3}
#: Certification of the JSON's curve (Cohen et al. used n0 = 100, n = 100,000, alpha = 0.001).
CERTIFY = {"n0": 100, "n": 2000, "alpha": 0.001}
#: L2 radii (grey levels) of the certified-accuracy curve.
RADII: tuple[float, ...] = (0.0, 4.0, 8.0, 16.0, 24.0, 32.0, 48.0, 64.0)
MIN_FACES_PER_CLASS = 10


def build() -> keras.Model:
    """The noisy variant's architecture (lesson 1's layout with :data:`VARIANT`'s filters)."""
    return build_gender_cnn(VARIANT.filters, name="gender_cnn_noisy")


class PixelNoise(keras.layers.Layer):
    """Adds N(0, sigma^2) noise per pixel (grey levels) in training only, seeded; the identity otherwise.
    (``keras.layers.GaussianNoise`` refuses a standard deviation above 1.)"""

    def __init__(self, sigma: float, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.sigma = float(sigma)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training:
            return x
        return x + keras.random.normal(keras.ops.shape(x), stddev=self.sigma, seed=self.seed_generator, dtype=x.dtype)


def train_noisy(images: np.ndarray, labels: np.ndarray, *, sigma: float, epochs: int, batch_size: int,
                learning_rate: float, seed: int, verbose: bool = True) -> keras.Model:
    """Train a fresh face CNN on augmented faces plus Gaussian noise of ``sigma`` grey levels.

    The noise is a :class:`PixelNoise` layer in front of the model, active only in
    training (seeded); the returned model is the bare classifier without it.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 grey levels, got {sigma!r}")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build()
    pixels = keras.Input(shape=model.input_shape[1:], dtype="float32", name="pixels")
    trainer = keras.Model(pixels, model(PixelNoise(sigma, seed, name="noise")(pixels)))
    total_steps = epochs * -(-len(labels) // batch_size)
    trainer.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=0.1)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    fit_epochs(trainer, images, labels, epochs=epochs, batch_size=batch_size, rng=rng, verbose=2 if verbose else 0)
    check_finite_weights(model, "training diverged", "Nothing was written; try a smaller --learning-rate.")
    return model


def noisy_accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray, sigma: float, seed: int,
                   draws: int = 4) -> float:
    """Base-model accuracy on held-out faces plus one draw of N(0, sigma^2) noise, averaged over ``draws``."""
    rng = np.random.default_rng(seed)
    return float(np.mean([evaluate(model, images + rng.normal(0, sigma, images.shape).astype(np.float32), labels)
                          for _ in range(draws)]))


def _relative(path: Path) -> str:
    try:
        return Path(os.path.relpath(path, REPO)).as_posix()
    except ValueError:
        return path.name


def facts_json(r: dict) -> str:
    """The JSON lesson 6 reads (``course_utils.models.face_facts("noisy")``)."""
    data = {
        "description": "Lesson 6's noise-trained face CNN (the base classifier f of randomized smoothing) and the "
                       "certified accuracy of its smoothed classifier g on the held-out faces. Pixels 0..255; "
                       "sigma and radii in grey levels (L2). Written by tools/train_noisy_gender_cnn.py; the faces "
                       "are not shipped.",
        "sigma": r["sigma"],
        "filters": list(VARIANT.filters),
        "parameters": r["parameters"],
        "seed": r["seed"],
        "split_seed": r["split_seed"],
        "n_test": r["n_test"],
        "data": "UTKFace adults (non-commercial research and education only), held-out 20% of lesson 1's split",
        "base_accuracy": {"clean": round(r["clean"], 6), "noisy": round(r["noisy"], 6), "noisy_draws": 4},
        "certify": {"method": "Cohen et al. 2019 CERTIFY (course_utils.attacks.smoothing.certify)",
                    "n0": r["n0"], "n": r["n"], "alpha": r["alpha"], "seed": r["seed"], "faces": r["n_certified"],
                    "radii": list(r["radii"]),
                    "certified_accuracy": [round(a, 6) for a in r["certified"]],
                    "abstained": round(r["abstained"], 6),
                    "median_radius_correct": round(r["median_radius"], 4),
                    "max_radius": round(r["max_radius"], 4)},
    }
    return json.dumps(data, indent=2) + "\n"


def model_card(r: dict) -> str:
    """The Markdown model card, filled in with the measured numbers in ``r``."""
    f1, f2, f3 = VARIANT.filters
    rows = "\n".join(f"| {e:g} | {a:.3f} |" for e, a in zip(r["radii"], r["certified"]))
    p_man, p_woman = r["astronaut"]
    return f"""# Model card: lesson 6's noise-trained face CNN (`{_relative(r["weights"])}`)

*This card is written by `tools/train_noisy_gender_cnn.py`; retraining rewrites it with the new numbers.*

## What it is

The **base classifier f of randomized smoothing** (Cohen, Rosenfeld & Kolter, 2019): lesson 1's
face classifier layout with **{f1}, {f2} and {f3} filters** ({r["parameters"]:,} parameters), trained on faces
with Gaussian noise of standard deviation **sigma = {r["sigma"]:g} grey levels** added to every pixel, so that
it still answers well on the noisy copies the smoothed classifier g votes over. Load it with
`course_utils.models.load_face_model("noisy")`; the facts below are in
`{_relative(r["json"])}` (`face_facts("noisy")`). Input float32 (N, 48, 48, 1) **pixels 0..255**, output
two logits ("man", "woman").

## Training data and terms

The same faces as lesson 1's model (`course_utils/data/gender_cnn.md`): UTKFace "crop_part1", adults
only, 48x48 gray, {r["n_total"]} faces, lesson 1's split (seed {r["split_seed"]}): {r["n_train"]} training and
{r["n_test"]} held-out faces. **UTKFace is for non-commercial research and education only**; the course ships
only weights and numbers, never the images. Cite: Zhang, Song, Qi, CVPR 2017.

## Training

{r["epochs"]} epochs, batch {r["batch_size"]}, Adam at {r["learning_rate"]:g} decaying along a cosine to a tenth, lesson 1's
augmentation (mirror, shifts, contrast, brightness), then fresh N(0, {r["sigma"]:g}^2) noise per pixel on every
training face (a noise layer, training only, no clipping), seed {r["seed"]} with TensorFlow's
deterministic ops. sigma = {r["sigma"]:g} was chosen so that the certified radii (up to sigma x 2.7 with
n = {r["n"]}) span the L2 size of lesson 1's noise filters (a few grey levels) and well beyond, while the
base model keeps most of its accuracy on noisy faces (one training run, not a sweep).
Training took **{r["train_seconds"]:.0f} s** of wall time ({r["machine"]}; TensorFlow {tf.__version__},
Keras {keras.__version__}, Python {platform.python_version()}).

```
{r["command"]}
```

## Accuracy on the {r["n_test"]} held-out faces

- base model f, clean faces: **{r["clean"]:.3f}**
- base model f, faces plus N(0, {r["sigma"]:g}^2) noise (mean of 4 draws): **{r["noisy"]:.3f}**

## Certified accuracy of the smoothed classifier g

Cohen et al.'s CERTIFY on the {r["n_certified"]} held-out faces: n0 = {r["n0"]} selection samples, n = {r["n"]}
estimation samples, alpha = {r["alpha"]:g}, sigma = {r["sigma"]:g}. A face counts at radius r if g is not abstained,
right, and certified to a radius of at least r (grey levels, L2 over the whole 48x48 face). Each
certificate holds with probability at least 1 - alpha over the sampling; it is about g, not about f.
{100 * r["abstained"]:.1f}% of the faces were abstained on; the largest radius n samples can certify is
{r["max_radius"]:.1f} grey levels (sigma x Phi^-1(alpha^(1/n))). Certifying took {r["certify_seconds"]:.0f} s.

| L2 radius (grey levels) | certified accuracy |
|---|---|
{rows}

Smoke test: the course's 48x48 crop of `skimage.data.astronaut()` (Eileen Collins) gives
P(man) = {p_man:.3f}, P(woman) = {p_woman:.3f} for the base model.

## Limitations and ethical notes

- **A teaching model only.** Do not use it to make or support any decision about a real person.
- The certificate covers L2 changes of the whole face within the radius, for the smoothed
  classifier only; changes outside (a patch, a rotation, an L2 change larger than the radius) are
  not covered, and the base model f by itself is as easy to fool as any other network.
- Lesson 1's card (`course_utils/data/gender_cnn.md`) lists the data's biases and the limits of its binary
  labels; all of it applies here.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train, measure on the held-out faces, certify, write all three files."""
    parser = argparse.ArgumentParser(prog="python tools/train_noisy_gender_cnn.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"face set .npz (default {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, default=VARIANT.weights, help="weights file to write")
    parser.add_argument("--card", type=Path, default=VARIANT.card, help="model card (markdown) to write")
    parser.add_argument("--facts", type=Path, default=VARIANT.facts, help="facts (JSON) to write")
    parser.add_argument("--sigma", type=float, default=DEFAULTS["sigma"], help="noise standard deviation, grey levels (> 0)")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"])
    parser.add_argument("--n0", type=int, default=CERTIFY["n0"], help="selection samples of CERTIFY")
    parser.add_argument("--n", type=int, default=CERTIFY["n"], help="estimation samples of CERTIFY")
    parser.add_argument("--alpha", type=float, default=CERTIFY["alpha"], help="failure probability of CERTIFY")
    parser.add_argument("--certify-faces", type=int, default=0,
                        help="certify a seeded subset of this many held-out faces (0: all of them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, training, noise and sampling")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split (lesson 1's: 0)")
    args = parser.parse_args(argv)
    if not args.sigma > 0:
        parser.error(f"--sigma must be a number of grey levels > 0 (the noise's standard deviation), got {args.sigma:g}")
    if args.epochs < 1 or args.batch_size < 1 or args.n0 < 1 or args.n < 1 or args.certify_faces < 0:
        parser.error("epochs, batch-size, n0 and n must be >= 1 and certify-faces >= 0")
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha must be strictly between 0 and 1, got {args.alpha:g}")

    tf.config.experimental.enable_op_determinism()
    started = time.perf_counter()
    try:
        images, labels, _ = read_face_set(args.data)  # refuses missing files, wrong arrays, NaN, bad labels
        counts = [int(np.sum(labels == c)) for c in range(len(GENDER_CLASSES))]
        if min(counts) < MIN_FACES_PER_CLASS:
            raise ValueError(f"too few faces: {counts[0]} men and {counts[1]} women (need {MIN_FACES_PER_CLASS} of each)")
    except (FileNotFoundError, ValueError) as error:
        print(f"train_noisy_gender_cnn: refusing the data: {error}\nNothing was written.", file=sys.stderr)
        return 2
    train_idx, test_idx = split_faces(labels, test_fraction=0.2, seed=args.split_seed)
    print(f"data: {len(labels)} faces; train {len(train_idx)}, held-out test {len(test_idx)} (split seed {args.split_seed})")
    recipe = {k: getattr(args, k) for k in DEFAULTS}
    train_start = time.perf_counter()
    model = train_noisy(images[train_idx], labels[train_idx], seed=args.seed, **recipe)
    train_seconds = time.perf_counter() - train_start
    x_test, y_test = images[test_idx], labels[test_idx]
    clean = evaluate(model, x_test, y_test)
    noisy = noisy_accuracy(model, x_test, y_test, args.sigma, args.seed)
    print(f"base accuracy: clean {clean:.3f}, noisy {noisy:.3f}; certifying", flush=True)
    pick = np.arange(len(test_idx))
    if 0 < args.certify_faces < len(pick):
        pick = np.sort(np.random.default_rng(args.seed).choice(len(pick), args.certify_faces, replace=False))
    cert_start = time.perf_counter()
    result = certify(model, x_test[pick], args.sigma, args.n0, args.n, args.alpha, seed=args.seed)
    certify_seconds = time.perf_counter() - cert_start
    right = (~result.abstained) & (result.predicted == y_test[pick])
    command = (
        f"python tools/train_noisy_gender_cnn.py --data {Path(args.data).as_posix() if not Path(args.data).is_absolute() else DEFAULT_DATA}"
        + "".join(f" --{k.replace('_', '-')} {v:g}" for k, v in recipe.items() if v != DEFAULTS[k])
        + "".join(f" --{k} {getattr(args, k):g}" for k in CERTIFY if getattr(args, k) != CERTIFY[k])
        + (f" --certify-faces {args.certify_faces}" if args.certify_faces else "")
        + (f" --seed {args.seed}" if args.seed else "")
        + (f" --split-seed {args.split_seed}" if args.split_seed else "")
    )
    report = {
        **recipe, "n0": args.n0, "n": args.n, "alpha": args.alpha,
        "parameters": model.count_params(), "seed": args.seed, "split_seed": args.split_seed,
        "n_total": len(labels), "n_train": len(train_idx), "n_test": len(test_idx), "n_certified": len(pick),
        "train_seconds": train_seconds, "certify_seconds": certify_seconds,
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}"
        + (f", 1-minute load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""),
        "command": command, "clean": clean, "noisy": noisy,
        "radii": RADII, "certified": [float(a) for a in certified_accuracy(result, y_test[pick], RADII)],
        "abstained": float(np.mean(result.abstained)),
        "median_radius": float(np.median(result.radius[right])) if right.any() else 0.0,
        "max_radius": float(args.sigma * __import__("statistics").NormalDist().inv_cdf(args.alpha ** (1 / args.n))),
        "astronaut": astronaut_probabilities(model),
        "weights": args.out.resolve(), "json": args.facts.resolve(),
    }
    write_files_together({  # all three or none
        check_weights_name(args.out): weights_writer(model, build),
        args.card: lambda temp: temp.write_text(model_card(report), encoding="utf-8"),
        args.facts: lambda temp: temp.write_text(facts_json(report), encoding="utf-8"),
    })
    print("radius  certified accuracy\n" + "\n".join(f"{e:6g}  {a:.3f}" for e, a in zip(RADII, report["certified"])))
    print(f"trained in {train_seconds:.0f} s, certified in {certify_seconds:.0f} s; wrote {args.out}, {args.card}, "
          f"{args.facts}; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grow lesson 5's substitute face CNN from lesson 1's model's labels, and measure transfer.

The attacker of Papernot et al. (2017): it can send faces to lesson 1's model (the *target*, a
black box that answers "man" or "woman", nothing more) and holds a small set of unlabelled faces.
It grows its own network from the target's answers with Jacobian-based dataset augmentation
(:func:`course_utils.attacks.transfer.train_substitute`), then attacks that network white-box
and sends the result to the target.

Only the course's developers need this: the weights ship as
``course_utils/data/gender_cnn_substitute.weights.h5``. Retraining needs the shared face set
``../shared/data/faces48.npz`` (UTKFace adults, 48x48 grayscale; non-commercial research and
education only, never shipped). Run from the repository root::

    python tools/train_substitute.py --data ../shared/data/faces48.npz

It writes three files, all of them or none:

- ``course_utils/data/gender_cnn_substitute.weights.h5``  the weights;
- ``course_utils/data/gender_cnn_substitute.md``          the model card;
- ``course_utils/data/gender_cnn_substitute.json``        the facts lesson 5 reads: queries, set size and
  agreement per round, and the target's accuracy on the held-out faces under transfer attacks,
  white-box PGD and random noise, per budget.

The attacker's faces are drawn from lesson 1's *training* split (their labels are never used);
the held-out faces (``split_faces(labels, seed=0)``) only measure. Everything is seeded and
TensorFlow's deterministic ops are on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import course_utils  # noqa: E402,F401  (quiets TensorFlow's start-up)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from course_utils.attacks.pgd import pgd_attack, robust_accuracy  # noqa: E402
from course_utils.attacks.transfer import oracle_labels, train_substitute  # noqa: E402
from course_utils.models.faces import FACE_VARIANTS, build_gender_cnn, check_finite_weights, load_gender_cnn  # noqa: E402
from tools.facetrain.card import display_path, machine_description, versions  # noqa: E402
from tools.facetrain.data import DEFAULT_DATA, read_face_set, split_faces  # noqa: E402
from tools.facetrain.outputs import check_writable, write_files_together  # noqa: E402
from tools.facetrain.training import check_weights_name, weights_writer  # noqa: E402

VARIANT = FACE_VARIANTS["substitute"]
#: The shipped recipe: sizes of the order of Papernot et al.'s (a seed set of 150 pictures, a handful
#: of rounds, a step of a tenth of the pixel range), not tuned on the held-out faces.
DEFAULTS = dict(seed_faces=150, rounds=6, epochs=10, lam=25.0, flip_every=3, learning_rate=1e-3, batch_size=32)
#: Budgets (grey levels) and PGD steps of the transfer numbers.
EVAL_EPSILONS: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0)
EVAL_STEPS = 20


def build_substitute() -> keras.Model:
    """A fresh, untrained substitute (the ``substitute`` entry of ``FACE_VARIANTS``)."""
    return build_gender_cnn(VARIANT.filters, name="gender_cnn_substitute")


def attacker_faces(train_idx: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices drawn (seeded, without replacement) from the training split: the attacker's faces."""
    if not 1 <= n <= len(train_idx):
        raise ValueError(f"--seed-faces must be 1..{len(train_idx)} (the training faces), got {n}")
    return np.sort(np.random.default_rng(seed).choice(train_idx, n, replace=False))


def _accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(oracle_labels(model, x) == y))


def measure_transfer(substitute: keras.Model, target: keras.Model, x: np.ndarray, y: np.ndarray,
                     epsilons: Sequence[float], steps: int, seed: int) -> dict[str, list[float]]:
    """The target's accuracy (against the true labels ``y``) on ``x`` changed in four ways per budget.

    - ``transfer_pgd`` / ``transfer_fgsm``: untargeted PGD-``steps`` (random start) / FGSM on the
      substitute, away from the *target's* answer on the clean face (one query per face: the
      attacker does not know the truth), then sent to the target;
    - ``white_box_pgd``: PGD-``steps`` on the target itself, away from the truth (what an attacker
      with the weights gets: the upper bound on harm);
    - ``random_noise``: every pixel moved by +-epsilon at random (seeded): the same L-inf size;
    - ``transfer_pgd_changed``: the share of the target's answers the transfer PGD changed;
    - ``substitute_fooled``: the share of faces on which the substitute's answer differs from the
      target's clean answer after the PGD made for it (at 0: where they disagree to start with).
    """
    asked = oracle_labels(target, x)
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {k: [] for k in ("transfer_pgd", "transfer_fgsm", "random_noise",
                                                   "transfer_pgd_changed", "substitute_fooled")}
    for e in epsilons:
        if e == 0:
            for k in ("transfer_pgd", "transfer_fgsm", "random_noise"):
                out[k].append(_accuracy(target, x, y))
            out["transfer_pgd_changed"].append(0.0)
            out["substitute_fooled"].append(float(np.mean(oracle_labels(substitute, x) != asked)))
            continue
        pgd = pgd_attack(substitute, x, asked, e, steps=steps, seed=seed).adversarial
        fgsm = pgd_attack(substitute, x, asked, e, steps=1, step_size=e, random_start=False).adversarial
        noise = np.clip(x + e * rng.choice(np.float32([-1.0, 1.0]), size=x.shape), 0.0, 255.0)
        out["transfer_pgd"].append(_accuracy(target, pgd, y))
        out["transfer_fgsm"].append(_accuracy(target, fgsm, y))
        out["random_noise"].append(_accuracy(target, noise, y))
        out["transfer_pgd_changed"].append(float(np.mean(oracle_labels(target, pgd) != asked)))
        out["substitute_fooled"].append(float(np.mean(oracle_labels(substitute, pgd) != asked)))
    white = robust_accuracy(target, x, y, epsilons, steps=steps, seed=seed)
    out["white_box_pgd"] = [float(a) for a in white.accuracy]
    return out


def facts_json(r: dict) -> str:
    """The JSON lesson 5 reads (``face_facts("substitute")``)."""
    data = {
        "description": "Lesson 5's substitute, grown from lesson 1's model's labels alone (Papernot et al., 2017). "
                       "Written by tools/train_substitute.py; the faces are not shipped.",
        "target": "course_utils/data/gender_cnn.weights.h5 (lesson 1's model), top-1 label only",
        "filters": list(VARIANT.filters),
        "parameters": r["parameters"],
        "recipe": {k: r[k] for k in DEFAULTS},
        "seed": r["seed"],
        "split_seed": r["split_seed"],
        "queries": r["queries"],
        "n_test": r["n_test"],
        "rounds": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in r["history"]],
        "agreement": round(r["agreement"], 6),
        "accuracy": {"substitute": round(r["substitute_accuracy"], 6), "target": round(r["target_accuracy"], 6)},
        "transfer": {
            "what": "accuracy of the target (lesson 1's model) on the held-out faces, against their true labels",
            "attack": {"method": "untargeted L-inf PGD", "steps": r["eval_steps"], "step_size": "2.5 * epsilon / steps",
                       "random_start": True, "seed": r["seed"], "fgsm": "one step of epsilon, no random start",
                       "labels": "transfer: the target's answer on the clean face; white box: the true label"},
            "epsilons": list(r["eval_epsilons"]),
            **{k: [round(a, 6) for a in v] for k, v in r["transfer"].items()},
        },
    }
    return json.dumps(data, indent=2) + "\n"


def model_card(r: dict) -> str:
    """The Markdown model card, filled in with the measured numbers in ``r``."""
    f1, f2, f3 = VARIANT.filters
    rounds = "\n".join(f"| {h['round']} | {h['set_size']} | {h['queries']} | {format(h['lam'], '+g') if h['lam'] else 'none'} | {h['agreement']:.3f} |"
                       for h in r["history"])
    t = r["transfer"]
    transfer = "\n".join(
        f"| {e:g} | {t['random_noise'][i]:.3f} | {t['transfer_fgsm'][i]:.3f} | {t['transfer_pgd'][i]:.3f} | "
        f"{t['white_box_pgd'][i]:.3f} | {t['transfer_pgd_changed'][i]:.3f} | {t['substitute_fooled'][i]:.3f} |"
        for i, e in enumerate(r["eval_epsilons"]))
    return f"""# Model card: lesson 5's substitute face CNN (`course_utils/data/{VARIANT.weights.name}`)

*This card is written by `tools/train_substitute.py`; retraining rewrites it with the new numbers.*

## What it is

A copy of lesson 1's face classifier grown by an attacker who could only *ask* it: send a face,
read "man" or "woman", nothing else (no probabilities, no weights, no gradient). It follows
Papernot et al. (2017), "Practical Black-Box Attacks against Machine Learning". Lesson 5 attacks
this substitute white-box and sends the result to lesson 1's model (a *transfer* attack). Load it
with `course_utils.models.load_face_model("substitute")`; no dataset is needed.

Lesson 1's layout with **{f1}, {f2} and {f3} filters** (lesson 1's model has 3, 6 and 12):
**{r["parameters"]:,} parameters**. The attacker does not know the target's architecture; it picks a
plausible small CNN for 48x48 faces.

## How it was grown

1. **Seed set**: {r["seed_faces"]} faces drawn at random (seed {r["seed"]}) from the training part of
   lesson 1's split; their true labels were never used.
2. **Each round**: ask the target for the label of every face not asked yet (one query each), train
   the substitute {r["epochs"]} epochs on the whole set with those labels (Adam, learning rate
   {r["learning_rate"]:g}, batch {r["batch_size"]}, cross-entropy; weights carried over from the
   last round), then **Jacobian-based dataset augmentation**: for every face `x` with target label
   `y` add `x + lam * sign(d substitute_logit_y / dx)`, clipped to 0..255, with lam = {r["lam"]:g} grey
   levels, its sign flipped every {r["flip_every"]} rounds (Papernot et al.'s periodic step). The
   set doubles each round.
3. **{r["rounds"]} rounds**: {r["queries"]:,} queries to the target in all.

The sizes are of the order of Papernot et al.'s (a seed set of 150 pictures, a handful of rounds,
a step of a tenth of the pixel range); the recipe was not tuned on the held-out faces. Weights are drawn from the seed
(Glorot-uniform, no global random state), TensorFlow's deterministic ops are on. Growing it took
**{r["train_seconds"]:.0f} s** of wall time ({r["machine"]}; {r["versions"]}).

Retrain (from the repository root; needs the shared data set):

```
{r["command"]}
```

## Agreement with the target

Share of the {r["n_test"]} held-out faces (lesson 1's split, seed {r["split_seed"]}, never seen by the
attacker) on which substitute and target give the same answer, after each round (these
measurement queries are not counted as the attacker's):

| round | faces trained on | queries so far | augmentation step after it | agreement |
|---|---|---|---|---|
{rounds}

Accuracy on the held-out faces against their true labels: substitute **{r["substitute_accuracy"]:.3f}**,
target {r["target_accuracy"]:.3f}.

## Transfer

Accuracy of the **target** on the {r["n_test"]} held-out faces against their true labels, per L-inf
budget epsilon (grey levels), when each face is changed by:

- *random noise*: every pixel moved by +-epsilon at random (the same size as the attacks);
- *FGSM via substitute*: one step of epsilon along the sign of the substitute's gradient;
- *PGD via substitute*: PGD-{r["eval_steps"]} (random start, step 2.5 x epsilon / {r["eval_steps"]}) on the substitute;
  both push away from the target's answer on the clean face (one more query per face);
- *white-box PGD*: the same PGD on the target itself, with its weights, away from the true label:
  what an attacker who has the weights achieves (the attack of lesson 4's table).

The last two columns are shares of answers changed, not accuracies: the target's answers changed
by the transfer PGD, and the substitute's answers that differ from the target's clean answer after
the PGD made for the substitute (the attack's success on the model it was made for).

| epsilon | random noise | FGSM via substitute | PGD via substitute | white-box PGD | target's answers changed by the transfer PGD | substitute fooled |
|---|---|---|---|---|---|---|
{transfer}

## Data and terms

UTKFace "crop_part1", adults, 48x48 gray, as lesson 1's model card (`course_utils/data/gender_cnn.md`)
describes. **UTKFace is available for non-commercial research and education only**; the course
ships only trained weights and numbers, never the images. Cite: Zhifei Zhang, Yang Song, Hairong
Qi, "Age Progression/Regression by Conditional Adversarial Autoencoder", CVPR 2017.

## Limitations and ethical notes

- **A teaching model only**, for showing black-box transfer attacks. It learned lesson 1's
  *answers*, mistakes included, not the truth; do not use it for any decision about a person.
- Most of its training pictures are synthetic (augmentation steps of {r["lam"]:g} grey levels), so
  it is fitted to the target's decision boundary near the seed faces, not to faces in general.
- Transfer numbers are for this target and these budgets; a defended target (lesson 4) changes them.
- Lesson 1's card lists the data's biases and the limits of its binary labels; all of it applies.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: grow the substitute, measure agreement and transfer, write all three files."""
    parser = argparse.ArgumentParser(prog="python tools/train_substitute.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"face set .npz (default {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, default=VARIANT.weights, help="weights file to write")
    parser.add_argument("--card", type=Path, default=VARIANT.card, help="model card (markdown) to write")
    parser.add_argument("--facts", type=Path, default=VARIANT.facts, help="facts (JSON) to write")
    parser.add_argument("--seed-faces", type=int, default=DEFAULTS["seed_faces"], help="the attacker's unlabelled faces")
    parser.add_argument("--rounds", type=int, default=DEFAULTS["rounds"])
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="training epochs per round")
    parser.add_argument("--lam", type=float, default=DEFAULTS["lam"], help="augmentation step, grey levels")
    parser.add_argument("--flip-every", type=int, default=DEFAULTS["flip_every"])
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"])
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacker's faces, the weights and the attacks")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split (lesson 1's: 0)")
    parser.add_argument("--eval-steps", type=int, default=EVAL_STEPS, help="PGD steps of the transfer numbers")
    args = parser.parse_args(argv)
    if min(args.rounds, args.epochs, args.batch_size, args.eval_steps, args.flip_every) < 1 or not args.lam > 0:
        parser.error("rounds, epochs, batch-size, eval-steps and flip-every must be >= 1 and lam > 0")
    try:
        check_weights_name(args.out)
        for path, what in ((args.out, "--out"), (args.card, "--card"), (args.facts, "--facts")):
            check_writable(path, what)
        images, labels, _ = read_face_set(args.data)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"train_substitute: {error}\nNothing was written.", file=sys.stderr)
        return 2

    tf.config.experimental.enable_op_determinism()
    started = time.perf_counter()
    train_idx, test_idx = split_faces(labels, test_fraction=0.2, seed=args.split_seed)
    x_test, y_test = images[test_idx], labels[test_idx]
    try:
        seeds = images[attacker_faces(train_idx, args.seed_faces, args.seed)]
    except ValueError as error:
        parser.error(str(error))
    target = load_gender_cnn()
    print(f"attacker: {len(seeds)} unlabelled training faces; measuring on {len(test_idx)} held-out faces")
    recipe = {k: getattr(args, k) for k in DEFAULTS}
    model, history = train_substitute(
        target, build_substitute, seeds, rounds=args.rounds, epochs=args.epochs, lam=args.lam,
        flip_every=args.flip_every, learning_rate=args.learning_rate, batch_size=args.batch_size,
        eval_images=x_test, seed=args.seed, verbose=True)
    train_seconds = time.perf_counter() - started
    check_finite_weights(model, "training diverged", "Nothing was written; try a smaller --learning-rate.")
    print(f"grown in {train_seconds:.0f} s; measuring transfer at epsilon {', '.join(f'{e:g}' for e in EVAL_EPSILONS)}")
    transfer = measure_transfer(model, target, x_test, y_test, EVAL_EPSILONS, args.eval_steps, args.seed)
    command = (
        f"python tools/train_substitute.py --data {Path(args.data).as_posix() if not Path(args.data).is_absolute() else DEFAULT_DATA}"
        + "".join(f" --{k.replace('_', '-')} {v:g}" for k, v in recipe.items() if v != DEFAULTS[k])
        + (f" --seed {args.seed}" if args.seed else "") + (f" --split-seed {args.split_seed}" if args.split_seed else "")
    )
    report = {
        **recipe, "parameters": model.count_params(), "seed": args.seed, "split_seed": args.split_seed,
        "n_test": len(test_idx), "queries": int(history.queries.iloc[-1]),
        "history": history[["round", "set_size", "queries", "lam", "agreement"]].to_dict("records"),
        "agreement": float(history.agreement.iloc[-1]),
        "substitute_accuracy": _accuracy(model, x_test, y_test), "target_accuracy": _accuracy(target, x_test, y_test),
        "transfer": transfer, "eval_epsilons": EVAL_EPSILONS, "eval_steps": args.eval_steps,
        "train_seconds": train_seconds, "machine": machine_description(), "versions": versions().replace("\n", " "),
        "command": command,
    }
    report["history"] = [{k: (int(v) if k != "lam" and k != "agreement" else float(v)) for k, v in row.items()}
                         for row in report["history"]]
    write_files_together({  # all three or none
        args.out: weights_writer(model, build_substitute),
        args.card: lambda temp: temp.write_text(model_card(report), encoding="utf-8"),
        args.facts: lambda temp: temp.write_text(facts_json(report), encoding="utf-8"),
    })
    print("epsilon  noise  fgsm   pgd    white-box\n" + "\n".join(
        f"{e:7g}  {transfer['random_noise'][i]:.3f}  {transfer['transfer_fgsm'][i]:.3f}  {transfer['transfer_pgd'][i]:.3f}  "
        f"{transfer['white_box_pgd'][i]:.3f}" for i, e in enumerate(EVAL_EPSILONS)))
    print(f"wrote {display_path(args.out)}, {display_path(args.card)}, {display_path(args.facts)}; "
          f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The five face models of ``tools/train_face_model.py``: how each is trained and measured.

==============  ====================================================================================
variant         what ``--variant`` trains and measures
==============  ====================================================================================
``gender``      lesson 1's gender CNN (:func:`tools.facetrain.training.train_gender_cnn`); held-out
                accuracy per class and per race code
``robust``      lesson 4's wider CNN, adversarially trained with PGD inside every training step;
                both face models' accuracy under PGD-20 per budget
``substitute``  lesson 5's substitute, grown from lesson 1's model's answers alone (Papernot et al.,
                2017); agreement per round and transfer attacks per budget
``distilled``   lesson 7's defensive distillation at temperature T (Papernot et al., 2016); CE and
                margin PGD, and the feature-squeezing detector on lesson 1's model
``noisy``       lesson 7's base classifier of randomized smoothing, trained on faces plus Gaussian
                noise (Cohen et al., 2019); certified accuracy of the smoothed classifier
==============  ====================================================================================

Each :class:`Variant` names its options and their defaults (the shipped recipe), its output files,
the architecture its weights are saved through, and three functions: ``run`` trains and measures
(returning a :class:`Trained`), ``card_fields`` formats the report for the Markdown template
``tools/cards/<variant>.md``, and ``facts`` writes the JSON the lessons read (all but ``gender``).
Every variant is seeded and the command line turns TensorFlow's deterministic ops on, so the same
seed, data and library versions give the same files. Pixels are 0..255 and budgets, noise and
radii are in grey levels throughout.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

from course_utils.attacks.defences import (
    AdversarialTraining, adaptive_attack, default_squeezers, detection_rate, detector_scores, threshold_for_fpr,
)
from course_utils.attacks.pgd import pgd_attack, robust_accuracy
from course_utils.attacks.smoothing import certified_accuracy, certify
from course_utils.attacks.transfer import oracle_labels, train_substitute
from course_utils.checks import check_int, check_number
from course_utils.models.faces import FACE_VARIANTS
from course_utils.models.faces import (
    DEFAULT_WEIGHTS, GENDER_CLASSES, ROBUST_CARD, ROBUST_FILTERS, ROBUST_WEIGHTS, ROBUSTNESS_JSON,
    build_gender_cnn, check_finite_weights, load_gender_cnn,
)
from tools.facetrain.card import astronaut_probabilities, card_template, display_path, machine_description, versions
from tools.facetrain.data import RACE_NAMES
from tools.facetrain.training import (
    check_training_settings, evaluate, fit_epochs, group_accuracy, train_gender_cnn,
)

__all__ = [
    "Faces", "Trained", "Variant", "VARIANTS",
    "train_robust", "attacker_faces", "measure_transfer", "check_temperature", "AtTemperature",
    "train_at_temperature", "PixelNoise", "train_noisy",
]


@dataclass(frozen=True)
class Faces:
    """The face set and lesson 1's split: float32 ``(N, 48, 48, 1)`` images 0..255, int64 labels
    (0 man, 1 woman), int64 race codes or ``None``, and the training and held-out indices."""

    images: np.ndarray
    labels: np.ndarray
    races: np.ndarray | None
    train_idx: np.ndarray
    test_idx: np.ndarray

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.images[self.train_idx], self.labels[self.train_idx]

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.images[self.test_idx], self.labels[self.test_idx]


@dataclass
class Trained:
    """What a variant's ``run`` returns: the model, the numbers its card and facts report, and a
    few lines for the terminal."""

    model: keras.Model
    report: dict[str, Any]
    summary: str = ""


@dataclass(frozen=True)
class Variant:
    """One face model the command line trains (see the module's table)."""

    name: str
    what: str
    options: dict[str, Any]
    """Its own options (argparse ``dest`` -> default, the shipped recipe), in the order a retrain
    command writes them."""
    out: Path
    card: Path | None
    facts: Path | None
    build: Callable[[], keras.Model]
    check: Callable[[argparse.Namespace], None]
    run: Callable[..., Trained]
    card_fields: Callable[[dict[str, Any]], dict[str, Any]]
    facts_json: Callable[[dict[str, Any]], str] | None = None
    min_faces_per_class: int = 0


def _rows(rows: Sequence[Sequence[Any]]) -> str:
    """Markdown table rows (cells already formatted)."""
    return "\n".join("| " + " | ".join(str(c) for c in row) + " |" for row in rows)


def _group_rows(groups: dict[int, tuple[int, float]], names: Sequence[str], *, code: bool) -> str:
    return _rows([(f"{names[g]} ({g})" if code else (names[g] if 0 <= g < len(names) else g), n, f"{a:.3f}")
                  for g, (n, a) in groups.items()])


def _enough_faces(labels: np.ndarray, least: int) -> None:
    counts = [int(np.sum(labels == c)) for c in range(len(GENDER_CLASSES))]
    if min(counts) < least:
        raise ValueError(f"too few faces to train and test on: {counts[0]} men and {counts[1]} women "
                         f"(need at least {least} of each)")


def _common_checks(s: argparse.Namespace) -> None:
    check_training_settings(s.epochs, s.batch_size, s.learning_rate)


# --------------------------------------------------------------------------------------------
# gender: lesson 1's model
# --------------------------------------------------------------------------------------------


def _measure_gender(model: keras.Model, faces: Faces) -> dict[str, Any]:
    """What the gender card reports that depends only on the weights and the data."""
    x_test, y_test = faces.test
    return {
        "accuracy": evaluate(model, x_test, y_test),
        "per_class": group_accuracy(model, x_test, y_test, y_test),
        "per_race": group_accuracy(model, x_test, y_test, faces.races[faces.test_idx]) if faces.races is not None else {},
        "astronaut": astronaut_probabilities(model),
    }


def run_gender(s: argparse.Namespace, faces: Faces, kept: tuple[keras.Model, dict[str, Any]] | None = None) -> Trained:
    """Train lesson 1's model (or, with ``kept`` = (weights, facts of the old card) from
    ``--card-only``, only re-measure it) and measure it on the held-out faces."""
    labels = faces.labels
    report: dict[str, Any] = {
        "n_total": len(labels), "n_class": {c: int(np.sum(labels == c)) for c in (0, 1)},
        "n_train": len(faces.train_idx), "n_test": len(faces.test_idx), "split_seed": s.split_seed, "seed": s.seed,
        "epochs": s.epochs, "batch_size": s.batch_size, "learning_rate": s.learning_rate,
        "augment": not s.no_augment, "cosine_decay": not s.no_cosine_decay, "command": s.command,
    }
    if kept is not None:
        model, facts = kept
        report.update(facts)
    else:
        train_start = time.perf_counter()
        model, history = train_gender_cnn(*faces.train, epochs=s.epochs, batch_size=s.batch_size,
                                          learning_rate=s.learning_rate, seed=s.seed, augment=not s.no_augment,
                                          cosine_decay=not s.no_cosine_decay, verbose=0)
        report.update(train_seconds=time.perf_counter() - train_start, train_accuracy=history["accuracy"][-1],
                      machine=machine_description(), versions=versions())
    report.update(_measure_gender(model, faces))
    summary = (f"held-out test accuracy {report['accuracy']:.4f} ("
               + ", ".join(f"{GENDER_CLASSES[c]} {a:.3f}" for c, (_, a) in report["per_class"].items()) + ")"
               + ("" if kept is not None else f"; trained {s.epochs} epochs in {report['train_seconds']:.1f} s"))
    return Trained(model, report, summary)


def gender_card(r: dict[str, Any]) -> dict[str, Any]:
    augmentation = card_template("gender_augmentation").template.rstrip("\n") if r["augment"] else "No augmentation."
    return {
        **{k: r[k] for k in ("n_total", "n_train", "n_test", "split_seed", "seed", "epochs", "batch_size", "machine",
                             "versions", "command")},
        "n_men": r["n_class"][0], "n_women": r["n_class"][1], "learning_rate": f"{r['learning_rate']:g}",
        "decay": " decaying along a cosine to a tenth of it over the run" if r["cosine_decay"] else " (constant)",
        "augmentation": augmentation, "train_seconds": f"{r['train_seconds']:.0f}",
        "accuracy": f"{r['accuracy']:.3f}", "train_accuracy": f"{r['train_accuracy']:.3f}",
        "per_class": _group_rows(r["per_class"], GENDER_CLASSES, code=True),
        "per_race": _group_rows(r["per_race"], RACE_NAMES, code=False),
        "p_man": f"{r['astronaut'][0]:.3f}", "p_woman": f"{r['astronaut'][1]:.3f}",
    }


# --------------------------------------------------------------------------------------------
# robust: lesson 4's adversarially trained model, and both models under PGD
# --------------------------------------------------------------------------------------------

#: The shipped recipe (chosen on a validation split of the training faces; see the model card).
ROBUST_RECIPE = dict(epochs=30, epsilon=4.0, steps=5, clean_weight=0.3, ramp_epochs=5, batch_size=32, learning_rate=1e-3)
#: Budgets (grey levels) of the robustness numbers.
ROBUST_EPSILONS: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)


def train_robust(images: np.ndarray, labels: np.ndarray, *, epochs: int, epsilon: float, steps: int, clean_weight: float,
                 ramp_epochs: int, batch_size: int, learning_rate: float, seed: int,
                 verbose: bool = True) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train a fresh robust face CNN with PGD-``steps`` at ``epsilon`` (grey levels) inside every
    training step; ``clean_weight`` is the share of the loss on the clean faces.

    The budget grows linearly over the first ``ramp_epochs`` epochs (a small network learns
    nothing when attacked at full strength from the start). Each epoch sees a fresh augmented,
    shuffled copy of the training faces (lesson 1's augmentation, seeded).
    """
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_gender_cnn(ROBUST_FILTERS, name="gender_cnn_robust")
    trainer = AdversarialTraining(model, epsilon, steps=steps, clean_weight=clean_weight, seed=seed)
    total_steps = epochs * -(-len(labels) // batch_size)
    trainer.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, total_steps, alpha=0.1)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    started = time.perf_counter()

    def ramp(epoch: int) -> dict[str, float]:
        eps = epsilon * min(1.0, (epoch + 1) / ramp_epochs) if ramp_epochs > 0 else epsilon
        trainer.set_epsilon(eps)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: epsilon {eps:.2f} ({time.perf_counter() - started:.0f} s so far)", flush=True)
        return {"epsilon": eps}

    # Keras prints each epoch's loss and accuracy on the attacked training faces (verbose=2).
    history = fit_epochs(trainer, images, labels, epochs=epochs, batch_size=batch_size, rng=rng, before_epoch=ramp,
                         verbose=2 if verbose else 0)
    check_finite_weights(model, "training diverged", "Nothing was written; try a smaller --learning-rate.")
    if verbose:
        print(f"trained {epochs} epochs in {time.perf_counter() - started:.0f} s", flush=True)
    return model, history


def check_robust(s: argparse.Namespace) -> None:
    _common_checks(s)
    check_int("--steps", s.steps, minimum=1)
    check_int("--eval-steps", s.eval_steps, minimum=1)
    check_number("--epsilon", s.epsilon, minimum=0.0)


def run_robust(s: argparse.Namespace, faces: Faces) -> Trained:
    """Train the robust model, then measure it and lesson 1's model under PGD at each budget."""
    recipe = {k: getattr(s, k) for k in ROBUST_RECIPE}
    train_start = time.perf_counter()
    model, _ = train_robust(*faces.train, seed=s.seed, **recipe)
    train_seconds = time.perf_counter() - train_start
    x_test, y_test = faces.test
    standard = load_gender_cnn(s.standard_weights)
    print(f"measuring both models under PGD-{s.eval_steps} at epsilon {', '.join(f'{e:g}' for e in ROBUST_EPSILONS)}")
    accuracy = {name: [float(a) for a in robust_accuracy(m, x_test, y_test, ROBUST_EPSILONS, steps=s.eval_steps,
                                                         seed=s.seed, progress=True).accuracy]
                for name, m in (("standard", standard), ("robust", model))}
    report = {
        **recipe, "filters": ROBUST_FILTERS, "parameters": model.count_params(),
        "standard_parameters": standard.count_params(), "seed": s.seed, "split_seed": s.split_seed,
        "n_total": len(faces.labels), "n_train": len(faces.train_idx), "n_test": len(faces.test_idx),
        "train_seconds": train_seconds, "machine": machine_description(), "versions": versions(), "command": s.command,
        "eval_epsilons": ROBUST_EPSILONS, "eval_steps": s.eval_steps, "accuracy": accuracy,
        "clean_accuracy": evaluate(model, x_test, y_test),
        "per_class": group_accuracy(model, x_test, y_test, y_test),
        "per_race": group_accuracy(model, x_test, y_test, faces.races[faces.test_idx]) if faces.races is not None else {},
        "astronaut": astronaut_probabilities(model), "weights": s.out, "json": s.facts,
    }
    rob, std = accuracy["robust"], accuracy["standard"]
    summary = ("epsilon  standard  robust\n"
               + "\n".join(f"{e:7g}  {a:8.3f}  {b:6.3f}" for e, a, b in zip(ROBUST_EPSILONS, std, rob))
               + f"\ntrained in {train_seconds:.0f} s")
    return Trained(model, report, summary)


def robust_facts(r: dict[str, Any]) -> str:
    """The JSON lesson 4 reads (:func:`course_utils.models.faces.load_robustness`)."""
    data = {
        "description": "Accuracy on the held-out faces under an untargeted L-inf PGD attack, per budget "
                       "(grey levels). Written by tools/train_face_model.py --variant robust; the faces are not shipped.",
        "attack": {"method": "PGD", "norm": "linf", "steps": r["eval_steps"], "step_size": "2.5 * epsilon / steps",
                   "random_start": True, "seed": r["seed"]},
        "epsilons": list(r["eval_epsilons"]),
        "n_test": r["n_test"],
        "split_seed": r["split_seed"],
        "data": "UTKFace adults (non-commercial research and education only), held-out 20% of lesson 1's split",
        "models": {
            "standard": {"weights": "data/gender_cnn.weights.h5", "parameters": r["standard_parameters"],
                         "accuracy": [round(a, 6) for a in r["accuracy"]["standard"]]},
            "robust": {"weights": display_path(r["weights"]), "parameters": r["parameters"],
                       "accuracy": [round(a, 6) for a in r["accuracy"]["robust"]]},
        },
    }
    return json.dumps(data, indent=2) + "\n"


def robust_card(r: dict[str, Any]) -> dict[str, Any]:
    std, rob = r["accuracy"]["standard"], r["accuracy"]["robust"]
    f1, f2, f3 = r["filters"]
    cw = r["clean_weight"]
    return {
        **{k: r[k] for k in ("n_total", "n_train", "n_test", "split_seed", "seed", "batch_size", "steps", "ramp_epochs",
                             "epochs", "eval_steps", "machine", "versions", "command")},
        "weights": display_path(r["weights"]), "facts": display_path(r["json"]),
        "f1": f1, "f2": f2, "f3": f3, "flat": 36 * f3, "parameters": f"{r['parameters']:,}",
        "clean_share": " only" if cw == 0 else f" ({1 - cw:.2f}) and of the clean faces ({cw:.2f})",
        "first_epsilon": f"{r['epsilon'] / max(r['ramp_epochs'], 1):g}", "epsilon": f"{r['epsilon']:g}",
        "learning_rate": f"{r['learning_rate']:g}", "train_seconds": f"{r['train_seconds']:.0f}",
        "rows": _rows([(f"{e:g}", f"{a:.3f}", f"{b:.3f}") for e, a, b in zip(r["eval_epsilons"], std, rob)]),
        "clean_accuracy": f"{r['clean_accuracy']:.3f}", "standard_clean": f"{std[0]:.3f}",
        "per_class": _group_rows(r["per_class"], GENDER_CLASSES, code=True),
        "per_race": _group_rows(r["per_race"], RACE_NAMES, code=False),
        "p_man": f"{r['astronaut'][0]:.3f}", "p_woman": f"{r['astronaut'][1]:.3f}",
    }


# --------------------------------------------------------------------------------------------
# substitute: lesson 5's copy of lesson 1's model, grown from its answers, and transfer attacks
# --------------------------------------------------------------------------------------------
# The attacker of Papernot et al. (2017) can send faces to lesson 1's model (the *target*, a black
# box that answers "man" or "woman") and holds a small set of unlabelled faces, drawn from lesson
# 1's *training* split (their labels are never used); the held-out faces only measure. It grows
# its own network from the target's answers with Jacobian-based dataset augmentation, attacks
# that network white-box and sends the result to the target.

SUBSTITUTE = FACE_VARIANTS["substitute"]
#: The shipped recipe: sizes of the order of Papernot et al.'s (a seed set of 150 pictures, a handful
#: of rounds, a step of a tenth of the pixel range), not tuned on the held-out faces.
SUBSTITUTE_RECIPE = dict(seed_faces=150, rounds=6, epochs=10, lam=25.0, flip_every=3, learning_rate=1e-3, batch_size=32)
#: Budgets (grey levels) of the transfer numbers.
TRANSFER_EPSILONS: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0)


def build_substitute() -> keras.Model:
    """A fresh, untrained substitute (the ``substitute`` entry of ``FACE_VARIANTS``)."""
    return build_gender_cnn(SUBSTITUTE.filters, name="gender_cnn_substitute")


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


def check_substitute(s: argparse.Namespace) -> None:
    _common_checks(s)
    for name in ("rounds", "flip_every", "eval_steps"):
        check_int("--" + name.replace("_", "-"), getattr(s, name), minimum=1)
    check_number("--lam", s.lam, minimum=0.0, above=True)


def run_substitute(s: argparse.Namespace, faces: Faces) -> Trained:
    """Grow the substitute from lesson 1's model's answers; measure agreement and transfer."""
    started = time.perf_counter()
    x_test, y_test = faces.test
    seeds = faces.images[attacker_faces(faces.train_idx, s.seed_faces, s.seed)]
    target = load_gender_cnn()
    print(f"attacker: {len(seeds)} unlabelled training faces; measuring on {len(faces.test_idx)} held-out faces")
    recipe = {k: getattr(s, k) for k in SUBSTITUTE_RECIPE}
    model, history = train_substitute(
        target, build_substitute, seeds, rounds=s.rounds, epochs=s.epochs, lam=s.lam, flip_every=s.flip_every,
        learning_rate=s.learning_rate, batch_size=s.batch_size, eval_images=x_test, seed=s.seed, verbose=True)
    train_seconds = time.perf_counter() - started
    check_finite_weights(model, "training diverged", "Nothing was written; try a smaller --learning-rate.")
    print(f"grown in {train_seconds:.0f} s; measuring transfer at epsilon {', '.join(f'{e:g}' for e in TRANSFER_EPSILONS)}")
    transfer = measure_transfer(model, target, x_test, y_test, TRANSFER_EPSILONS, s.eval_steps, s.seed)
    rounds = history[["round", "set_size", "queries", "lam", "agreement"]].to_dict("records")
    report = {
        **recipe, "parameters": model.count_params(), "seed": s.seed, "split_seed": s.split_seed,
        "n_test": len(faces.test_idx), "queries": int(history.queries.iloc[-1]),
        "history": [{k: (float(v) if k in ("lam", "agreement") else int(v)) for k, v in row.items()} for row in rounds],
        "agreement": float(history.agreement.iloc[-1]),
        "substitute_accuracy": _accuracy(model, x_test, y_test), "target_accuracy": _accuracy(target, x_test, y_test),
        "transfer": transfer, "eval_epsilons": TRANSFER_EPSILONS, "eval_steps": s.eval_steps,
        "train_seconds": train_seconds, "machine": machine_description(), "versions": versions().replace("\n", " "),
        "command": s.command,
    }
    summary = "epsilon  noise  fgsm   pgd    white-box\n" + "\n".join(
        f"{e:7g}  {transfer['random_noise'][i]:.3f}  {transfer['transfer_fgsm'][i]:.3f}  {transfer['transfer_pgd'][i]:.3f}  "
        f"{transfer['white_box_pgd'][i]:.3f}" for i, e in enumerate(TRANSFER_EPSILONS))
    return Trained(model, report, summary)


def substitute_facts(r: dict[str, Any]) -> str:
    """The JSON lesson 5 reads (``face_facts("substitute")``)."""
    data = {
        "description": "Lesson 5's substitute, grown from lesson 1's model's labels alone (Papernot et al., 2017). "
                       "Written by tools/train_face_model.py --variant substitute; the faces are not shipped.",
        "target": "data/gender_cnn.weights.h5 (lesson 1's model), top-1 label only",
        "filters": list(SUBSTITUTE.filters),
        "parameters": r["parameters"],
        "recipe": {k: r[k] for k in SUBSTITUTE_RECIPE},
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


def substitute_card(r: dict[str, Any]) -> dict[str, Any]:
    f1, f2, f3 = SUBSTITUTE.filters
    t = r["transfer"]
    return {
        **{k: r[k] for k in ("seed_faces", "seed", "epochs", "batch_size", "flip_every", "rounds", "n_test", "split_seed",
                             "eval_steps", "machine", "versions", "command")},
        "weights_name": SUBSTITUTE.weights.name, "f1": f1, "f2": f2, "f3": f3, "parameters": f"{r['parameters']:,}",
        "learning_rate": f"{r['learning_rate']:g}", "lam": f"{r['lam']:g}", "queries": f"{r['queries']:,}",
        "train_seconds": f"{r['train_seconds']:.0f}",
        "rows": _rows([(h["round"], h["set_size"], h["queries"], format(h["lam"], "+g") if h["lam"] else "none",
                        f"{h['agreement']:.3f}") for h in r["history"]]),
        "substitute_accuracy": f"{r['substitute_accuracy']:.3f}", "target_accuracy": f"{r['target_accuracy']:.3f}",
        "transfer": _rows([(f"{e:g}", *(f"{t[k][i]:.3f}" for k in ("random_noise", "transfer_fgsm", "transfer_pgd",
                                                                   "white_box_pgd", "transfer_pgd_changed",
                                                                   "substitute_fooled")))
                           for i, e in enumerate(r["eval_epsilons"])]),
    }


# --------------------------------------------------------------------------------------------
# distilled: lesson 7's defensive distillation, and the feature-squeezing detector
# --------------------------------------------------------------------------------------------
# Papernot, McDaniel, Wu, Jha & Swami (IEEE S&P 2016): train a *teacher* with its softmax at
# temperature T (``softmax(z / T)``), label the training faces with the teacher's probabilities
# at T, train the *distilled* model at T on those soft labels, and deploy it at T = 1. Its logits
# come out about T times larger than a normal model's, so its softmax saturates. Each batch's
# soft labels are the teacher's answer on the same augmented faces the distilled model sees.

DISTILLED = FACE_VARIANTS["distilled"]
DISTILLED_RECIPE = dict(temperature=100.0, epochs=30, batch_size=32, learning_rate=4e-3)
DISTILLED_EPSILONS: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
DISTILLED_EVAL_STEPS = 20
#: The detector's false-positive target, the attack it is measured against, and its calibration faces.
DETECT = dict(fpr=0.05, epsilon=8.0, steps=50, calibration_faces=1000)


def build_distilled() -> keras.Model:
    return build_gender_cnn(DISTILLED.filters, name="gender_cnn_distilled")


def check_temperature(temperature: Any) -> float:
    """``temperature`` as a float > 0, or a ``ValueError`` saying what T is."""
    return check_number("temperature T", temperature, minimum=0.0, above=True)


class AtTemperature(keras.Model):
    """Trains ``model`` with its softmax at temperature ``T``: cross-entropy of ``softmax(z / T)``
    to the one-hot labels (``teacher=None``) or to ``softmax(teacher(x) / T)`` on the same batch."""

    def __init__(self, model: keras.Model, temperature: float, teacher: keras.Model | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.teacher, self.temperature = model, teacher, float(temperature)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.model(x, training=training)

    def train_step(self, data: Any) -> dict:
        x, y = data
        if self.teacher is None:
            target = tf.one_hot(tf.cast(y, tf.int32), 2)
        else:
            target = tf.nn.softmax(self.teacher(x, training=False) / self.temperature)
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits / self.temperature))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(target, -1)), tf.float32))
        return {"loss": loss, "agreement": accuracy}


def train_at_temperature(images: np.ndarray, labels: np.ndarray, *, temperature: float, epochs: int, batch_size: int,
                         learning_rate: float, seed: int, teacher: keras.Model | None = None, verbose: bool = True) -> keras.Model:
    """A fresh face CNN (the distilled entry's filters) trained at ``temperature`` (seeded)."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_gender_cnn(DISTILLED.filters, name="gender_cnn_distilled" if teacher is not None else "teacher")
    trainer = AtTemperature(model, temperature, teacher)
    total = epochs * -(-len(labels) // batch_size)
    trainer.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, total, alpha=0.1)))
    fit_epochs(trainer, images, labels, epochs=epochs, batch_size=batch_size, rng=rng, verbose=2 if verbose else 0)
    check_finite_weights(model, "training diverged", "Nothing was written; try a smaller --learning-rate.")
    return model


def ce_gradient_share(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``images`` whose cross-entropy gradient w.r.t. the pixels is exactly zero (float32)."""
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(labels, tf.int32), model(x, training=False))
    g = tape.gradient(loss, x).numpy().reshape(len(images), -1)
    return float(np.mean(np.all(g == 0, axis=1)))


def measure_detector(model: keras.Model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """Feature squeezing on ``model``: threshold from clean ``calibration`` faces, rates on ``x``."""
    squeezers = default_squeezers()
    threshold = threshold_for_fpr(detector_scores(model, calibration, squeezers), DETECT["fpr"])
    clean = detector_scores(model, x, squeezers)
    correct = np.asarray(model(x, training=False)).argmax(-1) == y
    # the plain attacker ignores the detector and sends the first change that fools the model
    plain = pgd_attack(model, x, y, DETECT["epsilon"], steps=DETECT["steps"], seed=seed, batch_size=256, stop_at_success=True)
    fooled = plain.success & correct
    plain_scores = detector_scores(model, plain.adversarial, squeezers)
    full = pgd_attack(model, x, y, DETECT["epsilon"], steps=DETECT["steps"], seed=seed, batch_size=256)  # all steps
    full_fooled = full.success & correct
    full_scores = detector_scores(model, full.adversarial, squeezers)
    adv = adaptive_attack(model, x, y, DETECT["epsilon"], threshold, steps=DETECT["steps"], seed=seed)
    adv_fooled = (np.asarray(model(adv, training=False)).argmax(-1) != y) & correct
    adv_scores = detector_scores(model, adv, squeezers)
    return {
        "squeezers": [s.name for s in squeezers], "fpr_target": DETECT["fpr"], "threshold": round(threshold, 6),
        "calibration_faces": len(calibration), "epsilon": DETECT["epsilon"], "steps": DETECT["steps"],
        "clean_fpr": round(detection_rate(clean, threshold), 6),
        "plain_fooled": round(float(fooled.mean()), 6),
        "plain_detection": round(detection_rate(plain_scores[fooled], threshold), 6),
        "full_steps_fooled": round(float(full_fooled.mean()), 6),
        "full_steps_detection": round(detection_rate(full_scores[full_fooled], threshold), 6),
        "adaptive_fooled": round(float(adv_fooled.mean()), 6),
        "adaptive_detection": round(detection_rate(adv_scores[adv_fooled], threshold), 6) if adv_fooled.any() else 0.0,
        "adaptive_evaded": round(float(np.mean(adv_fooled & (adv_scores <= threshold))), 6),
        "plain_evaded": round(float(np.mean(fooled & (plain_scores <= threshold))), 6),
    }


def check_distilled(s: argparse.Namespace) -> None:
    _common_checks(s)
    try:
        check_temperature(s.temperature)
    except ValueError as error:
        raise ValueError(f"{error}: T divides the logits before the softmax; Papernot et al. used T = 100") from None


def run_distilled(s: argparse.Namespace, faces: Faces) -> Trained:
    """Train teacher and distilled model at T; measure both face models under CE and margin PGD,
    and the squeezing detector on lesson 1's model."""
    if len(faces.train_idx) < DETECT["calibration_faces"]:
        raise ValueError(f"the detector is calibrated on {DETECT['calibration_faces']} training faces, and the data "
                         f"has only {len(faces.train_idx)}")
    recipe = {k: getattr(s, k) for k in ("epochs", "batch_size", "learning_rate")}
    started = time.perf_counter()
    teacher = train_at_temperature(*faces.train, temperature=s.temperature, seed=s.seed, **recipe)
    model = train_at_temperature(*faces.train, temperature=s.temperature, seed=s.seed + 1, teacher=teacher, **recipe)
    train_seconds = time.perf_counter() - started
    x, y = faces.test
    models = {"standard": load_gender_cnn(), "distilled": model}
    robust = {name: {loss: [round(float(a), 6) for a in robust_accuracy(
        m, x, y, DISTILLED_EPSILONS, steps=DISTILLED_EVAL_STEPS, seed=s.seed, loss=loss).accuracy] for loss in ("ce", "margin")}
        for name, m in models.items()}
    gap = {name: float(np.median(np.abs(np.diff(np.asarray(m(x, training=False)), axis=-1)))) for name, m in models.items()}
    calibration = faces.images[np.random.default_rng(s.seed).choice(faces.train_idx, DETECT["calibration_faces"], replace=False)]
    report = {
        "temperature": s.temperature, "recipe": recipe, "seed": s.seed, "n_train": len(faces.train_idx),
        "n_test": len(faces.test_idx),
        "clean": {name: round(evaluate(m, x, y), 6) for name, m in models.items()}, "robust": robust,
        "zero_grad": {name: round(ce_gradient_share(m, x, y), 6) for name, m in models.items()},
        "gap": {k: round(v, 3) for k, v in gap.items()},
        "detector": measure_detector(models["standard"], calibration, x, y, s.seed),
        "astronaut": [float(p) for p in astronaut_probabilities(model)], "train_seconds": train_seconds,
        "command": s.command, "machine": machine_description(), "versions": versions(),
    }
    summary = json.dumps({k: report[k] for k in ("clean", "robust", "zero_grad", "gap", "detector")}, indent=1)
    return Trained(model, report, summary + f"\ntrained in {train_seconds:.0f} s")


def distilled_facts(r: dict[str, Any]) -> str:
    """The JSON lesson 7 reads (``face_facts("distilled")``)."""
    return json.dumps({
        "description": "Lesson 6's distilled face CNN: facts measured on the held-out faces (not shipped) by "
                       "tools/train_face_model.py --variant distilled.",
        "temperature": r["temperature"], "recipe": r["recipe"], "filters": list(DISTILLED.filters), "seed": r["seed"],
        "n_test": r["n_test"], "split_seed": 0, "clean_accuracy": r["clean"],
        "attack": {"method": "PGD", "norm": "linf", "steps": DISTILLED_EVAL_STEPS, "step_size": "2.5 * epsilon / steps",
                   "random_start": True, "losses": {"ce": "cross-entropy", "margin": "Carlini & Wagner logit margin, kappa 0"}},
        "epsilons": list(DISTILLED_EPSILONS), "robust_accuracy": r["robust"],
        "zero_ce_gradient_share": r["zero_grad"], "median_abs_logit_gap": r["gap"],
        "detector": r["detector"],
    }, indent=2) + "\n"


def distilled_card(r: dict[str, Any]) -> dict[str, Any]:
    rob, d = r["robust"], r["detector"]
    f1, f2, f3 = DISTILLED.filters
    return {
        **{k: r[k] for k in ("n_train", "n_test", "seed", "machine", "versions", "command")},
        **{k: r["recipe"][k] for k in ("epochs", "batch_size")},
        "f1": f1, "f2": f2, "f3": f3, "temperature": f"{r['temperature']:g}",
        "gap_distilled": f"{r['gap']['distilled']:.0f}", "gap_standard": f"{r['gap']['standard']:.1f}",
        "zero_grad_distilled": f"{r['zero_grad']['distilled']:.0%}", "zero_grad_standard": f"{r['zero_grad']['standard']:.0%}",
        "learning_rate": f"{r['recipe']['learning_rate']:g}", "train_seconds": f"{r['train_seconds']:.0f}",
        "clean_distilled": f"{r['clean']['distilled']:.3f}", "clean_standard": f"{r['clean']['standard']:.3f}",
        "p_man": f"{r['astronaut'][0]:.3f}", "p_woman": f"{r['astronaut'][1]:.3f}", "eval_steps": DISTILLED_EVAL_STEPS,
        "rows": _rows([(f"{e:g}", *(f"{rob[m][loss][i]:.3f}" for m in ("standard", "distilled") for loss in ("ce", "margin")))
                       for i, e in enumerate(DISTILLED_EPSILONS)]),
        "squeezers": ", ".join(d["squeezers"]), "threshold": f"{d['threshold']:.4f}", "fpr_target": f"{d['fpr_target']:.0%}",
        "calibration_faces": d["calibration_faces"], "detect_steps": d["steps"], "detect_epsilon": f"{d['epsilon']:g}",
        **{k: f"{d[k]:.3f}" for k in ("clean_fpr", "plain_fooled", "plain_detection", "full_steps_detection",
                                      "adaptive_fooled", "adaptive_detection", "adaptive_evaded")},
    }


# --------------------------------------------------------------------------------------------
# noisy: lesson 7's base classifier of randomized smoothing, and its certified accuracy
# --------------------------------------------------------------------------------------------
# Cohen, Rosenfeld & Kolter (2019) train the base classifier on inputs with the same Gaussian noise
# (standard deviation sigma) that the smoothed classifier adds, so that it still answers well on
# noisy faces. Here every training face (after lesson 1's augmentation) gets fresh noise
# N(0, sigma^2) per pixel, in grey levels, without clipping, exactly what ``certify`` adds.

NOISY = FACE_VARIANTS["noisy"]
#: The shipped recipe. sigma in grey levels (pixels 0..255); 24 is 0.094 on a 0..1 scale.
NOISY_RECIPE = {"sigma": 24.0, "epochs": 30, "batch_size": 32, "learning_rate": 1e-3}
#: Certification of the JSON's curve (Cohen et al. used n0 = 100, n = 100,000, alpha = 0.001).
CERTIFY = {"n0": 100, "n": 2000, "alpha": 0.001}
#: L2 radii (grey levels) of the certified-accuracy curve.
RADII: tuple[float, ...] = (0.0, 4.0, 8.0, 16.0, 24.0, 32.0, 48.0, 64.0)
#: The fewest faces of each class robust and noisy training accept.
MIN_FACES_PER_CLASS = 10


def build_noisy() -> keras.Model:
    """The noisy variant's architecture (lesson 1's layout with its filters)."""
    return build_gender_cnn(NOISY.filters, name="gender_cnn_noisy")


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
    model = build_noisy()
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


def check_noisy(s: argparse.Namespace) -> None:
    _common_checks(s)
    check_number("--sigma (the noise's standard deviation, grey levels)", s.sigma, minimum=0.0, above=True)
    check_int("--n0", s.n0, minimum=1)
    check_int("--n", s.n, minimum=1)
    check_int("--certify-faces", s.certify_faces, minimum=0)
    check_number("--alpha", s.alpha, minimum=0.0, maximum=1.0, above=True, below=True)


def run_noisy(s: argparse.Namespace, faces: Faces) -> Trained:
    """Train the noisy base model, measure it on clean and noisy held-out faces, and certify the
    smoothed classifier on them (all of them, or a seeded subset of ``--certify-faces``)."""
    recipe = {k: getattr(s, k) for k in NOISY_RECIPE}
    train_start = time.perf_counter()
    model = train_noisy(*faces.train, seed=s.seed, **recipe)
    train_seconds = time.perf_counter() - train_start
    x_test, y_test = faces.test
    clean = evaluate(model, x_test, y_test)
    noisy = noisy_accuracy(model, x_test, y_test, s.sigma, s.seed)
    print(f"base accuracy: clean {clean:.3f}, noisy {noisy:.3f}; certifying", flush=True)
    pick = np.arange(len(faces.test_idx))
    if 0 < s.certify_faces < len(pick):
        pick = np.sort(np.random.default_rng(s.seed).choice(len(pick), s.certify_faces, replace=False))
    cert_start = time.perf_counter()
    result = certify(model, x_test[pick], s.sigma, s.n0, s.n, s.alpha, seed=s.seed)
    certify_seconds = time.perf_counter() - cert_start
    right = (~result.abstained) & (result.predicted == y_test[pick])
    report = {
        **recipe, "n0": s.n0, "n": s.n, "alpha": s.alpha,
        "parameters": model.count_params(), "seed": s.seed, "split_seed": s.split_seed,
        "n_total": len(faces.labels), "n_train": len(faces.train_idx), "n_test": len(faces.test_idx), "n_certified": len(pick),
        "train_seconds": train_seconds, "certify_seconds": certify_seconds,
        "machine": machine_description(), "versions": versions(), "command": s.command, "clean": clean, "noisy": noisy,
        "radii": RADII, "certified": [float(a) for a in certified_accuracy(result, y_test[pick], RADII)],
        "abstained": float(np.mean(result.abstained)),
        "median_radius": float(np.median(result.radius[right])) if right.any() else 0.0,
        "max_radius": float(s.sigma * statistics.NormalDist().inv_cdf(s.alpha ** (1 / s.n))),
        "astronaut": astronaut_probabilities(model), "weights": s.out, "json": s.facts,
    }
    summary = ("radius  certified accuracy\n" + "\n".join(f"{e:6g}  {a:.3f}" for e, a in zip(RADII, report["certified"]))
               + f"\ntrained in {train_seconds:.0f} s, certified in {certify_seconds:.0f} s")
    return Trained(model, report, summary)


def noisy_facts(r: dict[str, Any]) -> str:
    """The JSON lesson 7 reads (``course_utils.models.faces.face_facts("noisy")``)."""
    data = {
        "description": "Lesson 6's noise-trained face CNN (the base classifier f of randomized smoothing) and the "
                       "certified accuracy of its smoothed classifier g on the held-out faces. Pixels 0..255; "
                       "sigma and radii in grey levels (L2). Written by tools/train_face_model.py --variant noisy; "
                       "the faces are not shipped.",
        "sigma": r["sigma"],
        "filters": list(NOISY.filters),
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


def noisy_card(r: dict[str, Any]) -> dict[str, Any]:
    f1, f2, f3 = NOISY.filters
    return {
        **{k: r[k] for k in ("n_total", "split_seed", "n_train", "n_test", "epochs", "batch_size", "seed", "n", "n0",
                             "n_certified", "machine", "versions", "command")},
        "weights": display_path(r["weights"]), "facts": display_path(r["json"]),
        "f1": f1, "f2": f2, "f3": f3, "parameters": f"{r['parameters']:,}", "sigma": f"{r['sigma']:g}",
        "learning_rate": f"{r['learning_rate']:g}", "alpha": f"{r['alpha']:g}",
        "train_seconds": f"{r['train_seconds']:.0f}", "certify_seconds": f"{r['certify_seconds']:.0f}",
        "clean": f"{r['clean']:.3f}", "noisy": f"{r['noisy']:.3f}", "abstained": f"{100 * r['abstained']:.1f}",
        "max_radius": f"{r['max_radius']:.1f}",
        "rows": _rows([(f"{e:g}", f"{a:.3f}") for e, a in zip(r["radii"], r["certified"])]),
        "p_man": f"{r['astronaut'][0]:.3f}", "p_woman": f"{r['astronaut'][1]:.3f}",
    }


# --------------------------------------------------------------------------------------------
# The table of variants
# --------------------------------------------------------------------------------------------

#: The face models ``tools/train_face_model.py --variant`` trains, by name.
VARIANTS: dict[str, Variant] = {
    "gender": Variant(
        "gender", "lesson 1's gender CNN",
        dict(epochs=30, seed=0, split_seed=0, batch_size=32, learning_rate=1e-3, no_augment=False, no_cosine_decay=False),
        out=DEFAULT_WEIGHTS, card=None, facts=None, build=build_gender_cnn, check=_common_checks,
        run=run_gender, card_fields=gender_card),
    "robust": Variant(
        "robust", "lesson 4's adversarially trained face CNN",
        {**ROBUST_RECIPE, "seed": 0, "split_seed": 0, "eval_steps": 20, "standard_weights": None},
        out=ROBUST_WEIGHTS, card=ROBUST_CARD, facts=ROBUSTNESS_JSON, build=functools.partial(build_gender_cnn, ROBUST_FILTERS, name="gender_cnn_robust"), check=check_robust,
        run=run_robust, card_fields=robust_card, facts_json=robust_facts, min_faces_per_class=MIN_FACES_PER_CLASS),
    "substitute": Variant(
        "substitute", SUBSTITUTE.what, {**SUBSTITUTE_RECIPE, "seed": 0, "split_seed": 0, "eval_steps": 20},
        out=SUBSTITUTE.weights, card=SUBSTITUTE.card, facts=SUBSTITUTE.facts, build=build_substitute,
        check=check_substitute, run=run_substitute, card_fields=substitute_card, facts_json=substitute_facts),
    "distilled": Variant(
        "distilled", DISTILLED.what, {**DISTILLED_RECIPE, "seed": 0},
        out=DISTILLED.weights, card=DISTILLED.card, facts=DISTILLED.facts, build=build_distilled,
        check=check_distilled, run=run_distilled, card_fields=distilled_card, facts_json=distilled_facts),
    "noisy": Variant(
        "noisy", NOISY.what, {**NOISY_RECIPE, **CERTIFY, "certify_faces": 0, "seed": 0, "split_seed": 0},
        out=NOISY.weights, card=NOISY.card, facts=NOISY.facts, build=build_noisy, check=check_noisy,
        run=run_noisy, card_fields=noisy_card, facts_json=noisy_facts, min_faces_per_class=MIN_FACES_PER_CLASS),
}

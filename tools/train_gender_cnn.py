"""Train the small gender CNN of lesson 1 and write its weights and model card (a developer tool).

Only the course's developers need this: the trained weights ship as ``course_utils/data/gender_cnn.weights.h5``.
Retraining needs the shared face set ``../shared/data/faces48.npz`` (UTKFace adults, 48x48
grayscale; non-commercial research and education only, never shipped). From the repository root::

    python tools/train_gender_cnn.py --data ../shared/data/faces48.npz \\
        --out course_utils/data/gender_cnn.weights.h5 --card course_utils/data/gender_cnn.md

``--card-only`` rewrites only the model card from the weights in ``--out`` (never written then).
The training itself lives in :mod:`tools.facetrain.training`; this file is its command line.
Errors are one line on stderr, exit status 1, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

import course_utils  # noqa: E402,F401  (quiets TensorFlow's start-up before Keras imports it)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tools.facetrain.data import DEFAULT_DATA, FaceDataError, read_face_set, split_faces  # noqa: E402
from tools.facetrain.outputs import check_writable, write_files_together  # noqa: E402
from course_utils.models.faces import GENDER_CLASSES, load_gender_cnn  # noqa: E402
from tools.facetrain.card import (  # noqa: E402
    astronaut_probabilities,
    display_path,
    machine_description,
    model_card,
    training_facts_from_card,
    versions,
)
from tools.facetrain.training import (  # noqa: E402
    DEFAULT_EPOCHS,
    check_training_settings,
    check_weights_name,
    evaluate,
    group_accuracy,
    train_gender_cnn,
    weights_writer,
)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tools/train_gender_cnn.py",
        description="Train the lesson-1 gender CNN on the shared face set and save its weights.",
    )
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"face set .npz (default {DEFAULT_DATA})")
    parser.add_argument("--out", default="course_utils/data/gender_cnn.weights.h5", help="weights file to write (read with --card-only)")
    parser.add_argument("--card", default=None, help="model card (markdown) to write, optional")
    parser.add_argument(
        "--card-only", action="store_true",
        help="do not train: rewrite only --card from the weights in --out, keeping the training run's facts from the existing card",
    )
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and training")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--no-augment", action="store_true", help="train without flips and shifts")
    parser.add_argument("--no-cosine-decay", action="store_true", help="keep the learning rate constant")
    return parser


def _retrain_command(args: argparse.Namespace) -> str:
    """The command that retrains with ``args``' settings, as the card prints it."""
    return (
        f"python tools/train_gender_cnn.py --data {display_path(args.data)} "
        f"--out {display_path(args.out)} --epochs {args.epochs} --seed {args.seed}"
        + (f" --split-seed {args.split_seed}" if args.split_seed else "")
        + (f" --batch-size {args.batch_size}" if args.batch_size != 32 else "")
        + (f" --learning-rate {args.learning_rate:g}" if args.learning_rate != 1e-3 else "")
        + (" --no-augment" if args.no_augment else "")
        + (" --no-cosine-decay" if args.no_cosine_decay else "")
        + (f" --card {display_path(args.card)}" if args.card else "")
    )


def _measure(model: keras.Model, images: np.ndarray, labels: np.ndarray, races: np.ndarray | None, test_idx: np.ndarray) -> dict[str, Any]:
    """What the card reports that depends only on the weights and the data."""
    x_test, y_test = images[test_idx], labels[test_idx]
    return {
        "accuracy": evaluate(model, x_test, y_test),
        "per_class": group_accuracy(model, x_test, y_test, y_test),
        "per_race": group_accuracy(model, x_test, y_test, races[test_idx]) if races is not None else {},
        "astronaut": astronaut_probabilities(model),
    }


def _run(args: argparse.Namespace) -> int:
    """The command line's work; raises the course's errors, which :func:`main` prints."""
    started = time.perf_counter()
    # 1. Everything that can be checked before a long run.
    check_training_settings(args.epochs, args.batch_size, args.learning_rate)
    out = check_weights_name(args.out)
    if args.card_only:
        if not args.card:
            raise ValueError("--card-only needs --card, the model card to rewrite")
        card_path = Path(args.card)
        if not card_path.is_file():
            raise FileNotFoundError(f"--card-only rewrites an existing card, and there is none at {card_path}; retrain to write one")
        old_facts = training_facts_from_card(card_path.read_text(encoding="utf-8"))
        model = load_gender_cnn(out)  # refuses missing, damaged or non-finite weights
    else:
        check_writable(out, "--out (the weights file)")
    if args.card:
        check_writable(args.card, "--card (the model card)")
    images, labels, races = read_face_set(args.data)
    train_idx, test_idx = split_faces(labels, test_fraction=0.2, seed=args.split_seed)
    print(
        f"data: {len(labels)} faces; train {len(train_idx)}, held-out test {len(test_idx)} "
        f"(stratified, split seed {args.split_seed})"
    )
    report: dict[str, Any] = {
        "n_total": len(labels),
        "n_class": {c: int(np.sum(labels == c)) for c in (0, 1)},
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "split_seed": args.split_seed,
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "augment": not args.no_augment,
        "cosine_decay": not args.no_cosine_decay,
        "command": _retrain_command(args),
    }
    # 2. Train (or, with --card-only, take the weights and the old card's training facts).
    if args.card_only:
        report.update(old_facts)
    else:
        tf.config.experimental.enable_op_determinism()
        train_start = time.perf_counter()
        model, history = train_gender_cnn(
            images[train_idx],
            labels[train_idx],
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            augment=not args.no_augment,
            cosine_decay=not args.no_cosine_decay,
            verbose=0,
        )
        report.update(
            train_seconds=time.perf_counter() - train_start,
            train_accuracy=history["accuracy"][-1],
            machine=machine_description(),
            versions=versions(),
        )
    report.update(_measure(model, images, labels, races, test_idx))
    print(
        f"held-out test accuracy {report['accuracy']:.4f} ("
        + ", ".join(f"{GENDER_CLASSES[c]} {a:.3f}" for c, (_, a) in report["per_class"].items())
        + ")" + ("" if args.card_only else f"; trained {args.epochs} epochs in {report['train_seconds']:.1f} s")
    )
    # 3. Write weights and card together, or nothing.
    writers: dict[Path, Any] = {}
    if not args.card_only:
        writers[out] = weights_writer(model)
    if args.card:
        text = model_card(report)
        writers[Path(args.card)] = lambda temp: temp.write_text(text, encoding="utf-8")
    for path in write_files_together(writers):
        print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train, evaluate on the held-out split, write weights and model card.

    Returns 0 on success and 1 after printing one line ``... error: <what and how to fix>`` to
    stderr when the data, the settings or an output location is refused (nothing is written
    then); bad options exit with status 2 (argparse).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (FaceDataError, FileNotFoundError, ValueError, OSError) as error:
        message = " ".join(str(error).split())  # one line
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

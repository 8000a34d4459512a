"""Train the small gender CNN of lesson 1 and write its weights and model card.

Only the course's developers need this: the trained weights ship as ``data/gender_cnn.weights.h5``
and :func:`course_utils.gender_cnn.load_gender_cnn` loads them without any dataset. Retraining
needs the shared face set ``../shared/data/faces48.npz`` (UTKFace adults, 48x48 grayscale;
non-commercial research and education only, never shipped).

Run from the repository root::

    python -m course_utils.train_gender_cnn --data ../shared/data/faces48.npz \\
        --out data/gender_cnn.weights.h5 --card data/gender_cnn.md

``--card-only`` rewrites only the model card from the weights in ``--out`` (never written then).

Everything is seeded (``keras.utils.set_random_seed`` plus TensorFlow's deterministic ops in the
command-line run), so the same seed, data and library versions give the same weights.

The command never leaves half a result: the data (:func:`course_utils.face_data.check_faces`) and
the output locations are checked before training, training that ends with non-finite weights
writes nothing, and weights and card are written together or not at all
(:func:`course_utils.files.write_files_together`). Errors are one line on stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

from course_utils.face_data import (
    DEFAULT_DATA,
    RACE_NAMES,
    FaceDataError,
    augment_faces,
    check_faces,
    load_faces,
    read_face_set,
    split_faces,
)
from course_utils.files import check_writable, write_files_together
from course_utils.gender_cnn import GENDER_CLASSES, build_gender_cnn, check_finite_weights, load_gender_cnn
from course_utils.model_card import (
    astronaut_probabilities,
    display_path,
    machine_description,
    model_card,
    training_facts_from_card,
    versions,
)

__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_EPOCHS",
    "RACE_NAMES",
    "load_faces",
    "split_faces",
    "augment_faces",
    "train_gender_cnn",
    "evaluate",
    "group_accuracy",
    "save_weights_atomically",
    "astronaut_probabilities",
    "main",
]

#: Epochs of the shipped model.
DEFAULT_EPOCHS: int = 30


# --------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------


def train_gender_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    augment: bool = True,
    cosine_decay: bool = True,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train a fresh gender CNN with Adam on sparse softmax cross-entropy.

    Args:
        images: float32 ``(N, 48, 48, 1)`` grayscale pixels in 0..255 (as from :func:`load_faces`).
        labels: ``(N,)`` integers, 0 = man, 1 = woman.
        epochs: passes over the training images.
        batch_size: images per gradient step.
        learning_rate: Adam's step size.
        seed: seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed``): initial
            weights, shuffling and augmentation are reproducible.
        validation: optional ``(images, labels)`` evaluated after each epoch, for monitoring
            only (never use the held-out test set here).
        augment: draw a new random variant of each training image every epoch
            (:func:`augment_faces` with its defaults: left-right mirror, shift of up to 3 pixels,
            brightness within +-25 grey levels, contrast within a factor 1.25).
        cosine_decay: lower the learning rate along a cosine from ``learning_rate`` to a tenth of
            it over the whole run (steadier final weights); ``False`` keeps it constant.
        verbose: Keras' progress output (0 silent, 1 progress bar, 2 one line per epoch).

    Returns:
        ``(model, history)``: the trained model (pixels -> logits) and a dict of per-epoch lists:
        ``loss`` and ``accuracy`` on the (augmented) training images, ``val_loss`` and
        ``val_accuracy`` when ``validation`` is given, and ``seconds`` (wall time per epoch).

    Raises:
        FaceDataError: data :func:`course_utils.face_data.check_faces` refuses (NaN, not 0..255,
            one class only, no faces).
        ValueError: settings out of range, or training ended with NaN or infinite weights (the
            message suggests a smaller learning rate).
    """
    images, labels = check_faces(images, labels, where="the training faces")
    check_training_settings(epochs, batch_size, learning_rate)

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_gender_cnn()
    steps = epochs * -(-len(labels) // batch_size)
    schedule = (
        keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.1)
        if cosine_decay
        else learning_rate
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    validation_data = None
    if validation is not None:
        x_val, y_val = _as_images(validation[0]), np.asarray(validation[1], dtype=np.int64)
        validation_data = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(256)
    history: dict[str, list[float]] = {}
    for epoch in range(epochs):
        start = time.perf_counter()
        # Augment and shuffle with NumPy (seeded), then feed plain batches: reproducible, and
        # no parallel map stages in the input pipeline.
        order = rng.permutation(len(labels))
        x = augment_faces(images[order], rng) if augment else images[order]
        batches = tf.data.Dataset.from_tensor_slices((x, labels[order])).batch(batch_size)
        fit = model.fit(
            batches,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,  # already shuffled above
            validation_data=validation_data,
            verbose=verbose,
        )
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("seconds", []).append(time.perf_counter() - start)
    check_finite_weights(
        model,
        f"training diverged (learning rate {learning_rate:g}, {epochs} epochs)",
        "Nothing was saved; try a smaller learning rate (--learning-rate).",
    )
    return model, history


def check_training_settings(epochs: Any, batch_size: Any, learning_rate: Any) -> None:
    """Refuse epochs or batch sizes that are not whole numbers >= 1 and learning rates that are
    not finite positive numbers, quoting the value."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")


def _as_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    return images[..., None] if images.ndim == 3 else images


def _predict_classes(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted class per image, computed batch by batch (no input pipeline needed)."""
    images = _as_images(images)
    return np.concatenate(
        [
            np.argmax(np.asarray(model(images[i : i + batch_size], training=False)), axis=-1)
            for i in range(0, len(images), batch_size)
        ]
    ) if len(images) else np.zeros(0, dtype=np.int64)


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of ``model`` on ``images``: the share of predicted classes equal to ``labels``.

    Args:
        model: maps float32 ``(N, 48, 48, 1)`` pixels in 0..255 to ``(N, 2)`` logits.
        images: ``(N, 48, 48, 1)`` or ``(N, 48, 48)`` pixels in 0..255.
        labels: ``(N,)`` integers, 0 = man, 1 = woman.

    Returns:
        Accuracy in 0..1 (a Python float).
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("cannot evaluate on an empty set of images")
    return float(np.mean(_predict_classes(model, images) == labels))


def group_accuracy(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> dict[int, tuple[int, float]]:
    """Accuracy within each group (e.g. per class or per race code).

    Returns:
        ``{group value: (number of images, accuracy in 0..1)}``, sorted by group value.
    """
    correct = _predict_classes(model, images) == np.asarray(labels)
    groups = np.asarray(groups)
    return {
        int(g): (int(np.sum(groups == g)), float(np.mean(correct[groups == g])))
        for g in np.unique(groups)
    }


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _weights_writer(model: keras.Model):
    def write(temp: Path) -> None:
        clean = build_gender_cnn()  # a fresh copy holds only the layer weights, not the optimizer's state
        clean.set_weights(model.get_weights())
        clean.save_weights(temp)

    return write


def save_weights_atomically(model: keras.Model, path: str | Path) -> Path:
    """Save ``model``'s weights to ``path`` (``*.weights.h5``) without ever leaving half a file.

    The weights go to a temporary file in the same folder first, which then replaces ``path`` in
    one step (``os.replace``); if anything fails, the old file stays as it was.
    """
    path = _check_weights_name(path)
    write_files_together({path: _weights_writer(model)})
    return path


def _check_weights_name(path: str | Path) -> Path:
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"Keras weights files must end in '.weights.h5', got {path.name!r}")
    return path


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.train_gender_cnn",
        description="Train the lesson-1 gender CNN on the shared face set and save its weights.",
    )
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"face set .npz (default {DEFAULT_DATA})")
    parser.add_argument("--out", default="data/gender_cnn.weights.h5", help="weights file to write (read with --card-only)")
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
        f"python -m course_utils.train_gender_cnn --data {display_path(args.data)} "
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
    out = _check_weights_name(args.out)
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
        writers[out] = _weights_writer(model)
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

"""Training and measuring the face CNNs: lesson 1's model, the epoch loop every variant uses,
accuracy overall and per group, and weights written without leaving half a file.

Only the course's developers need this: the trained weights ship as ``data/gender_cnn.weights.h5``
and :func:`course_utils.models.faces.load_gender_cnn` loads them without any dataset. Retraining
needs the shared face set ``../shared/data/faces48.npz`` (UTKFace adults, 48x48 grayscale;
non-commercial research and education only, never shipped). The command line is
``tools/train_face_model.py``, run from the repository root::

    python tools/train_face_model.py --variant gender --data ../shared/data/faces48.npz \\
        --out data/gender_cnn.weights.h5 --card data/gender_cnn.md

Everything is seeded (``keras.utils.set_random_seed`` plus TensorFlow's deterministic ops in the
command-line run), so the same seed, data and library versions give the same weights. Training
that ends with non-finite weights is an error (:func:`train_gender_cnn`), so nothing is saved.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

# Re-exported: the data pieces that training scripts use together with training.
from tools.facetrain.data import DEFAULT_DATA, RACE_NAMES, augment_faces, check_faces, load_faces, split_faces
from tools.facetrain.outputs import write_files_together
from course_utils.models.faces import build_gender_cnn, check_finite_weights
from tools.facetrain.card import astronaut_probabilities

__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_EPOCHS",
    "RACE_NAMES",
    "load_faces",
    "split_faces",
    "augment_faces",
    "deterministic_ops",
    "fit_epochs",
    "train_gender_cnn",
    "evaluate",
    "group_accuracy",
    "save_weights_atomically",
    "astronaut_probabilities",
    "check_training_settings",
    "check_weights_name",
    "weights_writer",
]


@contextlib.contextmanager
def deterministic_ops() -> Iterator[None]:
    """TensorFlow's deterministic ops inside the block, and the process as it was after it.

    The training tools turn them on for their run. Their ``main`` is also called from Python (the tests
    do), and a setting left on would change every later computation in that process: the same call
    would then give other numbers than in a fresh process.
    """
    from tensorflow.python.framework import config  # TF 2.16 (the lowest supported) has no public disable

    was_on = config.is_op_determinism_enabled()
    config.enable_op_determinism()
    try:
        yield
    finally:
        if not was_on:
            config.disable_op_determinism()

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
        FaceDataError: data :func:`tools.facetrain.data.check_faces` refuses (NaN, not 0..255,
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
    history = fit_epochs(model, images, labels, epochs=epochs, batch_size=batch_size, rng=rng, augment=augment,
                         validation_data=validation_data, verbose=verbose)
    check_finite_weights(
        model,
        f"training diverged (learning rate {learning_rate:g}, {epochs} epochs)",
        "Nothing was saved; try a smaller learning rate (--learning-rate).",
    )
    return model, history


def fit_epochs(
    learner: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    augment: bool = True,
    validation_data: Any = None,
    verbose: int = 0,
    before_epoch: Callable[[int], dict[str, float]] | None = None,
) -> dict[str, list[float]]:
    """The face models' epoch loop: ``learner.fit`` one epoch at a time, each on a fresh seeded
    shuffle (and, with ``augment``, a fresh :func:`augment_faces` variant) of the faces.

    Shuffling and augmenting happen in NumPy from ``rng`` and plain batches are fed, so a run is
    reproducible and the input pipeline has no parallel stages. ``before_epoch(epoch)`` runs
    first each epoch (e.g. lesson 4's budget ramp) and may return values to record.

    Returns:
        Per-epoch lists: what ``fit`` reports (``loss``, ``accuracy``, ``val_*``), what
        ``before_epoch`` returned, and ``seconds`` (wall time per epoch).
    """
    history: dict[str, list[float]] = {}
    for epoch in range(epochs):
        start = time.perf_counter()
        for key, value in (before_epoch(epoch) if before_epoch is not None else {}).items():
            history.setdefault(key, []).append(float(value))
        order = rng.permutation(len(labels))
        x = augment_faces(images[order], rng) if augment else images[order]
        batches = tf.data.Dataset.from_tensor_slices((x, labels[order])).batch(batch_size)
        fit = learner.fit(batches, epochs=epoch + 1, initial_epoch=epoch, shuffle=False,  # already shuffled
                          validation_data=validation_data, verbose=verbose)
        for key, values in fit.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("seconds", []).append(time.perf_counter() - start)
    return history


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


def weights_writer(model: keras.Model, build: Callable[[], keras.Model] = build_gender_cnn) -> Callable[[Path], None]:
    """A writer for :func:`tools.facetrain.outputs.write_files_together`: ``model``'s layer weights
    saved through a fresh ``build()`` (lesson 1's or the robust architecture)."""

    def write(temp: Path) -> None:
        clean = build()  # a fresh copy holds only the layer weights, not the optimizer's state
        clean.set_weights(model.get_weights())
        clean.save_weights(temp)

    return write


def save_weights_atomically(model: keras.Model, path: str | Path) -> Path:
    """Save ``model``'s weights to ``path`` (``*.weights.h5``) without ever leaving half a file.

    The weights go to a temporary file in the same folder first, which then replaces ``path`` in
    one step (``os.replace``); if anything fails, the old file stays as it was.
    """
    path = check_weights_name(path)
    write_files_together({path: weights_writer(model)})
    return path


def check_weights_name(path: str | Path) -> Path:
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"Keras weights files must end in '.weights.h5', got {path.name!r}")
    return path

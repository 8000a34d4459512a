"""The small gender CNN of lesson 1: architecture, class names and the shipped weights.

The network is the tutorial's tiny classifier (3,212 parameters) that looks at a 48x48 grayscale
face and says "man" or "woman". It is small enough to train on two CPU cores in well under a
minute, and small enough that every filter and every activation map can be drawn and read.

Input
    float32 tensor of shape ``(N, 48, 48, 1)``: grayscale **pixels in 0..255** (not 0..1). The
    model rescales to 0..1 itself (a ``Rescaling(1/255)`` layer), so attacks and visualisations
    work in grey levels like everywhere else in the course. Faces must be framed like the
    training data: a tight forehead-to-chin crop, eyes near row 13 and mouth near row 33.
Output
    float32 tensor of shape ``(N, 2)``: **logits** (no softmax) for the classes in
    :data:`GENDER_CLASSES`, i.e. column 0 = "man", column 1 = "woman". Apply
    ``keras.ops.softmax`` to get probabilities.

The weights in ``data/gender_cnn.weights.h5`` were trained by ``tools/train_gender_cnn.py`` (with :mod:`course_utils.train_gender_cnn`)
on adult faces of UTKFace (non-commercial research and education only); see
``data/gender_cnn.md`` (the model card) for data, accuracy and limitations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras

__all__ = [
    "GENDER_CLASSES",
    "IMAGE_SIZE",
    "DEFAULT_WEIGHTS",
    "RETRAIN_COMMAND",
    "gender_class_index",
    "build_gender_cnn",
    "load_gender_cnn",
    "check_finite_weights",
    "MODEL_CARD",
    "model_card_section",
]

#: Class names in output order: logit 0 is "man", logit 1 is "woman".
GENDER_CLASSES: tuple[str, str] = ("man", "woman")

#: Height and width of the input faces, in pixels.
IMAGE_SIZE: int = 48

#: The shipped weights: ``data/gender_cnn.weights.h5`` at the repository root.
DEFAULT_WEIGHTS: Path = Path(__file__).resolve().parent.parent / "data" / "gender_cnn.weights.h5"

#: How to rebuild the shipped weights (run from the repository root; needs the shared dataset).
RETRAIN_COMMAND: str = (
    "python tools/train_gender_cnn.py --data ../shared/data/faces48.npz "
    "--out data/gender_cnn.weights.h5 --card data/gender_cnn.md"
)


def gender_class_index(target: int | str) -> int:
    """Turn a class given as an index or a name into the output index of the gender CNN.

    Args:
        target: ``0`` / ``1`` (a Python or NumPy integer) or ``"man"`` / ``"woman"``
            (case-insensitive, surrounding spaces ignored).

    Returns:
        ``0`` for "man", ``1`` for "woman" (the column of the model's ``(N, 2)`` logits).

    Raises:
        ValueError: for any other value (other numbers, other strings, floats, booleans, None);
            a misspelt name gets a suggestion. The same rules as every attack's ``target``
            (:func:`course_utils.labels.resolve_class`).
    """
    from course_utils.labels import resolve_class

    return resolve_class(target, GENDER_CLASSES)


def build_gender_cnn(filters: tuple[int, int, int] = (3, 6, 12), name: str = "gender_cnn") -> keras.Model:
    """Build the untrained gender CNN (3,212 parameters with the default ``filters``).

    ``filters`` sets the three convolutions' widths (lesson 4's robust model is wider); layer names
    and everything else stay the same.

    Layers (output shapes for one image)::

        pixels   Input       (48, 48, 1)   grayscale pixels, 0..255
        rescale  Rescaling   (48, 48, 1)   x / 255 -> 0..1
        conv1    Conv2D      (48, 48, 3)   3 filters 5x5, 'same', ReLU        78 params
        pool1    MaxPool2D   (24, 24, 3)
        conv2    Conv2D      (24, 24, 6)   6 filters 5x5, 'same', ReLU       456 params
        pool2    MaxPool2D   (12, 12, 6)
        conv3    Conv2D      (12, 12, 12)  12 filters 5x5, 'same', ReLU    1,812 params
        pool3    MaxPool2D   (6, 6, 12)
        flatten  Flatten     (432,)
        logits   Dense       (2,)          logits for ("man", "woman")       866 params

    Returns:
        A ``keras.Model`` named ``"gender_cnn"`` mapping float32 ``(N, 48, 48, 1)`` pixels in
        0..255 to float32 ``(N, 2)`` logits, with ``class_names`` :data:`GENDER_CLASSES`.
        Weights are freshly initialised (use :func:`load_gender_cnn` for the trained ones).
    """
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype="float32", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for i, width in enumerate(filters, start=1):
        x = keras.layers.Conv2D(int(width), 5, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(len(GENDER_CLASSES), name="logits")(x)
    model = keras.Model(inputs, logits, name=name)
    model.class_names = GENDER_CLASSES  # what every attack and plot calls its classes
    return model


def load_gender_cnn(weights_path: str | Path | None = None) -> keras.Model:
    """Build the gender CNN and load trained weights into it.

    The dataset is not needed: the weights ship with the course.

    Args:
        weights_path: a Keras ``.weights.h5`` file; ``None`` means the shipped
            :data:`DEFAULT_WEIGHTS` (``data/gender_cnn.weights.h5``).

    Returns:
        The trained model: float32 ``(N, 48, 48, 1)`` pixels in 0..255 -> ``(N, 2)`` logits for
        ("man", "woman").

    Raises:
        FileNotFoundError: the weights file does not exist (the message says how to retrain).
        ValueError: the file exists but is damaged, truncated or not weights for this
            architecture (the message says how to restore it).
    """
    path = DEFAULT_WEIGHTS if weights_path is None else Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"gender CNN weights not found: {path}. They ship with the course as "
            f"data/gender_cnn.weights.h5; restore them with `git checkout -- "
            f"data/gender_cnn.weights.h5`, or retrain (a couple of minutes on a CPU, needs "
            f"../shared/data/faces48.npz) from the repository root with:\n    {RETRAIN_COMMAND}"
        )
    model = build_gender_cnn()
    try:
        model.load_weights(path)
    except Exception as error:  # h5py raises OSError/KeyError, Keras ValueError, ...
        raise ValueError(
            f"the gender CNN weights file {path} is damaged or does not match the architecture "
            f"({type(error).__name__}: {error}). Restore the shipped file with `git checkout -- "
            f"data/gender_cnn.weights.h5`, or retrain from the repository root with:\n"
            f"    {RETRAIN_COMMAND}"
        ) from error
    check_finite_weights(
        model,
        f"the gender CNN weights file {path} is unusable",
        "Restore the shipped file with `git checkout -- data/gender_cnn.weights.h5`, or retrain "
        f"from the repository root with:\n    {RETRAIN_COMMAND}",
    )
    return model


def check_finite_weights(model: keras.Model, problem: str, fix: str) -> None:
    """Refuse a model with NaN or infinite weights (they make every answer NaN or arbitrary).

    Args:
        model: the model to check.
        problem: what is wrong, the start of the message (e.g. which file).
        fix: what to do about it, the end of the message.

    Raises:
        ValueError: ``"<problem>: <layer>/<weight> holds <n> NaN or infinite value(s) of <size>. <fix>"``.
    """
    for variable in model.weights:
        values = np.asarray(variable)
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            raise ValueError(f"{problem}: {variable.path} holds {bad} NaN or infinite value(s) of {values.size}. {fix}")


#: The model card shipped with the weights: data, licence, split, accuracy, limitations.
MODEL_CARD: Path = DEFAULT_WEIGHTS.with_name("gender_cnn.md")


def model_card_section(title: str, card: str | Path | None = None):
    """One ``## title`` section of the model card, as Markdown that a notebook displays.

    Raises:
        FileNotFoundError: the card is missing.
        KeyError: no section with that title (the message lists the titles).
    """
    from IPython.display import Markdown

    path = Path(card or MODEL_CARD)
    text = path.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    if title not in sections:
        raise KeyError(f"the model card has no section {title!r}; its sections are: {', '.join(sections)}")
    return Markdown(f"**{title}** (from `data/{path.name}`)\n\n" + sections[title].strip())

"""The face classifiers: lesson 1's small gender CNN (:func:`build_gender_cnn`, its layers and
sizes), lesson 4's adversarially trained one, and lessons 5 and 6's variants (:func:`load_face_model`:
``"substitute"``, after Papernot et al. 2017; ``"distilled"``, Papernot et al. 2016; ``"noisy"``, the
base of randomized smoothing, Cohen et al. 2019). Every one is lesson 1's layout with its own filter
counts: float32 ``(N, 48, 48, 1)`` grayscale pixels 0..255 in, ``(N, 2)`` logits for
:data:`GENDER_CLASSES` out; faces framed like the training data (a tight forehead-to-chin crop,
:func:`course_utils.io.sample_face`).

Their weights, model cards and facts ship in the package's data folder
(:data:`course_utils.io.images.DATA_DIR`); ``tools/train_face_model.py --variant NAME`` made each
from UTKFace's adult faces (non-commercial research and education only; see the cards).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
from course_utils.io.images import DATA_DIR

__all__ = [
    "GENDER_CLASSES", "IMAGE_SIZE", "DEFAULT_WEIGHTS", "build_gender_cnn", "load_gender_cnn",
    "check_finite_weights", "MODEL_CARD", "model_card_section", "ROBUST_FILTERS", "ROBUST_WEIGHTS", "ROBUST_CARD",
    "ROBUSTNESS_JSON", "load_robust_gender_cnn", "load_robustness", "FACE_VARIANTS",
    "load_face_model", "face_facts", "face_card",
]

#: Class names in output order: logit 0 is "man", logit 1 is "woman".
GENDER_CLASSES: tuple[str, str] = ("man", "woman")

#: Height and width of the input faces, in pixels.
IMAGE_SIZE: int = 48

#: The shipped weights of lesson 1's model.
DEFAULT_WEIGHTS: Path = DATA_DIR / "gender_cnn.weights.h5"

#: How to rebuild the shipped weights (run from the repository root; needs the shared dataset).
_RETRAIN_COMMAND: str = (
    "python tools/train_face_model.py --variant gender --data ../shared/data/faces48.npz "
    "--out data/gender_cnn.weights.h5 --card data/gender_cnn.md"
)


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


def _load_weights(model: keras.Model, path: Path, what: str, retrain: str) -> keras.Model:
    """Load ``path`` into ``model``, refusing a missing, damaged or non-finite file with a message
    that says how to restore it (``what`` names the model, ``retrain`` is the command)."""
    restore = (
        f"Reinstall the course (the file ships with the package; in a checkout: `git checkout -- "
        f"data/{path.name}`), or retrain (needs ../shared/data/faces48.npz) from the "
        f"repository root with:\n    {retrain}"
    )
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights not found: {path}. {restore}")
    try:
        model.load_weights(path)
    except Exception as error:  # h5py raises OSError/KeyError, Keras ValueError, ...
        raise ValueError(
            f"the {what} weights file {path} is damaged or does not match the architecture "
            f"({type(error).__name__}: {error}). {restore}"
        ) from error
    check_finite_weights(model, f"the {what} weights file {path} is unusable", restore)
    return model


def load_gender_cnn(weights_path: str | Path | None = None) -> keras.Model:
    """Build lesson 1's gender CNN and load trained weights into it (no dataset needed).

    Args:
        weights_path: a Keras ``.weights.h5`` file; ``None`` means the shipped
            :data:`DEFAULT_WEIGHTS`.

    Returns:
        The trained model: float32 ``(N, 48, 48, 1)`` pixels in 0..255 -> ``(N, 2)`` logits for
        ("man", "woman").

    Raises:
        FileNotFoundError: the weights file does not exist (the message says how to restore it).
        ValueError: the file is damaged, truncated, not weights for this architecture, or holds
            NaN or infinite values.
    """
    path = DEFAULT_WEIGHTS if weights_path is None else Path(weights_path)
    return _load_weights(build_gender_cnn(), path, "gender CNN", _RETRAIN_COMMAND)


def check_finite_weights(model: keras.Model, problem: str, fix: str) -> None:
    """Refuse a model with NaN or infinite weights (they make every answer NaN or arbitrary): ValueError
    ``"<problem>: <layer>/<weight> holds <n> NaN or infinite value(s) of <size>. <fix>"``, ``problem``
    saying what is wrong (e.g. which file) and ``fix`` what to do about it."""
    for variable in model.weights:
        values = np.asarray(variable)
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            raise ValueError(f"{problem}: {variable.path} holds {bad} NaN or infinite value(s) of {values.size}. {fix}")


#: The model card shipped with the weights: data, licence, split, accuracy, limitations.
MODEL_CARD: Path = DEFAULT_WEIGHTS.with_name("gender_cnn.md")


def model_card_section(title: str, card: str | Path | None = None):
    """One ``## title`` section of a model card (default lesson 1's; lesson 4's is
    :data:`ROBUST_CARD`), as Markdown that a notebook displays.

    Raises:
        FileNotFoundError: the card is missing.
        KeyError: no section with that title (the message lists the titles).
    """
    from IPython.display import Markdown

    path = Path(card or MODEL_CARD)
    if not path.is_file():
        raise FileNotFoundError(f"model card not found: {path}")
    parts = re.split(r"^## (.*)$", path.read_text(encoding="utf-8"), flags=re.M)  # text, title, text, title, ...
    sections = {name.strip(): body for name, body in zip(parts[1::2], parts[2::2])}
    if title not in sections:
        raise KeyError(f"the model card has no section {title!r}; its sections are: {', '.join(sections)}")
    return Markdown(f"**{title}** (from the model card `{path.name}`)\n\n" + sections[title].strip())


# --------------------------------------------------------------------------- lesson 4's robust model

#: Filters of the three convolutions (lesson 1's model has 3, 6 and 12).
ROBUST_FILTERS: tuple[int, int, int] = (12, 24, 48)

#: The shipped weights, the model card and the robustness numbers of both face models.
ROBUST_WEIGHTS: Path = DATA_DIR / "gender_cnn_robust.weights.h5"
ROBUST_CARD: Path = DATA_DIR / "gender_cnn_robust.md"
ROBUSTNESS_JSON: Path = DATA_DIR / "gender_cnn_robustness.json"

#: How to rebuild all three files (from the repository root; needs the shared face set).
_RETRAIN_ROBUST_COMMAND: str = "python tools/train_face_model.py --variant robust --data ../shared/data/faces48.npz"


def load_robust_gender_cnn(weights_path: str | Path | None = None) -> keras.Model:
    """Lesson 4's adversarially trained face CNN (:data:`ROBUST_FILTERS`, lesson 1's layer names)
    with its shipped weights, trained with PGD inside every training step
    (:class:`course_utils.attacks.defences.AdversarialTraining`); see :data:`ROBUST_CARD`.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_gender_cnn`.
    """
    path = ROBUST_WEIGHTS if weights_path is None else Path(weights_path)
    model = build_gender_cnn(ROBUST_FILTERS, name="gender_cnn_robust")
    return _load_weights(model, path, "robust face CNN", _RETRAIN_ROBUST_COMMAND)


def load_robustness(path: str | Path | None = None) -> pd.DataFrame:
    """The shipped robustness numbers: accuracy on the held-out faces under PGD, per budget.

    Returns:
        A DataFrame indexed by ``epsilon`` (grey levels) with one column per face model
        (``"standard"``: lesson 1's, ``"robust"``: this module's), accuracy 0..1. Everything
        else the JSON holds (the attack, the number of faces, the split) is in ``.attrs``.
    """
    path = ROBUSTNESS_JSON if path is None else Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        eps = [float(e) for e in data["epsilons"]]
        columns = {name: [float(a) for a in m["accuracy"]] for name, m in data["models"].items()}
    except FileNotFoundError:
        raise FileNotFoundError(f"robustness numbers not found: {path}. {_RETRAIN_ROBUST_COMMAND} writes them.") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a robustness file written by the training tool ({type(error).__name__}: {error})") from None
    for name, values in columns.items():
        if len(values) != len(eps) or not all(math.isfinite(v) and 0 <= v <= 1 for v in values):
            raise ValueError(f"{path}: the accuracies of {name!r} must be {len(eps)} numbers in 0..1, got {values}")
    table = pd.DataFrame(columns, index=pd.Index(eps, name="epsilon"))
    table.attrs.update({k: v for k, v in data.items() if k not in ("epsilons", "models")})
    table.attrs["models"] = {name: {k: v for k, v in m.items() if k != "accuracy"} for name, m in data["models"].items()}
    return table


# --------------------------------------------------------------------------- lessons 5 and 6's variants

@dataclass(frozen=True)
class _FaceVariant:
    """One shipped face model: its filters and its files in ``data/`` (``<stem>.weights.h5``,
    ``.md``, ``.json``), made by ``tools/train_face_model.py --variant <name>``."""

    what: str
    filters: tuple[int, int, int]
    stem: str

    @property
    def weights(self) -> Path:
        return DATA_DIR / f"{self.stem}.weights.h5"

    @property
    def card(self) -> Path:
        return DATA_DIR / f"{self.stem}.md"

    @property
    def facts(self) -> Path:
        return DATA_DIR / f"{self.stem}.json"

    @property
    def retrain(self) -> str:
        variant = self.stem.removeprefix("gender_cnn_")
        return f"python tools/train_face_model.py --variant {variant} --data ../shared/data/faces48.npz"


#: The shipped variants, by name.
FACE_VARIANTS: dict[str, _FaceVariant] = {
    "substitute": _FaceVariant("lesson 5's substitute face CNN", (6, 12, 24), "gender_cnn_substitute"),
    "distilled": _FaceVariant("lesson 6's distilled face CNN", (3, 6, 12), "gender_cnn_distilled"),
    "noisy": _FaceVariant("lesson 6's noise-trained face CNN", (6, 12, 24), "gender_cnn_noisy"),
}


def _variant(name: Any) -> _FaceVariant:
    if not isinstance(name, str):
        from course_utils.checks import WrongTypeError, describe

        raise WrongTypeError(f"name must be the name of a face model (a str): one of "
                             f"{', '.join(map(repr, FACE_VARIANTS))}, got {describe(name)}")
    if name not in FACE_VARIANTS:
        raise ValueError(f"no face model called {name!r}; choose one of {', '.join(map(repr, FACE_VARIANTS))}")
    return FACE_VARIANTS[name]


def load_face_model(name: str, weights_path: str | Path | None = None) -> keras.Model:
    """Build the face variant ``name`` and load its shipped weights (no dataset needed).

    Args:
        name: one of :data:`FACE_VARIANTS` (``"substitute"``, ``"distilled"``, ``"noisy"``).
        weights_path: a ``.weights.h5`` file; ``None`` means the shipped one.

    Returns:
        float32 ``(N, 48, 48, 1)`` pixels 0..255 -> ``(N, 2)`` logits for ("man", "woman").

    Raises:
        ValueError: an unknown name, or a damaged / mismatched / non-finite weights file.
        FileNotFoundError: the weights file is missing (the message says how to restore it).
    """
    variant = _variant(name)
    path = variant.weights if weights_path is None else Path(weights_path)
    model = build_gender_cnn(variant.filters, name=f"gender_cnn_{name}")
    return _load_weights(model, path, variant.what, variant.retrain)


def face_facts(name: str) -> dict[str, Any]:
    """The JSON of facts the tool wrote next to the weights of ``name`` (e.g. its temperature or
    noise level, and its accuracy on the held-out faces)."""
    variant = _variant(name)
    try:
        return json.loads(variant.facts.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{variant.facts} is missing; reinstall the course or rerun: {variant.retrain}") from None
    except ValueError as error:
        raise ValueError(f"{variant.facts} is not valid JSON ({error}); rerun: {variant.retrain}") from None


def face_card(name: str) -> Path:
    """The path of the model card of ``name`` (for :func:`model_card_section`)."""
    return _variant(name).card

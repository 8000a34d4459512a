"""The adversarially trained face classifier of lesson 4, and the robustness numbers of both face models.

The network has the layout of lesson 1's gender CNN (three 5x5 convolutions with ReLU and 2x2
max-pooling, one dense layer giving two logits, pixels 0..255 in) with more filters per layer:
see :data:`ROBUST_FILTERS` and the model card ``data/gender_cnn_robust.md`` for why.
Its weights were trained by ``tools/train_robust_gender_cnn.py`` with PGD inside every training
step (:class:`course_utils.defences.AdversarialTraining`) on UTKFace adults (non-commercial
research and education only); the face photos are not shipped, the weights are.

``data/gender_cnn_robustness.json``, written by the same tool, holds the accuracy of both face
models on the held-out faces under PGD-20 at several budgets; :func:`load_robustness` reads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras

from course_utils.gender_cnn import build_gender_cnn

__all__ = [
    "ROBUST_FILTERS",
    "ROBUST_WEIGHTS",
    "ROBUST_CARD",
    "ROBUSTNESS_JSON",
    "RETRAIN_ROBUST_COMMAND",
    "build_robust_gender_cnn",
    "load_robust_gender_cnn",
    "load_robustness",
    "card_section",
]

#: Filters of the three convolutions (lesson 1's model has 3, 6 and 12).
ROBUST_FILTERS: tuple[int, int, int] = (12, 24, 48)

_DATA = Path(__file__).resolve().parent.parent / "data"

#: The shipped weights, the model card and the robustness numbers of both face models.
ROBUST_WEIGHTS: Path = _DATA / "gender_cnn_robust.weights.h5"
ROBUST_CARD: Path = _DATA / "gender_cnn_robust.md"
ROBUSTNESS_JSON: Path = _DATA / "gender_cnn_robustness.json"

#: How to rebuild all three files (from the repository root; needs the shared face set).
RETRAIN_ROBUST_COMMAND: str = "python tools/train_robust_gender_cnn.py --data ../shared/data/faces48.npz"


def build_robust_gender_cnn(filters: tuple[int, int, int] = ROBUST_FILTERS) -> keras.Model:
    """The untrained robust face CNN: lesson 1's layout with ``filters`` per convolution.

    Layer names are lesson 1's (``pixels``, ``rescale``, ``conv1``..``conv3``, ``pool1``..``pool3``,
    ``flatten``, ``logits``), so every helper that works on that model works on this one.
    Float32 ``(N, 48, 48, 1)`` pixels 0..255 in, ``(N, 2)`` logits ("man", "woman") out.
    """
    if len(filters) != 3 or any(int(f) < 1 for f in filters):
        raise ValueError(f"filters must be three positive numbers, got {filters!r}")
    return build_gender_cnn(tuple(int(f) for f in filters), name="gender_cnn_robust")


def load_robust_gender_cnn(weights_path: str | Path | None = None) -> keras.Model:
    """The adversarially trained face CNN with its shipped weights (no dataset needed).

    Raises:
        FileNotFoundError: the weights file is missing (the message says how to restore it).
        ValueError: the file is damaged, does not fit the architecture, or holds weights that are
            not finite numbers (NaN or infinity: a diverged training run must never load).
    """
    path = ROBUST_WEIGHTS if weights_path is None else Path(weights_path)
    restore = (
        f"Restore the shipped file with `git checkout -- data/{ROBUST_WEIGHTS.name}`, or retrain "
        f"(needs ../shared/data/faces48.npz) from the repository root with:\n    {RETRAIN_ROBUST_COMMAND}"
    )
    if not path.is_file():
        raise FileNotFoundError(f"robust face CNN weights not found: {path}. {restore}")
    model = build_robust_gender_cnn()
    try:
        model.load_weights(path)
    except Exception as error:  # h5py raises OSError/KeyError, Keras ValueError, ...
        raise ValueError(
            f"the robust face CNN weights file {path} is damaged or does not match the architecture "
            f"({type(error).__name__}: {error}). {restore}"
        ) from error
    bad = [w.path for w in model.weights if not np.all(np.isfinite(np.asarray(w)))]
    if bad:
        raise ValueError(f"{path} holds weights that are not finite numbers (NaN or infinity) in {', '.join(bad)}. {restore}")
    return model


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
        raise FileNotFoundError(f"robustness numbers not found: {path}. {RETRAIN_ROBUST_COMMAND} writes them.") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a robustness file written by the training tool ({type(error).__name__}: {error})") from None
    for name, values in columns.items():
        if len(values) != len(eps) or not all(math.isfinite(v) and 0 <= v <= 1 for v in values):
            raise ValueError(f"{path}: the accuracies of {name!r} must be {len(eps)} numbers in 0..1, got {values}")
    table = pd.DataFrame(columns, index=pd.Index(eps, name="epsilon"))
    table.attrs.update({k: v for k, v in data.items() if k not in ("epsilons", "models")})
    table.attrs["models"] = {name: {k: v for k, v in m.items() if k != "accuracy"} for name, m in data["models"].items()}
    return table


def card_section(title: str, card: str | Path | None = None):
    """One ``## title`` section of the robust model's card, as Markdown that a notebook displays.

    Raises:
        FileNotFoundError: the card is missing.
        KeyError: no section with that title (the message lists the titles).
    """
    from course_utils.gender_cnn import model_card_section

    return model_card_section(title, ROBUST_CARD if card is None else card)

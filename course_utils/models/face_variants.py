"""Lessons 5 and 6's face CNNs: the substitute, the distilled model and the noise-trained base model.

Each is lesson 1's layout (:func:`course_utils.models.faces.build_gender_cnn`: 48x48 grey pixels
0..255 in, two logits ("man", "woman") out) with its own filter counts, trained by a seeded tool
in ``tools/`` on the shared face set and shipped as package data with a model card and a small
JSON of facts the lessons read (temperature, noise level, accuracy):

==============  ===========================================  ==========================================
name            what it is                                   ``tools/train_face_model.py --variant``
==============  ===========================================  ==========================================
``substitute``  lesson 5: a copy grown from lesson 1's        ``substitute``
                model's *answers* alone (Papernot et al.,
                2017), for transfer attacks
``distilled``   lesson 6: defensive distillation at a         ``distilled``
                temperature T (Papernot et al., 2016)
``noisy``       lesson 6: trained on faces with Gaussian      ``noisy``
                noise, the base of randomized smoothing
                (Cohen et al., 2019)
==============  ===========================================  ==========================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras

from course_utils.models.faces import DATA_DIR, _load_weights, build_gender_cnn

__all__ = ["FaceVariant", "FACE_VARIANTS", "load_face_model", "face_facts", "face_card"]


@dataclass(frozen=True)
class FaceVariant:
    """One shipped face model: its filters, its files in ``course_utils/data/`` and its tool."""

    what: str
    filters: tuple[int, int, int]
    stem: str
    retrain: str

    @property
    def weights(self) -> Path:
        return DATA_DIR / f"{self.stem}.weights.h5"

    @property
    def card(self) -> Path:
        return DATA_DIR / f"{self.stem}.md"

    @property
    def facts(self) -> Path:
        return DATA_DIR / f"{self.stem}.json"


#: The shipped variants, by name.
FACE_VARIANTS: dict[str, FaceVariant] = {
    "substitute": FaceVariant("lesson 5's substitute face CNN", (6, 12, 24), "gender_cnn_substitute",
                              "python tools/train_face_model.py --variant substitute --data ../shared/data/faces48.npz"),
    "distilled": FaceVariant("lesson 6's distilled face CNN", (3, 6, 12), "gender_cnn_distilled",
                             "python tools/train_face_model.py --variant distilled --data ../shared/data/faces48.npz"),
    "noisy": FaceVariant("lesson 6's noise-trained face CNN", (6, 12, 24), "gender_cnn_noisy",
                         "python tools/train_face_model.py --variant noisy --data ../shared/data/faces48.npz"),
}


def _variant(name: Any) -> FaceVariant:
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
    """The path of the model card of ``name`` (for :func:`~course_utils.models.faces.model_card_section`)."""
    return _variant(name).card

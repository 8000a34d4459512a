"""The face models' cards: Markdown templates in ``tools/cards/`` filled with measured numbers.

Each variant of ``tools/train_face_model.py`` has a template ``tools/cards/<variant>.md``
(:class:`string.Template`: ``$name`` is replaced by the card field ``name``, ``$$`` is a dollar
sign). :func:`render_card` fills one in; the fields, numbers already formatted, come from the
variant's ``card_fields`` in :mod:`tools.facetrain.variants`. The helpers here measure or
describe what every card reports: the astronaut smoke test, the machine, the library versions.
With ``--card-only`` the gender card is re-measured from the shipped weights, keeping the facts
of the training run from the existing card (:func:`training_facts_from_card`).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

__all__ = [
    "CARDS",
    "REPO",
    "astronaut_probabilities",
    "display_path",
    "machine_description",
    "versions",
    "card_template",
    "render_card",
    "training_facts_from_card",
]

#: The repository root: the retrain commands run from here, and the cards name paths from here.
REPO: Path = Path(__file__).resolve().parents[2]

#: The folder of the card templates (``<variant>.md``).
CARDS: Path = REPO / "tools" / "cards"


def astronaut_probabilities(model: keras.Model) -> np.ndarray:
    """P(man), P(woman) for ``sample_face("astronaut")``: the lessons' 48x48 face of
    ``skimage.data.astronaut()`` (a smoke test: the photo shows a woman)."""
    from course_utils.io.images import sample_face

    logits = model(sample_face("astronaut")[None], training=False)
    return np.asarray(keras.ops.softmax(logits, axis=-1))[0]


def display_path(path: str | Path) -> str:
    """``path`` as a card writes it: relative to the repository root (where the retrain commands
    run), with forward slashes; just the file name if it is on another drive."""
    try:
        return Path(os.path.relpath(os.path.abspath(path), REPO)).as_posix()
    except ValueError:
        return Path(path).name


def machine_description() -> str:
    """Cores, architecture and the load at the time of the call, for the card's timing line."""
    load = f", 1-minute load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPU cores, {platform.machine()}{load}"


def versions() -> str:
    """The library versions the card reports (on two lines, as the cards wrap them)."""
    return f"TensorFlow {tf.__version__},\nKeras {keras.__version__}, Python {platform.python_version()}"


def card_template(name: str) -> Template:
    """The template ``tools/cards/<name>.md``.

    Raises:
        FileNotFoundError: there is no such template (the message lists the ones there are).
    """
    path = CARDS / f"{name}.md"
    if not path.is_file():
        there = ", ".join(sorted(p.stem for p in CARDS.glob("*.md")))
        raise FileNotFoundError(f"no card template {path}; the templates are: {there}")
    return Template(path.read_text(encoding="utf-8"))


def render_card(name: str, fields: dict[str, Any]) -> str:
    """The template ``tools/cards/<name>.md`` with every ``$field`` replaced by ``str(fields[field])``.

    Raises:
        KeyError: the template names a field that ``fields`` lacks (a template and its variant's
            ``card_fields`` disagree).
    """
    return card_template(name).substitute(fields)


_FACTS = {
    "train_seconds": (r"Training took \*\*(\d+(?:\.\d+)?) s\*\* of wall time", float),
    "machine": (r"of wall time \((.*?); TensorFlow", str),
    "versions": (r"; (TensorFlow \S+,\s*Keras \S+, Python [0-9.]+)\)", str),
    "train_accuracy": (r"final training accuracy on augmented\s+images: ([0-9.]+)\)", float),
}


def training_facts_from_card(text: str) -> dict[str, Any]:
    """The facts of the training run written in an existing gender card: ``train_seconds``,
    ``machine``, ``versions`` and ``train_accuracy`` (they cannot be re-measured without retraining).

    Raises:
        ValueError: the card lacks one of them (it was edited by hand or is not this card).
    """
    facts: dict[str, Any] = {}
    for key, (pattern, kind) in _FACTS.items():
        found = re.search(pattern, text, flags=re.DOTALL)
        if found is None:
            raise ValueError(
                f"the existing model card does not state the training run's {key.replace('_', ' ')}; "
                "rewrite it by retraining (without --card-only)"
            )
        facts[key] = kind(found.group(1))
    return facts

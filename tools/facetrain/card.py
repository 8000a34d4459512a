"""The model card of the lesson-1 gender CNN (``course_utils/data/gender_cnn.md``): its text and its numbers.

:func:`model_card` fills the card in from a dict of measured numbers (see its docstring);
``tools/train_gender_cnn.py`` measures them after training, or, with ``--card-only``,
re-measures everything that depends only on the weights and the data and keeps the facts of the
training run (time, machine, versions, final training accuracy) from the existing card
(:func:`training_facts_from_card`). The smoke test uses :func:`course_utils.io.sample_face`,
the same astronaut face the lessons show the model.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import numpy as np

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

from tools.facetrain.data import RACE_NAMES
from course_utils.models.faces import GENDER_CLASSES

__all__ = ["AUGMENT_TEXT", "astronaut_probabilities", "display_path", "machine_description", "versions", "model_card", "training_facts_from_card"]


def astronaut_probabilities(model: keras.Model) -> np.ndarray:
    """P(man), P(woman) for ``sample_face("astronaut")``: the lessons' 48x48 face of
    ``skimage.data.astronaut()`` (a smoke test: the photo shows a woman)."""
    from course_utils.io.images import sample_face

    logits = model(sample_face("astronaut")[None], training=False)
    return np.asarray(keras.ops.softmax(logits, axis=-1))[0]


def display_path(path: str | Path) -> str:
    """A path as written on the command line, relative to the working folder where possible."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return Path(os.path.relpath(path)).as_posix()
    except ValueError:
        return path.name


def machine_description() -> str:
    """Cores, architecture and the load at the time of the call, for the card's timing line."""
    load = f", 1-minute load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPU cores, {platform.machine()}{load}"


def versions() -> str:
    """The library versions the card reports."""
    return f"TensorFlow {tf.__version__},\nKeras {keras.__version__}, Python {platform.python_version()}"


_FACTS = {
    "train_seconds": (r"Training took \*\*(\d+(?:\.\d+)?) s\*\* of wall time", float),
    "machine": (r"of wall time \((.*?); TensorFlow", str),
    "versions": (r"; (TensorFlow \S+,\s*Keras \S+, Python [0-9.]+)\)", str),
    "train_accuracy": (r"final training accuracy on augmented\s+images: ([0-9.]+)\)", float),
}


def training_facts_from_card(text: str) -> dict[str, Any]:
    """The facts of the training run written in an existing card: ``train_seconds``, ``machine``,
    ``versions`` and ``train_accuracy`` (they cannot be re-measured without retraining).

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


AUGMENT_TEXT = """Augmentation: each epoch, every training face is mirrored left-right with
probability 1/2, shifted by up to 3 pixels each way (edges repeated), and given a random contrast
(factor 0.8..1.25 around its mean grey level) and brightness (+-25 grey levels). The exposure part
was added because photos from outside the data set, such as the course's astronaut crop (brighter
than the average training face), got unstable answers with flips and 2-pixel shifts alone. On the
validation set both scored alike (final epoch 0.907 and 0.907 with exposure changes, 0.906 and 0.912
without, seeds 0 and 1), but only with exposure changes were the astronaut crop and its 24
neighbours (crop window moved by up to 6 pixels) all called "woman" by both validation models.
For full disclosure: a final run with flips and 2-pixel shifts only scored 0.918 on the held-out
set and called the astronaut crop "man" (P(woman) = 0.49); the choice between the two was made on
the validation set and the astronaut crop, not on the held-out score. (These comparisons converted
the crop to gray with scikit-image's `rgb2gray`; the smoke test below uses the lessons'
`sample_face`, whose gray levels differ from it by up to 5.6.)"""


def model_card(r: dict[str, Any]) -> str:
    """The Markdown model card, filled in with the numbers in ``r``.

    ``r`` holds: ``n_total``, ``n_class`` ({0: men, 1: women}), ``n_train``, ``n_test``,
    ``split_seed``, ``seed``, ``epochs``, ``batch_size``, ``learning_rate``, ``augment``,
    ``cosine_decay``, ``train_seconds``, ``machine``, ``versions``, ``command``, ``accuracy``,
    ``train_accuracy``, ``per_class`` and ``per_race`` ({group: (faces, accuracy)}) and
    ``astronaut`` (P(man), P(woman) of :func:`astronaut_probabilities`).
    """
    per_class = "\n".join(
        f"| {GENDER_CLASSES[c]} ({c}) | {n} | {acc:.3f} |" for c, (n, acc) in r["per_class"].items()
    )
    per_race = "\n".join(
        f"| {RACE_NAMES[g] if 0 <= g < len(RACE_NAMES) else g} | {n} | {acc:.3f} |"
        for g, (n, acc) in r["per_race"].items()
    )
    p_man, p_woman = r["astronaut"]
    return f"""# Model card: the lesson-1 gender CNN (`course_utils/data/gender_cnn.weights.h5`)

*This card is written by `tools/train_gender_cnn.py`; retraining rewrites it with the new numbers
(`--card-only` re-measures it from the shipped weights without retraining).*

## What it is

A deliberately tiny convolutional network (3,212 parameters) that the course trains itself so that
learners can look inside every filter and fool it with a few grey levels. Load it with
`course_utils.models.faces.load_gender_cnn()`; no dataset is needed.

| layer | output shape | details |
|---|---|---|
| `pixels` (input) | 48 x 48 x 1 | float32 grayscale **pixels 0..255** |
| `rescale` | 48 x 48 x 1 | `Rescaling(1/255)` inside the model |
| `conv1`, `pool1` | 48 x 48 x 3, 24 x 24 x 3 | 3 filters 5x5, `same`, ReLU; max-pool 2 |
| `conv2`, `pool2` | 24 x 24 x 6, 12 x 12 x 6 | 6 filters 5x5, `same`, ReLU; max-pool 2 |
| `conv3`, `pool3` | 12 x 12 x 12, 6 x 6 x 12 | 12 filters 5x5, `same`, ReLU; max-pool 2 |
| `flatten`, `logits` | 432, 2 | dense layer giving **logits** (no softmax) |

- **Input**: `(N, 48, 48, 1)` float32, grayscale pixels in 0..255, framed like the training faces:
  a tight forehead-to-chin crop with the eyes near row 13 and the mouth near row 33. Other framings
  (whole heads, off-centre faces) are out of distribution and give unreliable answers.
- **Output**: `(N, 2)` logits; class 0 = "man", class 1 = "woman" (`GENDER_CLASSES`). Apply a
  softmax for probabilities.

## Training data

UTKFace "crop_part1" (aligned and cropped faces; the gender label is the second field of each file
name), adults only (age 18 and over), exact duplicates collapsed, converted to gray and resized to
48x48: {r["n_total"]} faces, {r["n_class"][0]} men and {r["n_class"][1]} women. Details are in the
developers' `../shared/data/README.md`.

- **Licence**: UTKFace is available for **non-commercial research and education only**; the
  copyright of the photos stays with their owners. The course ships **only these trained weights,
  never the images**.
- **Citation**: Zhifei Zhang, Yang Song, Hairong Qi, "Age Progression/Regression by Conditional
  Adversarial Autoencoder", CVPR 2017.

## Split

Stratified by label, seed {r["split_seed"]}: {r["n_train"]} training faces (80%) and {r["n_test"]}
held-out test faces (20%). The test faces were never used for training or for choosing settings:
the settings below (epochs, augmentation, learning-rate decay) were compared on a validation set of
20% carved out of the training faces, then the final model was trained on all training faces.

## Training

Adam, learning rate {r["learning_rate"]:g}{" decaying along a cosine to a tenth of it over the run" if r["cosine_decay"] else " (constant)"}, batch {r["batch_size"]}, {r["epochs"]} epochs, sparse softmax cross-entropy on the logits, seed {r["seed"]} (`keras.utils.set_random_seed` and TensorFlow's
deterministic ops). {AUGMENT_TEXT if r["augment"] else "No augmentation."}
Training took **{r["train_seconds"]:.0f} s** of wall time ({r["machine"]}; {r["versions"]}).

Retrain (from the repository root; needs the shared data set):

```
{r["command"]}
```

## Held-out accuracy

**{r["accuracy"]:.3f}** on the {r["n_test"]} test faces (final training accuracy on augmented
images: {r["train_accuracy"]:.3f}).

| true class | test faces | accuracy |
|---|---|---|
{per_class}

Per UTKFace race code (small groups: a few faces move these numbers by several points):

| race group | test faces | accuracy |
|---|---|---|
{per_race}

Smoke test: `course_utils.io.sample_face("astronaut")`, the 48x48 face of
`skimage.data.astronaut()` (Eileen Collins) that the lessons show the model, gives
P(man) = {p_man:.3f}, P(woman) = {p_woman:.3f}.

## Limitations and ethical notes

- **A teaching model only.** It exists to show how CNNs see and how easily they are fooled. Do not
  use it to make or support any decision about a real person.
- **Binary labels from file names.** UTKFace's "gender" is a binary man/woman label set by the
  dataset's authors from appearance; it says nothing about anyone's gender identity, and people
  outside the binary are not represented.
- **Dataset biases.** UTKFace was scraped from the web; groups are unevenly represented (most faces
  are coded White, with fewer Black, Asian, Indian and "Others" faces; women are the majority of this
  adult subset) and race codes are themselves coarse labels assigned by others. Accuracy differs
  between groups (table above), and the model picks up cues like hair, make-up and photo style as
  much as faces.
- **Small and fragile.** 48x48 gray pixels and 3,212 parameters: about one face in ten is
  misclassified, and tiny pixel changes flip answers (which is the point of the course).
"""

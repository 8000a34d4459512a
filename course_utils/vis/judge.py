"""The judge: class pictures scored by a second network that never saw them being made.

A picture made on one network (EfficientNet-Lite0) can convince it with patterns no one else reads
as the class; :func:`judge_classes` asks another network (e.g. EfficientNet-Lite2, 260 px) what it
sees in each, so the methods of lesson 3 can be compared on more than the number they maximised.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_seed
from course_utils.models.labels import ClassNames
from course_utils.vis.filters import default_regularizers, maximize_class
from course_utils.vis.result import Visualization

__all__ = ["JUDGED_CLASSES", "judge_classes"]

JUDGED_CLASSES = ("sea snake", "goldfish", "flamingo", "teapot", "pizza")
"""The classes :func:`judge_classes` scores by default: three animals and two objects."""


def _probabilities(model: keras.Model, pixels: np.ndarray, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` the probability of class ``idx[i]`` for picture ``i`` (pixels ``(N, H, W, C)``
    0..255, resized bilinearly to the model's input), and its rank (1 = top)."""
    h, w = model.input_shape[1:3]
    x = tf.image.resize(tf.convert_to_tensor(pixels, tf.float32), (h, w), method="bilinear")
    probs = tf.nn.softmax(model(x, training=False)).numpy()
    chosen = probs[np.arange(len(idx)), list(idx)]
    ranks = (probs > chosen[:, None]).sum(axis=1) + 1
    return chosen, ranks


def judge_classes(
    model: keras.Model,
    judge: keras.Model,
    targets: Sequence[int | str] = JUDGED_CLASSES,
    pictures: dict[str, Visualization] | None = None,
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """Score class pictures made on ``model`` with a second network ``judge`` that never saw them
    (e.g. EfficientNet-Lite2 judging pictures made on Lite0); ``targets`` default :data:`JUDGED_CLASSES`.

    Args:
        model: the classifier the pictures were made on (pixels 0..255 in).
        judge: another classifier of the same classes (any input size: each picture is resized
            bilinearly to its input).
        targets: class names or indices of ``model``, one per picture.
        pictures: a method name -> a class :class:`Visualization` of ``targets`` in order;
            ``None``: made here with ``seed``: ``"plain"`` (40 steps of 2 pixels), ``"regularised"``
            (the same with :func:`course_utils.vis.filters.default_regularizers`) and ``"lucid"``
            (``maximize_class(..., style="lucid")``, 60 steps).
        seed: the seed of the pictures made here.

    Returns:
        A DataFrame, one row per (class, method): ``p_model`` (probability on ``model``, 0..1),
        ``p_judge``, ``judge_rank`` (1 = the judge's top class) and ``judge_top5``.

    Raises:
        ValueError: an unknown class; a :class:`Visualization` with another number of pictures
            than ``targets``, or one that is not a class visualisation.
    """
    classes = ClassNames.of(model)
    idx = classes.indices(list(targets))
    seed = check_seed(seed)
    if pictures is None:
        kwargs = dict(seed=seed, progress=False)
        pictures = {
            "plain": maximize_class(model, idx, steps=40, step_size=2.0, **kwargs),
            "regularised": maximize_class(model, idx, steps=40, step_size=2.0, regularizers=default_regularizers(),
                                          **kwargs),
            "lucid": maximize_class(model, idx, steps=60, style="lucid", **kwargs),
        }
    if not isinstance(pictures, dict):
        raise WrongTypeError(f"pictures must be a dict of method name -> Visualization, got {type(pictures).__name__}")
    scores = {}
    for method, vis in pictures.items():
        if not isinstance(vis, Visualization) or vis.kind != "class":
            raise ValueError(f"pictures[{method!r}] must be a class Visualization (maximize_class), got {vis!r}")
        if len(vis.what) != len(idx):
            raise ValueError(f"pictures[{method!r}] has {len(vis.what)} pictures for {len(idx)} targets")
        scores[method] = (*_probabilities(model, vis.pixels, idx), *_probabilities(judge, vis.pixels, idx))
    rows = [
        {"class": classes.label(k), "method": method, "p_model": float(p_model[i]),
         "p_judge": float(p_judge[i]), "judge_rank": int(rank[i]), "judge_top5": bool(rank[i] <= 5)}
        for i, k in enumerate(idx) for method, (p_model, _, p_judge, rank) in scores.items()
    ]
    return pd.DataFrame(rows).set_index(["class", "method"])

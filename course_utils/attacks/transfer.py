"""Black-box attacks by transfer: craft on a model you have, test on one you cannot see.

- :func:`resized` -- a model that takes pictures of one size and resizes them to its own input
  inside (EfficientNet-Lite0 sees 224 px, Lite1 240, Lite2 260): attacks crafted at 224 px can
  then be sent to any of them, and gradients flow through the resize.
- :func:`ensemble` -- several models as one substitute: the average of their logits.
- :func:`photo_variants` -- the offline sample photos plus seeded random crops and mirror images,
  to measure a rate on more than four pictures.
- :func:`top1`, :func:`transfer_table` -- how often the attacked pictures change another model's answer.

Pixels 0..255 throughout.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras

from course_utils.models.forward import compiled_forward

__all__ = ["resized", "ensemble", "photo_variants", "top1", "transfer_table"]


def resized(model: keras.Model, size: int | tuple[int, int], *, name: str | None = None) -> keras.Model:
    """``model`` taking ``size`` x ``size`` pixels: a bilinear resize to its own input comes first.

    The weights are shared, not copied. When ``size`` already is the model's input, the resize
    is skipped.
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    own_h, own_w, channels = model.input_shape[1:]
    pixels = keras.Input((h, w, channels), name="pixels")
    x = pixels if (h, w) == (own_h, own_w) else keras.layers.Resizing(own_h, own_w, interpolation="bilinear", name="resize")(pixels)
    return keras.Model(pixels, model(x), name=name or f"{model.name}_from_{h}px")


def ensemble(models: Sequence[keras.Model], *, size: int | None = None, name: str | None = None) -> keras.Model:
    """One model whose logits are the average of ``models``' logits, all fed the same picture.

    Args:
        models: classifiers with the same classes (e.g. EfficientNet-Lite0 and Lite1).
        size: the input size of the ensemble; each member resizes to its own input inside.
            Default: the first model's.
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
    classes = {int(m.output_shape[-1]) for m in models}
    if len(classes) != 1:
        raise ValueError(f"the models must share their classes; their outputs have sizes {sorted(classes)}")
    size = size or int(models[0].input_shape[1])
    channels = int(models[0].input_shape[-1])
    pixels = keras.Input((size, size, channels), name="pixels")
    logits = [resized(m, size, name=f"member{i}_{m.name}")(pixels) for i, m in enumerate(models)]
    mean = keras.layers.Average(name="mean_logits")(logits)
    return keras.Model(pixels, mean, name=name or "ensemble_" + "_".join(m.name for m in models))


def photo_variants(
    names: Sequence[str] | None = None,
    *,
    extra: int = 2,
    size: int = 224,
    seed: int = 0,
    smallest: float = 0.6,
) -> tuple[np.ndarray, list[str]]:
    """The sample photos, each followed by ``extra`` seeded random variants.

    A variant is a random square crop (its side ``smallest``..1 times the photo's shorter
    side, anywhere in the photo), mirrored left-right with probability 1/2, resized to ``size``.

    Returns:
        ``(images, descriptions)``: float32 ``(len(names) * (1 + extra), size, size, 3)`` pixels
        0..255 and one short description per picture (e.g. ``"chelsea, crop 2, mirrored"``).
    """
    from course_utils.io.images import SAMPLE_IMAGES, center_crop_resize, load_image, sample_image
    from course_utils.seeds import effective_seed

    names = list(SAMPLE_IMAGES if names is None else names)
    if not 0 < smallest <= 1:
        raise ValueError(f"smallest must be in (0, 1], got {smallest!r}")
    rng = np.random.default_rng(effective_seed(seed))  # plus COURSE_SEED (course_utils.seeds)
    images, descriptions = [], []
    for name in names:
        photo = load_image(sample_image(name))
        images.append(center_crop_resize(photo, size))
        descriptions.append(name)
        h, w = photo.shape[:2]
        for k in range(1, extra + 1):
            side = int(round(min(h, w) * rng.uniform(smallest, 1.0)))
            r0, c0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = photo[r0 : r0 + side, c0 : c0 + side]
            mirrored = bool(rng.random() < 0.5)
            if mirrored:
                crop = crop[:, ::-1]
            images.append(center_crop_resize(np.ascontiguousarray(crop), size))
            descriptions.append(f"{name}, crop {k}" + (", mirrored" if mirrored else ""))
    return np.stack(images).astype(np.float32), descriptions


def top1(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's most probable class for each image, ``(N,)`` int64."""
    x = np.asarray(images, np.float32)
    if len(x) == 0:
        return np.zeros(0, np.int64)
    forward = compiled_forward(model, "label")
    return np.concatenate([forward(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)]).astype(np.int64)


def transfer_table(
    clean: np.ndarray,
    adversarial: np.ndarray,
    epsilons: Sequence[float] | np.ndarray,
    models: Mapping[str, keras.Model],
) -> pd.DataFrame:
    """How often attacked pictures change each model's answer, per budget.

    Args:
        clean: ``(N, H, W, C)`` the pictures before the attack.
        adversarial: ``(M * N, H, W, C)``: ``M`` attacked copies of ``clean`` stacked (one per budget).
        epsilons: ``(M,)`` the budget of each copy, or ``(M * N,)`` one per attacked picture.
        models: name -> model taking pictures of this size (wrap with :func:`resized`).

    Returns:
        One row per budget: ``epsilon`` and, per model, the share of pictures (0..1) whose top-1
        class differs from that model's top-1 on the clean picture.
    """
    clean = np.asarray(clean, np.float32)
    n = len(clean)
    if len(adversarial) % n:
        raise ValueError(f"{len(adversarial)} attacked pictures are not a whole number of copies of {n} clean ones")
    copies = len(adversarial) // n
    eps = np.asarray(epsilons, dtype=np.float64).reshape(-1)
    if eps.size == copies * n:
        eps = eps.reshape(copies, n)[:, 0]
    if eps.size != copies:
        raise ValueError(f"got {eps.size} epsilons for {copies} attacked copies")
    table = pd.DataFrame({"epsilon": eps})
    for label, model in models.items():
        before = top1(model, clean)
        after = top1(model, adversarial).reshape(copies, n)
        table[label] = (after != before[None]).mean(axis=1)
    return table

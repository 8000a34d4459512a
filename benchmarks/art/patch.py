"""Adversarial patch (Brown et al., 2017): the course's ``train_patch`` against IBM ART's ``AdversarialPatch``.

Both train one "toaster" patch for EfficientNet-Lite0 on the same photos (random crops of three
sample photos), with the same number of iterations and placements per iteration (ART's batch
size), the patch at about the same share of the photo; then both patches are pasted by the
course's :func:`~course_utils.attacks.patch.patch_success` at the same held-out placements, on
photos the training never saw (``grace_hopper`` and its crops), and scored by the share of
"toaster" answers. ART's patch is circular inside its square (its mask; the corners stay grey) and
ART scales it to a share of the photo's side: ``scale_min``/``scale_max`` are the course's sides
over 224. Wall time is the training alone.

Each patch is scored as its own tool applies it: the course's with ``patch_success`` (its
held-out placements), ART's with ART's ``apply_patch`` (its circular mask, random place and turn,
a side drawn from the same range), the same photos and the same number of placements. Pasting
ART's patch with the course's square paste scores 0 (its grey corners and unmasked square are not
what ART trained), so that row is also reported, as "ART patch, course paste".
"""

from __future__ import annotations

import time

import numpy as np

COMPARISON = "adversarial patch (toaster, EfficientNet-Lite0)"
SIZE = 80
TARGET = "toaster"
TOASTER = 859


def _photos(quick: bool):
    from course_utils.attacks.transfer import photo_variants

    train, _ = photo_variants(["chelsea", "coffee", "astronaut"], extra=1 if quick else 3, seed=0)
    held_out, _ = photo_variants(["grace_hopper"], extra=1 if quick else 3, seed=100)
    return train, held_out


def _art_patch(model, photos, steps: int, placements: int, sides, degrees: float) -> np.ndarray:
    import tensorflow as tf
    from art.attacks.evasion import AdversarialPatchTensorFlowV2
    from art.estimators.classification import TensorFlowV2Classifier

    classifier = TensorFlowV2Classifier(
        model=model, nb_classes=1000, input_shape=(224, 224, 3), clip_values=(0.0, 255.0),
        loss_object=tf.keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    attack = AdversarialPatchTensorFlowV2(
        classifier, rotation_max=degrees, scale_min=sides[0] / 224, scale_max=sides[1] / 224, learning_rate=5.0,
        max_iter=steps, batch_size=placements, patch_shape=(SIZE, SIZE, 3), targeted=True, verbose=False,
    )
    repeats = int(np.ceil(placements / len(photos)))  # ART draws one placement per photo per batch
    x = np.concatenate([photos] * repeats)[:max(placements, len(photos))]
    y = np.zeros((len(x), 1000), np.float32)
    y[:, TOASTER] = 1.0
    patch, _ = attack.generate(x=x, y=y)
    return np.clip(np.asarray(patch, np.float32), 0, 255), attack


def _art_rate(model, attack, photos, sides, evaluations: int, seed: int) -> float:
    """The toaster share of ART's patch applied by ART (``apply_patch``: random place and turn, its mask)."""
    from course_utils.attacks.transfer import top1

    rng = np.random.default_rng(seed)
    np.random.seed(seed)  # ART draws the place and turn from NumPy's global generator
    hits = [top1(model, attack.apply_patch(photos, scale=float(rng.uniform(*sides)) / 224)) == TOASTER
            for _ in range(evaluations)]
    return float(np.mean(hits))


def rows(quick: bool) -> list[dict]:
    """One row per tool: success on held-out photos and placements, and the training's wall time."""
    from course_utils.attacks.patch import PATCH_DEGREES, PATCH_SIDES, patch_success, train_patch
    from course_utils.models.imagenet import load_imagenet_model

    model = load_imagenet_model("efficientnet_lite0", verbose=False)
    train, held_out = _photos(quick)
    steps, placements, evaluations = (20, 4, 4) if quick else (120, 8, 16)
    setting = (f"{SIZE}px patch, sides {PATCH_SIDES[0]:g}-{PATCH_SIDES[1]:g}px, +-{PATCH_DEGREES:g} deg, "
               f"{steps} iterations x {placements} placements, {len(train)} training photos, "
               f"{len(held_out)} held-out photos x {evaluations} placements")
    out = []
    t0 = time.perf_counter()
    ours = train_patch(model, train, TARGET, SIZE, steps, 4.0, placements=placements, seed=0, progress=False).patch
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs, attack = _art_patch(model, train, steps, placements, PATCH_SIDES, PATCH_DEGREES)
    theirs_s = time.perf_counter() - t0
    rates = [("course_utils", "toaster rate, held-out photos, own paste", ours_s,
              patch_success(model, ours, held_out, TARGET, evaluations, seed=4242).rate),
             ("ART", "toaster rate, held-out photos, own paste (apply_patch)", theirs_s,
              _art_rate(model, attack, held_out, PATCH_SIDES, evaluations, seed=4242)),
             ("ART", "toaster rate, held-out photos, course paste", theirs_s,
              patch_success(model, theirs, held_out, TARGET, evaluations, seed=4242).rate)]
    for tool, metric, seconds, rate in rates:
        out.append({"comparison": COMPARISON, "tool": tool, "setting": setting, "metric": metric, "value": rate,
                    "queries": None, "wall_s": seconds})
    return out

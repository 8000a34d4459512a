"""Randomized smoothing: the course's :func:`~course_utils.attacks.smoothing.certify` against IBM ART's
``TensorFlowV2RandomizedSmoothing.certify`` (Cohen, Rosenfeld & Kolter, 2019, both of them).

Same base model (lesson 7's noise-trained face CNN, ``load_face_model("noisy")``), same sigma (from its
facts JSON), same n0 (ART's ``sample_size``), n and alpha, same faces: the held-out faces of lesson
1's split (``split_faces(labels, seed=0)``, a fixed seeded subset) when the developers' face set
``../shared/data/faces48.npz`` is present, else the course's sample faces (``FACE_BOXES``) with
mirror images and small shifts, labelled with the base model's own answer on the clean face.
Reported per tool: certified accuracy at a few L2 radii (grey levels), the share abstained, and
the wall time of the whole certification (after one untimed warm-up call on 16 faces, which
traces the course's compiled sampler); and once, the time the base model's forward passes alone
take on as many noisy copies (no noise drawn, nothing counted): neither tool can go below it; and
how close that floor is to the CPU's own limit: the forward passes' multiply-adds per second as a
share of what one large matrix product reaches on the same cores.
Both tools draw their own noise, so their numbers differ by sampling noise only; ART needs
``statsmodels`` for its Clopper-Pearson bound.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

FACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces48.npz"
RADII = (0.0, 16.0, 32.0, 48.0)


def _faces(model, quick: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """(images (N, 48, 48, 1) pixels 0..255, labels (N,), what they are)."""
    count = 16 if quick else 200
    if FACES.exists():
        from tools.facetrain.data import read_face_set, split_faces

        images, labels, _ = read_face_set(FACES)
        _, test = split_faces(labels, seed=0)
        pick = np.sort(np.random.default_rng(0).choice(test, count, replace=False))
        return images[pick], labels[pick], f"{count} held-out faces (split seed 0, subset seed 0)"
    from course_utils.io.images import FACE_BOXES, sample_face

    base = np.stack([sample_face(name) for name in FACE_BOXES])
    variants = [base, base[:, :, ::-1]] + [np.roll(base, s, axis=a) for s in (-2, 2) for a in (1, 2)]
    x = np.concatenate(variants).astype(np.float32)
    y = np.asarray(model(x, training=False)).argmax(-1)
    return x, y, f"{len(x)} sample faces and variants (labels: the base model's clean answers)"


def _multiply_adds(model) -> int:
    """Multiply-adds of one forward pass of one picture through ``model``'s convolutions and dense layers."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            total += int(np.prod(layer.output.shape[1:-1])) * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
        elif layer.weights:
            raise ValueError(f"cannot count the multiply-adds of layer {layer.name!r} ({type(layer).__name__}): "
                             "only Conv2D and Dense layers are counted")
    return total


def _matmul_rate() -> float:
    """Multiply-adds per second of one compiled 2048x2048 float32 matrix product on this machine: what the
    CPU's best-tuned kernel reaches, to set the floor's rate against."""
    import tensorflow as tf

    from benchmarks.art import compiled_seconds

    a = tf.random.stateless_normal((2048, 2048), seed=(0, 0))
    return 10 * 2048 ** 3 / compiled_seconds(tf.function(lambda m: tf.reduce_sum(tf.matmul(m, m))), a, 10)


def rows(quick: bool) -> list[dict]:
    import tensorflow as tf
    from art.estimators.certification.randomized_smoothing import (
        TensorFlowV2RandomizedSmoothing,
    )

    from benchmarks.art import FLOOR, forward_floor
    from course_utils.attacks.smoothing import certified_accuracy, certify
    from course_utils.models.faces import face_facts, load_face_model

    model = load_face_model("noisy")
    sigma = float(face_facts("noisy")["sigma"])
    n0, n, alpha = (20, 100, 0.001) if quick else (100, 1000, 0.001)
    x, y, what = _faces(model, quick)
    setting = f"{what}; sigma {sigma:g}, n0 {n0}, n {n}, alpha {alpha:g}"

    certify(model, x[:16], sigma, n0=n0, n=n, alpha=alpha, seed=1, batch_size=1000)  # warm-up: tracing, not timed
    started = time.perf_counter()
    ours = certify(model, x, sigma, n0=n0, n=n, alpha=alpha, seed=0, batch_size=1000)
    ours_s = time.perf_counter() - started

    # the floor: one noisy batch of 1000 in slices of 100, as the course's sampler sends them
    noisy = x[:1] + sigma * np.random.default_rng(0).standard_normal((1000, *x.shape[1:]))
    floor_s = forward_floor(model, noisy, len(x) * (n0 + n), 100)

    np.random.seed(0)  # ART draws its noise from NumPy's global generator
    art_model = TensorFlowV2RandomizedSmoothing(
        model, nb_classes=2, input_shape=x.shape[1:], loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=(0.0, 255.0), sample_size=n0, scale=sigma, alpha=alpha)
    art_model.certify(x[:16], n=n, batch_size=1000)  # warm-up, not timed
    np.random.seed(0)
    started = time.perf_counter()
    predicted, radius = art_model.certify(x, n=n, batch_size=1000)
    art_s = time.perf_counter() - started
    abstained = predicted == -1
    right = ~abstained & (predicted == y)
    art_accuracy = [float(np.mean(right & (radius >= r))) for r in RADII]

    out = [{"comparison": "randomized smoothing (certify)", "tool": "course_utils", "setting": setting,
            "metric": f"{FLOOR} (s), the floor of both tools",
            "value": floor_s, "queries": len(x) * (n0 + n), "wall_s": floor_s}]
    for tool, accuracy, share, wall in (("course_utils", certified_accuracy(ours, y, RADII), float(ours.abstained.mean()), ours_s),
                                        ("ART", art_accuracy, float(abstained.mean()), art_s)):
        for r, a in zip(RADII, accuracy):
            out.append({"comparison": "randomized smoothing (certify)", "tool": tool, "setting": setting,
                        "metric": f"certified accuracy at L2 radius {r:g}", "value": float(a),
                        "queries": len(x) * (n0 + n), "wall_s": wall})
        out.append({"comparison": "randomized smoothing (certify)", "tool": tool, "setting": setting,
                    "metric": "share abstained", "value": share, "queries": len(x) * (n0 + n), "wall_s": wall})
    rate = _multiply_adds(model) * len(x) * (n0 + n) / floor_s / _matmul_rate()
    out.append({"comparison": "randomized smoothing (certify)", "tool": "course_utils", "setting": setting,
                "metric": "the forward passes' multiply-adds per second, share of a 2048x2048 matrix product's",
                "value": rate, "queries": None, "wall_s": floor_s})
    return out


if __name__ == "__main__":
    import sys

    for row in rows("--quick" in sys.argv):
        print(f"{row['tool']:12s} {row['metric']:38s} {row['value']:.3f}  {row['wall_s']:.1f} s  ({row['setting']})")

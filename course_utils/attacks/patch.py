"""Lesson 6's adversarial patch (Brown, Mané, Roy, Abadi and Gilmer, "Adversarial Patch", 2017): one
small picture that, stuck anywhere on a photo, makes the model answer a target (here "toaster").

- :func:`apply_patch` puts a patch on photos at given placements (:func:`_paste`, differentiable);
- :func:`train_patch` on its step :func:`_patch_step`: pasted on photos at random places, sizes
  and angles, new every step (expectation over transformation, Athalye et al. 2018), a signed
  step down the averaged cross-entropy, within valid pixels and no budget;
- :func:`patch_success`: how often patched photos answer the target, on unseen placements;
- :func:`load_patch`: the patch shipped with the course (trained by ``tools/train_patch.py``).

Pixels 0..255; sides in pixels of the photo; angles in degrees.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from course_utils.attacks.transfer import top1
from course_utils.checks import check_int, check_number, check_steps, effective_seed
from course_utils.core import ops
from course_utils.core.loop import compiled
from course_utils.io.images import DATA_DIR, as_batch, load_image
from course_utils.models.imagenet import ClassNames, Target

__all__ = ["PATCH_SIDES", "PATCH_DEGREES", "SHIPPED_PATCH", "apply_patch", "train_patch", "patch_success", "load_patch"]

PATCH_SIDES: tuple[float, float] = (72.0, 104.0)
"""The patch's side on a 224-pixel photo, drawn uniformly: about 10% to 22% of the photo's area."""

PATCH_DEGREES = 20.0
"""Placements turn the patch by up to this many degrees either way."""

SHIPPED_PATCH = "patch_toaster.png"
"""The patch :func:`load_patch` reads from ``data/`` (its card: ``patch_toaster.md``)."""


def _paste(pictures: tf.Tensor, patch: tf.Tensor, centres: tf.Tensor, sides: tf.Tensor,
          angles: tf.Tensor) -> tf.Tensor:
    """``pictures`` ``(M, H, W, C)`` with ``patch`` (``(1 or M, P, P, C)``, pixels 0..255) pasted
    on each: centred at ``centres`` ``(M, 2)`` (row, column, in pixels, 0 = the first pixel's
    centre), ``sides`` ``(M,)`` pixels wide, turned by ``angles`` ``(M,)`` degrees.
    Bilinear, so a patch of its own size at whole-pixel places and no turn lands
    exactly: ``_paste(x, p, [[r + (P-1)/2, c + (P-1)/2]], [P], [0])[0, r:r+P, c:c+P] == p[0]``.
    Differentiable with respect to the patch."""
    m = tf.shape(pictures)[0]
    h, w = tf.shape(pictures)[1], tf.shape(pictures)[2]
    patch = tf.broadcast_to(patch, tf.concat([[m], tf.shape(patch)[1:]], axis=0))
    size = tf.cast(tf.shape(patch)[1], tf.float32)
    k = size / tf.cast(sides, tf.float32)
    theta = tf.cast(angles, tf.float32) * (math.pi / 180.0)
    a0, a1 = k * tf.cos(theta), -k * tf.sin(theta)
    b0, b1 = k * tf.sin(theta), k * tf.cos(theta)
    cy, cx = tf.cast(centres[:, 0], tf.float32), tf.cast(centres[:, 1], tf.float32)
    mid = (size - 1.0) / 2.0
    tx, ty = mid - a0 * cx - a1 * cy, mid - b0 * cx - b1 * cy
    mask = ops.affine(tf.ones_like(patch[..., :1]), a0, a1, tx, b0, b1, ty, size=(h, w), fill="CONSTANT")
    return pictures * (1.0 - mask) + ops.affine(patch, a0, a1, tx, b0, b1, ty, size=(h, w), fill="CONSTANT")


def _check_patch(patch: Any, photo_shape: Sequence[int] | None = None) -> np.ndarray:
    """``patch`` as float32 ``(P, P, 3)`` pixels 0..255, or a clear error: a square colour picture
    of side >= 1, no larger than the photos (``photo_shape`` ``(H, W, ...)``)."""
    a = np.asarray(patch, dtype=np.float32)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or a.shape[-1] != 3 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a patch is a square colour picture (P, P, 3), got shape {np.shape(patch)}")
    if a.shape[0] < 1:
        raise ValueError(f"the patch has no pixels (shape {a.shape}); give it a side of at least 1 pixel")
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 255:
        raise ValueError(f"patch pixels must be 0..255, got {a.min():g}..{a.max():g}")
    if photo_shape is not None and a.shape[0] > min(photo_shape[0], photo_shape[1]):
        raise ValueError(f"the patch ({a.shape[0]}x{a.shape[0]} pixels) is larger than the photos "
                         f"({photo_shape[0]}x{photo_shape[1]}); make it smaller than the photo")
    return a


def _check_sides(sides: Any, photo_shape: Sequence[int]) -> tuple[float, float]:
    if np.ndim(sides) == 0:
        sides = (sides, sides)
    if len(sides) != 2:
        raise ValueError(f"sides must be one side or (smallest, largest) in pixels, got {sides!r}")
    low, high = (check_number("patch side", s, minimum=0.0, above=True) for s in sides)
    if low > high:
        raise ValueError(f"sides: the smallest side comes first, got {sides!r}")
    if high > min(photo_shape[0], photo_shape[1]):
        raise ValueError(f"a patch side of {high:g} pixels is larger than the photos ({photo_shape[0]}x"
                         f"{photo_shape[1]}); choose sides smaller than the photo")
    return low, high


def _draw(u: tf.Tensor, height: tf.Tensor, width: tf.Tensor, sides: tuple[float, float],
          degrees: float) -> tf.Tensor:
    """Placements ``(M, 4)`` (centre row, centre column, side, angle) from uniform numbers ``u``
    ``(M, 4)``: the turned patch stays on the photo wherever it fits."""
    side = sides[0] + (sides[1] - sides[0]) * u[:, 0]
    angle = degrees * (2.0 * u[:, 1] - 1.0)
    turn = tf.abs(tf.cos(angle * math.pi / 180.0)) + tf.abs(tf.sin(angle * math.pi / 180.0))
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    half_h = tf.minimum(side * turn / 2.0, (h - 1.0) / 2.0)
    half_w = tf.minimum(side * turn / 2.0, (w - 1.0) / 2.0)
    row = half_h - 0.5 + (h - 2.0 * half_h) * u[:, 2]
    col = half_w - 0.5 + (w - 2.0 * half_w) * u[:, 3]
    return tf.stack([tf.clip_by_value(row, 0.0, h - 1.0), tf.clip_by_value(col, 0.0, w - 1.0), side, angle], axis=1)


def _random_placements(count: int, image_size: int | tuple[int, int] = 224, *,
                      sides: Any = PATCH_SIDES, degrees: float = PATCH_DEGREES, seed: int = 0) -> np.ndarray:
    """``count`` random placements of a patch on a photo of ``image_size``, seeded: float32 ``(count, 4)``
    centre row, centre column, side (pixels, uniform in ``sides``), angle (degrees, uniform in
    ``-degrees..degrees``); the turned patch stays on the photo."""
    count = check_int("count", count, minimum=1)
    h, w = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    sides = _check_sides(sides, (h, w))
    degrees = check_number("degrees", degrees, minimum=0.0, maximum=180.0)
    u = tf.random.stateless_uniform([count, 4], seed=ops.seed_pair(effective_seed(seed), 50))
    return _draw(u, h, w, sides, degrees).numpy()


def apply_patch(photos: Any, patch: Any, placements: Any) -> np.ndarray:
    """``photos`` ``(N, H, W, 3)`` (or one photo) with ``patch`` ``(P, P, 3)`` pasted at
    ``placements`` ``(N, 4)`` (one per photo; or ``(4,)`` for all): centre row, centre column, side
    (pixels), angle (degrees). Returns float32 ``(N, H, W, 3)`` pixels 0..255."""
    x = as_batch(photos)
    p = _check_patch(patch, x.shape[1:])
    where = np.asarray(placements, dtype=np.float32)
    where = np.broadcast_to(where, (len(x), 4)) if where.ndim == 1 else where
    if where.shape != (len(x), 4):
        raise ValueError(f"give one placement (row, column, side, angle) per photo: {len(x)} photos, "
                         f"placements of shape {np.shape(placements)}")
    if not np.all(np.isfinite(where)):
        raise ValueError(f"placements must be finite numbers (row, column, side, angle), got {np.asarray(placements).tolist()}")
    h, w = x.shape[1:3]
    off = (where[:, 0] < 0) | (where[:, 0] > h - 1) | (where[:, 1] < 0) | (where[:, 1] > w - 1)
    if off.any():
        k = int(np.flatnonzero(off)[0])
        raise ValueError(f"placements put the patch's centre off the photo: row {where[k, 0]:g}, column {where[k, 1]:g} "
                         f"(photo {k}); the centre must be inside the {h} x {w} photo (rows 0..{h - 1}, columns 0..{w - 1})")
    _check_sides((float(where[:, 2].min()), float(where[:, 2].max())), x.shape[1:])
    return _paste(tf.constant(x), tf.constant(p[None]), where[:, :2], where[:, 2], where[:, 3]).numpy()


class _Photos:
    """Training photos ``(B, H, W, 3)`` as a setting of :func:`_patch_step`: equal, and so sharing one
    compiled graph, when their pixels are."""

    def __init__(self, photos: Any) -> None:
        self.array = as_batch(photos)
        if len(self.array) == 0 or self.array.ndim != 4 or self.array.shape[-1] != 3:
            raise ValueError(f"photos must be colour pictures (N, H, W, 3), N >= 1, got shape {tuple(self.array.shape)}")
        self._key = (self.array.shape, hashlib.sha1(self.array.tobytes()).hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Photos) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"_Photos({self.array.shape[0]} of {self.array.shape[1]}x{self.array.shape[2]})"


def _patch_step(model, x, x0, i, seed, data, *, photos: _Photos, placements: int = 8,
               sides: tuple[float, float] = PATCH_SIDES, degrees: float = PATCH_DEGREES):
    """One step of the patch: pasted on ``placements`` photos at random, a signed step down the averaged cross-entropy."""
    n, rows = tf.shape(x)[0], placements * tf.shape(x)[0]                  # row j * N + i: patch i, placement j
    u = tf.random.stateless_uniform(tf.stack([rows, 4]), seed=ops.seed_pair(tf.stack([seed[0], i]), 51))
    where = _draw(u, photos.array.shape[1], photos.array.shape[2], sides, degrees)  # new places every step
    backgrounds = tf.gather(tf.constant(photos.array), (tf.range(rows) // n) % len(photos.array))
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        patched = _paste(backgrounds, tf.tile(x, [placements, 1, 1, 1]), where[:, :2], where[:, 2], where[:, 3])
        logits = tf.reshape(model(patched, training=False), [placements, n, -1])
        loss = ops.cross_entropy(logits, data["labels"])                    # towards the target, averaged
    grad = tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    x_next = tf.clip_by_value(x - ops.per_example(data["step_size"], x) * tf.sign(grad), 0.0, 255.0)  # valid pixels
    return x_next, loss, tf.reduce_mean(tf.nn.softmax(logits), axis=0), None


def _centred(model, x, x0, i, seed, data, *, photos: _Photos, sides: tuple[float, float] = PATCH_SIDES, **_):
    """What the history starts and ends with: the loss and softmax (averaged over the photos) with the
    patch unturned in the middle of every photo, its side the middle of ``sides``."""
    b, (h, w) = len(photos.array), photos.array.shape[1:3]
    rows = b * tf.shape(x)[0]                                                # row j * N + i: patch i on photo j
    backgrounds = tf.repeat(tf.constant(photos.array), tf.shape(x)[0], axis=0)
    centre = tf.fill([rows, 2], (h - 1) / 2.0) * tf.constant([[1.0, (w - 1) / (h - 1)]])
    patched = _paste(backgrounds, tf.tile(x, [b, 1, 1, 1]), centre, tf.fill([rows], sum(sides) / 2), tf.zeros([rows]))
    logits = tf.reshape(model(patched, training=False), [b, tf.shape(x)[0], -1])
    return ops.cross_entropy(logits, data["labels"]), tf.reduce_mean(tf.nn.softmax(logits), axis=0)


@dataclass
class _PatchResult:
    """A patch and its training (:func:`train_patch`) or its score on photos (:func:`patch_success`);
    not an :class:`~course_utils.attacks.gradient.AttackResult`: one patch serves every photo.

    Attributes:
        patch: ``(P, P, 3)`` float32 pixels 0..255.
        target, label: the class (index, name).
        probability: training's ``(steps + 1,)`` the target's probability averaged over each step's
            random placements; the first and the last with the patch in the middle of every
            training photo. ``losses``: ``(steps + 1,)`` the averaged cross-entropy; ``seconds``:
            wall time of the optimisation.
        images: the score's ``(N, K, H, W, 3)`` ``N`` photos, each with the patch at ``K`` placements;
            ``placements`` ``(N, K, 4)`` centre row, centre column, side, angle; ``predicted``
            ``(N, K)`` the model's top-1; ``success`` ``(N, K)`` it is the target; ``clean`` ``(N,)``
            the model's top-1 on the photos without the patch.
    """

    patch: np.ndarray
    target: int
    label: str
    probability: np.ndarray | None = None
    losses: np.ndarray | None = field(default=None, repr=False)
    seconds: float = 0.0
    images: np.ndarray | None = field(default=None, repr=False)
    placements: np.ndarray | None = field(default=None, repr=False)
    predicted: np.ndarray | None = field(default=None, repr=False)
    success: np.ndarray | None = field(default=None, repr=False)
    clean: np.ndarray | None = field(default=None, repr=False)

    @property
    def rate(self) -> float:
        """The score's share of patched photos that answer the target (0..1)."""
        if self.success is None:
            raise ValueError("this patch was not scored: measure it with patch_success")
        return float(self.success.mean())

    def __repr__(self) -> str:
        size = f"PatchResult({self.patch.shape[0]}x{self.patch.shape[1]} patch towards {self.label!r}, "
        if self.success is not None:
            return size + f"{self.success.shape[0]} photos x {self.success.shape[1]} placements, success {self.rate:.0%})"
        return size + (f"p(target) {self.probability[1]:.3f} -> {self.probability[-2]:.3f} over training placements, "
                       f"{len(self.probability) - 1} steps, {self.seconds:.1f} s)")


def _target(model: Any, target: Target) -> tuple[int, str]:
    classes = ClassNames.of(model)
    index = classes.index(target)
    return index, classes.label(index)


def train_patch(model: Any, photos: Any, target: Target, size: int = 80, steps: int = 100,
                step_size: float = 2.0, *, placements: int = 8, seed: int = 0, start: Any = None,
                sides: Any = PATCH_SIDES, progress: bool | None = None) -> _PatchResult:
    """Optimise a ``size`` x ``size`` patch so that the photos with it pasted anywhere answer ``target``.

    Each step pastes the patch on ``placements`` photos (cycling through ``photos``) at random
    places, sides (``sides``: one, or (smallest, largest) in pixels) and angles (up to
    :data:`PATCH_DEGREES` either way), new every step, and moves every patch pixel down the sign of
    the averaged cross-entropy's gradient: ``2 * step_size`` grey levels for the first half of the
    steps, ``step_size`` for the next quarter, then half of it.

    Args:
        model: a classifier taking pixels 0..255 and giving logits.
        photos: ``(N, H, W, 3)`` pixels 0..255, the training photos.
        target: the class, a name (``"toaster"``) or an index.
        size: the patch's side in pixels (>= 1, at most the photo's).
        steps, step_size: gradient steps (>= 1), grey levels per step (> 0).
        placements: photos with the patch per step (>= 1); each costs one pass of the model.
        seed: seed of the start and of the placements (``COURSE_SEED`` moves it).
        start: the patch to start from ``(size, size, 3)``; default seeded uniform noise.
    """
    size = check_int("size", size, minimum=1)
    photos = _Photos(photos)
    x = photos.array
    if size > min(x.shape[1:3]):
        raise ValueError(f"a patch of {size}x{size} pixels is larger than the photos ({x.shape[1]}x{x.shape[2]}); "
                         "make it smaller than the photo")
    steps = check_steps(steps)
    step_size = check_number("step_size", step_size, minimum=0.0, above=True)
    index, label = _target(model, target)
    placements = check_int("placements", placements, minimum=1, maximum=256)
    sides = _check_sides(sides, x.shape[1:])
    if start is None:
        rng = np.random.default_rng(effective_seed(seed))
        start = rng.uniform(0.0, 255.0, (size, size, 3)).astype(np.float32)
    start = _check_patch(start, x.shape[1:])
    if start.shape[0] != size:
        raise ValueError(f"start is {start.shape[0]}x{start.shape[0]} pixels, the patch {size}x{size}")
    loop = compiled(_patch_step, model, measure=_centred, photos=photos, placements=placements, sides=sides)
    # Step decay: half the steps at 2 x step_size, a quarter at step_size, the rest at step_size / 2.
    # A constant signed step keeps every pixel jumping +-step_size around its best value to the end;
    # halving it settles the patch (at 120 steps x 8 placements: 0.91 -> 1.0 on held-out photos).
    phases = [(n, f) for n, f in ((steps // 2, 2.0), (steps // 4, 1.0), (steps - steps // 2 - steps // 4, 0.5)) if n]
    patch, probability, losses, seconds = start[None], [], [], 0.0
    for k, (n, factor) in enumerate(phases):
        data = {"labels": np.asarray([index], np.int32), "step_size": np.asarray([step_size * factor], np.float32)}
        run = loop.run(patch, data, steps=n, seed=seed + k, progress=progress,
                       description=f"patch -> {label}" + (f" ({k + 1}/{len(phases)})" if len(phases) > 1 else ""))
        first = 0 if k == 0 else 1  # a phase starts where the last ended: its first measurement repeats that one's last
        patch, seconds = run.x, seconds + run.seconds
        probability.append(run.tracked[first:, 0, index]), losses.append(run.losses[first:, 0])
    return _PatchResult(patch[0], index, label, np.concatenate(probability), np.concatenate(losses), seconds)


def patch_success(model: Any, patch: Any, photos: Any, target: Target, placements: int = 8, *,
                  seed: int = 1) -> _PatchResult:
    """Paste ``patch`` on each photo at ``placements`` random placements (seeded; use a ``seed``
    the training did not use) and measure how often the model answers ``target``."""
    x = as_batch(photos)
    p = _check_patch(patch, x.shape[1:])
    index, label = _target(model, target)
    k = check_int("placements", placements, minimum=1)
    where = _random_placements(len(x) * k, x.shape[1:3], seed=seed).reshape(len(x), k, 4)
    images = np.stack([apply_patch(np.repeat(x[i : i + 1], k, axis=0), p, where[i]) for i in range(len(x))])
    predicted = top1(model, images.reshape(-1, *x.shape[1:])).reshape(len(x), k)
    return _PatchResult(p, index, label, images=images, placements=where, predicted=predicted,
                       success=predicted == index, clean=top1(model, x))


def load_patch() -> np.ndarray:
    """The course's trained "toaster" patch for EfficientNet-Lite0 (``tools/train_patch.py``):
    float32 ``(P, P, 3)`` pixels 0..255."""
    return load_image(str(DATA_DIR / SHIPPED_PATCH))

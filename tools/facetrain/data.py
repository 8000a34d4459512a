"""The face set of lesson 1: reading it, checking it, splitting it, augmenting it.

Only retraining the gender CNN needs the data (``../shared/data/faces48.npz`` from the repository
root; UTKFace adults, 48x48 grayscale, non-commercial research and education only, never
shipped). :func:`check_faces` refuses data a training run would silently turn into useless
weights: NaN pixels, pixels outside 0..255 or scaled to 0..1, a single class, no faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from course_utils.models.faces import GENDER_CLASSES, IMAGE_SIZE

__all__ = [
    "DEFAULT_DATA",
    "RACE_NAMES",
    "MIN_FACES_PER_CLASS",
    "FaceDataError",
    "check_faces",
    "read_face_set",
    "load_faces",
    "split_faces",
    "augment_faces",
]

#: Where the shared face set lives, relative to the repository root (not shipped with the course).
DEFAULT_DATA: str = "../shared/data/faces48.npz"

#: UTKFace race codes, as stored in the ``races`` array of the face set.
RACE_NAMES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others")

#: The fewest faces of each class a data set needs: enough that the 80/20 split puts some of each
#: class into both the training and the held-out set.
MIN_FACES_PER_CLASS: int = 5

_EXPECTED = (
    f"'images' (N, {IMAGE_SIZE}, {IMAGE_SIZE}) uint8 grey levels 0..255 and 'labels' (N,) with "
    "0 = man, 1 = woman, as described in ../shared/data/README.md"
)


class FaceDataError(ValueError):
    """The face data cannot train a model; the message says what is wrong and what to do."""


def _describe(values: np.ndarray, limit: int = 6) -> str:
    """A few distinct values of an array, for error messages."""
    distinct = np.unique(values)
    shown = ", ".join(str(v) for v in distinct[:limit])
    return shown + (f", ... ({distinct.size} distinct values)" if distinct.size > limit else "")


def check_faces(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    where: str = "the face data",
    min_per_class: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Check faces and labels for training; return them as float32 ``(N, 48, 48, 1)`` and int64.

    Args:
        images: ``(N, 48, 48)`` or ``(N, 48, 48, 1)`` grey levels 0..255 (uint8, or any
            integer or float type holding values in that range).
        labels: ``(N,)`` whole numbers, 0 = man, 1 = woman.
        where: how to name the data in error messages (e.g. the file).
        min_per_class: the fewest faces each of the two classes needs.

    Raises:
        FaceDataError: no faces, wrong shapes or types, NaN or infinite pixels, pixels outside
            0..255 or all within 0..1 (a units slip), labels other than 0 and 1, or fewer than
            ``min_per_class`` faces of a class. The message quotes what it found.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype.kind not in "uif":
        raise FaceDataError(f"{where}: 'images' must hold numbers (grey levels), got dtype {images.dtype}. Expected {_EXPECTED}.")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise FaceDataError(f"{where}: 'images' must have shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}), got {images.shape}")
    if images.shape[0] == 0:
        raise FaceDataError(f"{where} holds no faces (images of shape {images.shape}); training needs faces of both classes")
    if labels.shape != (images.shape[0],):
        raise FaceDataError(f"{where}: 'labels' must have shape ({images.shape[0]},), one per image, got {labels.shape}")
    if images.dtype.kind == "f":
        bad = ~np.isfinite(images)
        if bad.any():
            first = int(np.argmax(bad.any(axis=(1, 2))))
            raise FaceDataError(
                f"{where}: 'images' hold {int(bad.sum())} NaN or infinite values (the first in face {first}); "
                "fix or drop those faces first"
            )
    low, high = images.min(), images.max()
    if low < 0 or high > 255:
        raise FaceDataError(f"{where}: pixel values must be grey levels 0..255, got {low:.4g}..{high:.4g}")
    if high <= 1:
        raise FaceDataError(
            f"{where}: every pixel is within 0..1 (max {high:.4g}): the faces must be grey levels 0..255 "
            "(uint8); if they were scaled to 0..1, multiply by 255"
        )
    if labels.dtype.kind not in "iuf" or (labels.dtype.kind == "f" and not np.all(np.isfinite(labels))):
        raise FaceDataError(f"{where}: 'labels' must be whole numbers 0 (man) or 1 (woman), got dtype {labels.dtype}")
    if not np.isin(labels, (0, 1)).all():
        raise FaceDataError(f"{where}: 'labels' must be 0 (man) or 1 (woman), got {_describe(labels)}")
    counts = [int(np.sum(labels == c)) for c in (0, 1)]
    if min(counts) < min_per_class:
        found = ", ".join(f"{n} {GENDER_CLASSES[c]} ({c})" for c, n in enumerate(counts))
        raise FaceDataError(
            f"{where} has {found}: training needs at least {min_per_class} face(s) of each class"
        )
    return images.astype(np.float32)[..., None], labels.astype(np.int64)


def read_face_set(path: str | Path = DEFAULT_DATA) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read and check the face set: ``(images, labels, races)``.

    ``images`` float32 ``(N, 48, 48, 1)`` grey levels 0..255, ``labels`` int64 ``(N,)``, ``races``
    the int64 UTKFace race codes ``(N,)`` or ``None`` if the file has none.

    Raises:
        FileNotFoundError: the file does not exist (the message says where the data set lives).
        FaceDataError: unreadable, arrays missing, or data :func:`check_faces` refuses; each class
            needs :data:`MIN_FACES_PER_CLASS` faces.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"face data set not found: {path}. It lives in the developers' shared folder as "
            f"{DEFAULT_DATA} (relative to the repository root; see ../shared/data/README.md) and "
            f"is not shipped with the course. Only retraining the gender CNN needs it: the "
            f"trained weights ship as data/gender_cnn.weights.h5."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name in ("images", "labels", "races")}
            names = sorted(npz.files)
    except Exception as error:  # zipfile, pickle and format errors of damaged files
        raise FaceDataError(f"cannot read the face data set {path} ({type(error).__name__}: {error}); expected an .npz file with {_EXPECTED}") from None
    missing = [name for name in ("images", "labels") if name not in arrays]
    if missing:
        raise FaceDataError(f"{path} lacks the array(s) {missing}; it holds {names}. Expected {_EXPECTED}.")
    images, labels = check_faces(arrays["images"], arrays["labels"], where=str(path), min_per_class=MIN_FACES_PER_CLASS)
    races = arrays.get("races")
    if races is not None:
        if races.shape != labels.shape or races.dtype.kind not in "iu":
            raise FaceDataError(f"{path}: 'races' must be whole numbers of shape {labels.shape}, got {races.dtype} {races.shape}")
        races = races.astype(np.int64)
    return images, labels, races


def load_faces(path: str | Path = DEFAULT_DATA) -> tuple[np.ndarray, np.ndarray]:
    """Load the gender-labelled faces.

    Args:
        path: the ``.npz`` face set (``../shared/data/faces48.npz`` from the repository root),
            holding ``images`` (N, 48, 48) uint8 and ``labels`` (N,) integers.

    Returns:
        ``(images, labels)``: images float32 of shape ``(N, 48, 48, 1)``, grayscale pixels in
        0..255; labels int64 of shape ``(N,)``, 0 = man, 1 = woman.

    Raises:
        FileNotFoundError: the file does not exist (the message says where the data set lives).
        FaceDataError: (a ``ValueError``) the file is unreadable, lacks the arrays, or their
            shapes or values are wrong (see :func:`check_faces`).
    """
    images, labels, _ = read_face_set(path)
    return images, labels


def split_faces(labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into a training and a held-out set, stratified by label.

    Each class contributes ``round(test_fraction * class size)`` of its samples, chosen at random,
    to the held-out set, so both sets keep the class balance of the whole.

    Args:
        labels: integer class labels, shape ``(N,)``.
        test_fraction: the share held out, strictly between 0 and 1.
        seed: seed of the NumPy generator; the same seed gives the same split.

    Returns:
        ``(train_idx, test_idx)``: sorted int64 index arrays into ``labels``, disjoint, together
        covering ``0..N-1``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    test_parts = [np.zeros(0, np.int64)]
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        test_parts.append(members[: int(round(test_fraction * members.size))])
    test_idx = np.sort(np.concatenate(test_parts)).astype(np.int64)
    train_mask = np.ones(labels.size, dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask).astype(np.int64), test_idx


def augment_faces(
    images: np.ndarray,
    rng: np.random.Generator,
    max_shift: int = 3,
    brightness: float = 25.0,
    contrast: float = 0.25,
) -> np.ndarray:
    """Randomly mirror, shift and re-expose faces (a fresh variant of the training set per epoch).

    Args:
        images: float32 ``(N, H, W, 1)`` pixels in 0..255.
        rng: the NumPy generator that draws the changes (seeded for reproducibility).
        max_shift: the largest shift in pixels, up/down and left/right; borders are extended by
            repeating the edge pixels.
        brightness: the largest change of overall brightness, in grey levels (added to every
            pixel, drawn uniformly from ``-brightness..brightness`` per image).
        contrast: the largest relative change of contrast: each image's deviations from its own
            mean grey level are scaled by a factor drawn log-uniformly from
            ``1/(1+contrast)..1+contrast``.

    Returns:
        A new float32 array of the same shape, clipped to 0..255: each image mirrored left-right
        with probability 1/2, moved by a whole number of pixels in ``-max_shift..max_shift`` along
        each axis, then (if asked) given a new contrast and brightness.
    """
    n, height, width = images.shape[:3]
    flips = rng.random(n) < 0.5
    out = np.where(flips[:, None, None, None], images[:, :, ::-1], images).astype(np.float32)
    if max_shift > 0:
        s = max_shift
        padded = np.pad(out, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
        dy = rng.integers(0, 2 * s + 1, size=n)
        dx = rng.integers(0, 2 * s + 1, size=n)
        rows = dy[:, None] + np.arange(height)[None, :]  # (N, H)
        cols = dx[:, None] + np.arange(width)[None, :]  # (N, W)
        out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if contrast > 0:
        factor = np.exp(rng.uniform(-1.0, 1.0, size=(n, 1, 1, 1)) * np.log1p(contrast))
        mean = out.mean(axis=(1, 2, 3), keepdims=True)
        out = (out - mean) * factor.astype(np.float32) + mean
    if brightness > 0:
        out = out + rng.uniform(-brightness, brightness, size=(n, 1, 1, 1)).astype(np.float32)
    if contrast > 0 or brightness > 0:
        out = np.clip(out, 0.0, 255.0)
    return np.ascontiguousarray(out, dtype=np.float32)

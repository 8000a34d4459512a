"""The offline sample photos (no network needed).

``"astronaut"`` (Eileen Collins, a woman), ``"chelsea"`` (a cat), ``"coffee"`` (a cup of espresso)
from scikit-image, and ``"grace_hopper"`` from matplotlib; the faces of two of them cropped like
lesson 1's training faces.
"""

from __future__ import annotations

import numpy as np

from course_utils.io.images import ImageLoadError, _decode, load_image

__all__ = ["SAMPLE_IMAGES", "FACE_BOXES", "sample_image", "sample_face"]

SAMPLE_IMAGES: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "grace_hopper")

# Face boxes (row0, row1, col0, col1) framed like the gender-CNN training faces: a tight
# forehead-to-chin square, eyes about a quarter of the way down, mouth about two thirds.
FACE_BOXES: dict[str, tuple[int, int, int, int]] = {
    "astronaut": (72, 172, 175, 275),
    "grace_hopper": (133, 325, 160, 352),
}


def sample_image(name: str) -> np.ndarray:
    """One of the offline sample photos as shipped: ``uint8`` RGB, shape ``(H, W, 3)``.

    ``"astronaut"`` 512x512, ``"chelsea"`` 300x451, ``"coffee"`` 400x600, ``"grace_hopper"`` 600x512.
    """
    if name in ("astronaut", "chelsea", "coffee"):
        import skimage.data

        return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return _decode(f.read(), "matplotlib's grace_hopper.jpg")
    raise ImageLoadError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")


def sample_face(name: str, size: int = 48) -> np.ndarray:
    """A sample photo's face, cropped like the training faces of lesson 1, in gray.

    Returns float32 pixels 0..255, shape ``(size, size, 1)``. Faces are known for
    ``"astronaut"`` and ``"grace_hopper"``.
    """
    if name not in FACE_BOXES:
        raise ImageLoadError(f"no face box for {name!r}; faces are known for {', '.join(FACE_BOXES)}")
    r0, r1, c0, c1 = FACE_BOXES[name]
    return load_image(sample_image(name)[r0:r1, c0:c1], size=size, mode="gray")

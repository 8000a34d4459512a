"""Photos in, pixel arrays out: loading, cropping, resizing, checking.

Units: every array this module returns is **float32 pixels in 0..255**, channels last:
``(H, W, 3)`` for ``mode="rgb"``, ``(H, W, 1)`` for ``mode="gray"``. :func:`sample_image` is the
exception: it returns the photo as shipped, ``uint8``.

Offline photos (no network needed): ``"astronaut"`` (Eileen Collins, a woman), ``"chelsea"`` (a
cat), ``"coffee"`` (a cup of espresso) from scikit-image, and ``"grace_hopper"`` from matplotlib.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "SAMPLE_IMAGES",
    "FACE_BOXES",
    "ImageLoadError",
    "sample_image",
    "sample_face",
    "load_image",
    "center_crop_resize",
    "to_gray",
    "as_batch",
    "to_uint8",
]

SAMPLE_IMAGES: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "grace_hopper")

# Face boxes (row0, row1, col0, col1) framed like the gender-CNN training faces: a tight
# forehead-to-chin square, eyes about a quarter of the way down, mouth about two thirds.
FACE_BOXES: dict[str, tuple[int, int, int, int]] = {
    "astronaut": (72, 172, 175, 275),
    "grace_hopper": (133, 325, 160, 352),
}

Mode = Literal["rgb", "gray"]


class ImageLoadError(ValueError):
    """An image could not be loaded or is not a usable picture; the message says what to do."""


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


def _decode(data: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ImageLoadError(
            f"{where} is not an image PIL can read ({err}); give a JPEG or PNG file, URL or array"
        ) from None


def _fetch(url: str, timeout: float) -> bytes:
    import requests

    try:
        response = requests.get(url, timeout=timeout, headers={"User-Agent": "course-utils/0.1"})
        response.raise_for_status()
    except requests.RequestException as err:
        raise ImageLoadError(
            f"could not download {url} ({type(err).__name__}). Check the address and your internet "
            f"connection; offline, use one of the sample photos: sample_image({SAMPLE_IMAGES[0]!r})."
        ) from None
    kind = response.headers.get("Content-Type", "")
    if kind and not kind.startswith("image/") and "octet-stream" not in kind:
        raise ImageLoadError(f"{url} answered with {kind!r}, not an image; link to the picture file itself")
    return response.content


def _from_array(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageLoadError(f"an image array must hold numbers, got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (1, 3))):
        raise ImageLoadError(
            f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}. "
            "For a batch, load the images one by one."
        )
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ImageLoadError("the image holds NaN or infinite values; fix or drop those pixels first")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ImageLoadError(
            f"pixel values must be in 0..255, got {a.min():.3g}..{a.max():.3g}. "
            "If they are in 0..1, multiply by 255 first."
        )
    if array.dtype.kind == "f" and a.size and a.max() <= 1.0 and a.max() > 0:
        # Floats in 0..1 are legal pixels (a very dark picture) but almost always a units slip.
        import warnings

        warnings.warn("all pixels are <= 1: this course works in 0..255; multiply by 255 if they were 0..1", stacklevel=3)
    return a


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` -> luma ``(H, W, 1)`` with ITU-R 601 weights (as PIL's ``"L"`` mode), same units."""
    if image.shape[-1] == 1:
        return image
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (image[..., :3] @ weights)[..., None].astype(np.float32)


def center_crop_resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Crop the largest centred region with the aspect ratio of ``size``, then resize to it.

    ``image`` is ``(H, W, C)`` float pixels; ``size`` an int (square) or ``(height, width)``.
    Resizing is anti-aliased, so shrinking a photo does not alias.
    """
    from skimage.transform import resize

    th, tw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if th < 1 or tw < 1:
        raise ValueError(f"size must be positive, got {size}")
    h, w = image.shape[:2]
    if h * tw > w * th:  # too tall: crop rows
        ch, cw = max(1, round(w * th / tw)), w
    else:
        ch, cw = h, max(1, round(h * tw / th))
    r0, c0 = (h - ch) // 2, (w - cw) // 2
    crop = image[r0 : r0 + ch, c0 : c0 + cw]
    out = resize(crop, (th, tw, image.shape[-1]), order=1, anti_aliasing=(ch > th), preserve_range=True)
    return np.clip(out, 0, 255).astype(np.float32)


def load_image(source: Any, size: int | tuple[int, int] | None = None, mode: Mode = "rgb", *, timeout: float = 10.0) -> np.ndarray:
    """Load a picture as float32 pixels 0..255.

    Args:
        source: a file path, an ``http(s)://`` URL, a numpy array (``(H, W)``, ``(H, W, 1|3|4)``,
            pixels 0..255) or a PIL image.
        size: ``None`` keeps the size; an int or ``(height, width)`` centre-crops to that aspect
            ratio and resizes (224 for the ImageNet models, 48 for the face model).
        mode: ``"rgb"`` -> ``(H, W, 3)``; ``"gray"`` -> ``(H, W, 1)``.
        timeout: seconds to wait for a URL.

    Raises:
        ImageLoadError: unreachable URL, a file that is missing or not an image, pixels out of
            0..255, NaN/inf, or a shape that is not an image. The message says how to fix it.
    """
    if mode not in ("rgb", "gray"):
        raise ValueError(f"mode must be 'rgb' or 'gray', got {mode!r}")
    if isinstance(source, (str, Path)) and str(source).startswith(("http://", "https://")):
        array = _decode(_fetch(str(source), timeout), str(source))
    elif isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImageLoadError(f"no file at {path}; check the path (relative paths start at {Path.cwd()})")
        array = _decode(path.read_bytes(), str(path))
    elif isinstance(source, np.ndarray):
        array = source
    elif type(source).__module__.startswith("PIL."):
        array = np.asarray(source.convert("RGB"))
    else:
        raise ImageLoadError(f"cannot load an image from a {type(source).__name__}; give a path, URL, array or PIL image")
    image = _from_array(array)
    if image.ndim == 2:
        image = image[..., None]
    if mode == "rgb" and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif mode == "gray":
        image = to_gray(image)
    if size is not None:
        image = center_crop_resize(image, size)
    return np.ascontiguousarray(image, dtype=np.float32)


def as_batch(images: Any, model: Any = None) -> np.ndarray:
    """Check pixels and make a batch: ``(H, W, C)`` or ``(N, H, W, C)`` -> float32 ``(N, H, W, C)``.

    Args:
        images: one image or a batch, pixels in 0..255 (numpy, tensor or anything array-like).
        model: if given, the images must match its input size and channels.

    Raises:
        ImageLoadError: wrong rank, NaN/inf, values outside 0..255, or a size the model does not
            take (the message says how to resize with :func:`load_image`).
    """
    x = np.asarray(images, dtype=np.float32) if not hasattr(images, "numpy") else np.asarray(images.numpy(), dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ImageLoadError(f"expected an image (H, W, C) or a batch (N, H, W, C), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ImageLoadError("the images hold NaN or infinite values")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ImageLoadError(
            f"pixels must be in 0..255, got {x.min():.3g}..{x.max():.3g} (if they are in 0..1, multiply by 255)"
        )
    if model is not None:
        want = tuple(model.input_shape[1:])
        if tuple(x.shape[1:]) != want:
            mode = "gray" if want[-1] == 1 else "rgb"
            raise ImageLoadError(
                f"{model.name} takes images of shape {want}, got {tuple(x.shape[1:])}; "
                f"resize with load_image(image, size={want[0]}, mode={mode!r})"
            )
    return x


def to_uint8(images: Any) -> np.ndarray:
    """Round and clip float pixels (0..255) to ``uint8`` for display or saving; shape unchanged."""
    x = np.asarray(images.numpy() if hasattr(images, "numpy") else images, dtype=np.float32)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


"""Getting things in: photos as pixel arrays, the course's one downloader, and the shipped data.

Units: every array this module returns is **float32 pixels in 0..255**, channels last:
``(H, W, 3)`` for ``mode="rgb"``, ``(H, W, 1)`` for ``mode="gray"``. The offline sample photos
(:func:`sample_image`): ``"astronaut"`` (Eileen Collins), ``"chelsea"`` (a cat), ``"coffee"`` from
scikit-image and ``"grace_hopper"`` from matplotlib; :func:`sample_face` crops two of them like
lesson 1's training faces.

Everything is bounded, so a hostile or careless source fails fast instead of filling the memory or
hanging: pictures have a pixel-count limit checked *before* decoding (:data:`MAX_PIXELS`), and every
download (a photo into memory, a weights file to disk) goes through one routine with a total time
limit and a size cap. A large weights file of :data:`KNOWN_FILES` is saved only once its MD5
matches (``make fetch-vgg16``, ``tools/fetch_weights.py``, saves VGG16's into the Keras cache). The small
files the course *ships* (weights, cards, patch, genomes) are the repository's top-level ``data/``,
found through :data:`DATA_DIR`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from course_utils.checks import check_number, check_size

__all__ = [
    "ImageLoadError", "MAX_PIXELS", "load_image", "as_batch", "to_uint8", "SAMPLE_IMAGES", "FACE_BOXES",
    "sample_image", "sample_face", "DATA_DIR", "WeightsUnavailableError", "KNOWN_FILES",
]

Mode = Literal["rgb", "gray"]

#: The largest picture (height x width) the course loads: 25 megapixels, e.g. 6000 x 4000. Larger
#: ones are refused before decoding (a 12000 x 12000 PNG of 140 KB once took 71 s and 4 GB).
MAX_PIXELS: int = 25_000_000

_MAX_DOWNLOAD_BYTES: int = 50 * 1024**2  # the largest photo download (50 MiB)
_CHUNK_BYTES = 1 << 20  # the most bytes read from the network (and hashed) at a time

_PACKAGE = Path(__file__).resolve().parents[1]

DATA_DIR: Path = _PACKAGE / "data" if (_PACKAGE / "data").is_dir() else _PACKAGE.parent / "data"
"""The folder of the shipped files: ``course_utils/data/`` in an installed wheel, else the
checkout's top-level ``data/`` (the package's own folder wins when both exist)."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_UNITS_WARNING = "all pixels are <= 1: this course works in 0..255; multiply by 255 if they were 0..1"


class ImageLoadError(ValueError):
    """An image could not be loaded or is not a usable picture; the message says what to do."""


class WeightsUnavailableError(RuntimeError):
    """A model's pretrained weights are neither installed, cached nor downloadable (a download of
    them failed, and no file was left at its destination); the message says how to get them."""


def _check_pixels(height: int, width: int, where: str, max_pixels: int) -> None:
    """Refuse pictures of more than ``max_pixels`` pixels, saying how big they are and what to do."""
    if height * width > max_pixels:
        raise ImageLoadError(
            f"{where} is {width}x{height} pixels ({height * width / 1e6:.1f} megapixels), more than "
            f"max_pixels={max_pixels} ({max_pixels / 1e6:g} MP). Shrink it first (e.g. with PIL: "
            "img.thumbnail((4000, 4000))), or pass a larger max_pixels= if you have the memory."
        )


def _check_size(size: Any, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """``size=`` as ``(height, width)`` (:func:`~course_utils.checks.check_size`), within ``max_pixels``."""
    th, tw = check_size(size)
    if th * tw > max_pixels:
        raise ImageLoadError(
            f"size={size!r} asks for {th}x{tw} pixels ({th * tw / 1e6:.1f} megapixels), more than "
            f"max_pixels={max_pixels}; ask for a smaller size (224 for the ImageNet models, 48 for the face model)"
        )
    return th, tw


def _pil_to_array(img: Any, where: str, max_pixels: int) -> np.ndarray:
    """A PIL image as pixels 0..255: ``uint8`` (H, W, 3), or float (H, W) for 16-bit grayscale, scaled
    from 0..65535 (``convert("RGB")`` would clip it to white). Mode ``"I"`` (32-bit integers) is 16-bit
    data from a PNG file; otherwise values up to 255 are grey levels, up to 65535 16-bit data."""
    width, height = img.size
    _check_pixels(height, width, where, max_pixels)
    if img.mode not in _SIXTEEN_BIT_MODES:
        return np.asarray(img.convert("RGB"))
    a = np.asarray(img)
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise ImageLoadError(
            f"{where} holds 32-bit integer pixels ({a.min()}..{a.max()}); save it as an 8- or 16-bit image"
        )
    if img.mode == "I" and img.format != "PNG" and (a.size == 0 or a.max() <= 255):
        return a.astype(np.float32)
    return a.astype(np.float32) * np.float32(255.0 / 65535.0)


def _decode(source: bytes | Path, where: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a picture (bytes or a file) after checking its pixel count from the header alone."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked just below
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        with img:
            return _pil_to_array(img, where, max_pixels)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as err:  # past Pillow's own limit, raised by Image.open
        raise ImageLoadError(
            f"{where} is too large to decode (Pillow: {err}) Shrink it first, e.g. with an image editor."
        ) from None
    except Exception as err:  # PIL raises many kinds (OSError, SyntaxError, ValueError...) on bad bytes
        raise ImageLoadError(
            f"{where} is not an image PIL can read ({type(err).__name__}: {err}); give a JPEG or PNG file, URL or array"
        ) from None


# --------------------------------------------------------------------------- the one downloader

def _reason(err: Exception) -> str:
    """The useful end of a requests error, e.g. ``[Errno 111] Connection refused``."""
    found = re.findall(r"\[Errno -?\d+\] [^'\")\]]+", str(err))
    return found[-1].strip() if found else type(err).__name__


def _too_slow(url: str, time_limit: float, hint: str) -> str:
    return f"downloading {url} took longer than the time limit ({time_limit:g} s): a slow or stalled server. {hint}"


def _stream(url: str, write: Callable[[bytes], None], box: dict[str, Any], *, timeout: float, time_limit: float,
            max_bytes: int, error: type[Exception], hint: str, image: bool, bar: Callable[[int | None], Any] | None) -> int:
    """The body of :func:`_download`, run in its worker thread; returns the bytes received."""
    import requests

    try:
        response = box["response"] = requests.get(
            url, timeout=timeout, stream=True, headers={"User-Agent": "course-utils/0.1", "Accept-Encoding": "identity"}
        )
    except requests.RequestException as err:
        raise error(f"could not download {url}: the connection failed ({_reason(err)}). Check the address and "
                    f"that this machine is online (and any proxy setting); nothing was saved. {hint}") from None
    with response:
        if response.status_code != 200:
            raise error(f"{url} answered HTTP {response.status_code} {response.reason}; nothing was saved. "
                        "Check the address, or try again later.")
        kind = response.headers.get("Content-Type", "")
        if image and kind and not kind.startswith("image/") and "octet-stream" not in kind:
            raise error(f"{url} answered with {kind!r}, not an image; link to the picture file itself")
        length = response.headers.get("Content-Length", "").strip()
        announced = int(length) if length.isdigit() else None
        too_big = (f"{url} is larger than max_bytes={max_bytes} bytes (%s); nothing was saved. "
                   "Link to a smaller file, or pass a larger max_bytes= if you trust the source")
        if announced is not None and announced > max_bytes:
            raise error(too_big % f"it announces {announced} bytes")
        bar = bar(announced) if bar is not None else None
        received = 0
        while True:
            if time.monotonic() > box["deadline"] or box.get("abandoned"):
                raise error(_too_slow(url, time_limit, hint))
            try:
                chunk = response.raw.read1(_CHUNK_BYTES, decode_content=True)  # returns once some bytes arrived
            except Exception as err:
                raise error(f"the download of {url} broke off ({type(err).__name__}); nothing was saved. Try again.") from None
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                raise error(too_big % "more than that arrived")
            write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    if announced is not None and received != announced:
        raise error(f"the download of {url} was cut short ({received} of {announced} bytes); nothing was saved. Try again.")
    return received


def _download(url: str, write: Callable[[bytes], None], *, timeout: float, time_limit: float, max_bytes: int,
              error: type[Exception], hint: str = "", image: bool = False,
              bar: Callable[[int | None], Any] | None = None) -> int:
    """The course's one downloader: ``url``'s body, piece by piece, into ``write``; returns the bytes received.

    It takes at most ``time_limit`` seconds in all (connecting, waiting, reading: a worker thread
    does the work, so a server that drips its headers cannot stall the caller), ``timeout`` seconds
    per wait, and at most ``max_bytes`` bytes (an announced larger body is refused before reading).
    ``image`` refuses an answer that is not a picture; ``bar(announced length or None)``, if given,
    makes a progress bar (tqdm) once the server answers.

    Raises:
        error: offline, an HTTP error, not an image, too large, too slow, broken off or cut short;
            the message says what to do (``hint`` ends the offline and too-slow messages).
        OSError: from ``write``; KeyboardInterrupt: the worker stops at its next read.
    """
    box: dict[str, Any] = {"deadline": time.monotonic() + time_limit}

    def work() -> None:
        try:
            box["received"] = _stream(url, write, box, timeout=timeout, time_limit=time_limit, max_bytes=max_bytes,
                                      error=error, hint=hint, image=image, bar=bar)
        except BaseException as err:  # handed to the caller's thread
            box["error"] = err

    worker = threading.Thread(target=work, name="course-utils-download", daemon=True)
    worker.start()
    try:
        worker.join(time_limit)
    finally:
        stalled = worker.is_alive()  # read once: the shutdown below ends the worker with its own error
        if stalled:  # stalled, dripping or interrupted: give up now; the worker stops at its next read
            box["abandoned"] = True
            try:
                box["response"].raw.shutdown()  # wakes a read blocked on the socket
            except Exception:
                pass
    if stalled:
        raise error(_too_slow(url, time_limit, hint))
    if "error" in box:
        raise box["error"]
    return box["received"]


def _warn_if_unit_scale(dtype: np.dtype, pixels: np.ndarray, stacklevel: int) -> None:
    """Floats all in 0..1 are legal pixels (a very dark picture) but almost always a units slip."""
    if dtype.kind == "f" and pixels.size and 0 < pixels.max() <= 1.0:
        warnings.warn(_UNITS_WARNING, stacklevel=stacklevel + 1)


def _check_pixel_values(x: np.ndarray, what: str) -> None:
    """Refuse empty arrays, NaN/inf and values outside 0..255, saying how to fix each."""
    if x.size == 0:
        if x.ndim == 4 and x.shape[0] == 0 and all(x.shape[1:]):
            raise ImageLoadError(f"got an empty batch of {what} (shape {x.shape}); give at least one image")
        raise ImageLoadError(f"no pixels in {what} (shape {x.shape}); give a picture of at least 1x1 pixel")
    if not np.all(np.isfinite(x)):
        raise ImageLoadError(f"NaN or infinite values in {what}; fix or drop those pixels first")
    if x.min() < 0 or x.max() > 255:
        raise ImageLoadError(
            f"pixel values must be in 0..255, got {x.min():.3g}..{x.max():.3g}. "
            "If they are in 0..1, multiply by 255 first."
        )


def _from_array(array: np.ndarray, max_pixels: int = MAX_PIXELS, warn_units: bool = True) -> np.ndarray:
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
    _check_pixels(a.shape[0], a.shape[1], "the image array", max_pixels)
    if a.size == 0:
        _check_pixel_values(a, "the image array")
    pixels = a.astype(np.float32)
    _check_pixel_values(pixels, "the image")
    if warn_units:
        _warn_if_unit_scale(a.dtype, pixels, stacklevel=3)
    return pixels


def _to_gray(image: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` -> luma ``(H, W, 1)`` with ITU-R 601 weights (as PIL's ``"L"`` mode), same units."""
    if image.shape[-1] == 1:
        return image
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (image[..., :3] @ weights)[..., None].astype(np.float32)


def _center_crop_resize(image: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Crop the largest centred region of ``(H, W, C)`` pixels with the aspect ratio of ``th`` x ``tw``,
    then resize to it (anti-aliased, so shrinking a photo does not alias)."""
    from skimage.transform import resize

    h, w = image.shape[:2]
    if h * tw > w * th:  # too tall: crop rows
        ch, cw = max(1, round(w * th / tw)), w
    else:
        ch, cw = h, max(1, round(h * tw / th))
    r0, c0 = (h - ch) // 2, (w - cw) // 2
    crop = image[r0 : r0 + ch, c0 : c0 + cw]
    out = resize(crop, (th, tw, image.shape[-1]), order=1, anti_aliasing=(ch > th), preserve_range=True)
    return np.clip(out, 0, 255).astype(np.float32)


def load_image(
    source: Any,
    size: int | tuple[int, int] | None = None,
    mode: Mode = "rgb",
    *,
    timeout: float = 30.0,
    max_bytes: int = _MAX_DOWNLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Load a picture as float32 pixels 0..255.

    Args:
        source: a file path, an ``http(s)://`` URL (any case: ``HTTP://`` too), a numpy array
            (``(H, W)``, ``(H, W, 1|3|4)``, pixels 0..255) or a PIL image. 16-bit grayscale
            files are scaled from 0..65535 to 0..255.
        size: ``None`` keeps the size; a whole number or ``(height, width)`` centre-crops to that
            aspect ratio and resizes (224 for the ImageNet models, 48 for the face model).
        mode: ``"rgb"`` -> ``(H, W, 3)``; ``"gray"`` -> ``(H, W, 1)``.
        timeout: seconds a download may take in all (connecting, waiting and reading).
        max_bytes: the largest download accepted, in bytes (default 50 MiB).
        max_pixels: the largest picture accepted, height x width (default 25 megapixels);
            files are checked from their header, before decoding.

    Raises:
        ImageLoadError: unreachable, slow or oversized URL, a file that is missing or not an
            image, a picture over ``max_pixels``, an empty array, pixels out of 0..255, NaN/inf,
            or a shape that is not an image. The message says how to fix it.
        ValueError: ``size`` is not a whole number >= 1 (or a pair of them), ``mode`` is unknown, or
            ``timeout``, ``max_bytes`` or ``max_pixels`` is not a finite number > 0.
    """
    if mode not in ("rgb", "gray"):
        raise ValueError(f"mode must be 'rgb' or 'gray', got {mode!r}")
    for name, value in (("timeout", timeout), ("max_bytes", max_bytes), ("max_pixels", max_pixels)):
        check_number(name, value, minimum=0, above=True)
    if size is not None:
        size = _check_size(size, max_pixels)  # (height, width), before any download
    scheme = _SCHEME.match(str(source)) if isinstance(source, (str, Path)) else None
    warn_units = False
    if scheme and scheme.group(1).lower() in ("http", "https"):
        url = scheme.group(1).lower() + str(source)[len(scheme.group(1)) :]
        body = bytearray()
        _download(url, body.extend, timeout=timeout, time_limit=timeout, max_bytes=max_bytes, error=ImageLoadError,
                  image=True, hint="Try again, pass a larger timeout=, or save the picture and give load_image its "
                  "path; offline, use a sample photo: course_utils.io.sample_image('astronaut').")
        array = _decode(bytes(body), str(source), max_pixels)
    elif scheme:
        raise ImageLoadError(f"cannot download {str(source):.100}: only http:// and https:// addresses are supported; for a file, give its path")
    elif isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImageLoadError(f"no file at {path}; check the path (relative paths start at {Path.cwd()})")
        array = _decode(path, str(path), max_pixels)
    elif isinstance(source, np.ndarray):
        array, warn_units = source, True
    elif type(source).__module__.startswith("PIL."):
        array = _pil_to_array(source, "the PIL image", max_pixels)
    else:
        raise ImageLoadError(f"cannot load an image from a {type(source).__name__}; give a path, URL, array or PIL image")
    image = _from_array(array, max_pixels, warn_units)
    if image.ndim == 2:
        image = image[..., None]
    if mode == "rgb" and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif mode == "gray":
        image = _to_gray(image)
    if size is not None:
        image = _center_crop_resize(image, *size)
    return np.ascontiguousarray(image, dtype=np.float32)


def as_batch(images: Any, model: Any = None, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Check pixels and make a batch: ``(H, W, C)`` or ``(N, H, W, C)`` -> float32 ``(N, H, W, C)``.

    Args:
        images: one image or a batch, pixels in 0..255 (numpy, tensor or anything array-like).
            Floats all within 0..1 give a warning (almost always a units slip).
        model: if given and its input size is fixed (a Keras model's ``input_shape``), the images
            must match its input size and channels; a model of any size (or a plain function) takes any.
        max_pixels: the largest image accepted, height x width (default 25 megapixels).

    Raises:
        ImageLoadError: wrong rank, no images or no pixels, an image over ``max_pixels``,
            NaN/inf, values outside 0..255, or a size the model does not take (the message says
            how to resize with :func:`load_image`).
    """
    try:
        raw = np.asarray(images.numpy() if hasattr(images, "numpy") else images)
    except (ValueError, TypeError) as err:
        raise ImageLoadError(f"the images do not form one array of numbers ({err})") from None
    if raw.ndim in (3, 4):
        _check_pixels(raw.shape[-3], raw.shape[-2], "an image of the batch", max_pixels)
    if raw.dtype.kind not in "biuf":
        raise ImageLoadError(f"images must hold numbers, got dtype {raw.dtype}")
    x = raw.astype(np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ImageLoadError(f"expected an image (H, W, C) or a batch (N, H, W, C), got shape {x.shape}")
    _check_pixel_values(x, "the images")
    _warn_if_unit_scale(raw.dtype, x, stacklevel=2)
    if model is not None and _fixed_input(model):
        want = tuple(model.input_shape[1:])
        if tuple(x.shape[1:]) != want:
            mode = "gray" if want[-1] == 1 else "rgb"
            raise ImageLoadError(
                f"{model.name} takes images of shape {want}, got {tuple(x.shape[1:])}; "
                f"resize with load_image(image, size={want[0]}, mode={mode!r})"
            )
    return x


def _fixed_input(model: Any) -> bool:
    try:
        return None not in tuple(model.input_shape[1:])
    except (AttributeError, ValueError, TypeError):
        return False


def to_uint8(images: Any) -> np.ndarray:
    """Round and clip float pixels (0..255) to ``uint8`` for display or saving; shape unchanged."""
    x = np.asarray(images.numpy() if hasattr(images, "numpy") else images, dtype=np.float32)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- the sample photos

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


# --------------------------------------------------------------------------- large weights files

@dataclass(frozen=True)
class _KnownFile:
    """A file the course can fetch: where from, its name in the Keras cache, its MD5 and size in bytes."""

    url: str
    filename: str
    md5: str
    size: int

    @property
    def dest(self) -> Path:
        """Where Keras (and ``load_imagenet_model("vgg16")``) looks for it: ``$KERAS_HOME/models``,
        else ``~/.keras/models`` (read at call time, so a changed ``KERAS_HOME`` counts)."""
        return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / self.filename

    def fetch(self, description: str | None = None) -> Path:
        """Download the file to :attr:`dest`, MD5-checked, with a progress bar labelled ``description``
        (:func:`_fetch_file`, which says what is raised); returns :attr:`dest`."""
        return _fetch_file(self.url, self.dest, self.md5, max_bytes=self.size + (1 << 20), description=description)


_VGG16_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
KNOWN_FILES: dict[str, _KnownFile] = {
    "vgg16": _KnownFile(
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + _VGG16_FILE,
        filename=_VGG16_FILE,
        md5="64373286793e3c8b2b4e3219cbf3544b",  # Keras' published hash (keras.applications.vgg16)
        size=553_467_096,
    ),
}
"""What ``make fetch-vgg16`` knows: ``vgg16``, Keras' VGG16 ImageNet weights (528 MiB)."""


def _file_md5(path: str | Path) -> str:
    """The MD5 of a file as 32 lowercase hex digits, read in chunks (a 528 MiB file takes ~1 s)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_file(url: str, dest: str | Path, md5: str, *, max_bytes: int = 1 << 30, time_limit: float = 3600.0,
               timeout: float = 30.0, progress: bool = True, description: str | None = None) -> Path:
    """Download the http(s) ``url`` to ``dest`` (via ``dest.part``; its folder made once data arrives)
    if and only if its MD5 is ``md5`` (32 hex digits); returns ``dest``. ``max_bytes``, ``time_limit``
    and ``timeout`` bound it as :func:`_download` says; ``progress`` shows a bar (tqdm, on stderr; a
    widget in Jupyter) labelled ``description`` (default: the file name).

    Raises:
        WeightsUnavailableError: offline, an HTTP error, too slow, too large, cut short, the wrong
            MD5, or the destination cannot be written; an older file at ``dest`` is kept, the
            ``.part`` removed (also when interrupted).
    """
    from tqdm.auto import tqdm

    time_limit = check_number("time_limit", time_limit, minimum=0.0)
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".part")
    digest, files, bars = hashlib.md5(usedforsecurity=False), [], []

    def write(chunk: bytes) -> None:
        if not files:  # only once there is something to save
            dest.parent.mkdir(parents=True, exist_ok=True)
            files.append(open(tmp, "wb"))
        digest.update(chunk)
        files[0].write(chunk)

    def bar(total: int | None) -> Any:
        bars.append(tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=description or dest.name,
                         disable=not progress, file=sys.stderr))
        return bars[-1]

    try:
        received = _download(url, write, timeout=timeout, time_limit=time_limit, max_bytes=max_bytes,
                             error=WeightsUnavailableError, bar=bar, hint="Try again (on a faster connection if it was slow).")
        write(b"")
        files[0].close()
        if digest.hexdigest() != md5.lower():
            raise WeightsUnavailableError(
                f"the file downloaded from {url} ({received} bytes) has MD5 {digest.hexdigest()}, not the expected "
                f"{md5}; it was deleted. The server sent something else (an error page, a proxy's notice, a changed "
                "file): try again later or from another network."
            )
        os.replace(tmp, dest)
    except OSError as err:
        raise WeightsUnavailableError(f"cannot write {dest} ({err.strerror or err}); free some disk space, or "
                                      "choose another folder (the environment variable KERAS_HOME for the Keras cache).") from None
    finally:
        for f in [*bars, *files]:
            f.close()
        tmp.unlink(missing_ok=True)  # gone after os.replace; otherwise a failed or interrupted download
    return dest

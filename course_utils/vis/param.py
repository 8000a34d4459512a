"""Image parameterisations, Lucent's ``param`` (Lucid: Olah, Mordvintsev and Schubert, "Feature
Visualization", Distill 2017): what the gradient loop changes, and how that becomes pixels.

:class:`ImageParam` is Lucent's ``params, image_f`` pair as one small object: :meth:`~ImageParam.init`
(or :meth:`~ImageParam.from_pixels`) gives the parameters, float32 ``(N, P)``, and
:meth:`~ImageParam.to_pixels` makes the picture from them, float32 0..255 ``(N, H, W, C)``,
differentiably, inside the step's gradient tape. :class:`Pixels` (lesson 3's loop), :class:`Fourier`
(1/f-scaled Fourier coefficients, decorrelated colour, sigmoid range) and :class:`Phase` (MaCo: the
phase only, the amplitude a photo's, :func:`natural_magnitude`); :func:`image_param` makes one by
name. Two parameterisations are equal (and share a compiled step) when they make the same picture
from the same parameters, whatever their start (``sd``, ``noise``).
"""

from __future__ import annotations

from typing import Any, Hashable, Sequence

import numpy as np
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_flag, check_int, check_number, check_size, effective_seed
from course_utils.io.images import load_image, sample_image
from course_utils.vis.objectives import GRAY

__all__ = ["COLOR_MIX", "ImageParam", "Pixels", "Fourier", "Phase", "image_param", "natural_magnitude", "gray_noise",
           "start_noise"]

_COLOR_CORRELATION_SVD_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
"""The square root (via SVD) of the colour correlation of ImageNet photos, rows R, G, B; from Lucid
(``lucid/optvis/param/color.py``; Olah et al., "Feature Visualization", Distill 2017). Column 0 is
brightness, columns 1 and 2 colour-opponent axes."""

COLOR_MIX = _COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(_COLOR_CORRELATION_SVD_SQRT, axis=0))
"""``(3, 3)`` the colour correlation's square root normalised as Lucid does (its largest column has
length 1): decorrelated values ``t`` (brightness, two colour-opponent axes) give RGB ``t @ COLOR_MIX.T``."""

_PARAMS = ("pixels", "fourier", "lucid")
"""The names :func:`image_param` knows."""


def _rfft2d_freqs(height: int, width: int) -> np.ndarray:
    """``(height, width // 2 + 1)`` the frequency (cycles per pixel, 0..~0.71) of each coefficient
    of a real 2-D FFT of a ``height x width`` picture (as ``np.fft.rfft2`` orders them)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def _keys(n: int | Sequence[int]) -> list[int]:
    """One key per picture: ``0..n-1`` for a count, else the keys given (at least one)."""
    keys = list(range(check_int("n", n, minimum=1))) if isinstance(n, (int, np.integer)) else [int(k) for k in n]
    if not keys:
        raise ValueError("init needs at least one picture")
    return keys


class ImageParam:
    """A description of ``N`` pictures of ``size`` by parameters, and the map to pixels.

    Subclasses give :meth:`param_shape`, :meth:`init` and :meth:`spatial`; this class adds the
    colour decorrelation and the range.

    Args:
        size: ``(height, width)`` in pixels (an int for a square).
        channels: colour channels (3; decorrelation needs 3).
        decorrelate: mix the channels by :data:`_COLOR_CORRELATION_SVD_SQRT`.
        sigmoid: pixels ``255 * sigmoid(t)`` (always valid); else ``t`` is in pixel-like units and
            the result is clipped to 0..255.
        sd: standard deviation of the random start parameters.
    """

    name = "param"
    clipped = False
    """Whether the parameters are the pixels themselves, kept in 0..255 after every step (:class:`Pixels`)."""

    def __init__(self, size: int | Sequence[int], channels: int = 3, *, decorrelate: bool = True,
                 sigmoid: bool = True, sd: float = 0.01) -> None:
        self.size = check_size(size)
        self.channels = check_int("channels", channels, minimum=1)
        self.decorrelate = check_flag("decorrelate", decorrelate)
        self.sigmoid = check_flag("sigmoid", sigmoid)
        self.sd = check_number("sd", sd, minimum=0.0)
        if self.decorrelate and self.channels != 3:
            raise ValueError(f"colour decorrelation needs 3 channels (R, G, B), got {self.channels}; use decorrelate=False")

    # -- subclasses
    def grid_shape(self, n: int) -> tuple[int, ...]:
        """The parameters' natural shape for ``n`` pictures (they are kept flat, :meth:`param_shape`)."""
        raise NotImplementedError

    def spatial(self, p: tf.Tensor) -> tf.Tensor:
        """Parameters -> ``(N, H, W, C)`` values before colour mixing and range."""
        raise NotImplementedError

    # -- shared
    def param_shape(self, n: int) -> tuple[int, int]:
        """``(n, P)``: the parameters are kept flat, one row per picture, so an objective can tell
        them (rank 2) from pixels (rank 4)."""
        return (n, int(np.prod(self.grid_shape(1)[1:])))

    def init(self, n: int | Sequence[int], seed: int = 0) -> np.ndarray:
        """Start parameters, float32 :meth:`param_shape`: normal with standard deviation ``sd``.

        ``n``: a count, or one key per picture (e.g. filter indices); picture ``i`` is seeded by
        ``(seed, key_i)``, so it does not depend on which others share the batch.
        """
        keys = _keys(n)
        seed = effective_seed(seed)  # plus COURSE_SEED (course_utils.checks)
        one = self.param_shape(1)[1:]
        return np.stack([
            np.random.default_rng([seed, k]).normal(0.0, self.sd, size=one) for k in keys
        ]).astype(np.float32)

    def unspatial(self, t: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`spatial`: ``(N, H, W, C)`` values -> parameters in :meth:`grid_shape`."""
        raise NotImplementedError

    def from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Parameters (float32 :meth:`param_shape`) whose :meth:`to_pixels` gives back ``pixels``.

        ``pixels``: ``(N, H, W, C)`` or ``(H, W, C)`` float 0..255 of this parameterisation's size,
        e.g. a photo to push a class into. With ``sigmoid=True`` the pixels are first clipped to
        0.5..254.5 (0 and 255 themselves need infinite parameters), so the round trip is exact to
        within half a grey level.
        """
        x = np.asarray(pixels, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        want = (*self.size, self.channels)
        if x.ndim != 4 or x.shape[1:] != want:
            raise ValueError(f"from_pixels needs pictures of shape (N, {want[0]}, {want[1]}, {want[2]}) for {self!r}, "
                             f"got {x.shape}; resize them first (course_utils.io.images.load_image(..., size=...))")
        if not np.isfinite(x).all():
            raise ValueError("from_pixels got NaN or infinite pixels; give pixels 0..255")
        if self.sigmoid:
            q = np.clip(x, 0.5, 254.5).astype(np.float64) / 255.0
            t = np.log(q / (1.0 - q))
        else:
            t = x.astype(np.float64)
        if self.decorrelate:
            t = t @ np.linalg.inv(COLOR_MIX.T.astype(np.float64))
        grid = self.unspatial(t)
        return grid.reshape(self.param_shape(len(x))).astype(np.float32)

    def to_pixels(self, p: tf.Tensor) -> tf.Tensor:
        """Parameters -> pixels, float32 ``(N, H, W, C)`` in 0..255 (differentiable)."""
        p = tf.convert_to_tensor(p, tf.float32)
        t = self.spatial(tf.reshape(p, [-1, *self.grid_shape(1)[1:]]))
        if self.decorrelate:
            t = tf.tensordot(t, tf.constant(COLOR_MIX.T), axes=1)
        if self.sigmoid:
            return 255.0 * tf.sigmoid(t)
        return tf.clip_by_value(t, 0.0, 255.0)

    def key(self) -> Hashable:
        """What a compiled step bakes in: the map to pixels, not the start (``sd``, ``noise``), so
        parameterisations that differ only in their start are equal and share a step."""
        settings = {k: v for k, v in vars(self).items() if k not in ("sd", "noise", "scale") and not k.startswith("_")}
        return (type(self).__qualname__, tuple(sorted(settings.items())))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ImageParam) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, decorrelate={self.decorrelate}, "
                f"sigmoid={self.sigmoid}, sd={self.sd})")


class Pixels(ImageParam):
    """The pixels themselves (lesson 3's loop), or pre-sigmoid values per pixel.

    With the defaults (``decorrelate=False, sigmoid=False``) the parameters *are* pixels, started
    at mid-grey plus uniform noise of +-``noise`` pixels, and the step keeps them in 0..255
    (:attr:`clipped`), exactly lesson 3's loop. Parameters (in :meth:`grid_shape`) ``(N, H, W, C)``.
    """

    name = "pixels"

    def __init__(self, size: int | Sequence[int], channels: int = 3, *, decorrelate: bool = False,
                 sigmoid: bool = False, sd: float = 0.01, noise: float = 2.0) -> None:
        super().__init__(size, channels, decorrelate=decorrelate, sigmoid=sigmoid, sd=sd)
        if self.decorrelate and not self.sigmoid:
            raise ValueError("Pixels(decorrelate=True) needs sigmoid=True (the colour mix has no pixel units)")
        self.noise = check_number("noise (pixels)", noise, minimum=0.0, maximum=GRAY)

    def grid_shape(self, n: int) -> tuple[int, ...]:
        return (n, *self.size, self.channels)

    def init(self, n: int | Sequence[int], seed: int = 0) -> np.ndarray:
        if self.sigmoid:
            return super().init(n, seed)
        keys = _keys(n)
        return np.stack([gray_noise(self.param_shape(1)[1:], [seed, k], self.noise) for k in keys])

    def spatial(self, p: tf.Tensor) -> tf.Tensor:
        return p

    def unspatial(self, t: np.ndarray) -> np.ndarray:
        return t

    @property
    def clipped(self) -> bool:
        """Whether the parameters *are* the pixels, to be kept in 0..255 after every step."""
        return not self.sigmoid and not self.decorrelate


class Fourier(ImageParam):
    """Fourier coefficients scaled by ``1 / f ** decay_power`` (Lucid's ``fft_image``).

    Parameters (in :meth:`grid_shape`) ``(N, H, W // 2 + 1, 2 C)``: the real parts of the channels' coefficients, then the
    imaginary parts. Coefficient ``k`` is multiplied by ``1 / max(f_k, 1 / max(H, W)) ** decay_power``
    (``f`` in cycles per pixel, :func:`_rfft2d_freqs`), transformed back with an orthonormal
    inverse FFT and divided by 4, as Lucid does; with i.i.d. parameters the picture's amplitude
    spectrum falls as ``1 / f`` (``decay_power=1``), like a photo's.
    """

    name = "fourier"

    def __init__(self, size: int | Sequence[int], channels: int = 3, *, decorrelate: bool = True,
                 sigmoid: bool = True, sd: float = 0.01, decay_power: float = 1.0, standardize: bool = False) -> None:
        super().__init__(size, channels, decorrelate=decorrelate, sigmoid=sigmoid, sd=sd)
        self.decay_power = check_number("decay_power", decay_power, minimum=0.0)
        self.standardize = check_flag("standardize", standardize)
        if self.standardize and not self.sigmoid:
            raise ValueError("Fourier(standardize=True) needs sigmoid=True (it sets the values the sigmoid sees)")
        h, w = self.size
        freqs = _rfft2d_freqs(h, w)
        self.scale = (1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** self.decay_power).astype(np.float32)
        """``(H, W // 2 + 1)`` the factor on each coefficient."""

    def grid_shape(self, n: int) -> tuple[int, ...]:
        h, w = self.size
        return (n, h, w // 2 + 1, 2 * self.channels)

    def spatial(self, p: tf.Tensor) -> tf.Tensor:
        h, w = self.size
        c = self.channels
        scale = tf.constant(self.scale)[None, :, :, None]
        spectrum = tf.complex(p[..., :c] * scale, p[..., c:] * scale)  # (N, H, W//2+1, C)
        spectrum = tf.transpose(spectrum, [0, 3, 1, 2])
        image = tf.signal.irfft2d(spectrum, fft_length=[h, w]) * float(np.sqrt(h * w))  # orthonormal
        image = tf.transpose(image, [0, 2, 3, 1]) / 4.0
        if self.standardize:  # mean 0, standard deviation 1 per picture: the sigmoid cannot saturate
            mean, var = tf.nn.moments(image, axes=[1, 2, 3], keepdims=True)
            image = (image - mean) / tf.sqrt(var + 1e-4)
        if not self.sigmoid:
            image = GRAY + 255.0 * image  # pixel-like units around mid-grey
        return image

    def unspatial(self, t: np.ndarray) -> np.ndarray:
        if self.standardize:  # any picture of mean 0 and standard deviation 1 is its own standardisation
            t = (t - t.mean(axis=(1, 2, 3), keepdims=True)) / (t.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
        image = t if self.sigmoid else (t - GRAY) / 255.0
        spectrum = np.fft.rfft2(np.moveaxis(image * 4.0, -1, 1), norm="ortho")  # (N, C, H, W//2+1)
        spectrum = np.moveaxis(spectrum, 1, -1) / self.scale[None, :, :, None]
        return np.concatenate([spectrum.real, spectrum.imag], axis=-1)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", decay_power={self.decay_power}, standardize={self.standardize})"


class Phase(ImageParam):
    """Only the phase of the picture's Fourier transform; its amplitude stays ``magnitude`` (MaCo:
    Fel et al., NeurIPS 2023), e.g. the sample photos' (:func:`natural_magnitude`): a photo's
    statistics by construction, however long the optimisation runs.

    ``magnitude``: float ``(3, H, W // 2 + 1)``, one real-FFT amplitude spectrum per decorrelated
    colour axis. The picture: the orthonormal inverse FFT, mixed to RGB (:data:`COLOR_MIX`),
    standardised (mean 0, standard deviation 1 per picture), then ``255 * sigmoid``: nothing
    clipped. Parameters (in :meth:`grid_shape`) ``(N, 3, H, W // 2 + 1)``, phases in radians; the
    start is one random phase for all three axes (a grey picture), picture ``i`` seeded by ``(seed, key_i)``.
    """

    name = "phase"

    def __init__(self, size: int | Sequence[int], magnitude: np.ndarray) -> None:
        super().__init__(size, 3, decorrelate=False, sigmoid=True)  # colours mixed in spatial, before standardising
        h, w = self.size
        self.magnitude = np.asarray(magnitude, np.float32)
        if self.magnitude.shape != (3, h, w // 2 + 1):
            raise ValueError(f"magnitude must have shape (3, {h}, {w // 2 + 1}) for a {h}x{w} picture, "
                             f"got {self.magnitude.shape}")

    def grid_shape(self, n: int) -> tuple[int, ...]:
        return (n, 3, self.size[0], self.size[1] // 2 + 1)

    def init(self, n: int | Sequence[int], seed: int = 0) -> np.ndarray:
        keys = _keys(n)
        one = self.grid_shape(1)[2:]
        starts = [np.random.default_rng([effective_seed(seed), k]).uniform(-np.pi, np.pi, one) for k in keys]
        return np.stack([np.broadcast_to(s, (3, *one)).reshape(-1) for s in starts]).astype(np.float32)

    def spatial(self, p: tf.Tensor) -> tf.Tensor:
        mag = tf.constant(self.magnitude)
        image = tf.signal.irfft2d(tf.complex(mag * tf.cos(p), mag * tf.sin(p)), fft_length=list(self.size))
        image = tf.tensordot(tf.transpose(image, [0, 2, 3, 1]), tf.constant(COLOR_MIX.T), axes=1)  # RGB (N, H, W, 3)
        mean, var = tf.nn.moments(image, axes=[1, 2, 3], keepdims=True)
        return (image - mean) / tf.sqrt(var + 1e-12)

    def unspatial(self, t: np.ndarray) -> np.ndarray:
        raise ValueError("a phase-only picture cannot start from a photo (its amplitude is fixed); start from its init")

    def key(self) -> Hashable:
        return (type(self).__qualname__, self.size, self.magnitude.tobytes())

    def __repr__(self) -> str:
        return f"Phase(size={self.size}, magnitude={self.magnitude.shape})"


_PHOTOS = ("astronaut", "chelsea", "coffee", "grace_hopper")
"""The sample photos whose spectra stand for natural images (:func:`natural_magnitude`)."""


def natural_magnitude(size: int | Sequence[int]) -> np.ndarray:
    """The mean amplitude spectrum of the sample photos (:data:`_PHOTOS`, each centre-cropped and
    resized to ``size``), per decorrelated colour axis (:data:`COLOR_MIX`): float32 ``(3, H, W // 2 + 1)``,
    pixels scaled to 0..1, orthonormal real FFT, the mean (zero frequency) set to 0. MaCo keeps it fixed."""
    h, w = check_size(size)
    photos = np.stack([load_image(sample_image(name), size=(h, w)) for name in _PHOTOS]) / 255.0  # (4, H, W, 3)
    photos = photos @ np.linalg.inv(COLOR_MIX.T)                                  # RGB -> decorrelated axes
    spectra = np.abs(np.fft.rfft2(np.moveaxis(photos, -1, 1), norm="ortho")).mean(axis=0)   # (3, H, W//2+1)
    spectra[:, 0, 0] = 0.0
    return spectra.astype(np.float32)


def gray_noise(shape: Sequence[int], seed: int | Sequence[int] = 0, amplitude: float = 2.0) -> np.ndarray:
    """Mid-grey plus uniform noise of +-``amplitude`` pixels: float32, the given shape.

    ``seed`` is an int or a sequence of ints (NumPy's ``default_rng``; the first moved by the
    course-wide ``COURSE_SEED``, see :mod:`course_utils.checks`); the same seed, the same noise.
    """
    amplitude = check_number("noise amplitude (pixels)", amplitude, minimum=0.0, maximum=GRAY)
    first, *rest = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    rng = np.random.default_rng([effective_seed(first), *rest])  # plus COURSE_SEED (course_utils.checks)
    return (GRAY + rng.uniform(-amplitude, amplitude, size=tuple(shape))).astype(np.float32)


def start_noise(keys: Sequence[int], shape: Sequence[int], seed: int, amplitude: float) -> np.ndarray:
    """One noise image per key, seeded by ``(seed, key)``: filter 7's start picture is the same
    whether it is optimised alone or with others. A key's ``j``-th repeat (``j >= 1``) is seeded by
    ``(seed, key, j)``, so several pictures of one filter start apart."""
    seen: dict[int, int] = {}
    seeds = []
    for k in keys:
        j = seen[int(k)] = seen.get(int(k), -1) + 1
        seeds.append([int(seed), int(k)] + ([j] if j else []))
    return np.stack([gray_noise(shape, seed=s, amplitude=amplitude) for s in seeds])


def image_param(name: str | ImageParam, size: int | Sequence[int], channels: int = 3, **kwargs) -> ImageParam:
    """A parameterisation by name: ``"pixels"`` (:class:`Pixels`, today's loop), ``"fourier"``
    (:class:`Fourier` with decorrelated colour and sigmoid range, Lucid's default) or ``"lucid"``
    (the same, standardised before the sigmoid so that no pixel saturates: the course's Lucid style). An
    :class:`ImageParam` object is returned as it is. Keyword arguments go to the class."""
    if isinstance(name, ImageParam):
        return name
    if not isinstance(name, str):
        raise WrongTypeError(f"param must be one of {', '.join(map(repr, _PARAMS))} or an ImageParam, got {type(name).__name__}")
    if name not in _PARAMS:
        raise ValueError(f"unknown param {name!r}; choose one of {', '.join(map(repr, _PARAMS))}")
    if name == "lucid":
        return Fourier(size, channels, standardize=True, **kwargs)
    return (Pixels if name == "pixels" else Fourier)(size, channels, **kwargs)

"""Parameterisations (course_utils.core.param) and robustness transforms (course_utils.core.transforms):
shapes, value range, seeded determinism, the 1/f spectrum. No model needed; a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.checks import WrongTypeError
from course_utils.core.objectives import ClassLogit
from course_utils.core.param import (
    COLOR_CORRELATION_SVD_SQRT, PARAMS, Fourier, OnPixels, PixelPenalty, Pixels, PixelTransform, image_param,
    param_loop_parts, rfft2d_freqs,
)
from course_utils.core.penalties import TotalVariation
from course_utils.core.steps import L2Decay
from course_utils.core.transforms import Pad, RandomCrop, RandomRotate, RandomScale, Resize, standard_transforms

SIZES = [(32, 32), (31, 45), (24, 64)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", PARAMS)
def test_every_param_gives_valid_pixels_of_any_size(name, size):
    p = image_param(name, size)
    x = p.init(3, seed=1)
    assert x.shape == p.param_shape(3) and x.ndim == 2 and x.dtype == np.float32
    pixels = p.to_pixels(x * 300.0).numpy()  # far outside the start: still valid pixels
    assert pixels.shape == (3, *size, 3)
    assert pixels.min() >= 0.0 and pixels.max() <= 255.0


def test_pixels_by_default_are_the_pixels_themselves():
    p = Pixels((8, 8))
    x = p.init(2, seed=0)
    assert np.allclose(p.to_pixels(x).numpy().reshape(2, -1), x)
    assert abs(x.mean() - 127.5) < 1.0 and np.abs(x - 127.5).max() <= 2.0
    assert p.after_step(tf.constant(x * 3.0), None, 0).numpy().max() == 255.0  # kept in 0..255


def test_fourier_starts_near_mid_grey():
    pixels = Fourier((32, 32)).to_pixels(Fourier((32, 32)).init(2)).numpy()
    assert np.abs(pixels - 127.5).max() < 10.0


@pytest.mark.parametrize("name", PARAMS)
def test_init_is_seeded_per_picture(name):
    p = image_param(name, (16, 20))
    a, b = p.init([5, 7], seed=3), p.init([5, 7], seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, p.init([5, 7], seed=4))
    assert np.array_equal(p.init([7], seed=3)[0], a[1])  # picture 7 does not depend on the batch


def test_fourier_amplitude_falls_as_one_over_frequency():
    h = w = 64
    p = Fourier((h, w), decorrelate=False, sd=1.0)
    x = p.init(16, seed=0)
    image = p.spatial(tf.reshape(x, [-1, *p.grid_shape(1)[1:]])).numpy()  # before colour and sigmoid
    amplitude = np.abs(np.fft.rfft2(image, axes=(1, 2))).mean(axis=(0, 3))  # (H, W//2+1)
    f = rfft2d_freqs(h, w)
    band = (f > 0.05) & (f < 0.45)
    slope = np.polyfit(np.log(f[band]), np.log(amplitude[band]), 1)[0]
    assert -1.15 < slope < -0.85, slope  # 1/f, decay power 1
    flat = Fourier((h, w), decorrelate=False, sd=1.0, decay_power=0.0)
    image0 = flat.spatial(tf.reshape(flat.init(16, seed=0), [-1, *flat.grid_shape(1)[1:]])).numpy()
    amp0 = np.abs(np.fft.rfft2(image0, axes=(1, 2))).mean(axis=(0, 3))
    assert abs(np.polyfit(np.log(f[band]), np.log(amp0[band]), 1)[0]) < 0.15  # white without the scaling


def test_decorrelated_colour_uses_lucids_matrix():
    assert COLOR_CORRELATION_SVD_SQRT.shape == (3, 3)
    assert COLOR_CORRELATION_SVD_SQRT[0, 0] == pytest.approx(0.26)
    p = Pixels((1, 1), decorrelate=True, sigmoid=True)
    grey = p.to_pixels(np.zeros((1, 3), np.float32)).numpy()
    assert np.allclose(grey, 127.5)
    bright = p.to_pixels(np.asarray([[1.0, 0.0, 0.0]], np.float32)).numpy().ravel()
    assert (bright > 127.5).all()  # the first axis is brightness: all three channels rise


@pytest.mark.parametrize("make", [
    lambda s: Fourier(s), lambda s: Fourier(s, decorrelate=False), lambda s: Fourier(s, sigmoid=False),
    lambda s: Pixels(s), lambda s: Pixels(s, sigmoid=True, decorrelate=True),
])
@pytest.mark.parametrize("size", [(31, 45), (24, 64)])
def test_from_pixels_gives_back_the_picture(make, size):
    p = make(size)
    rng = np.random.default_rng(0)
    photo = rng.uniform(0.0, 255.0, size=(2, *size, 3)).astype(np.float32)
    photo[0, :4] = 0.0  # black and white rows: out of a sigmoid's reach, so within half a grey level
    photo[1, -4:] = 255.0
    params = p.from_pixels(photo)
    assert params.shape == p.param_shape(2) and params.dtype == np.float32
    back = p.to_pixels(params).numpy()
    assert np.abs(back - photo).max() <= 0.5 + 1e-3
    reachable = np.clip(photo, 0.5, 254.5) if p.sigmoid else photo
    assert np.abs(back - reachable).max() < 0.01  # exact but for the extremes a sigmoid cannot reach
    assert p.from_pixels(photo[0]).shape == p.param_shape(1)  # one picture without a batch axis


def test_from_pixels_refuses_the_wrong_size_or_nan():
    with pytest.raises(ValueError, match=r"needs pictures of shape \(N, 32, 32, 3\).*got \(1, 16, 16, 3\); resize them"):
        Fourier(32).from_pixels(np.zeros((16, 16, 3)))
    bad = np.full((1, 8, 8, 3), 100.0)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite pixels"):
        Fourier(8).from_pixels(bad)


def test_bad_params_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown param 'fft'.*'pixels', 'fourier'"):
        image_param("fft", 32)
    with pytest.raises(WrongTypeError, match="param must be one of"):
        image_param(3, 32)
    with pytest.raises(ValueError, match="needs 3 channels"):
        Fourier(16, channels=1)
    with pytest.raises(ValueError, match="needs sigmoid=True"):
        Pixels(16, decorrelate=True)
    with pytest.raises(ValueError, match="takes parameters of shape"):
        Fourier(16).check_input((2, 10))


def test_a_loop_on_the_parameters_prices_and_checks_the_pixels():
    """param_loop_parts: the objective and penalties through the picture, transforms checked on
    its shape (not the flat parameters'), after-step operations refused."""
    p = Fourier((20, 24))
    objective, pieces = param_loop_parts(p, ClassLogit(None), (RandomCrop(8), TotalVariation(0.5)))
    assert isinstance(objective, OnPixels) and objective.per_call == {"labels": tf.int32}
    assert pieces[0] is p and isinstance(pieces[1], PixelTransform) and isinstance(pieces[2], PixelPenalty)
    for piece in pieces:
        piece.check_input(p.param_shape(2))  # the flat parameters' shape: every piece accepts it
    _, (_, crop) = param_loop_parts(p, ClassLogit(None), (RandomCrop(20),))
    with pytest.raises(ValueError, match=r"at least 21x21 pixels.*got 20x24"):
        crop.check_input(p.param_shape(1))
    x = p.init(2)
    tv = TotalVariation(0.5).penalty(p.to_pixels(x), p.to_pixels(x))
    np.testing.assert_allclose(pieces[2].penalty(tf.constant(x), tf.constant(x)), tv, rtol=1e-6)
    with pytest.raises(ValueError, match=r"regularizers\[0\] = L2Decay.*changes the parameters"):
        param_loop_parts(p, ClassLogit(None), (L2Decay(),))


def test_a_compiled_loop_keys_a_param_by_its_map_to_pixels_not_its_start():
    assert Fourier(16, sd=0.001).key() == Fourier(16).key() != Fourier(16, decorrelate=False).key()
    assert Pixels(16, noise=5.0).key() == Pixels(16).key() != Fourier(16).key()


# --------------------------------------------------------------------------- transforms


def _run(piece, x, step=0, seed=0):
    return piece.transform(tf.constant(x), tf.constant(step), tf.constant(seed)).numpy()


def test_transforms_change_shapes_as_documented():
    x = np.random.default_rng(0).uniform(0, 255, (2, 40, 50, 3)).astype(np.float32)
    assert _run(Pad(12), x).shape == (2, 64, 74, 3)
    assert (_run(Pad(12), x)[:, :12] == 127.5).all()
    assert _run(RandomCrop(8), x).shape == (2, 32, 42, 3)
    assert _run(RandomRotate(), x).shape == x.shape
    assert _run(Resize(24), x).shape == (2, 24, 24, 3)
    scaled = [_run(RandomScale(), x, step=s) for s in range(30)]
    assert {o.shape for o in scaled} == {x.shape}  # the size kept: a zoom in crops, a zoom out mirrors the edges
    assert len({o.tobytes() for o in scaled}) > 2
    assert np.allclose(_run(RandomScale(scales=(1.0,)), x), x)
    assert np.allclose(_run(RandomRotate(degrees=(0,)), x), x, atol=1e-3)
    out = x
    for piece in standard_transforms(size=(40, 50)):
        out = _run(piece, out)
    assert out.shape == x.shape


@pytest.mark.parametrize("piece", [RandomCrop(8), RandomScale(), RandomRotate()])
def test_transforms_are_seeded_by_seed_and_step(piece):
    x = np.random.default_rng(1).uniform(0, 255, (1, 40, 40, 3)).astype(np.float32)
    same = [_run(piece, x, step=3, seed=5) for _ in range(2)]
    assert np.array_equal(*same)
    draws = {_run(piece, x, step=s, seed=5).tobytes() for s in range(12)}
    assert len(draws) > 2  # changes from step to step


def test_transforms_refuse_bad_settings():
    with pytest.raises(ValueError):
        Pad(-1)
    with pytest.raises(ValueError):
        RandomScale(())
    with pytest.raises(ValueError):
        RandomRotate(degrees=())

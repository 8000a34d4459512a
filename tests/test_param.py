"""Parameterisations (course_utils.vis.param) and robustness transforms (course_utils.vis.objectives):
shapes, value range, seeded determinism, the 1/f spectrum. No model needed; a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.checks import WrongTypeError
from course_utils.vis.objectives import (
    Blur, Jitter, L2Decay, TotalVariation, _Crop, _RandomAffine, standard_transforms,
)
from course_utils.vis.param import _COLOR_CORRELATION_SVD_SQRT, _PARAMS, Fourier, Pixels, image_param, _rfft2d_freqs
from course_utils.vis.visualize import _ascent_measure, ascent_step

_, _, _LUCID_SCALE, _LUCID_ROTATE, _ = standard_transforms()


def Pad(pixels):  # Lucid's pieces, as standard_transforms() makes them
    return _Crop(-pixels)


def RandomCrop(pixels, salt=1):
    return _Crop(pixels, salt=salt)


def Resize(size):
    return _Crop(size=size)


def RandomScale(scales=_LUCID_SCALE.values):
    return _RandomAffine(scales)


def RandomRotate(degrees=_LUCID_ROTATE.values):
    return _RandomAffine(degrees, angle=True)

SIZES = [(32, 32), (31, 45), (24, 64)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", _PARAMS)
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
    assert p.clipped and not Pixels((8, 8), sigmoid=True).clipped and not Fourier(8).clipped  # kept in 0..255
    step = ascent_step(None, tf.constant(x), None, 0, [0, 0], {"step_size": tf.constant([1e3, 1e3])},
                       objective=lambda m, v, d: (tf.reduce_sum(-v, axis=[1, 2, 3]), v[:, 0, 0, :1]), param=p)
    assert step[0].numpy().max() == 255.0  # a huge step up, kept at 255


def test_fourier_starts_near_mid_grey():
    pixels = Fourier((32, 32)).to_pixels(Fourier((32, 32)).init(2)).numpy()
    assert np.abs(pixels - 127.5).max() < 10.0


@pytest.mark.parametrize("name", _PARAMS)
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
    f = _rfft2d_freqs(h, w)
    band = (f > 0.05) & (f < 0.45)
    slope = np.polyfit(np.log(f[band]), np.log(amplitude[band]), 1)[0]
    assert -1.15 < slope < -0.85, slope  # 1/f, decay power 1
    flat = Fourier((h, w), decorrelate=False, sd=1.0, decay_power=0.0)
    image0 = flat.spatial(tf.reshape(flat.init(16, seed=0), [-1, *flat.grid_shape(1)[1:]])).numpy()
    amp0 = np.abs(np.fft.rfft2(image0, axes=(1, 2))).mean(axis=(0, 3))
    assert abs(np.polyfit(np.log(f[band]), np.log(amp0[band]), 1)[0]) < 0.15  # white without the scaling


def test_decorrelated_colour_uses_lucids_matrix():
    assert _COLOR_CORRELATION_SVD_SQRT.shape == (3, 3)
    assert _COLOR_CORRELATION_SVD_SQRT[0, 0] == pytest.approx(0.26)
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


def test_the_step_on_the_parameters_prices_and_checks_the_pixels():
    """ascent_step with a parameterisation: the objective sees the (transformed) picture, the
    penalty prices the picture the parameters make; the measure sees it untransformed."""
    p = Fourier((20, 24))
    x = tf.constant(p.init(2))
    seen = []

    def mean(model, v, data):  # records the shape it is given: pixels, not the flat parameters
        seen.append(tuple(v.shape))
        return -tf.reduce_mean(v, axis=[1, 2, 3]), tf.reduce_mean(v, axis=[1, 2, 3])[:, None]

    settings = dict(objective=mean, param=p, transforms=(RandomCrop(8),), penalties=(TotalVariation(0.5),))
    x_next, loss, tracked, _ = ascent_step(None, x, x, tf.constant(0), tf.constant([0, 0]), {"step_size": tf.constant([0.05] * 2)}, **settings)
    assert seen == [(2, 12, 16, 3)] and x_next.shape == x.shape and tracked.shape == (2, 1)
    picture = p.to_pixels(x)
    measured, _ = _ascent_measure(None, x, x, 0, [0, 0], {}, **settings)
    assert seen[-1] == (2, 20, 24, 3)
    np.testing.assert_allclose(measured, -tf.reduce_mean(picture, axis=[1, 2, 3]) + TotalVariation(0.5).penalty(picture),
                               rtol=1e-6)


def test_a_compiled_step_keys_a_param_by_its_map_to_pixels_not_its_start():
    assert Fourier(16, sd=0.001) == Fourier(16) != Fourier(16, decorrelate=False)
    assert hash(Fourier(16, sd=0.001)) == hash(Fourier(16))
    assert Pixels(16, noise=5.0) == Pixels(16) != Fourier(16)


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
        _Crop(1.5)
    with pytest.raises(ValueError):
        RandomScale(())
    with pytest.raises(ValueError):
        RandomRotate(degrees=())


PICTURES = tf.constant(np.random.default_rng(0).uniform(50, 200, (4, 12, 10, 3)).astype(np.float32))


@pytest.mark.parametrize("piece, kinds", [(Jitter(3), 3), (RandomScale(), 3), (RandomRotate(), 3), (RandomScale((0.8, 1.25)), 2)])
def test_transforms_are_seeded_keep_the_shape_and_change_by_step(piece, kinds):
    outs = [piece.transform(PICTURES, tf.constant(step), tf.constant(seed)).numpy() for step, seed in
            [(0, 1), (0, 1), (1, 1), (2, 1), (3, 1), (0, 2)]]
    assert all(o.shape == tuple(PICTURES.shape) and o.dtype == np.float32 for o in outs)
    np.testing.assert_array_equal(outs[0], outs[1])  # same (seed, step), same picture
    assert len({o.tobytes() for o in outs}) >= kinds  # other steps or seeds draw others
    assert all(np.isfinite(o).all() and o.min() >= PICTURES.numpy().min() - 1e-3 and o.max() <= PICTURES.numpy().max() + 1e-3
               for o in outs)  # resampled, mirrored at the edges: no new values outside the picture's


def test_identity_transforms_leave_the_picture_alone():
    for piece in (Jitter(0), RandomScale((1.0,)), RandomRotate((0.0,))):
        np.testing.assert_array_equal(piece.transform(PICTURES, tf.constant(5), tf.constant(0)), PICTURES)


def test_scale_and_rotation_move_a_dot_about_the_centre():
    dot = np.zeros((1, 21, 21, 1), np.float32)
    dot[0, 10, 15] = 255.0  # 5 pixels right of the centre (10, 10)
    zoomed = RandomScale((2.0,)).transform(tf.constant(dot), tf.constant(0), tf.constant(0)).numpy()[0, ..., 0]
    assert np.unravel_index(zoomed.argmax(), zoomed.shape) == (10, 20)  # twice as far from the centre
    turned = RandomRotate((90.0,)).transform(tf.constant(dot), tf.constant(0), tf.constant(0)).numpy()[0, ..., 0]
    row, col = np.unravel_index(turned.argmax(), turned.shape)
    assert col == 10 and abs(row - 10) == 5  # a quarter turn: now straight above or below the centre
    with pytest.raises(ValueError):
        RandomScale((0.0,))
    with pytest.raises(ValueError):
        RandomRotate(())


def test_transforms_are_differentiable():
    x = tf.Variable(PICTURES)
    for piece in (RandomScale(), RandomRotate()):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(piece.transform(x, tf.constant(1), tf.constant(0)))
        grad = tape.gradient(y, x)
        assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0


def test_regularisers_are_settings_equal_by_value():
    """They form the compiled step's key: equal settings share it, other settings do not."""
    assert Jitter(3) == Jitter(3) and hash(Jitter(3)) == hash(Jitter(3)) and Jitter(3) != Jitter(4)
    assert TotalVariation(0.5) != TotalVariation(1.0) and Blur(1.0) != Blur(2.0) != Blur(2.0, every=2)
    assert standard_transforms((32, 32)) == standard_transforms((32, 32)) != standard_transforms((16, 16))
    assert repr(L2Decay(0.02)) == "L2Decay(rate=0.02)"  # what lesson 3 prints for default_regularizers()

"""Feature visualisation (lesson 3): layer choice, the two loops, the regularisers, bad input.

Runs on the offline EfficientNet-Lite0 with few steps and small pictures; a random-weight VGG16
(no download) checks that layer choice also gives the names the Keras blog uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from course_utils.io.images import load_image, sample_image
from course_utils.classroom.plotting import plot_filter_grid
from course_utils.core.loop import Loop
from course_utils.vis.objectives import GRAY, Blur, Jitter, L2Decay, TotalVariation
from course_utils.models.forward import _feature_layers as feature_layers, conv_layers, layer_summary, receptive_field
from course_utils.vis.visualize import (
    _ascent_measure, ascent_step, compare_batched_serial, maximize_class, maximize_filters,
)
from course_utils.vis.result import deprocess, filter_report

LITE0_LAYERS = ["stem_bn", "block2_expand_bn", "block4_expand_bn", "block6_expand_bn", "block12_expand_bn"]


@pytest.fixture(scope="module")
def vgg16_random():
    """VGG16's convolutional part with random weights (nothing is downloaded)."""
    import keras

    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))


def _noise(shape, seed=0, scale=40.0):
    return (GRAY + np.random.default_rng(seed).normal(0, scale, shape)).clip(0, 255).astype(np.float32)


# --------------------------------------------------------------------------- layers


def test_feature_layers_are_the_responses_of_full_convolutions(imagenet_model):
    names = feature_layers(imagenet_model)
    assert names[0] == "stem_bn" and names[-1] == "top_bn"
    assert len(names) == 17  # stem, 15 expand convolutions (block0 has none), top
    assert not any("dw" in n or "relu" in n or n.endswith("_conv") for n in names)


def test_conv_layers_picks_one_layer_per_resolution(imagenet_model):
    layers = conv_layers(imagenet_model, n=5)
    assert layers == LITE0_LAYERS
    sizes = [imagenet_model.get_layer(n).output.shape[1] for n in layers]
    assert sizes == [112, 56, 28, 14, 7]  # strictly shrinking: one per resolution
    three = conv_layers(imagenet_model, n=3)
    assert len(three) == 3 and three[0] == "stem_bn" and three[-1] == "block12_expand_bn"
    assert conv_layers(imagenet_model, n=17) == feature_layers(imagenet_model)


@pytest.mark.parametrize("n", [0, 18, 2.5])
def test_conv_layers_rejects_a_bad_count(imagenet_model, n):
    with pytest.raises(ValueError, match=r"n must be a whole number in 1\.\.17"):
        conv_layers(imagenet_model, n=n)


def test_conv_layers_gives_the_blog_names_for_vgg16(vgg16_random):
    assert conv_layers(vgg16_random, n=5) == [f"block{i}_conv1" for i in range(1, 6)]
    assert len(feature_layers(vgg16_random)) == 13
    assert receptive_field(vgg16_random, "block5_conv3") == 196  # the textbook value
    vis = maximize_filters(vgg16_random, "block1_conv1", [0, 1], steps=2, size=(32, 32), progress=False)
    assert vis.images.shape == (2, 32, 32, 3)


def test_receptive_fields_grow_with_depth(imagenet_model):
    assert receptive_field(imagenet_model, "stem_bn") == 3  # one 3x3 convolution
    assert receptive_field(imagenet_model, "block1_expand_bn") == 7  # + a 3x3 depthwise at stride 2
    table = layer_summary(imagenet_model, mark=LITE0_LAYERS)
    assert table["receptive_field"].is_monotonic_increasing
    assert table.loc[table["shown"], "layer"].tolist() == LITE0_LAYERS
    assert table.set_index("layer").loc["block12_expand_bn", "filters"] == 1152


# --------------------------------------------------------------------------- filters


def test_maximize_filters_raises_each_filters_activation(imagenet_model):
    vis = maximize_filters(imagenet_model, "block4_expand_bn", [2, 7], steps=15, size=(64, 64), progress=False)
    assert vis.images.dtype == np.uint8 and vis.images.shape == (2, 64, 64, 3)
    assert vis.pixels.min() >= 0 and vis.pixels.max() <= 255
    assert vis.rose.all(), vis.table()
    assert np.all(vis.lift_final > 1.0)
    assert len(vis.history) == 2 * 16 and vis.curves().shape == (16, 2)
    assert list(vis.curves().columns) == ["block4_expand_bn:2", "block4_expand_bn:7"]


def test_a_filter_with_zero_weights_is_reported_dead(imagenet_model):
    # stem_conv's filter 11 has all-zero weights: nothing can make it respond.
    vis = maximize_filters(imagenet_model, "stem_bn", [0, 11], steps=5, size=(32, 32), progress=False)
    assert vis.status.tolist() == ["rose", "dead"]
    report = filter_report(vis)
    assert report.loc["stem_bn", "dead"] == 1 and report.loc["stem_bn", "not_10x"] == "11:dead"
    fig = plot_filter_grid({"stem_bn": vis})
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert labels[0] == "" and labels[1].startswith("dead")
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_batching_changes_only_the_speed(imagenet_model):
    kwargs = dict(steps=3, size=(32, 32), progress=False)
    both = maximize_filters(imagenet_model, "block2_expand_bn", [3, 5], **kwargs)
    alone = maximize_filters(imagenet_model, "block2_expand_bn", [5], **kwargs)
    np.testing.assert_allclose(both.initial[1], alone.initial[0])
    np.testing.assert_allclose(both.pixels[1], alone.pixels[0], atol=1e-2)
    timing = compare_batched_serial(imagenet_model, "stem_bn", n=2, steps=2, size=(32, 32))
    assert list(timing.index) == ["batched", "serial", "ratio"]
    assert timing.loc["batched", "max_pixel_diff"] < 1e-2
    assert timing.loc["ratio", "total_s"] == pytest.approx(timing.loc["serial", "total_s"] / timing.loc["batched", "total_s"])


# --------------------------------------------------------------------------- classes


def test_sea_snake_from_noise_reaches_099_within_40_steps(imagenet_model):
    vis = maximize_class(imagenet_model, 65, steps=15, step_size=2.0, progress=False)
    assert vis.what == ["sea snake"]
    beyond = np.abs(vis.initial - GRAY).max() - 2.0   # it started from faint grey noise, within +-2 levels
    assert beyond <= 1e-3
    assert vis.start[0] < 0.01
    assert 0 < vis.first_step(0.99)[0] <= 15, vis.curves().tail()
    assert vis.images.dtype == np.uint8 and vis.images.shape == (1, 224, 224, 3)


def test_triceratops_pushed_into_a_photo(imagenet_model):
    photo = load_image(sample_image("astronaut"), size=224)
    vis = maximize_class(imagenet_model, "triceratops", image=photo, steps=5, step_size=1.0, progress=False)
    np.testing.assert_array_equal(vis.initial[0], photo)
    assert vis.start[0] < 0.01 and vis.final[0] >= 0.99
    change = np.abs(vis.pixels[0] - photo)
    assert change.mean() < 5.0  # still the photo: a few grey levels on average
    np.testing.assert_array_equal(vis.images[0], np.clip(np.round(vis.pixels[0]), 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- regularisers


def test_jitter_rolls_the_image_by_a_small_random_shift():
    x = tf.constant(_noise((1, 20, 20, 3)))
    jitter = Jitter(3)
    shifts = []
    for step in range(12):
        dy, dx = (int(v) for v in jitter.shift(tf.constant(step), tf.constant(0)))
        assert -3 <= dy <= 3 and -3 <= dx <= 3
        out = jitter.transform(x, tf.constant(step), tf.constant(0)).numpy()
        np.testing.assert_array_equal(out, np.roll(x.numpy(), (dy, dx), axis=(1, 2)))
        shifts.append((dy, dx))
    assert len(set(shifts)) > 3  # it changes from step to step
    again = jitter.transform(x, tf.constant(5), tf.constant(0)).numpy()
    np.testing.assert_array_equal(again, np.roll(x.numpy(), shifts[5], axis=(1, 2)))  # seeded
    np.testing.assert_array_equal(Jitter(0).transform(x, tf.constant(1), tf.constant(0)), x)


def test_total_variation_is_zero_when_flat_and_positive_on_noise():
    tv = TotalVariation(0.5)
    flat = tf.fill((2, 16, 16, 3), 90.0)
    assert np.all(tv.penalty(flat).numpy() == 0)
    noise = tf.constant(_noise((2, 16, 16, 3)))
    assert np.all(tv.penalty(noise).numpy() > 10)
    stripes = np.zeros((1, 8, 8, 3), np.float32)
    stripes[:, :, ::2] = 255.0  # columns alternate 0/255: every horizontal neighbour differs by 255
    assert tv.penalty(tf.constant(stripes)).numpy()[0] == pytest.approx(0.5 * 255)
    assert TotalVariation(1.0).penalty(noise).numpy() == pytest.approx(2 * tv.penalty(noise).numpy())


def test_l2_decay_pulls_every_pixel_towards_grey():
    x = tf.constant(_noise((1, 8, 8, 3)))
    out = L2Decay(0.1).after_step(x, tf.constant(0)).numpy()
    np.testing.assert_allclose(out - GRAY, 0.9 * (x.numpy() - GRAY), rtol=1e-5, atol=1e-4)
    grey = tf.fill((1, 4, 4, 3), GRAY)
    np.testing.assert_array_equal(L2Decay(0.1).after_step(grey, tf.constant(0)), grey)


def test_blur_smooths_noise_on_every_kth_step_only():
    x = tf.constant(_noise((1, 32, 32, 3)))
    blur = Blur(1.0, every=3)
    for step in (0, 1, 3):
        np.testing.assert_array_equal(blur.after_step(x, tf.constant(step)), x)
    for step in (2, 5):
        out = blur.after_step(x, tf.constant(step)).numpy()
        assert out.var() < 0.5 * x.numpy().var()
        assert out.mean() == pytest.approx(x.numpy().mean(), abs=1.0)
    flat = tf.fill((1, 8, 8, 3), 50.0)
    np.testing.assert_allclose(blur.after_step(flat, tf.constant(2)), flat, rtol=1e-6)


def test_both_loops_apply_the_regularisers(imagenet_model):
    kwargs = dict(steps=3, step_size=3.0, size=(32, 32), progress=False)
    plain = maximize_filters(imagenet_model, "stem_bn", [0], **kwargs)
    decayed = maximize_filters(imagenet_model, "stem_bn", [0], regularizers=(L2Decay(0.9),), **kwargs)
    rms = lambda v: float(np.sqrt(np.mean((v.pixels - GRAY) ** 2)))  # noqa: E731
    assert rms(decayed) < 0.2 * rms(plain)
    cls = maximize_class(imagenet_model, "sea snake", steps=2, regularizers=(L2Decay(0.9),), progress=False)
    # noise (rms 1.2) + 2 px, shrunk to a tenth, + 2 px, shrunk to a tenth: at most 0.24 px rms
    assert rms(cls) < 0.3


@pytest.mark.parametrize(
    "make",
    [lambda: Jitter(-1), lambda: Jitter(1.5), lambda: TotalVariation(-0.1), lambda: L2Decay(1.0),
     lambda: Blur(0.0), lambda: Blur(1.0, every=0)],
)
def test_regularisers_reject_bad_settings(make):
    with pytest.raises(ValueError):
        make()


class _Shift:
    def transform(self, x, step, seed):  # what the objective sees: x + 1
        return x + 1.0


class _Five:
    def penalty(self, x):  # a price of 5 per picture
        return tf.fill([tf.shape(x)[0]], 5.0)


class _Cap:
    def after_step(self, x, step):  # after each step, nothing above 1
        return tf.minimum(x, 1.0)


def test_the_step_applies_transforms_penalties_and_priors_in_their_places():
    """ascent_step: the objective on the transformed picture, the penalty on the picture, an RMS step
    of step_size pixels, then the priors; the history's first and last rows on the picture itself."""
    quadratic = lambda m, x, d: (tf.reduce_sum(tf.square(x - 3.0), axis=[1, 2, 3]), x[:, 0, 0, :1])  # noqa: E731
    loop = Loop(ascent_step, None, measure=_ascent_measure, objective=quadratic, transforms=(_Shift(),),
                penalties=(_Five(),), priors=(_Cap(),))
    r = loop.run(np.zeros((2, 4, 4, 1), np.float32), {"step_size": np.full(2, 0.4, np.float32)}, steps=4, progress=False)
    assert r.losses[0, 0] == pytest.approx(16 * 9 + 5)  # the start, untransformed: 16 * (0 - 3)^2 + 5
    assert r.losses[1, 0] == pytest.approx(16 * (0.4 + 1 - 3) ** 2 + 5, rel=1e-5)  # seen as x + 1 after one step
    np.testing.assert_allclose(r.x, 1.0)  # 0.4, 0.8, then capped at 1
    assert r.losses[-1, 0] == pytest.approx(16 * 4 + 5)
    big = lambda m, x, d: (-1e6 * tf.reduce_sum(x, axis=[1, 2, 3]), x[:, 0, 0, :1])  # noqa: E731
    far = Loop(ascent_step, None, objective=big).run(np.zeros((1, 4, 4, 1), np.float32),
                                                    {"step_size": np.ones(1, np.float32)}, steps=2, progress=False)
    np.testing.assert_allclose(far.x, 2.0, rtol=1e-5)  # RMS steps are in pixels whatever the scale


def test_chunk_boundaries_do_not_change_the_pictures():
    """Every kind of regulariser, the random ones drawn from (seed, step) and the blur due on global
    steps: one step per chunk or doubling chunks give the same pictures and history."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    tiny = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(hidden)))
    logit = lambda m, x, d: (-tiny(x, training=False)[:, 0], tiny(x, training=False))  # noqa: E731
    loop = Loop(ascent_step, tiny, measure=_ascent_measure, objective=logit, transforms=(Jitter(2),),
                penalties=(TotalVariation(0.5),), priors=(L2Decay(0.05), Blur(0.5, every=3)))
    x0 = np.full((2, 8, 8, 1), 127.5, np.float32) + np.arange(2, dtype=np.float32)[:, None, None, None]
    data = {"step_size": np.full(2, 2.0, np.float32)}
    loop.chunk_seconds = 0.0  # every chunk one step
    one_by_one = loop.run(x0, data, steps=40, seed=7, progress=False)
    loop.chunk_seconds = float("inf")  # chunks of 1, 2, 4, 8, 16 and the rest
    doubling = loop.run(x0, data, steps=40, seed=7, progress=False)
    assert set(one_by_one.chunks) == {1} and doubling.chunks == (1, 2, 4, 8, 16, 9) and doubling.traces == 0
    np.testing.assert_array_equal(one_by_one.x, doubling.x)
    np.testing.assert_array_equal(one_by_one.losses, doubling.losses)
    np.testing.assert_array_equal(one_by_one.tracked, doubling.tracked)


# --------------------------------------------------------------------------- deprocess


def test_deprocess_gives_viewable_uint8():
    x = _noise((2, 16, 16, 3), scale=30.0) * np.array([1.0, 0.01], np.float32)[:, None, None, None]
    out = deprocess(x)
    assert out.dtype == np.uint8 and out.shape == x.shape
    for img in out:  # each image stretched on its own: the faint one looks like the strong one
        assert abs(img.mean() - 127.5) < 2
        assert 0.12 * 255 < img.std() < 0.16 * 255
    np.testing.assert_array_equal(deprocess(x[0]), out[0])  # one image (H, W, C) works too
    np.testing.assert_array_equal(deprocess(10 * x[0] - 500), out[0])  # any range, any scale
    assert np.all(np.isin(deprocess(np.full((4, 4, 3), 200.0)), [127, 128]))  # flat -> flat grey
    with pytest.raises(ValueError, match="deprocess takes an image"):
        deprocess(np.zeros((4, 4)))


# --------------------------------------------------------------------------- bad input


def test_unknown_layer_lists_the_conv_layers(imagenet_model):
    with pytest.raises(ValueError, match="no layer 'block99_conv'") as err:
        maximize_filters(imagenet_model, "block99_conv", [0], steps=1)
    assert "stem_bn" in str(err.value) and "block12_expand_bn" in str(err.value) and "top_bn" in str(err.value)


@pytest.mark.parametrize("layer", ["logits", "avg_pool", "block2_dwconv", "stem_relu6", "stem_conv"])
def test_a_layer_that_is_not_a_conv_feature_layer_is_refused(imagenet_model, layer):
    with pytest.raises(ValueError, match=rf"'{layer}' is a \w+, not a convolutional feature layer") as err:
        maximize_filters(imagenet_model, layer, [0], steps=1)
    assert "choose one of: stem_bn, block1_expand_bn" in str(err.value)


@pytest.mark.parametrize("bad", [32, -1])
def test_filter_out_of_range_names_the_filter_count(imagenet_model, bad):
    with pytest.raises(ValueError, match=rf"filter index {bad} is out of range: layer 'stem_bn' has 32 filters \(0\.\.31\)"):
        maximize_filters(imagenet_model, "stem_bn", [0, bad], steps=1)


def test_no_filters_or_a_bad_size_is_refused(imagenet_model):
    with pytest.raises(ValueError, match="at least one filter"):
        maximize_filters(imagenet_model, "stem_bn", [], steps=1)
    with pytest.raises(ValueError, match="size must be positive"):
        maximize_filters(imagenet_model, "stem_bn", [0], steps=1, size=(0, 32))


@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_steps_below_one_are_refused(imagenet_model, steps):
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        maximize_filters(imagenet_model, "stem_bn", [0], steps=steps)
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        maximize_class(imagenet_model, "sea snake", steps=steps)


# --------------------------------------------------------------------------- MaCo and the measures of "natural"


def _noise_with_slope(slope: float, side: int = 128, seed: int = 0) -> np.ndarray:
    f = np.sqrt(np.fft.fftfreq(side)[:, None] ** 2 + np.fft.rfftfreq(side)[None, :] ** 2)
    amp = np.where(f > 0, np.maximum(f, 1e-9) ** slope, 0.0)
    phase = np.random.default_rng(seed).uniform(-np.pi, np.pi, amp.shape)
    grey = np.fft.irfft2(amp * np.exp(1j * phase), s=(side, side))
    grey = 128 + 40 * grey / grey.std()
    return np.repeat(grey[None, ..., None], 3, axis=-1)


@pytest.mark.parametrize("slope", [0.0, -1.0, -2.0])
def test_spectrum_slope_finds_a_known_slope(slope):
    from course_utils.vis import picture_stats

    assert picture_stats(_noise_with_slope(slope)).slope[0] == pytest.approx(slope, abs=0.15)


def test_picture_stats_counts_clipped_values_and_the_photos_fall_as_1_over_f():
    from course_utils.vis import picture_stats

    half = np.full((1, 32, 32, 3), 128.0)
    half[:, :16] = 255.0
    assert picture_stats(half).clipped[0] == pytest.approx(0.5)
    photos = np.stack([load_image(sample_image(n), size=224) for n in ("astronaut", "chelsea", "coffee", "grace_hopper")])
    slopes = picture_stats(photos).slope
    assert slopes.between(-1.8, -1.0).all(), slopes.tolist()
    with pytest.raises(ValueError, match="at least 16x16"):
        picture_stats(np.zeros((1, 8, 8, 3)))


def test_maco_keeps_the_magnitude_and_optimises_the_phase(imagenet_model):
    """A short MaCo run: valid pixels that never clip, a photo-like spectrum, a rising class and a
    transparency map in 0..1 of the picture's size; seeded."""
    from course_utils.vis import maximize_class_maco, picture_stats

    a = maximize_class_maco(imagenet_model, ["goldfish", "teapot"], steps=6, size=96, crops=2)
    b = maximize_class_maco(imagenet_model, ["goldfish", "teapot"], steps=6, size=96, crops=2)
    assert a.pixels.shape == (2, 96, 96, 3) and a.alpha.shape == (2, 96, 96)
    assert 0.0 <= a.alpha.min() and a.alpha.max() == pytest.approx(1.0)
    stats = picture_stats(a.images)
    assert (stats.clipped < 0.01).all() and stats.slope.between(-2.0, -0.8).all(), stats
    assert (a.final > a.start).all()
    np.testing.assert_allclose(a.pixels, b.pixels, atol=1e-3)
    assert b.traces == 0  # the second call reuses the compiled step


def test_maco_refuses_sizes_that_would_not_fit_and_a_bare_crop_range(imagenet_model):
    """Checked before any work: the message names the largest size, or the argument to lower."""
    from course_utils.vis import maximize_class_maco

    with pytest.raises(ValueError, match=r"Use size at most \d+"):
        maximize_class_maco(imagenet_model, "goldfish", 2, size=30000)
    with pytest.raises(ValueError, match="crops=1000000 .* Use fewer crops"):
        maximize_class_maco(imagenet_model, "goldfish", 2, crops=10**6)
    with pytest.raises(ValueError, match="two numbers"):
        maximize_class_maco(imagenet_model, "goldfish", 2, crop_range=0.5)

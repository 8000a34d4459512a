from __future__ import annotations

import numpy as np
import pytest

from course_utils.io.images import (
    SAMPLE_IMAGES,
    sample_face,
    sample_image,
    ImageLoadError,
    as_batch,
    load_image,
    to_uint8,
)


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_sample_images_load_offline(name):
    img = sample_image(name)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == 3
    assert img.std() > 10  # a real photo, not a blank


def test_unknown_sample_lists_the_names():
    with pytest.raises(ImageLoadError, match="chelsea"):
        sample_image("lena")


def test_load_image_resizes_and_converts():
    rgb = load_image(sample_image("coffee"), size=224)
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.float32
    assert 0 <= rgb.min() and rgb.max() <= 255
    gray = load_image(sample_image("astronaut"), size=48, mode="gray")
    assert gray.shape == (48, 48, 1)
    rect = load_image(sample_image("chelsea"), size=(100, 50))
    assert rect.shape == (100, 50, 3)


def test_center_crop_keeps_the_centre():
    img = np.zeros((100, 300, 1), np.float32)
    img[:, 100:200] = 255  # a bright centre square
    out = load_image(img, size=10, mode="gray")
    assert out.min() > 250  # only the centre survives the crop


def test_load_from_path_pil_and_gray_array(tmp_path):
    from PIL import Image

    path = tmp_path / "cat.png"
    Image.fromarray(sample_image("chelsea")).save(path)
    from_path = load_image(path)
    np.testing.assert_array_equal(from_path, sample_image("chelsea").astype(np.float32))
    assert load_image(Image.open(path), size=32).shape == (32, 32, 3)
    assert load_image(np.full((8, 8), 100, np.uint8)).shape == (8, 8, 3)


@pytest.mark.parametrize(
    "source, message",
    [
        ("/no/such/file.png", "no file at"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.full((4, 4, 3), 300.0), "0..255"),
        (np.full((4, 4, 3), -1.0), "0..255"),
        (np.zeros((2, 4, 4, 3)), "shape"),
        (np.zeros((4, 4, 2)), "shape"),
        (np.array([["a"]]), "dtype"),
        (12, "cannot load an image from a int"),
    ],
)
def test_bad_sources_say_what_is_wrong(source, message):
    with pytest.raises(ImageLoadError, match=message):
        load_image(source)


def test_not_an_image_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(path)


def test_unreachable_url_is_a_clear_error():
    # Port 9 on the loopback address: nothing listens there, so the connection is refused at once.
    with pytest.raises(ImageLoadError, match="could not download.*sample_image"):
        load_image("http://127.0.0.1:9/cat.jpg", timeout=2)


def test_url_that_is_not_an_image(monkeypatch):
    import requests

    class Fake:
        status_code, reason, headers = 200, "OK", {"Content-Type": "text/html"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(requests, "get", lambda *a, **k: Fake())
    with pytest.raises(ImageLoadError, match="text/html"):
        load_image("https://example.org/page.html")


def test_as_batch_checks_the_model_size(imagenet_model):
    with pytest.raises(ImageLoadError, match=r"size=224"):
        as_batch(np.zeros((100, 100, 3)), imagenet_model)
    assert as_batch(np.zeros((224, 224, 3)), imagenet_model).shape == (1, 224, 224, 3)
    with pytest.raises(ImageLoadError, match="0..255"):
        as_batch(np.full((1, 224, 224, 3), 1000.0))


def test_sample_face_is_framed_for_the_face_model():
    face = sample_face("astronaut")
    assert face.shape == (48, 48, 1)
    assert to_uint8(face).dtype == np.uint8
    with pytest.raises(ImageLoadError, match="faces are known"):
        sample_face("coffee")

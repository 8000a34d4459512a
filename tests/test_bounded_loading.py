"""Images and URLs are bounded: slow, oversized and careless inputs fail fast with ImageLoadError.

A small HTTP server on 127.0.0.1 (port 0, in a thread) plays the hostile or broken web servers.
Every server response stops by itself after a few seconds or a few MiB, so even a regression
cannot make a test run long or use much memory. Nothing here measures time.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from course_utils.io.images import MAX_PIXELS, ImageLoadError, as_batch, load_image

SERVER_CAP_S = 15.0  # no response lasts longer than this
SERVER_CAP_BYTES = 8 * 1024**2  # nor sends more than this


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny grayscale PNG whose header declares ``width`` x ``height`` (its data is 10 rows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"".join(b"\x00" + bytes(width) for _ in range(10)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


SMALL_PNG = png_bytes(np.full((6, 8, 3), 200, np.uint8))


class Handler(BaseHTTPRequestHandler):
    """One behaviour per path; see the comments."""

    stop: threading.Event

    def log_message(self, *args: object) -> None:  # keep the test log clean
        pass

    def _head(self, length: int | None, kind: str = "image/png") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _trickle(self, piece: bytes, pause: float) -> None:
        """Send ``piece`` again and again until the client leaves or a cap is reached."""
        sent, start = 0, time.monotonic()
        while not self.stop.is_set() and sent < SERVER_CAP_BYTES and time.monotonic() - start < SERVER_CAP_S:
            self.wfile.write(piece)
            self.wfile.flush()
            sent += len(piece)
            time.sleep(pause)

    def do_GET(self) -> None:
        try:
            if self.path == "/small.png":
                self._head(len(SMALL_PNG))
                self.wfile.write(SMALL_PNG)
            elif self.path == "/huge-declared.png":  # 196 bytes that declare 12000 x 12000 pixels
                data = png_with_declared_size(12000, 12000)
                self._head(len(data))
                self.wfile.write(data)
            elif self.path == "/drip":  # valid headers, then one byte every 0.1 s
                self._head(100_000)
                self._trickle(b"\x00", 0.1)
            elif self.path == "/drip-headers":  # the headers themselves arrive byte by byte
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                self._trickle(b"a", 0.1)
            elif self.path == "/announced-4gib":  # says 4 GiB, sends zeros
                self._head(4 * 1024**3)
                self._trickle(bytes(64 * 1024), 0.01)
            elif self.path == "/unannounced-big":  # no Content-Length: zeros until the connection closes
                self._head(None)
                self._trickle(bytes(64 * 1024), 0.001)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The base URL of the local server, e.g. ``http://127.0.0.1:43817``."""
    stop = threading.Event()
    handler = type("BoundHandler", (Handler,), {"stop": stop})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # a client hanging up is not an error here
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()


# --- downloads ---------------------------------------------------------------------------------


def test_a_small_png_downloads(server):
    image = load_image(f"{server}/small.png")
    assert image.shape == (6, 8, 3) and image.dtype == np.float32 and image.max() == 200


@pytest.mark.parametrize("scheme", ["HTTP", "Http"])
def test_the_scheme_is_case_insensitive(server, scheme):
    url = server.replace("http", scheme, 1) + "/small.png"
    assert load_image(url).shape == (6, 8, 3)


def test_other_schemes_are_refused_clearly():
    with pytest.raises(ImageLoadError, match="only http:// and https://"):
        load_image("ftp://example.org/cat.png")


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_a_dripping_server_hits_the_total_time_limit(server, path):
    """Each byte comes well within any per-read timeout; only a limit on the total stops it."""
    with pytest.raises(ImageLoadError, match=r"took longer than the time limit \(1\.5 s\)"):
        load_image(server + path, timeout=1.5)


def test_an_announced_oversized_body_is_refused_before_reading(server):
    with pytest.raises(ImageLoadError, match=r"larger than max_bytes=52428800 bytes \(it announces 4294967296 bytes\)"):
        load_image(server + "/announced-4gib", timeout=10)


def test_an_unannounced_oversized_body_is_cut_off_while_streaming(server):
    with pytest.raises(ImageLoadError, match=r"larger than max_bytes=1048576 bytes \(more than that arrived\)"):
        load_image(server + "/unannounced-big", timeout=10, max_bytes=1024**2)


def test_a_url_with_huge_declared_dimensions_is_refused_before_decoding(server):
    with pytest.raises(ImageLoadError, match=r"12000x12000 pixels \(144\.0 megapixels\), more than max_pixels"):
        load_image(server + "/huge-declared.png")


# --- decoding ----------------------------------------------------------------------------------


def test_a_small_file_with_huge_declared_dimensions_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_declared_size(12000, 12000))
    assert path.stat().st_size < 1000
    with pytest.raises(ImageLoadError, match=r"12000x12000 pixels .*Shrink it first"):
        load_image(path)


def test_past_pillows_own_limit_the_error_is_the_courses(tmp_path):
    path = tmp_path / "bigger_bomb.png"
    path.write_bytes(png_with_declared_size(20000, 20000))  # 400 MP: Pillow raises its own error
    for max_pixels in (10**9, MAX_PIXELS):  # raised by Image.open, before the course's own check
        with pytest.raises(ImageLoadError, match=r"too large to decode \(Pillow: Image size \(400000000 pixels\)"):
            load_image(path, max_pixels=max_pixels)


def test_sixteen_bit_png_is_scaled_not_saturated(tmp_path):
    ramp = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(png_bytes(ramp))
    assert Image.open(path).mode.startswith("I")
    gray = load_image(path, mode="gray")[0, :, 0]
    np.testing.assert_allclose(gray, [0.0, 1.0, 127.5, 255.0], atol=0.01)
    assert load_image(path).shape == (1, 4, 3)  # rgb: the gray value in every channel


def test_32_bit_integer_images_in_memory():
    """Mode "I" from an array: grey levels stay grey levels, 16-bit values are scaled."""
    assert load_image(Image.fromarray(np.full((2, 2), 200, np.int32)), mode="gray").max() == 200
    assert load_image(Image.fromarray(np.full((2, 2), 65535, np.int32)), mode="gray").max() == 255
    with pytest.raises(ImageLoadError, match="32-bit integer pixels"):
        load_image(Image.fromarray(np.full((2, 2), 70000, np.int32)))


def test_damaged_image_bytes_are_a_course_error(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(png_bytes(np.zeros((64, 64), np.uint8))[:60])
    with pytest.raises(ImageLoadError, match="not an image PIL can read"):
        load_image(path)


# --- arrays ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0), (0, 0, 1)])
def test_empty_arrays_are_an_error(shape):
    with pytest.raises(ImageLoadError, match=r"no pixels in the image array \(shape"):
        load_image(np.zeros(shape, np.uint8))


def test_empty_batch_is_an_error():
    with pytest.raises(ImageLoadError, match="empty batch"):
        as_batch(np.zeros((0, 4, 4, 3), np.float32))


def test_an_oversized_array_is_refused_with_its_size_and_the_fix():
    # A broadcast view: the "picture" takes no memory, yet has more pixels than the limit.
    height, width = 5001, MAX_PIXELS // 5000
    big = np.broadcast_to(np.uint8(7), (height, width, 3))
    with pytest.raises(ImageLoadError, match=rf"{width}x{height} pixels .*max_pixels=25000000 .*thumbnail"):
        load_image(big, size=224)
    with pytest.raises(ImageLoadError, match="max_pixels"):
        as_batch(big)


def test_as_batch_warns_about_zero_to_one_floats_like_load_image():
    dim = np.full((8, 8, 3), 0.5, np.float32)
    with pytest.warns(UserWarning, match="multiply by 255"):
        load_image(dim)
    with pytest.warns(UserWarning, match="multiply by 255"):
        as_batch(dim)


@pytest.mark.parametrize("size", [(2.7, 3.9), True, "224", 0, -1, 224.0, (224,), (224, 0), (True, 5)])
def test_sizes_must_be_whole_numbers(size):
    with pytest.raises(ValueError, match="whole numbers >= 1|each >= 1 pixel"):
        load_image(np.zeros((8, 8, 3), np.uint8), size=size)


def test_a_size_over_the_pixel_limit_is_refused():
    with pytest.raises(ImageLoadError, match=r"size=100000 asks for 100000x100000 pixels .* ask for a smaller size"):
        load_image(np.zeros((8, 8, 3), np.uint8), size=100_000)


def test_numpy_integer_sizes_still_work():
    assert load_image(np.zeros((8, 8, 3), np.uint8), size=(np.int64(4), 6)).shape == (4, 6, 3)


def test_size_is_checked_before_downloading():
    # Port 9 on the loopback: a download would fail differently; the size error comes first.
    with pytest.raises(ValueError, match="whole number"):
        load_image("http://127.0.0.1:9/cat.png", size="224")

"""The one download routine (``course_utils.io.images``) saving a weights file against a local HTTP server on 127.0.0.1.

Paths the server knows: ``/file`` (the payload), ``/short`` (announces the payload's length,
sends half and hangs up), ``/missing`` (404). Every download here is bounded by a 10 s timeout.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from course_utils.io import images
from tools.fetch_weights import main as fetch_weights_main
from course_utils.io.images import WeightsUnavailableError, _KnownFile as KnownFile, _fetch_file as fetch_file, _file_md5 as file_md5

PAYLOAD = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several chunks, so the bar moves
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
BOUNDS = dict(timeout=10.0, time_limit=30.0)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.server.requests.append(self.path)
        if self.path not in ("/file", "/short"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD if self.path == "/file" else PAYLOAD[: len(PAYLOAD) // 2])
        self.close_connection = True  # "/short": hang up before Content-Length bytes

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_puts_the_verified_file_in_place(server, tmp_path, capsys):
    dest = tmp_path / "sub" / "weights.h5"
    assert fetch_file(server.url + "/file", dest, PAYLOAD_MD5, **BOUNDS) == dest
    assert dest.read_bytes() == PAYLOAD and file_md5(dest) == PAYLOAD_MD5
    assert _leftovers(dest.parent) == ["weights.h5"]  # no .part left
    err = capsys.readouterr().err
    assert "weights.h5" in err and "100%" in err  # the progress bar, on stderr


def test_wrong_hash_leaves_nothing_and_keeps_an_older_file(server, tmp_path):
    dest = tmp_path / "weights.h5"
    with pytest.raises(WeightsUnavailableError, match=f"MD5 {PAYLOAD_MD5}, not the expected 0+; it was deleted"):
        fetch_file(server.url + "/file", dest, "0" * 32, progress=False, **BOUNDS)
    assert _leftovers(tmp_path) == []
    dest.write_bytes(b"an older file")
    with pytest.raises(WeightsUnavailableError):
        fetch_file(server.url + "/file", dest, "0" * 32, progress=False, **BOUNDS)
    assert dest.read_bytes() == b"an older file" and _leftovers(tmp_path) == ["weights.h5"]


def test_a_download_cut_short_leaves_nothing(server, tmp_path):
    dest = tmp_path / "weights.h5"
    with pytest.raises(WeightsUnavailableError, match="cut short|broke"):
        fetch_file(server.url + "/short", dest, PAYLOAD_MD5, progress=False, **BOUNDS)
    assert _leftovers(tmp_path) == []


def test_an_interrupted_download_leaves_nothing(server, tmp_path, monkeypatch):
    import tqdm.auto

    class Interrupted(tqdm.auto.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt  # Ctrl-C after the first chunk is on disk

    monkeypatch.setattr(tqdm.auto, "tqdm", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch_file(server.url + "/file", tmp_path / "weights.h5", PAYLOAD_MD5, **BOUNDS)
    assert _leftovers(tmp_path) == []


def test_a_stale_part_file_is_overwritten(server, tmp_path):
    dest = tmp_path / "weights.h5"
    (tmp_path / "weights.h5.part").write_bytes(b"left by a killed run" * 1000)
    fetch_file(server.url + "/file", dest, PAYLOAD_MD5, progress=False, **BOUNDS)
    assert dest.read_bytes() == PAYLOAD and _leftovers(tmp_path) == ["weights.h5"]


def test_size_cap_time_limit_and_http_errors(server, tmp_path):
    dest = tmp_path / "weights.h5"
    with pytest.raises(WeightsUnavailableError, match="larger than max_bytes=1048576 bytes"):
        fetch_file(server.url + "/file", dest, PAYLOAD_MD5, max_bytes=1 << 20, progress=False, **BOUNDS)
    with pytest.raises(WeightsUnavailableError, match="longer than the time limit"):
        fetch_file(server.url + "/file", dest, PAYLOAD_MD5, time_limit=0.0, timeout=10.0, progress=False)
    with pytest.raises(WeightsUnavailableError, match="HTTP 404"):
        fetch_file(server.url + "/missing", dest, PAYLOAD_MD5, progress=False, **BOUNDS)
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- the command


@pytest.fixture
def small_vgg16(server, tmp_path, monkeypatch):
    """The CLI's "vgg16" entry pointed at the local payload, and an empty Keras cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    known = KnownFile(server.url + "/file", images.KNOWN_FILES["vgg16"].filename, PAYLOAD_MD5, len(PAYLOAD))
    monkeypatch.setitem(images.KNOWN_FILES, "vgg16", known)
    return known


def test_cli_fetches_into_the_cache_load_vgg16_reads(server, small_vgg16, capsys):
    before = len(server.requests)
    assert fetch_weights_main(["vgg16"]) == 0
    assert images.KNOWN_FILES["vgg16"].dest.read_bytes() == PAYLOAD
    assert "saved and verified" in capsys.readouterr().out
    assert fetch_weights_main(["vgg16"]) == 0  # second time: nothing to download
    assert "already present and verified" in capsys.readouterr().out
    assert len(server.requests) == before + 1
    assert fetch_weights_main(["vgg16", "--force"]) == 0
    assert len(server.requests) == before + 2


def test_cli_replaces_a_damaged_file(server, small_vgg16, capsys):
    path = images.KNOWN_FILES["vgg16"].dest
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD[:1000])
    assert fetch_weights_main(["vgg16"]) == 0
    assert "damaged or incomplete" in capsys.readouterr().out and path.read_bytes() == PAYLOAD


def test_cli_offline_is_one_clear_message_and_a_failure_code(small_vgg16, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = KnownFile(f"http://127.0.0.1:{port}/file", small_vgg16.filename, small_vgg16.md5, small_vgg16.size)
    monkeypatch.setitem(images.KNOWN_FILES, "vgg16", refused)
    assert fetch_weights_main(["vgg16"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and "Connection refused" in err and "online" in err
    assert "Traceback" not in err
    assert not images.KNOWN_FILES["vgg16"].dest.exists()

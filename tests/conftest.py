"""Shared fixtures. Importing course_utils first keeps TensorFlow's start-up chatter out of the log."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import course_utils  # noqa: E402,F401  (silences TensorFlow before it is imported)
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def imagenet_model():
    """EfficientNet-Lite0, loaded once for the whole session (offline)."""
    from course_utils.models import load_efficientnet_lite0

    return load_efficientnet_lite0()


@pytest.fixture(scope="session")
def cat_224() -> np.ndarray:
    """skimage's chelsea (a cat), 224x224x3 float pixels 0..255."""
    from course_utils.images import load_image, sample_image

    return load_image(sample_image("chelsea"), size=224)


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every network access (DNS lookups included) and record the attempts.

    Yields the list of attempts; a test asserts it stayed empty where nothing may touch the network.
    """
    import socket

    attempts: list[tuple[str, tuple]] = []

    def refuse(what):
        def refused(*args, **kwargs):
            attempts.append((what, args))
            raise OSError(f"network refused by the test ({what})")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    return attempts

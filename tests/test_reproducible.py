"""The same call gives the same numbers: again in the same process (whatever ran before it) and in
a fresh Python process, as a student's re-run of a notebook or "Restart kernel and run all" would.
Randomness (start noise, jitter, PGD's random start) is seeded by the call's own ``seed``, never by
global state."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# A jittered class visualisation from seeded noise, attacks (one with a random start) and a noise
# filter (on the small face model, to keep it quick): every source of randomness the lessons use.
# Prints one digest.
PROGRAM = """
import hashlib, numpy as np
import course_utils
from course_utils.attacks import iterative_attack, noise_filter, pgd_attack
from course_utils.vis import Jitter
from course_utils.io.images import sample_face
from course_utils.models.faces import load_gender_cnn
from course_utils.vis import maximize_class

def digest(model):
    vis = maximize_class(model, "man", steps=5, step_size=2.0, regularizers=(Jitter(4),), seed=3, progress=False)
    face = sample_face("astronaut")
    att = iterative_attack(model, face, "man", epsilon=2.0, steps=5, progress=False)
    dx = noise_filter(model, face, "man", beta=[0.0, 3e-4], steps=20, learning_rate=30.0, progress=False)
    pgd = pgd_attack(model, np.stack([face, face[:, ::-1]]), "man", 4.0, steps=3, seed=5)
    parts = [vis.pixels, att.adversarial, dx.adversarial, pgd.adversarial]
    return hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest()

print("DIGEST", digest(load_gender_cnn()))
"""


def _digest_here(model) -> str:
    namespace: dict = {}
    exec(PROGRAM.replace('print("DIGEST", digest(load_gender_cnn()))', ""), namespace)  # noqa: S102
    return namespace["digest"](model)


@pytest.fixture(scope="module")
def face_model():
    from course_utils.models.faces import load_gender_cnn

    return load_gender_cnn()


def test_same_numbers_again_in_the_same_process(face_model):
    first = _digest_here(face_model)
    # Run something else with other seeds in between: it must not shift the next call's randomness.
    from course_utils.attacks import pgd_attack
    from course_utils.vis import Jitter
    from course_utils.io.images import sample_face
    from course_utils.vis import maximize_class

    maximize_class(face_model, "woman", steps=3, regularizers=(Jitter(2),), seed=11, progress=False)
    pgd_attack(face_model, sample_face("astronaut"), "woman", 8.0, steps=2, seed=12)
    assert _digest_here(face_model) == first


def test_same_numbers_in_a_fresh_process(face_model):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    fresh = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("DIGEST")]
    assert fresh == [_digest_here(face_model)]


def test_different_seeds_give_different_starts(face_model):
    from course_utils.attacks import pgd_attack
    from course_utils.io.images import sample_face

    a, b = (pgd_attack(face_model, sample_face("astronaut"), "man", 4.0, steps=0, seed=s).adversarial for s in (0, 1))
    assert not np.array_equal(a, b)


def test_different_seeds_give_different_pictures(imagenet_model):
    from course_utils.vis import maximize_class

    a, b = (maximize_class(imagenet_model, 65, steps=1, seed=s, progress=False) for s in (0, 1))
    assert not np.array_equal(a.pixels, b.pixels)
    assert hashlib.sha256(a.pixels.tobytes()).hexdigest() != hashlib.sha256(b.pixels.tobytes()).hexdigest()

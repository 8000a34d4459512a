"""The same call gives the same numbers: again in the same process (whatever ran before it) and in
a fresh Python process, as a student's re-run of a notebook or "Restart kernel and run all" would.
Randomness (start noise, jitter) is seeded by the call's own ``seed``, never by global state."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# A jittered class visualisation from noise and a short attack: every source of randomness the
# lessons use. Prints one digest of all the numbers.
PROGRAM = """
import hashlib, numpy as np
import course_utils
from course_utils.attacks import iterative_attack
from course_utils.images import load_image, sample_image
from course_utils.models import load_efficientnet_lite0
from course_utils.visualize import Jitter, maximize_class

def digest(model):
    vis = maximize_class(model, "sea snake", steps=2, step_size=2.0, regularizers=(Jitter(4),),
                         seed=3, progress=False)
    cat = load_image(sample_image("chelsea"), size=224)
    att = iterative_attack(model, cat, "king penguin", epsilon=2.0, steps=2, progress=False)
    return hashlib.sha256(np.ascontiguousarray(vis.pixels).tobytes() + att.adversarial.tobytes()).hexdigest()

print("DIGEST", digest(load_efficientnet_lite0()))
"""


def _digest_here(model) -> str:
    namespace: dict = {}
    exec(PROGRAM.replace('print("DIGEST", digest(load_efficientnet_lite0()))', ""), namespace)  # noqa: S102
    return namespace["digest"](model)


def test_same_numbers_again_in_the_same_process(imagenet_model):
    first = _digest_here(imagenet_model)
    # Run something else with other seeds in between: it must not shift the next call's randomness.
    from course_utils.visualize import Jitter, maximize_class

    maximize_class(imagenet_model, "goldfish", steps=1, regularizers=(Jitter(2),), seed=11, progress=False)
    assert _digest_here(imagenet_model) == first


def test_same_numbers_in_a_fresh_process(imagenet_model):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    fresh = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("DIGEST")]
    assert fresh == [_digest_here(imagenet_model)]


def test_different_seeds_give_different_pictures(imagenet_model):
    from course_utils.visualize import maximize_class

    a, b = (maximize_class(imagenet_model, 65, steps=1, seed=s, progress=False) for s in (0, 1))
    assert not np.array_equal(a.pixels, b.pixels)
    assert hashlib.sha256(a.pixels.tobytes()).hexdigest() != hashlib.sha256(b.pixels.tobytes()).hexdigest()

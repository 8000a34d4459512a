"""Claims with margins (course_utils.classroom.grading), the seed offset (course_utils.checks) and the
stability harness's report (tools/stability.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from course_utils.classroom.grading import _ClaimFailed as ClaimFailed, claim, _margin
from course_utils.checks import effective_seed

ROOT = Path(__file__).resolve().parent.parent


def test_margin_relative_and_log_odds():
    assert _margin(12.0, ">", 5.0) == pytest.approx(1.4)
    assert _margin(0.5, "<", 1.0) == pytest.approx(0.5)
    assert _margin(4.0, ">", 5.0) == pytest.approx(-0.2)          # negative: it does not hold
    assert _margin(3.0, ">", 0.0) is None                           # no scale against 0
    far, near = _margin(0.999, ">=", 0.99, "log-odds"), _margin(0.993, ">=", 0.99, "log-odds")
    assert far > 2.0 and 0 < near < 0.5                              # 0.993 is near 0.99, 0.999 is not
    assert _margin(0.1, "<=", 0.25, "log-odds") == pytest.approx(math.log(3))   # odds 1/9 against 1/3
    assert _margin(float("nan"), ">", 1.0) == -math.inf


def test_margin_refuses_bad_arguments():
    with pytest.raises(ValueError, match="op must be one of"):
        _margin(1.0, "==", 1.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        _margin(1.0, ">", 1.0, "percent")
    with pytest.raises(ValueError, match="in 0..1"):
        _margin(2.0, ">", 0.5, "log-odds")


def test_claim_returns_the_value_and_records_it(tmp_path, monkeypatch):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("COURSE_CLAIMS_LOG", str(log))
    assert claim("ratio", np.float32(12.0), ">", 5) == 12.0
    with pytest.raises(ClaimFailed, match=r"p: 0\.97 is not >= 0\.99\. check the model"):
        claim("p", 0.97, ">=", 0.99, scale="log-odds", hint="check the model")
    first, second = [json.loads(line) for line in log.read_text().splitlines()]
    assert first == {"claim": "ratio", "value": 12.0, "op": ">", "threshold": 5.0, "scale": "relative",
                     "margin": pytest.approx(1.4), "held": True}
    assert second["held"] is False and second["margin"] < 0


def test_claim_without_a_log_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_CLAIMS_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    claim("x", 1.0, "<", 2.0)
    assert list(tmp_path.iterdir()) == []


def test_claim_refuses_what_is_not_a_number():
    with pytest.raises(TypeError, match="value must be a number, got str 'high'"):
        claim("x", "high", ">", 1)
    with pytest.raises(ValueError, match="op must be one of"):
        claim("x", 1, "=>", 1)


def test_seed_offset_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert effective_seed(0) == 0 and effective_seed(7) == 7
    monkeypatch.setenv("COURSE_SEED", "3")
    assert effective_seed(0) == 3 and effective_seed(7) == 10
    assert effective_seed(2**31 - 1) == 2                         # wraps into the seed range
    for bad in ("one", "-1", "1.5"):
        monkeypatch.setenv("COURSE_SEED", bad)
        with pytest.raises(ValueError, match=f"COURSE_SEED='{bad}' is not a seed offset"):
            effective_seed(0)


def test_every_kind_of_seeded_start_moves_with_the_offset(monkeypatch):
    """Lesson 3's noise, a parameterisation's start and PGD's random start all honour COURSE_SEED;
    the same offset gives the same numbers again."""
    import tensorflow as tf

    import keras

    from course_utils.attacks.pgd import pgd_perturb
    from course_utils.vis.param import Fourier
    from course_utils.vis.param import gray_noise

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])

    def draws():
        x = tf.fill([1, 8, 8, 3], 128.0)
        return (gray_noise((4, 4, 3), seed=5), Fourier(size=(16, 16)).init(1, seed=5),
                pgd_perturb(model, x, [0], 4.0, steps=0, seed=5).numpy())  # PGD's random start alone

    monkeypatch.delenv("COURSE_SEED", raising=False)
    base = draws()
    monkeypatch.setenv("COURSE_SEED", "1")
    moved, again = draws(), draws()
    for b, m, a in zip(base, moved, again):
        assert not np.allclose(b, m)
        np.testing.assert_array_equal(m, a)
    monkeypatch.setenv("COURSE_SEED", "0")
    for b, z in zip(base, draws()):
        np.testing.assert_array_equal(b, z)


def test_the_loop_seed_moves_with_the_offset(monkeypatch):
    """The driver's seed (jitter, random starts) is moved too, in a notebook run and a graph-level
    run alike: the same seed gives the same batch, COURSE_SEED=1 another."""
    import tensorflow as tf

    from course_utils.core.loop import compiled
    from course_utils.core.ops import seed_pair

    def noisy(model, x, x0, i, seed, data):  # a step that only draws: its randomness is its seed's
        x_next = x + tf.random.stateless_normal(tf.shape(x), seed=seed_pair(seed, i))
        loss = tf.reduce_sum(tf.square(x_next - x0), axis=[1, 2, 3])
        return x_next, loss, loss[:, None], None

    class Model:  # the step asks nothing of it; the cache keeps the loop while it lives
        pass

    loop = compiled(noisy, Model())
    x0 = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")

    def both(seed=0):
        return loop.run(x0, {}, steps=3, seed=seed, progress=False).x, loop.perturb(x0, {}, steps=3, seed=seed).numpy()

    monkeypatch.delenv("COURSE_SEED", raising=False)
    base, again, next_seed = both(), both(), both(1)
    np.testing.assert_array_equal(base[0], again[0])
    np.testing.assert_array_equal(base[1], again[1])
    np.testing.assert_array_equal(base[0], base[1])  # the two ways of running draw the same numbers
    monkeypatch.setenv("COURSE_SEED", "1")
    moved = both()
    assert not np.allclose(base[0], moved[0]) and not np.allclose(base[1], moved[1])
    np.testing.assert_array_equal(moved[0], next_seed[0])  # the offset is added to the seed
    np.testing.assert_array_equal(moved[1], next_seed[1])


def _write_log(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_stability_report_flags_thin_and_failed_claims(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import stability
    finally:
        sys.path.pop(0)

    def rec(name, value, threshold, held=True, scale="relative"):
        return {"claim": name, "value": value, "op": ">", "threshold": threshold, "scale": scale,
                "margin": _margin(value, ">", threshold, scale), "held": held}

    _write_log(tmp_path / "default.jsonl", [rec("wide", 20, 5), rec("thin", 5.2, 5), rec("breaks", 6, 5)])
    _write_log(tmp_path / "seed-1.jsonl", [rec("wide", 15, 5), rec("thin", 5.3, 5), rec("breaks", 4, 5, held=False)])
    text, stable = stability.report(["default", "seed-1"], tmp_path)
    assert not stable
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["wide"].endswith("| 2 | ok |")                    # worst _margin (15 - 5) / 5
    assert rows["thin"].endswith("| 0.04 | thin |")
    assert rows["breaks"].endswith("| FAILED |")
    assert "(no JUnit file" in text                               # the runs' JUnit files are missing here

    _write_log(tmp_path / "default.jsonl", [rec("wide", 20, 5)])
    _write_log(tmp_path / "seed-1.jsonl", [rec("wide", 15, 5)])
    for name in ("default", "seed-1"):
        (tmp_path / f"{name}.xml").write_text('<testsuites><testsuite><testcase classname="a" name="b"/></testsuite></testsuites>')
    assert stability.report(["default", "seed-1"], tmp_path)[1]


def test_stability_refuses_an_unknown_perturbation():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "stability.py"), "--perturbations", "default,seed-9"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown perturbation(s) ['seed-9']" in result.stderr


def test_passing_numeric_asserts_in_tests_are_recorded(tmp_path):
    """tests/conftest.py records `assert a < b` between numbers when COURSE_CLAIMS_LOG is set."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nenable_assertion_pass_hook = true\n")
    (tmp_path / "test_sample.py").write_text(
        "def test_sample():\n    p = 0.999\n    q = 2 * p\n    assert p >= 0.99\n    assert 0.5 < q\n    assert 1 == 1\n"
        "    assert 0 <= p <= 1\n")
    log = tmp_path / "claims.jsonl"
    env = {**os.environ, "COURSE_CLAIMS_LOG": str(log), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["value"], r["op"], r["threshold"], r["scale"]) for r in records] == [
        (0.999, ">=", 0.99, "log-odds"),      # a probability against a probability threshold
        (1.998, ">", 0.5, "relative"),        # `0.5 < x`: the literal on the left is the threshold
    ]

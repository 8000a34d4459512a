"""Lesson 5's query attacks: the black box's counter, the Square Attack and HopSkipJump.

Model: lesson 1's gender CNN on the two sample faces (tiny, fast)."""

from __future__ import annotations

import numpy as np
import pytest

import course_utils  # noqa: F401

from course_utils.attacks.blackbox import BlackBox, _QueryBudgetExceeded, hop_skip_jump, _p_schedule, square_attack
from course_utils.io.images import sample_face
from course_utils.models.faces import load_gender_cnn


@pytest.fixture(scope="module")
def cnn():
    return load_gender_cnn()


@pytest.fixture(scope="module")
def faces():
    return np.stack([sample_face(n) for n in ("astronaut", "grace_hopper")])


def _top(model, x):
    return np.asarray(model(np.asarray(x, np.float32), training=False)).argmax(1)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True, None])
def test_bad_budgets_are_refused(cnn, faces, bad):
    if bad is not None:  # None is a box without a budget
        with pytest.raises(ValueError, match="budget"):
            BlackBox(cnn, 2, budget=bad)
    with pytest.raises(ValueError, match="queries"):
        square_attack(cnn, faces, queries=bad)
    with pytest.raises(ValueError, match="queries"):
        hop_skip_jump(cnn, faces, queries=bad)


def test_bad_arguments_say_what_was_wrong(cnn, faces):
    with pytest.raises(ValueError, match="queries"):
        square_attack(cnn, faces, queries=1)  # the clean photo and the stripes need two
    with pytest.raises(ValueError, match="epsilon.*0"):
        square_attack(cnn, faces, epsilon=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        square_attack(cnn, faces, epsilon=-4.0)
    with pytest.raises(ValueError, match="keep_clean"):
        square_attack(cnn, faces, keep_clean="no")
    with pytest.raises(ValueError, match="iterations"):
        hop_skip_jump(cnn, faces, iterations=0)
    with pytest.raises(ValueError, match="max_evals"):
        hop_skip_jump(cnn, faces, init_evals=100, max_evals=10)
    with pytest.raises(ValueError, match="output"):
        BlackBox(cnn, 2, output="logits")


# --------------------------------------------------------------------------- the black box


def test_black_box_counts_each_example_and_refuses_over_budget(cnn, faces):
    box = BlackBox(cnn, 2, output="scores", budget=3)
    p = box.probabilities(np.concatenate([faces, faces[:1]]), [0, 1, 0])
    assert p.shape == (3, 2) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    assert box.queries.tolist() == [2, 1] and box.remaining.tolist() == [1, 2]
    with pytest.raises(_QueryBudgetExceeded, match="budget of 3"):
        box.label(faces[[0, 0]], [0, 0])
    assert box.queries.tolist() == [2, 1]  # a refused call costs nothing
    assert box.label(faces[1:], [1]).tolist() == _top(cnn, faces[1:]).tolist()


def test_label_only_box_gives_no_scores(cnn, faces):
    box = BlackBox(cnn, 2, output="label")
    with pytest.raises(PermissionError, match="top label"):
        box.probabilities(faces, [0, 1])
    assert box.label(faces, [0, 1]).tolist() == _top(cnn, faces).tolist()
    assert box.queries.tolist() == [1, 1]


def test_p_schedule_halves_as_the_paper_does():
    assert _p_schedule(0.05, 0, 10000) == 0.05
    assert _p_schedule(0.05, 11, 10000) == 0.025
    assert _p_schedule(0.05, 600, 10000) == 0.05 / 16
    assert _p_schedule(0.05, 9999, 10000) == 0.05 / 512
    assert _p_schedule(0.05, 3, 1000) == 0.05 / 2 and _p_schedule(0.05, 6, 1000) == 0.05 / 4  # rescaled to the budget


# --------------------------------------------------------------------------- Square Attack


def test_square_attack_fools_the_face_cnn_within_budget(cnn, faces):
    r = square_attack(cnn, faces, None, 16.0, queries=1000, seed=0)
    assert r.success.all(), r
    assert (r.queries <= 1000).all() and r.queries.max() < 500
    assert (_top(cnn, r.adversarial) != r.labels).all()  # the model really is fooled
    assert r.linf.max() <= 16.0 + 1e-3 and r.adversarial.min() >= 0 and r.adversarial.max() <= 255
    h = r.history
    assert (np.diff(h["queries"], axis=0) >= 0).all() and h["queries"].max() <= 1000
    assert (np.diff(h["loss"], axis=0) <= 1e-12).all()  # the kept margin never rises
    assert len(r.success_curve(10)) >= 2 and r.summary().shape[0] == 2 and "square" in repr(r)


def test_square_attack_never_exceeds_a_small_budget(cnn, faces):
    r = square_attack(cnn, faces, None, 0.5, queries=7, seed=0)  # too small to fool anything
    assert (r.queries <= 7).all() and not r.success.any()
    assert r.history["queries"].max() <= 7


def test_square_attack_is_repeatable_with_its_seed(cnn, faces):
    a = square_attack(cnn, faces, None, 6.0, queries=40, seed=3)
    b = square_attack(cnn, faces, None, 6.0, queries=40, seed=3)
    c = square_attack(cnn, faces, None, 6.0, queries=40, seed=4)
    assert np.array_equal(a.adversarial, b.adversarial) and np.array_equal(a.queries, b.queries)
    assert not np.array_equal(a.adversarial, c.adversarial)


# --------------------------------------------------------------------------- HopSkipJump


def test_hop_skip_jump_walks_towards_the_photo(cnn, faces):
    r = hop_skip_jump(cnn, faces, None, queries=1500, seed=0)
    assert r.success.all() and (r.queries <= 1500).all() and r.history["queries"].max() <= 1500
    assert (_top(cnn, r.adversarial) != r.labels).all()
    assert (r.predicted != r.labels).all()
    start, end = r.history["l2"][0], r.history["l2"][-1]
    assert (end < 0.3 * start).all(), (start, end)
    assert np.allclose(end, r.l2, rtol=1e-3)


def test_hop_skip_jump_respects_a_small_budget_and_its_seed(cnn, faces):
    a = hop_skip_jump(cnn, faces, None, queries=120, seed=5)
    b = hop_skip_jump(cnn, faces, None, queries=120, seed=5)
    assert (a.queries <= 120).all()
    assert np.array_equal(a.adversarial, b.adversarial)
    c = hop_skip_jump(cnn, faces, None, queries=400, iterations=2, seed=5)
    assert c.history["l2"].shape[0] == 3  # the start and two iterations


# --------------------------------------------------------------------------- the exercise


def test_binary_search_exercise_accepts_the_solution_and_names_each_mistake(capsys):
    from course_utils.classroom.grading import Exercise
    from course_utils.classroom.lesson5 import lesson5_binary_search

    def right(is_adv, x, x_adv, tol):
        low, high, length = 0.0, 1.0, np.linalg.norm(x_adv - x)
        while (high - low) * length > tol:
            mid = (low + high) / 2
            low, high = (low, mid) if is_adv((1 - mid) * x + mid * x_adv) else (mid, high)
        return (1 - high) * x + high * x_adv

    def clean_end(is_adv, x, x_adv, tol):  # returns the side the model gets right
        low, high, length = 0.0, 1.0, np.linalg.norm(x_adv - x)
        while (high - low) * length > tol:
            mid = (low + high) / 2
            low, high = (low, mid) if is_adv((1 - mid) * x + mid * x_adv) else (mid, high)
        return (1 - low) * x + low * x_adv

    def wasteful(is_adv, x, x_adv, tol):  # a linear scan: right answer, far too many queries
        for a in np.linspace(0, 1, 2000):
            if is_adv((1 - a) * x + a * x_adv):
                return (1 - a) * x + a * x_adv
        return x_adv

    lesson5_binary_search(None, right)
    lesson5_binary_search(10, lambda *a: None)
    assert capsys.readouterr().out.count("not answered yet") == 2
    lesson5_binary_search(10, right)
    assert "correct" in capsys.readouterr().out
    for answer, fn, match in [(1000, right, "not 1000"), (10, lambda i, x, a, t: a, "past the boundary"),
                              (10, clean_end, "gets your picture right"), (10, wasteful, "questions"),
                              (10, lambda i, x, a, t: x * 0 + 128.0, "not on the segment")]:
        with pytest.raises(Exercise.WrongAnswer, match=match):
            lesson5_binary_search(answer, fn)


# --------------------------------------------------------------------------- the ART runner (no ART run)


def test_art_runner_finds_its_comparisons_checks_rows_and_writes_both_files(tmp_path):
    from benchmarks.art.__main__ import check_row, comparisons, parse_args, write

    assert "queries" in comparisons() and not any(n.startswith("_") for n in comparisons())
    with pytest.raises(SystemExit):
        parse_args(["--only", "no_such_comparison", "--out", str(tmp_path)])
    row = {"comparison": "c", "tool": "ART", "setting": "s", "metric": "m", "value": 1, "queries": 5, "wall_s": 2}
    assert check_row(row, "x")["value"] == 1.0
    with pytest.raises(ValueError, match="keys"):
        check_row({k: v for k, v in row.items() if k != "wall_s"}, "x")
    with pytest.raises(ValueError, match="tool"):
        check_row(dict(row, tool="foolbox"), "x")
    report = {"started_utc": "now", "device": "cpu", "art_version": "1", "mode": "quick", "wall_s": 1.0,
              "comparisons": ["x"], "rows": [check_row(row, "x")], "errors": {}}
    json_path, md_path, text = write(report, tmp_path)
    assert json_path.is_file() and md_path.is_file() and "| c | ART | s | m | 1 | 5 | 2 |" in text


def test_art_speed_table_compares_time_and_success_and_the_time_above_the_floor():
    from benchmarks.art import FLOOR
    from benchmarks.art.__main__ import speed_table

    def row(comparison, tool, metric, value, wall):
        return {"comparison": comparison, "tool": tool, "setting": "s", "metric": metric, "value": value,
                "queries": 1, "wall_s": wall}

    rows = [row("Square Attack (score-based)", "course_utils", "success rate", 0.5, 2.0),
            row("Square Attack (score-based)", "ART", "success rate", 0.25, 8.0),
            row("randomized smoothing (certify)", "course_utils", FLOOR + " (s)", 10.0, 10.0),
            row("randomized smoothing (certify)", "course_utils", "certified accuracy at L2 radius 0", 0.9, 11.0),
            row("randomized smoothing (certify)", "ART", "certified accuracy at L2 radius 0", 0.8, 20.0),
            row("no ART row", "course_utils", "success rate", 1.0, 1.0)]
    lines = speed_table(rows)
    assert "| Square Attack (score-based) | 2 | 8 | **4.0x** | 0.5 | 0.25 | success rate |" in lines
    # the floor is not the course's wall time; above it the course spends 1 s and ART 10 s
    assert "| randomized smoothing (certify) | 11 | 20 | **1.8x** | 0.9 | 0.8 | certified accuracy at L2 radius 0 |" in lines
    assert any(line.startswith("| randomized smoothing (certify), time above the floor (10 s") and "| 1 | 10 | **10.0x** |"
               in line for line in lines)
    assert not any("no ART row" in line for line in lines)  # nothing to compare with


def test_art_forward_floor_sends_the_batch_in_its_slices():
    import keras

    from benchmarks.art import forward_floor

    seen = []

    class Recorder(keras.Model):
        def call(self, x, training=False):
            seen.append(int(x.shape[0]))  # at tracing: the batch size of each slice sent
            return keras.ops.stack([keras.ops.mean(x, axis=(1, 2, 3)), -keras.ops.mean(x, axis=(1, 2, 3))], -1)

    batch = np.random.default_rng(0).uniform(0.0, 255.0, (10, 4, 4, 1))
    seconds = forward_floor(Recorder(), batch, pictures=25, slice_size=4)
    assert seen == [4, 4, 2]  # the 10 pictures in slices of 4, traced once
    assert np.isfinite(seconds) and seconds > 0
    with pytest.raises(ValueError, match="pictures=0"):  # nothing to time: said, not a NameError after the loop
        forward_floor(Recorder(), batch, pictures=0, slice_size=4)

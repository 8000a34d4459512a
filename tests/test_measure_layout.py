"""The layout figures of issue 27 (``tools/measure_layout.py``): a small package a student can read."""

from __future__ import annotations

from tools.measure_layout import GRADIENT_FUNCTIONS, ROOT, main, measure, read_tree

FIGURES = measure(read_tree(ROOT, None))


def test_the_package_stays_small():
    """At most 40 files, 9,500 lines and 180 public top-level functions and classes: a new one pays
    for itself by removing another."""
    small = {"files": 40, "lines": 9500, "public_top_level_defs": 180}
    assert {k: FIGURES[k] for k in small if FIGURES[k] > small[k]} == {}, small


def test_each_lesson_imports_the_package_in_six_lines_or_fewer():
    per_lesson = FIGURES["import_lines_per_lesson"]
    assert per_lesson and max(per_lesson.values()) <= 6, per_lesson


def test_each_gradient_method_keeps_its_step_in_its_own_file():
    rows = {row["function"]: row for row in FIGURES["gradient_loops"]}
    assert set(rows) == set(GRADIENT_FUNCTIONS)
    assert all(row["step"] for row in rows.values()), [f for f, r in rows.items() if not r["step"]]
    assert {f: r["files"] for f, r in rows.items() if r["files"] != 1} == {}
    one_frame = {"noise_filter", "iterative_attack", "eot_attack", "train_patch", "adaptive_attack",
                 "maximize_filters", "maximize_class", "maximize_class_maco"}
    assert {f: rows[f]["via"] for f in one_frame if rows[f]["frames"] != 1} == {}


def test_one_compiled_cache_and_no_private_name_imported_across_modules():
    assert FIGURES["compiled_caches"] == ["course_utils/models/forward.py"]
    assert FIGURES["private_names_imported_across_modules"] == []


def test_the_command_prints_the_table(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "| files |" in out and "| maximize_class | ascent_step |" in out

"""Every exercise check accepts the right answer, says "not answered yet" for None, and rejects
plausible wrong answers with a hint (a WrongAnswer whose message quotes the answer), never a bare
AssertionError. The student copies keep no solution and run the same checks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from course_utils.classroom import lesson1, lesson2, lesson3
from course_utils.classroom.grading import NOT_ANSWERED, Exercise

REPO = Path(__file__).resolve().parents[1]


def _rejects(check, *args, match: str | None = None) -> str:
    with pytest.raises(Exercise.WrongAnswer) as info:
        check(*args)
    message = str(info.value)
    assert message.startswith("Exercise") and len(message) > 40, f"a wrong answer needs a helpful message: {message!r}"
    if match:
        assert match in message, message
    return message


def _unanswered(check, *args, capsys) -> None:
    capsys.readouterr()
    check(*args)
    assert NOT_ANSWERED in capsys.readouterr().out


def _accepts(check, *args) -> None:
    check(*args)  # no WrongAnswer


# --------------------------------------------------------------------------- lesson 1


def _noise_filter_result(first_man_step: int, steps: int = 10) -> SimpleNamespace:
    """A stand-in for noise_filter's result: p(man) crosses 0.5 at ``first_man_step``."""
    p_man = np.where(np.arange(steps + 1) >= first_man_step, 0.8, 0.3)
    probabilities = np.stack([p_man, 1 - p_man], axis=-1)[:, None, :]  # (steps + 1, 1, 2)
    return SimpleNamespace(probabilities=probabilities, steps_to_success=np.array([first_man_step]))


def test_lesson1_first_step_range(capsys):
    plain = _noise_filter_result(30, steps=1000)
    _accepts(lesson1.lesson1_first_step_range, "11-100", plain)
    _unanswered(lesson1.lesson1_first_step_range, None, plain, capsys=capsys)
    assert "takes longer" in _rejects(lesson1.lesson1_first_step_range, "1-10", plain)
    assert "quicker" in _rejects(lesson1.lesson1_first_step_range, "101-1000", plain)
    _rejects(lesson1.lesson1_first_step_range, "never", plain, match="crosses 0.5")
    _rejects(lesson1.lesson1_first_step_range, 30, plain, match="choose first_step_range")
    _accepts(lesson1.lesson1_first_step_range, "1-10", _noise_filter_result(4))
    _accepts(lesson1.lesson1_first_step_range, "never", _noise_filter_result(99))


def test_lesson1_transfers_and_way_back(capsys):
    _accepts(lesson1.lesson1_transfers, False, 0.07)
    _accepts(lesson1.lesson1_transfers, True, 0.7)
    _rejects(lesson1.lesson1_transfers, True, 0.07, match="p man")
    _rejects(lesson1.lesson1_transfers, "no", 0.07, match="True or False")
    _unanswered(lesson1.lesson1_transfers, None, 0.07, capsys=capsys)
    _accepts(lesson1.lesson1_back_is_smaller, False, 114.3, 182.6)
    _rejects(lesson1.lesson1_back_is_smaller, True, 114.3, 182.6, match="back.l2")
    _unanswered(lesson1.lesson1_back_is_smaller, None, 1.0, 2.0, capsys=capsys)


# --------------------------------------------------------------------------- lesson 2


def test_lesson2_smallest_epsilon_rejects_too_big_and_too_small(imagenet_model, cat_224, capsys):
    # Measured on the lesson's cat: 40 steps of epsilon / 4 reach "king penguin" at epsilon = 1
    # (from step ~14) but never at 0.5 (p ~ 0.007), on both numeric paths.
    _accepts(lesson2.lesson2_smallest_epsilon, 1.0, imagenet_model, cat_224)
    assert "so does the smaller epsilon=1" in _rejects(lesson2.lesson2_smallest_epsilon, 2.0, imagenet_model, cat_224)
    assert "Try a bigger budget" in _rejects(lesson2.lesson2_smallest_epsilon, 0.5, imagenet_model, cat_224)
    _rejects(lesson2.lesson2_smallest_epsilon, 1.5, imagenet_model, cat_224, match="choose smallest_epsilon from")
    _rejects(lesson2.lesson2_smallest_epsilon, "1", imagenet_model, cat_224, match="choose smallest_epsilon from")
    _unanswered(lesson2.lesson2_smallest_epsilon, None, imagenet_model, cat_224, capsys=capsys)


def test_lesson2_fewer_steps(capsys):
    _accepts(lesson2.lesson2_fewer_steps, "untargeted", 17, 1)
    _accepts(lesson2.lesson2_fewer_steps, "untargeted", -1, 1)  # targeted never succeeded
    _accepts(lesson2.lesson2_fewer_steps, "targeted", 3, -1)
    _rejects(lesson2.lesson2_fewer_steps, "targeted", 17, 1, match="not the faster one")
    _rejects(lesson2.lesson2_fewer_steps, "targeted", -1, -1, match="neither attack succeeded")  # no answer is right
    _rejects(lesson2.lesson2_fewer_steps, "untargeted", -1, -1, match="neither attack succeeded")
    _rejects(lesson2.lesson2_fewer_steps, "fast", 17, 1, match="'targeted' or 'untargeted'")
    _unanswered(lesson2.lesson2_fewer_steps, None, 17, 1, ("king penguin", "tiger cat"), capsys=capsys)
    lesson2.lesson2_fewer_steps(None, 17, 1, ("king penguin", "tiger cat"))
    assert "tiger cat" not in capsys.readouterr().out   # the evidence only with the verdict
    lesson2.lesson2_fewer_steps("untargeted", 17, 1, ("king penguin", "tiger cat"))
    verdict, evidence = capsys.readouterr().out.splitlines()
    assert "correct" in verdict and "'tiger cat'" in evidence


def test_lesson2_survives_rounding(capsys):
    _accepts(lesson2.lesson2_survives_rounding, True, "king penguin")
    _accepts(lesson2.lesson2_survives_rounding, False, "tabby")
    _rejects(lesson2.lesson2_survives_rounding, False, "king penguin", match="top class")
    _rejects(lesson2.lesson2_survives_rounding, True, "tabby", match="top class")
    _unanswered(lesson2.lesson2_survives_rounding, None, "tabby", capsys=capsys)


# --------------------------------------------------------------------------- lesson 3

def _slope(grey):
    amplitude = np.abs(np.fft.rfft2(grey - grey.mean()))
    f = np.sqrt(np.fft.fftfreq(grey.shape[0])[:, None] ** 2 + np.fft.rfftfreq(grey.shape[1])[None, :] ** 2)
    keep = f > 0
    return np.polyfit(np.log(f[keep]), np.log(amplitude[keep]), 1)[0]


def _power_slope(grey):  # wrong: the power spectrum, twice the slope
    return 2 * _slope(grey)


def _linear_slope(grey):  # wrong: no logs
    amplitude = np.abs(np.fft.rfft2(grey - grey.mean()))
    f = np.sqrt(np.fft.fftfreq(grey.shape[0])[:, None] ** 2 + np.fft.rfftfreq(grey.shape[1])[None, :] ** 2)
    return np.polyfit(f[f > 0], amplitude[f > 0], 1)[0]


def test_lesson3_spectrum_slope(capsys):
    _accepts(lesson3.lesson3_spectrum_slope, _slope)
    _rejects(lesson3.lesson3_spectrum_slope, _power_slope, match="power")
    _rejects(lesson3.lesson3_spectrum_slope, _linear_slope, match="yours gives")
    _unanswered(lesson3.lesson3_spectrum_slope, None, capsys=capsys)
    lesson3.lesson3_spectrum_slope(_slope)
    shown = capsys.readouterr().out
    assert shown.startswith("Exercise 1: correct") and "true -> yours" in shown   # the evidence, after


def test_lesson3_jitter_uses_the_highest_probability(capsys):
    curve = [0.0, 0.5, 0.995, 0.97]  # reached 0.99 once, ended below it
    _accepts(lesson3.lesson3_jitter_prevents_099, False, curve)
    _rejects(lesson3.lesson3_jitter_prevents_099, True, curve, match="highest probability")
    _accepts(lesson3.lesson3_jitter_prevents_099, True, [0.1, 0.5, 0.9])
    _unanswered(lesson3.lesson3_jitter_prevents_099, None, curve, capsys=capsys)
    lesson3.lesson3_jitter_prevents_099(False, curve)
    assert "0.9950, first >= 0.99 at step 2" in capsys.readouterr().out


def test_lesson3_fewest_steps(imagenet_model, capsys):
    from course_utils.io.images import load_image, sample_image
    from course_utils.vis.visualize import maximize_class

    coffee = load_image(sample_image("coffee"), size=224)
    run = maximize_class(imagenet_model, "goldfish", image=coffee, steps=12, step_size=1.0, progress=False)
    fewest = int(run.first_step(0.99)[0])
    assert 2 <= fewest <= 11, run.curves()
    curve = run.curves().iloc[:, 0].to_numpy()
    # A later step that is also above 0.99 (the curve need not stay above it: it can dip once).
    later = max(k for k in range(fewest + 1, len(curve)) if curve[k] >= 0.99)
    _accepts(lesson3.lesson3_fewest_steps, "goldfish", fewest, imagenet_model, coffee)
    _rejects(lesson3.lesson3_fewest_steps, "goldfish", later, imagenet_model, coffee, match="Try fewer steps")
    _rejects(lesson3.lesson3_fewest_steps, "goldfish", fewest - 2, imagenet_model, coffee, match="not yet 0.99")
    _rejects(lesson3.lesson3_fewest_steps, "goldfish", 0, imagenet_model, coffee, match="at least 1")
    _unanswered(lesson3.lesson3_fewest_steps, "goldfish", None, imagenet_model, coffee, capsys=capsys)


# --------------------------------------------------------------------------- student copies


def _make_student():
    spec = importlib.util.spec_from_file_location("make_student", REPO / "tools" / "make_student.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_student_copies_leave_every_answer_blank(tmp_path):
    make_student = _make_student()
    assert make_student.main(["--out", str(tmp_path)]) == 0
    teacher = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in teacher]  # nothing half-written
    for path in teacher:
        original = json.loads(path.read_text())
        copy = json.loads((tmp_path / path.name).read_text())
        assert len(copy["cells"]) == len(original["cells"])
        solutions = [i for i, c in enumerate(original["cells"]) if "solution" in c["metadata"].get("tags", [])]
        if path.name != "00_setup_check.ipynb":
            assert len(solutions) >= 2, f"{path.name}: at least two exercises, each answer cell tagged 'solution'"
        for i, (a, b) in enumerate(zip(original["cells"], copy["cells"])):
            if b["cell_type"] == "code":
                assert b["outputs"] == [] and b["execution_count"] is None
            if i in solutions:
                text = "".join(b["source"])
                lines = text.splitlines()
                assert lines and all(" = None  # your answer" in line or line.startswith(("def ", "    "))
                                     for line in lines), text   # a coding answer keeps its def line
            else:
                assert a["source"] == b["source"]


def test_verify_wants_nothing_but_a_progress_bar_before_not_answered_yet(tmp_path):
    import nbformat

    make_student = _make_student()
    bar = "run:   0%|          | 0/9 [00:00<?, ?it/s]\rrun: 100%|██████████| 9/9 [00:01<00:00, 9.0it/s]\n"

    def copy(*outputs) -> Path:
        nb = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell("x = None  # your answer", metadata={"tags": ["answer"]}),
            nbformat.v4.new_code_cell("check(x)", outputs=list(outputs)),
        ])
        path = tmp_path / f"copy{len(list(tmp_path.iterdir()))}.ipynb"
        nbformat.write(nb, path)
        return path

    def stream(text: str):
        return nbformat.v4.new_output("stream", name="stdout", text=text)

    said = f"Exercise 1: {make_student.NOT_ANSWERED}. Set your answer.\n"
    assert make_student.verify([copy(stream(said))]) == []
    assert make_student.verify([copy(stream(bar + said)), copy(stream(bar), stream(said))]) == []
    early = make_student.verify([copy(stream("targeted: success from step 17\n" + said))])
    assert len(early) == 1 and "success from step 17" in early[0], early
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    assert "display_data" in make_student.verify([copy(figure, stream(said))])[0]
    assert "0 times" in make_student.verify([copy(stream("Exercise 1: correct.\n"))])[0]
    assert "2 times" in make_student.verify([copy(stream(said + said))])[0]


def test_a_solution_cell_without_marked_answers_is_refused():
    make_student = _make_student()
    with pytest.raises(make_student.StudentCopyError, match="your answer"):
        make_student.placeholders("x = 3\nprint(x)", "lesson, cell 4")
    assert make_student.placeholders("for e in E:\n    y = e  # your answer\nz = 1   # your answer: a number", "w") == (
        "z = None  # your answer: a number"
    )


# --------------------------------------------------------------------------- one grading module


def test_the_lesson_modules_share_only_public_grading_helpers():
    """Each lesson's checks import what they share from classroom/grading.py by public name."""
    import ast

    for path in sorted((REPO / "course_utils" / "classroom").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {node.module}"

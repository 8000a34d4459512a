"""The course's tools never leave half a result.

The training command refuses bad data, settings and output locations with one line on stderr
and exit status 1, before training and without touching its outputs; weights and model card are
written together or not at all; the benchmark checks ``--out`` first and writes its pair of
files together. Everything writes into temporary folders, never into ``data/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from course_utils.models.faces import DEFAULT_WEIGHTS, MODEL_CARD, build_gender_cnn, load_gender_cnn
from tools.facetrain.outputs import OutputPathError, check_writable, write_files_together
from tools.facetrain.variants import VARIANTS
from tools.train_face_model import main as face_model_main

REPO = Path(__file__).resolve().parents[1]
PROG = "python tools/train_face_model.py: error: "


def main(argv: list[str]) -> int:
    """The developer tool's command line for lesson 1's model (tools/train_face_model.py --variant gender)."""
    return face_model_main(["--variant", "gender", *argv])


def tiny_faces(n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """A small valid face set: uint8 48x48 images, both classes, race codes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
    images[labels == 1, 10:20] = 250  # something to learn
    return {"images": images, "labels": labels.astype(np.int64), "races": (np.arange(n) % 5).astype(np.int8)}


@pytest.fixture
def outputs(tmp_path: Path) -> dict[str, Path]:
    """A folder with existing weights and card (copies of the shipped ones) that must survive."""
    folder = tmp_path / "out"
    folder.mkdir()
    weights, card = folder / "model.weights.h5", folder / "card.md"
    shutil.copy(DEFAULT_WEIGHTS, weights)
    shutil.copy(MODEL_CARD, card)
    return {"weights": weights, "card": card, "folder": folder}


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {p.name: p.read_bytes() if p.is_file() else None for p in sorted(folder.iterdir())}


def _refused(capsys, argv: list[str], folder: Path, *expected: str) -> str:
    """Run the command; it must fail with one clear line and leave ``folder`` as it was."""
    before = _snapshot(folder)
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PROG), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]
    assert _snapshot(folder) == before, "an output file was changed"
    return lines[0]


# --- data the training refuses -----------------------------------------------------------------


def _with(**changes: object) -> dict[str, np.ndarray]:
    arrays = tiny_faces()
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    return arrays


BAD_DATA = {
    "all_nan": (_with(images=np.full((40, 48, 48), np.nan, np.float32)), ["92160 NaN or infinite values (the first in face 0)"]),
    "one_inf": (_with(images=np.where(np.arange(48)[None, None] == 3, np.inf, 9.0) * np.ones((40, 48, 48))), ["NaN or infinite"]),
    "scaled_0_1": (_with(images=tiny_faces()["images"] / 255.0), ["every pixel is within 0..1 (max 1)", "multiply by 255"]),
    "above_255": (_with(images=tiny_faces()["images"].astype(np.int32) + 300), ["grey levels 0..255, got 300..555"]),
    "negative": (_with(images=tiny_faces()["images"].astype(np.float32) - 1), ["got -1..254"]),
    "single_class": (_with(labels=np.zeros(40, np.int64)), ["40 man (0), 0 woman (1)", "at least 5"]),
    "too_few_of_a_class": (_with(labels=(np.arange(40) < 3).astype(np.int64)), ["37 man (0), 3 woman (1)"]),
    "empty": (_with(images=np.zeros((0, 48, 48), np.uint8), labels=np.zeros(0, np.int64), races=np.zeros(0, np.int8)), ["holds no faces"]),
    "no_labels": (_with(labels=None), ["lacks the array(s) ['labels']", "'races'"]),
    "no_images": (_with(images=None), ["lacks the array(s) ['images']"]),
    "wrong_size": (_with(images=np.zeros((40, 32, 32), np.uint8)), ["shape (N, 48, 48), got (40, 32, 32)"]),
    "labels_2": (_with(labels=np.arange(40) % 3), ["0 (man) or 1 (woman), got 0, 1, 2"]),
    "labels_fractional": (_with(labels=np.full(40, 0.5)), ["got 0.5"]),
    "labels_short": (_with(labels=np.zeros(7, np.int64)), ["'labels' must have shape (40,)"]),
    "races_short": (_with(races=np.zeros(3, np.int8)), ["'races' must be whole numbers of shape (40,)"]),
    "text_images": (_with(images=np.full((40, 48, 48), "x")), ["must hold numbers", "<U1"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_refused_before_training(tmp_path, capsys, outputs, case):
    arrays, expected = BAD_DATA[case]
    data = tmp_path / "faces.npz"
    np.savez(data, **arrays)
    argv = ["--data", str(data), "--out", str(outputs["weights"]), "--card", str(outputs["card"]), "--epochs", "1"]
    _refused(capsys, argv, outputs["folder"], str(data), *expected)


def test_unreadable_and_missing_data_files(tmp_path, capsys, outputs):
    garbage = tmp_path / "faces.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip" * 4)
    argv = ["--out", str(outputs["weights"]), "--card", str(outputs["card"])]
    _refused(capsys, ["--data", str(garbage), *argv], outputs["folder"], "cannot read the face data set")
    _refused(capsys, ["--data", str(tmp_path / "absent.npz"), *argv], outputs["folder"], "face data set not found", "../shared/data")


# --- settings and output locations --------------------------------------------------------------


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.npz"
    np.savez(path, **tiny_faces())
    return path


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--epochs", "0"], "epochs must be a whole number >= 1, got 0"),
        (["--batch-size", "-4"], "batch_size must be a whole number >= 1, got -4"),
        (["--learning-rate", "nan"], "learning_rate must be a finite number > 0, got nan"),
        (["--learning-rate", "0"], "learning_rate must be a finite number > 0, got 0.0"),
    ],
)
def test_bad_settings_are_refused(capsys, outputs, tiny_data, options, expected):
    argv = ["--data", str(tiny_data), "--out", str(outputs["weights"]), "--card", str(outputs["card"]), *options]
    _refused(capsys, argv, outputs["folder"], expected)


def test_unwritable_outputs_are_refused_before_training(capsys, outputs, tiny_data):
    folder = outputs["folder"]
    (folder / "a_file").write_text("not a folder")
    (folder / "a_dir.md").mkdir()
    (folder / "a_dir.weights.h5").mkdir()
    data = ["--data", str(tiny_data)]
    card = ["--card", str(outputs["card"])]
    _refused(capsys, [*data, "--out", str(folder / "a_file" / "m.weights.h5"), *card], folder, "a_file is a file, not a folder")
    _refused(capsys, [*data, "--out", str(folder / "a_dir.weights.h5"), *card], folder, "--out (the weights file)", "is a folder")
    _refused(capsys, [*data, "--out", str(outputs["weights"]), "--card", str(folder / "a_dir.md")], folder, "--card (the model card)", "is a folder")
    _refused(capsys, [*data, "--out", str(folder / "model.h5"), *card], folder, "must end in '.weights.h5', got 'model.h5'")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_refuses_bad_outputs_before_reading_the_data(capsys, tmp_path, variant):
    """No variant reads the data (let alone trains) before its output locations are checked."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a_file").write_text("not a folder")
    absent = str(tmp_path / "absent.npz")  # reading it would fail with another message
    files = ["--card", str(folder / "m.md")] + (["--facts", str(folder / "f.json")] if VARIANTS[variant].facts else [])
    cases = [
        (["--out", str(folder / "a_file" / "m.weights.h5"), *files], "a_file is a file, not a folder"),
        (["--out", str(folder / "m.h5"), *files], "must end in '.weights.h5'"),
        (["--out", str(folder / "m.weights.h5"), "--card", str(folder / "a_file" / "m.md")], "--card (the model card)"),
    ]
    if VARIANTS[variant].facts:
        cases.append((["--out", str(folder / "m.weights.h5"), "--facts", str(folder / "a_file" / "f.json")], "--facts (the facts JSON)"))
    for options, expected in cases:
        before = _snapshot(folder)
        assert face_model_main(["--variant", variant, "--data", absent, *options]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(PROG) and expected in err[0], err
        assert _snapshot(folder) == before


def test_options_of_another_variant_are_refused(capsys):
    with pytest.raises(SystemExit) as info:
        face_model_main(["--variant", "robust", "--sigma", "24"])
    assert info.value.code == 2
    assert "--sigma is not an option of --variant robust (only of noisy)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        face_model_main(["--variant", "noisy", "--card-only"])
    with pytest.raises(SystemExit):
        face_model_main(["--variant", "gender", "--facts", "f.json"])


def test_check_writable_probes_the_folder(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper" / "x.md", "the card") == tmp_path / "new" / "deeper" / "x.md"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputPathError, match="is a file; give a folder"):
        check_writable(tmp_path / "f", "--out", folder=True)


# --- weights files with NaN ---------------------------------------------------------------------


def _nan_weights(path: Path) -> Path:
    model = build_gender_cnn()
    kernel = model.get_layer("conv1").kernel
    values = np.asarray(kernel).copy()
    values[0, 0, 0, 0] = np.nan
    kernel.assign(values)
    model.save_weights(path)
    return path


def test_load_gender_cnn_refuses_non_finite_weights(tmp_path):
    path = _nan_weights(tmp_path / "nan.weights.h5")
    with pytest.raises(ValueError, match=r"nan.weights.h5 is unusable: conv1/kernel holds 1 NaN or infinite value\(s\) of 75\. Reinstall the course") as info:
        load_gender_cnn(path)
    assert "git checkout" in str(info.value)


def test_training_that_diverges_is_an_error():
    from tools.facetrain.training import train_gender_cnn

    arrays = tiny_faces(16)
    with pytest.raises(ValueError, match=r"training diverged \(learning rate 1e\+38, 1 epochs\): .* NaN or infinite .* smaller learning rate"):
        train_gender_cnn(arrays["images"], arrays["labels"], epochs=1, batch_size=8, learning_rate=1e38, augment=False, cosine_decay=False)


# --- card only ------------------------------------------------------------------------------------


def test_card_only_rewrites_the_card_and_never_the_weights(capsys, outputs, tiny_data):
    weights_before = outputs["weights"].read_bytes()
    argv = ["--card-only", "--data", str(tiny_data), "--out", str(outputs["weights"]), "--card", str(outputs["card"])]
    assert main(argv) == 0
    assert outputs["weights"].read_bytes() == weights_before
    card = outputs["card"].read_text()
    assert "on the 8 test faces" in card  # re-measured on the tiny set
    assert "Training took **137 s**" in card and "Keras 3" in card  # kept from the old card
    assert 'sample_face("astronaut")' in card and "rgb2gray(" not in card
    assert sorted(p.name for p in outputs["folder"].iterdir()) == ["card.md", "model.weights.h5"]


def test_card_only_refusals(capsys, outputs, tiny_data):
    folder = outputs["folder"]
    base = ["--card-only", "--data", str(tiny_data)]
    _refused(capsys, [*base, "--out", str(outputs["weights"])], folder, "--card-only needs --card")
    _refused(capsys, [*base, "--out", str(outputs["weights"]), "--card", str(folder / "none.md")], folder, "there is none at")
    (folder / "plain.md").write_text("# a card without training facts\n")
    _refused(capsys, [*base, "--out", str(outputs["weights"]), "--card", str(folder / "plain.md")], folder, "does not state the training run's train seconds")
    nan = _nan_weights(folder / "nan.weights.h5")
    _refused(capsys, [*base, "--out", str(nan), "--card", str(outputs["card"])], folder, "conv1/kernel holds 1 NaN")


# --- the command in a fresh process -----------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "tools/train_face_model.py", "--variant", "gender", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)


def test_the_command_trains_a_tiny_set_and_writes_both_files(tmp_path, tiny_data):
    """One epoch on 32 faces in a fresh interpreter (deterministic ops stay out of this one)."""
    out, card = tmp_path / "run" / "m.weights.h5", tmp_path / "run" / "m.md"
    proc = _cli("--data", str(tiny_data), "--out", str(out), "--card", str(card), "--epochs", "1", "--batch-size", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.md", "m.weights.h5"]
    assert np.isfinite(np.asarray(load_gender_cnn(out).get_layer("logits").kernel)).all()
    assert "1 epochs" in card.read_text() and "on the 8 test faces" in card.read_text()


def test_the_command_refuses_nan_data_with_one_line_and_no_traceback(tmp_path):
    data = tmp_path / "nan.npz"
    np.savez(data, **_with(images=np.full((40, 48, 48), np.nan, np.float32)))
    out = tmp_path / "w.weights.h5"
    proc = _cli("--data", str(data), "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"{PROG}{data}: 'images' hold 92160 NaN or infinite values (the first in face 0); fix or drop those faces first"]
    assert not out.exists()


# --- writing files together -------------------------------------------------------------------------


def test_a_failing_writer_leaves_every_target_untouched(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.md"
    a.write_text("old a")
    b.write_text("old b")

    def broken(temp: Path) -> None:
        temp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_files_together({a: lambda t: t.write_text("new a"), b: broken})
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.md"]


def test_a_failing_replace_rolls_back_the_first_file(tmp_path, monkeypatch):
    a, b, c = tmp_path / "a.json", tmp_path / "b.md", tmp_path / "c.txt"
    a.write_text("old a")
    b.write_text("old b")
    real_replace, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # a and b are in place; c fails
            raise OSError("device went away")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="device went away"):
        write_files_together({a: lambda t: t.write_text("new a"), b: lambda t: t.write_text("new b"), c: lambda t: t.write_text("c")})
    monkeypatch.undo()
    assert (a.read_text(), b.read_text(), c.exists()) == ("old a", "old b", False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.md"]


# --- benchmarks ---------------------------------------------------------------------------------


@pytest.fixture
def benchmarks_importable():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def test_benchmark_checks_out_before_running(tmp_path, capsys, benchmarks_importable):
    from benchmarks.__main__ import main as bench_main

    not_a_folder = tmp_path / "results"
    not_a_folder.write_text("a file")
    with pytest.raises(SystemExit) as info:
        bench_main(["--quick", "--out", str(not_a_folder)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"--out {not_a_folder} is a file; give a folder" in err and "Traceback" not in err
    assert not_a_folder.read_text() == "a file"


def test_benchmark_report_is_written_both_or_neither(tmp_path, monkeypatch, benchmarks_importable):
    from benchmarks import report

    (tmp_path / "latest.json").write_text("{}")
    (tmp_path / "latest.md").write_text("old")
    monkeypatch.setattr(report, "markdown", lambda r: (_ for _ in ()).throw(KeyError("reps_note")))
    with pytest.raises(KeyError):
        report.write_report({"device": "x"}, tmp_path)
    assert _snapshot(tmp_path) == {"latest.json": b"{}", "latest.md": b"old"}
    monkeypatch.setattr(report, "markdown", lambda r: "# new")
    report.write_report({"device": "x"}, tmp_path / "fresh")
    assert _snapshot(tmp_path / "fresh") == {"latest.json": b'{\n  "device": "x"\n}\n', "latest.md": b"# new"}

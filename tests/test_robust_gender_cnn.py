"""Lesson 4's robust face CNN: the shipped weights and numbers, its loader, and the training tool.

The shipped robustness numbers are checked as shipped, and again live on the held-out faces when
the developers' face set is there (``../shared/data/faces48.npz``; skipped otherwise)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from course_utils.models.faces import load_gender_cnn
from course_utils.models.faces import (
    ROBUST_CARD,
    ROBUST_FILTERS,
    ROBUST_WEIGHTS,
    ROBUSTNESS_JSON,
    build_gender_cnn,
    load_robust_gender_cnn,
    load_robustness,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO.parent / "shared" / "data" / "faces48.npz"

# Lesson 4's promises about the two face models (held-out faces, L-inf PGD-20 with a random start).
CLEAN_MIN, ROBUST_MIN, GAP_MIN, EPS = 0.80, 0.60, 0.25, 4.0


def _train(argv: list[str]) -> int:
    """The training tool's command line for this model (tools/train_face_model.py --variant robust)."""
    from tools.train_face_model import main

    return main(["--variant", "robust", *argv])


def _check_promises(clean: float, robust: float, standard: float, where: str) -> None:
    assert clean >= CLEAN_MIN, f"{where}: the robust model's clean accuracy {clean:.3f} is below {CLEAN_MIN}"
    assert robust >= ROBUST_MIN, f"{where}: its accuracy under PGD at epsilon {EPS:g} is {robust:.3f}, below {ROBUST_MIN}"
    assert robust - standard >= GAP_MIN, (
        f"{where}: at epsilon {EPS:g} the robust model ({robust:.3f}) should beat lesson 1's ({standard:.3f}) by {GAP_MIN}")


def test_shipped_weights_load_and_match_the_architecture():
    model = load_robust_gender_cnn()
    assert model.input_shape == (None, 48, 48, 1) and model.output_shape == (None, 2)
    assert [model.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == list(ROBUST_FILTERS)
    assert model.count_params() == build_gender_cnn(ROBUST_FILTERS).count_params()
    assert [layer.name for layer in model.layers] == [layer.name for layer in load_gender_cnn().layers]
    assert ROBUST_WEIGHTS.is_file() and ROBUST_CARD.is_file() and ROBUSTNESS_JSON.is_file()


def test_loader_refuses_missing_damaged_and_non_finite_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="git checkout"):
        load_robust_gender_cnn(tmp_path / "nothing.weights.h5")
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match="damaged"):
        load_robust_gender_cnn(broken)
    model = build_gender_cnn(ROBUST_FILTERS)
    weights = model.get_weights()
    weights[2][0, 0, 0, 0] = np.nan
    model.set_weights(weights)
    nan_file = tmp_path / "nan.weights.h5"
    model.save_weights(nan_file)
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_robust_gender_cnn(nan_file)


def test_shipped_numbers_keep_the_lessons_promises():
    table = load_robustness()
    assert list(table.columns) == ["standard", "robust"] and table.index.name == "epsilon"
    assert list(table.index) == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert table.attrs["attack"]["steps"] == 20 and table.attrs["attack"]["random_start"] is True
    _check_promises(table.robust[0.0], table.robust[EPS], table.standard[EPS], "shipped JSON")
    assert (table.diff().iloc[1:] <= 0).all().all(), "accuracy can only fall as the budget grows"
    card = ROBUST_CARD.read_text()
    for needle in ("non-commercial research and education", "Training took", f"{table.robust[EPS]:.3f}", "train_face_model.py --variant robust"):
        assert needle in card, f"the model card should mention {needle!r}"


def test_load_robustness_refuses_a_bad_file(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"epsilons": [0, 1], "models": {"robust": {"accuracy": [0.9, 1.7]}}}))
    with pytest.raises(ValueError, match="0..1"):
        load_robustness(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="not a robustness file"):
        load_robustness(bad)


@pytest.mark.skipif(not SHARED_FACES.is_file(), reason="the face set ../shared/data/faces48.npz is not here (it is never shipped)")
def test_promises_hold_live_on_the_held_out_faces():
    from course_utils.attacks.pgd import robust_accuracy
    from tools.facetrain.training import load_faces, split_faces

    images, labels = load_faces(SHARED_FACES)
    _, test_idx = split_faces(labels, test_fraction=0.2, seed=0)
    shipped = load_robustness()
    measured = {}
    for name, model in (("standard", load_gender_cnn()), ("robust", load_robust_gender_cnn())):
        table = robust_accuracy(model, images[test_idx], labels[test_idx], [0.0, EPS], steps=20, seed=0)
        measured[name] = table.accuracy.to_numpy()
        np.testing.assert_allclose(measured[name], shipped[name].loc[[0.0, EPS]], atol=0.02,
                                   err_msg=f"{name}: the live numbers should match the shipped JSON")
    _check_promises(measured["robust"][0], measured["robust"][1], measured["standard"][1], "live")


# --------------------------------------------------------------------------- the training tool


def _write_faces(path: Path, n: int = 48, *, one_class: bool = False, seed: int = 0) -> None:
    """A small synthetic face set in the shared set's format."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, np.int64) if one_class else np.arange(n) % 2
    images = rng.integers(0, 256, size=(n, 48, 48)).astype(np.uint8)
    images[labels == 1, 10:20] = 255  # something to learn
    np.savez(path, images=images, labels=labels, races=np.zeros(n, np.int8))


def _outputs(tmp_path: Path) -> list[str]:
    return ["--out", str(tmp_path / "out" / "m.weights.h5"), "--card", str(tmp_path / "out" / "m.md"),
            "--facts", str(tmp_path / "out" / "r.json")]


def test_tool_writes_weights_card_and_numbers_together(tmp_path, capsys):
    data = tmp_path / "faces.npz"
    _write_faces(data)
    args = ["--data", str(data), "--epochs", "1", "--steps", "1", "--eval-steps", "1", "--batch-size", "16", *_outputs(tmp_path)]
    assert _train(args) == 0
    from tensorflow.python.framework import config

    # The tool trains with deterministic ops, and leaves the process as it found it: left on, they changed
    # every later computation here (tests/test_reproducible.py's fresh process then disagreed).
    assert not config.is_op_determinism_enabled()
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["m.md", "m.weights.h5", "r.json"], "exactly the three files, no leftovers"
    load_robust_gender_cnn(out / "m.weights.h5")
    table = load_robustness(out / "r.json")
    assert list(table.columns) == ["standard", "robust"] and len(table) == 5
    assert "Training took" in (out / "m.md").read_text()


def test_tool_refuses_bad_data_and_writes_nothing(tmp_path, capsys):
    one_class = tmp_path / "one_class.npz"
    _write_faces(one_class, one_class=True)
    wrong_shape = tmp_path / "wrong.npz"
    np.savez(wrong_shape, images=np.zeros((20, 32, 32), np.uint8), labels=np.arange(20) % 2)
    for data, why in ((one_class, "training needs at least"), (wrong_shape, "must have shape"), (tmp_path / "missing.npz", "not found")):
        assert _train(["--data", str(data), *_outputs(tmp_path)]) == 1
        assert why in capsys.readouterr().err
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_tool_leaves_the_old_files_when_one_cannot_be_written(tmp_path):
    from tools.facetrain.outputs import write_files_together
    from tools.facetrain.training import weights_writer

    out = tmp_path / "out"
    out.mkdir()
    (out / "m.weights.h5").write_bytes(b"old weights")
    (out / "r.json").mkdir()  # a folder where the JSON should go: the last file cannot be written
    model = build_gender_cnn(ROBUST_FILTERS)
    writers = {  # as the tool writes its three files
        out / "m.weights.h5": weights_writer(model, lambda: build_gender_cnn(ROBUST_FILTERS)),
        out / "m.md": lambda temp: temp.write_text("card"),
        out / "r.json": lambda temp: temp.write_text("{}"),
    }
    with pytest.raises(OSError):
        write_files_together(writers)
    assert (out / "m.weights.h5").read_bytes() == b"old weights", "the old weights must stay"
    assert sorted(p.name for p in out.iterdir()) == ["m.weights.h5", "r.json"], "no card and no temporary files"
    shutil.rmtree(out / "r.json")

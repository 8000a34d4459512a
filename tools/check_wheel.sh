#!/usr/bin/env bash
# Build the course's wheel from this checkout, install it (not editable) in a fresh venv, check that
# it carries every file of data/ and that the installed package reads each kind of it (face models,
# cards, facts, the robust model's numbers, the patch, the fooling genomes), then run the named
# notebooks from a temporary folder outside the checkout: what a user of `pip install git+...` or a
# hosted notebook service gets. Fails if the package cannot find or read its own data.
#   usage: tools/check_wheel.sh [python] [venv folder] [notebook ...]   (default: every notebook)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
venv=${2:-.venv-wheel}
shift $(( $# < 2 ? $# : 2 ))
notebooks=("$@")
[ ${#notebooks[@]} -gt 0 ] || notebooks=(notebooks/*.ipynb)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" .
wheel=$(ls "$work"/dist/course_utils-*.whl)
listing=$(unzip -l "$wheel")   # once: `unzip | grep -q` can fail under pipefail when grep stops early
for data in data/*; do   # every file of the top-level data/ ships in the package as course_utils/data/
  grep -q " course_utils/$data\$" <<<"$listing" \
    || { echo "the wheel $wheel has no course_utils/$data (from $data)" >&2; exit 1; }
done
"$venv/bin/python" -m pip install --quiet "$wheel" "pytest>=8.0" "nbval>=0.11"

mkdir "$work/notebooks"
cp "${notebooks[@]}" "$work/notebooks/"
cd "$work/notebooks"
"$OLDPWD/$venv/bin/python" - <<'PY'
import course_utils, pathlib
from course_utils.io.images import DATA_DIR
from course_utils.models.faces import DEFAULT_WEIGHTS
where = pathlib.Path(course_utils.__file__).resolve()
assert "site-packages" in where.parts, f"course_utils was imported from {where}, not from the installed wheel"
assert DATA_DIR == where.parent / "data", f"the installed course reads its data from {DATA_DIR}, not its own"
assert DEFAULT_WEIGHTS.is_file(), f"the installed course has no face weights at {DEFAULT_WEIGHTS}"
# Every kind of data the package ships, read through the loaders the lessons use: the face models
# (weights, cards, facts), the robust model and its numbers, the patch, the fooling genomes.
import numpy as np
from course_utils.attacks import load_fooling_genomes, load_patch
from course_utils.models import faces
faces.load_gender_cnn(); faces.load_robust_gender_cnn(); assert len(faces.load_robustness())
for card in (faces.MODEL_CARD, faces.ROBUST_CARD):
    assert card.read_text().strip(), f"empty model card {card}"
for name, variant in faces.FACE_VARIANTS.items():
    faces.load_face_model(name); faces.face_facts(name)
    assert variant.card.read_text().strip(), f"empty model card {variant.card}"
assert np.isfinite(load_patch()).all()
assert len(load_fooling_genomes()[0])
shipped = sorted(p.name for p in DATA_DIR.iterdir())
print(f"course_utils {course_utils.__version__} from {where.parent}; read its {len(shipped)} data files")
PY
"$OLDPWD/$venv/bin/python" -m pytest -p no:cacheprovider --rootdir="$work/notebooks" --nbval-lax --nbval-current-env \
  --nbval-cell-timeout=600 -q ./*.ipynb

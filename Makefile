# Two commands for a fresh machine (see README.md):
#   make lab    create .venv if needed, install the course, open JupyterLab on the repository root,
#               its file browser in notebooks/ (so the lessons' links to ../docs/, ../README.md
#               and student/ open)
#   make test   the same set-up, then unit tests + every notebook executed with nbval
# CI (.ci/run) also runs `make test-perturbed` (the notebooks and the claim-bearing tests again on
# another numeric path, thread count and seed), the student copies under a third seed,
# `make test-wheel` (the package's data from a non-editable install of the wheel) and
# `make test-lowest` (unit tests and lessons 00 and 01 with every dependency pinned to its lower
# bound in pyproject.toml, in .venv-lowest: tools/lowest_versions.py). Each pass runs what it
# exists to prove, no more: the reasons are at each target and in .ci/run.
# `make time-lessons` prints how long each lesson's Run All takes (docs/teaching.md). `make stability` runs the stability
# harness (tools/stability.py): every claim under five perturbations, one table (docs/stability.md).
# Other targets: make student (student copies in student/), make notebooks (re-run notebooks and
# save their outputs), make bench,
#   make fetch-vgg16 (download VGG16's ImageNet weights once into the Keras cache, MD5-checked).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.course-installed
KERNEL := cnn-course
# Extra options for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8890"
LAB_ARGS ?=
# Options for make fetch-vgg16, e.g. FETCH_ARGS=--force to download again
FETCH_ARGS ?=

.PHONY: venv lab test time-lessons test-lowest test-onednn-off test-perturbed test-wheel stability student test-student notebooks bench bench-quick bench-art fetch-vgg16 clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (CNN course)"
	touch $(STAMP)

venv: $(STAMP)

lab: venv
	$(BIN)/jupyter lab --ServerApp.root_dir=. --FileContentsManager.preferred_dir=notebooks $(LAB_ARGS)

test: venv
	$(BIN)/python -m pytest

# The unit tests and lessons 00 and 01 on the lowest versions pyproject.toml allows, each pinned
# exactly, in their own .venv-lowest (tools/lowest_versions.py; rebuilt when a bound changes).
# This pass is for API drift: a call the older libraries lack or spell otherwise. The unit tests
# call every public door; lesson 00 imports and draws with everything, lesson 01 trains, attacks
# and plots through the driver. The long lessons add only more of the same calls (and minutes).
# The browser test needs Chromium and checks no library's API: left out.
LOWEST_TARGETS ?= tests notebooks/00_setup_check.ipynb notebooks/01_noise_filter.ipynb --ignore=tests/test_browser.py
test-lowest:
	$(PYTHON) tools/lowest_versions.py $(LOWEST_TARGETS)

# The notebooks again on a second numeric path (oneDNN's fused CPU kernels off), standing in for
# another CPU: every check in them must hold on both. CI runs this after `make test`.
test-onednn-off: venv
	TF_ENABLE_ONEDNN_OPTS=0 $(BIN)/python -m pytest notebooks

# The claims again as a different CPU would run them: oneDNN off, one intra-op thread (another
# reduction order) and every seed moved by COURSE_SEED (course_utils.checks). CI runs this too.
# This pass exists for chaotic claims: every notebook, and every test whose asserts depend on the
# model's numbers. Tests marked `plain` (argument errors, layout, packaging, parsing, file
# readers, downloads, the browser test: their list is in tests/conftest.py) answer the same on any
# CPU and seed, and `make test` has run them: `-m "not plain"` leaves them out.
# One intra-op thread leaves a second core idle, so the pass runs on PERTURBED_WORKERS pytest-xdist
# workers, each test file (each notebook's cells in order) in one of them. A side effect worth
# having: the files run in another order and grouping than in `make test`, so a test that leaves
# global state behind for the tests after it shows up here.
PERTURBED_TARGETS ?= tests notebooks -m "not plain"
PERTURBED_SEED ?= 1
PERTURBED_WORKERS ?= 2
test-perturbed: venv
	TF_ENABLE_ONEDNN_OPTS=0 TF_NUM_INTRAOP_THREADS=1 COURSE_SEED=$(PERTURBED_SEED) $(BIN)/python -m pytest \
		-n $(PERTURBED_WORKERS) --dist loadfile $(PERTURBED_TARGETS)

# The course as a user gets it from `pip install git+...` or a hosted notebook service: a wheel
# built from this checkout, installed (not editable) in a fresh venv, runs the notebooks from a
# folder outside the checkout, so the package must find its weights and cards in itself.
# CI runs the lessons that read the package's own data (00 imports everything; 01 and 04-06 load
# the shipped face models, patch, genomes, cards and facts); WHEEL_NOTEBOOKS="notebooks/*.ipynb" runs all.
WHEEL_VENV := .venv-wheel
WHEEL_NOTEBOOKS ?= notebooks/00_setup_check.ipynb notebooks/01_noise_filter.ipynb notebooks/04_defences.ipynb \
	notebooks/05_black_box.ipynb notebooks/06_physical_world.ipynb notebooks/07_hidden_gradients.ipynb
test-wheel: venv
	bash tools/check_wheel.sh $(PYTHON) $(WHEEL_VENV) $(WHEEL_NOTEBOOKS)

# The stability harness: unit tests and notebooks under five perturbations (default, oneDNN off,
# one thread, seeds 1 and 2), one table of every claim's values and worst margin. About 35 minutes.
STABILITY_ARGS ?=
stability: venv
	$(BIN)/python tools/stability.py --markdown docs/stability.md $(STABILITY_ARGS)

# Student copies: outputs cleared, every exercise's solution replaced by `answer = None`.
student: venv
	$(BIN)/python tools/make_student.py --out student

# Run the student copies top to bottom: no error, every check says "not answered yet".
test-student: student
	cd student && ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 *.ipynb
	$(BIN)/python tools/make_student.py --verify student/*.ipynb

notebooks: venv
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 notebooks/*.ipynb
	$(BIN)/python tools/tidy_notebook_outputs.py notebooks/*.ipynb

bench: venv
	$(BIN)/python -m benchmarks

# Each lesson's Run All, in its own kernel, on copies (the notebooks are not touched): seconds,
# the load average before and after each, the CPU (benchmarks/lessons.py).
time-lessons: venv
	$(BIN)/python -m benchmarks lessons

bench-quick: venv
	$(BIN)/python -m benchmarks --quick

# Lessons 5 and 6's attacks and defences against IBM ART on the same models and pictures
# (installs the [bench] extra into .venv; writes benchmarks/results/art.md and art.json).
bench-art: venv
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks.art

fetch-vgg16: venv
	$(BIN)/python tools/fetch_weights.py vgg16 $(FETCH_ARGS)

clean:
	rm -rf $(VENV) $(WHEEL_VENV) .venv-lowest .pytest_cache student dist build

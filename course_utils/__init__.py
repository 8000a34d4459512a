"""Helpers for the course "Fooling and seeing inside CNNs", in subpackages by role:

- :mod:`course_utils.io`        photos in (pixels 0..255), sample photos, downloads, safe weight files
- :mod:`course_utils.models`    the ImageNet classifiers, the face models, class names, layers
- :mod:`course_utils.core`      the driver (the one compiled loop, what a run returns) and what steps are
                                written with (tensor ops, objectives, transforms, parameterisations)
- :mod:`course_utils.attacks`   gradient attacks, PGD and robust accuracy, defences, transfer, black
                                boxes, the physical world (print-and-photograph, patch), certificates
- :mod:`course_utils.vis`       feature visualisation and its judge
- :mod:`course_utils.classroom` plots, sliders, claims and exercise checks for the notebooks

with :mod:`course_utils.checks` (argument checks) and :mod:`course_utils._env` (the version check,
quiet TensorFlow, ``COURSE_SEED``) shared by all. Dependencies run one way, in that order; each
name is defined by one module, and each subpackage's ``__init__`` (its *face*) re-exports the names
the lessons use, so a lesson imports from six places or fewer: ``from course_utils.attacks import pgd_attack``.

Every image the public functions take or return is in *pixel units*: float32 in 0..255 (or
uint8), channels last. Models take pixels and do their own preprocessing, so an attack budget of
``epsilon=4.0`` means four grey levels everywhere in the course.
"""

from __future__ import annotations

import os

# TensorFlow prints start-up chatter to stderr (CUDA probing, oneDNN notes). Quieten it before
# the first import of TensorFlow so notebooks stay readable; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from course_utils._env import check_versions as _check_versions, effective_seed
from course_utils._env import import_tensorflow_quietly as _import_tensorflow_quietly

_check_versions()  # a dependency below pyproject.toml's lower bounds stops here, before TensorFlow
_import_tensorflow_quietly()

__all__ = ["effective_seed"]

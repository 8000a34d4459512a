"""Fooling networks: lesson 1's noise filter (:mod:`~course_utils.attacks.gradient`), FGSM, the
iterative attack, PGD and robust accuracy (:mod:`~course_utils.attacks.pgd`), defences, detectors and the
attacks that beat them (:mod:`~course_utils.attacks.defences`),
transfer between models and substitutes (:mod:`~course_utils.attacks.transfer`), black boxes
(:mod:`~course_utils.attacks.blackbox`, :mod:`~course_utils.attacks.evolution`), the physical
world (:mod:`~course_utils.attacks.physical`: the simulated print-and-photograph and attacks that
survive it; :mod:`~course_utils.attacks.patch`) and
certificates (:mod:`~course_utils.attacks.smoothing`).

The names the lessons use are importable from here: ``from course_utils.attacks import pgd_attack``."""

from course_utils.attacks.gradient import AttackResult, input_gradient, noise_filter
from course_utils.attacks.pgd import fgsm, iterative_attack, pgd_attack, pgd_perturb, robust_accuracy
from course_utils.attacks.defences import (
    AdversarialTraining, BitDepth, JpegRecompress, MedianFilter, RandomBlur, RoundPixels, StraightThrough,
    adaptive_attack, defend, detection_rate, detector_scores,
)
from course_utils.attacks.transfer import (
    ensemble, jacobian_augment, oracle_labels, photo_variants, resized, top1, transfer_table,
)
from course_utils.attacks.blackbox import BlackBox, hop_skip_jump, square_attack
from course_utils.attacks.evolution import GridEncoding, evolve_fooling_images, fooling_probabilities, load_fooling_genomes
from course_utils.attacks.physical import PrintPhoto, eot_attack, print_and_photograph, survival_rate
from course_utils.attacks.patch import load_patch, patch_success, train_patch
from course_utils.attacks.smoothing import certify, clopper_pearson_lower, smoothed_predict

__all__ = [
    "AttackResult", "fgsm", "input_gradient", "iterative_attack", "noise_filter",
    "pgd_attack", "pgd_perturb", "robust_accuracy",
    "AdversarialTraining", "JpegRecompress", "RandomBlur", "RoundPixels", "StraightThrough", "defend",
    "ensemble", "photo_variants", "resized", "top1", "transfer_table",
    "BlackBox", "square_attack", "hop_skip_jump", "jacobian_augment", "oracle_labels",
    "GridEncoding", "evolve_fooling_images", "fooling_probabilities", "load_fooling_genomes",
    "PrintPhoto", "eot_attack", "print_and_photograph", "survival_rate", "load_patch", "patch_success", "train_patch",
    "BitDepth", "MedianFilter", "adaptive_attack", "detection_rate", "detector_scores",
    "certify", "clopper_pearson_lower", "smoothed_predict",
]

"""Fooling networks, one module per topic: ``gradient`` (lesson 1's noise filter and
:class:`AttackResult`), ``pgd`` (FGSM, the iterative attack, PGD), ``defences`` (defences, detection and
the attacks that beat them), ``transfer``, ``blackbox`` and ``evolution`` (black boxes), ``physical``
and ``patch`` (the physical world), ``smoothing`` (certificates). The lessons import from here."""

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

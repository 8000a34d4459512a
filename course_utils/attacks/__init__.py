"""Fooling networks, all on the one loop: gradient attacks (:mod:`~course_utils.attacks.gradient`:
noise filter, FGSM, iterative attack), PGD and robust accuracy (:mod:`~course_utils.attacks.pgd`),
defences and the attacks that beat them (:mod:`~course_utils.attacks.defences`) and transfer
between models (:mod:`~course_utils.attacks.transfer`)."""

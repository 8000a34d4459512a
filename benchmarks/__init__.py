"""Benchmarks: the course's compiled loops against the tutorials' one-step-at-a-time loops.

Run ``python -m benchmarks`` (or ``make bench``) from the repository root; ``--quick`` runs every
workload briefly (for CI: it proves the benchmark runs, it says nothing about speed). See
``benchmarks/README.md`` for what is measured and how to read the ratios.

Modules:

- :mod:`benchmarks.measure`    timing (interleaved repetitions, medians), peak memory, device
- :mod:`benchmarks.common`     what every workload shares: plans, sides, results, models and inputs
- :mod:`benchmarks.baselines`  faithful re-implementations of the tutorial-style loops
- :mod:`benchmarks.workloads`  the workloads of lessons 1-3, the scaling series, and running them all
- :mod:`benchmarks.adversarial_training`  workload 5: an adversarial-training epoch (lesson 4)
- :mod:`benchmarks.lucid_workload`  the optional Lucid-style workload against tf-keras-vis
- :mod:`benchmarks.report`     the Markdown table and the JSON file
- :mod:`benchmarks.vis_libraries`  lesson 3's class pictures next to Xplique's (``python -m benchmarks.vis_libraries``;
  Xplique in a separate environment)

The workload modules import what they share from :mod:`benchmarks.common`, never from each
other, so :mod:`benchmarks.workloads` can import them without a circle.
"""

import course_utils  # noqa: F401,E402  (quiets TensorFlow's start-up; every module here imports it)

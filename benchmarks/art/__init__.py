"""Comparisons with IBM's Adversarial Robustness Toolbox (ART), run by ``python -m benchmarks.art``.

Each module here (other than ``__main__``) exposes ``rows(quick: bool) -> list[dict]``: one dict
per (tool, setting, metric), with the keys ``comparison``, ``tool`` (``"course_utils"`` or
``"ART"``), ``setting``, ``metric``, ``value``, ``queries`` and ``wall_s``; both tools get the same
model and the same images. ART is a benchmark dependency only: ``course_utils`` never imports it.
"""

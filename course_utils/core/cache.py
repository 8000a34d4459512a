"""The compiled loops the course keeps, per model and by structure only.

Building a :class:`~course_utils.core.gradient_loop.GradientLoop` traces TensorFlow graphs, which costs
seconds; running it again with new per-call values (labels, epsilon, beta, step size, seed) costs
nothing extra. So every helper asks :func:`loop_for` for the loop of its *structure* (objective
kind, step rule, pieces, XLA, stopping at success) and gets the one already built for that model.
At most :data:`MAX_LOOPS_PER_MODEL` are kept per model, the least recently used dropped first;
they hold their model weakly, so a model the notebook lets go is freed with its loops.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable, Sequence

from course_utils.core.pieces import check_regularizers
from course_utils.core.gradient_loop import GradientLoop, structure_key
from course_utils.core.objectives import Objective
from course_utils.core.pieces import Regularizer
from course_utils.core.steps import StepRule

__all__ = ["MAX_LOOPS_PER_MODEL", "cached_loop", "loop_for", "cached_keys"]

MAX_LOOPS_PER_MODEL = 16
"""How many compiled loops :func:`cached_loop` keeps per model (least recently used dropped first)."""

_LOOPS: "weakref.WeakKeyDictionary[Any, OrderedDict[Hashable, GradientLoop]]" = weakref.WeakKeyDictionary()


def cached_loop(model: Any, key: Hashable, build: Callable[[], GradientLoop]) -> GradientLoop:
    """The :class:`GradientLoop` for ``(model, key)``, built by ``build()`` the first time.

    ``key`` names the loop's *structure* only (objective kind, step rule, pieces, XLA): the
    per-call values (labels, epsilon, beta, step size, seed) are arguments of the compiled graph,
    so calling again with new ones reuses it without tracing. At most :data:`MAX_LOOPS_PER_MODEL`
    loops are kept per model, the least recently used dropped first; only compiled graphs are
    kept, never results. ``build`` must hold the model weakly
    (:func:`course_utils.core.objectives.weak`), so that the loops die with the model.
    """
    try:
        per_model = _LOOPS.get(model)
        if per_model is None:
            per_model = _LOOPS[model] = OrderedDict()
    except TypeError:  # not weak-referenceable: no memo, just build
        return build()
    loop = per_model.get(key)
    if loop is None:
        loop = per_model[key] = build()
        while len(per_model) > MAX_LOOPS_PER_MODEL:
            per_model.popitem(last=False)
    else:
        per_model.move_to_end(key)
    return loop


def loop_for(
    model: Any,
    objective: Objective,
    *,
    step_rule: StepRule = "plain",
    regularizers: Sequence[Regularizer] = (),
    jit_compile: bool | str = False,
    stop_at_success: bool = False,
) -> GradientLoop:
    """The cached :class:`GradientLoop` of ``model`` with this structure, built the first time.

    ``objective`` must hold the model weakly (:func:`course_utils.core.objectives.weak`); it is used
    only when no loop of this structure is cached yet.
    """
    regularizers = check_regularizers(regularizers)
    return cached_loop(
        model,
        structure_key(objective, step_rule, regularizers, jit_compile, stop_at_success),
        lambda: GradientLoop(objective, step_rule=step_rule, regularizers=regularizers, jit_compile=jit_compile,
                             stop_at_success=stop_at_success),
    )


def cached_keys(model: Any) -> list[Hashable]:
    """The structures of the loops kept for ``model``, least recently used first."""
    try:
        return list(_LOOPS.get(model, ()))
    except TypeError:
        return []

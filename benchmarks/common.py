"""What every workload shares: the plans (full and quick), one side of a comparison, a workload's
result, the models and inputs loaded once, and small helpers."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

from benchmarks.measure import PeakMemory, median, timed
from course_utils.models.faces import DEFAULT_WEIGHTS, build_gender_cnn, load_gender_cnn
from course_utils.io.images import load_image, sample_face, sample_image
from course_utils.models.imagenet import load_imagenet_model

__all__ = ["Plan", "FULL", "QUICK", "Side", "WorkloadResult", "Context", "log", "max_diff", "warm_up", "first_trace", "traces_of", "steps_if"]


@dataclass(frozen=True)
class Plan:
    """Step counts and repetitions of one benchmark mode."""

    mode: str
    reps: int  # interleaved timed rounds (attack batch 1, class maximisation)
    heavy_reps: int  # the same for the workloads whose tutorial-style side takes ~30 s a call
    warmup: bool  # one warm-up call per side before the timed rounds (reported as the first call)
    noise_steps: int
    noise_warmup_steps: int
    noise_scaling: tuple[int, ...]  # step counts of the noise-filter scaling series
    noise_scaling_baseline_max: int  # the tutorial-style loop is timed up to this many steps only
    attack_steps: int
    attack_batches: tuple[int, ...]  # batch sizes of the attack scaling series
    attack_scaling_steps: int  # steps for scaling batches no workload measured (per-step time is what counts)
    bare_calls: int  # bare forward+backward calls per round
    n_filters: int
    filter_steps: int
    filter_size: int
    class_steps: int


FULL = Plan(
    mode="full", reps=3, heavy_reps=2, warmup=True, noise_steps=1000, noise_warmup_steps=10,
    noise_scaling=(100, 1000, 5000), noise_scaling_baseline_max=1000, attack_steps=20,
    attack_batches=(1, 8, 32), attack_scaling_steps=5, bare_calls=5, n_filters=16, filter_steps=30,
    filter_size=128, class_steps=30,
)
QUICK = Plan(
    mode="quick", reps=1, heavy_reps=1, warmup=False, noise_steps=10, noise_warmup_steps=1,
    noise_scaling=(5, 10, 20), noise_scaling_baseline_max=10, attack_steps=1, attack_batches=(1, 8),
    attack_scaling_steps=1, bare_calls=1, n_filters=2, filter_steps=1, filter_size=32, class_steps=1,
)


def log(message: str) -> None:
    """One progress line on stderr (stdout carries the final table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Side:
    """One side of a comparison: what ran and its wall times.

    ``steps`` counts the gradient steps one call makes (a batched step counts once; 16 serial
    filters of 30 steps count 480). ``first_s`` is the wall time of the warm-up call, which made
    ``warmup_steps`` steps; ``trace_s`` the tracing time the course itself reports
    (``compile_seconds``) for each timed call. ``traces``: the graphs the course traced in each
    timed call (its own count, kept inside the traced functions: 0 when a call reused its
    compiled loops); ``first_traces`` those of the warm-up call.
    """

    label: str
    steps: int
    seconds: list[float] = field(default_factory=list)
    first_s: float | None = None
    warmup_steps: int | None = None
    trace_s: list[float] | None = None
    traces: list[int] | None = None
    first_traces: int | None = None

    @property
    def median_s(self) -> float:
        return median(self.seconds)

    @property
    def step_s(self) -> float:
        """Median wall seconds per call divided by the steps per call."""
        return self.median_s / self.steps

    @property
    def one_time_s(self) -> float | None:
        """What the first call cost beyond steady state: ``first_s - warmup_steps * step_s``
        (tracing, graph optimisation, first-run allocation)."""
        if self.first_s is None or self.warmup_steps is None:
            return None
        return max(0.0, self.first_s - self.warmup_steps * self.step_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "steps_per_call": self.steps,
            "median_s": self.median_s,
            "step_s": self.step_s,
            "samples_s": self.seconds,
            "first_call_s": self.first_s,
            "warmup_steps": self.warmup_steps,
            "one_time_s": self.one_time_s,
            "trace_s_per_call": median(self.trace_s) if self.trace_s else None,
            "traces_per_call": self.traces,
            "first_call_traces": self.first_traces,
        }


@dataclass
class WorkloadResult:
    """A workload's two sides, their ratio, and what else was measured."""

    name: str
    title: str
    steps: int
    batch: int
    reps: int
    course: Side
    baseline: Side
    extra: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)
    peak_rss_mib: float = float("nan")
    rss_scope: str = "workload"
    peak_gpu_mib: float | None = None

    @property
    def ratio(self) -> float:
        """Tutorial-style median seconds / course median seconds (> 1: the course is faster)."""
        return self.baseline.median_s / self.course.median_s

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "course_s": self.course.median_s,
            "baseline_s": self.baseline.median_s,
            "ratio": self.ratio,
            "title": self.title,
            "steps": self.steps,
            "batch": self.batch,
            "reps": self.reps,
            "course_step_s": self.course.step_s,
            "baseline_step_s": self.baseline.step_s,
            "course": self.course.to_json(),
            "baseline": self.baseline.to_json(),
            "peak_rss_mib": self.peak_rss_mib,
            "rss_scope": self.rss_scope,
            "peak_gpu_mib": self.peak_gpu_mib,
            "extra": self.extra,
            "check": self.check,
        }

    def remember(self, memory: PeakMemory) -> "WorkloadResult":
        self.peak_rss_mib, self.peak_gpu_mib = memory.rss_mib, memory.gpu_mib
        self.rss_scope = "workload" if memory.scope == "block" else "process (since start)"
        return self


class Context:
    """Models and inputs, loaded once and shared by the workloads."""

    def __init__(self, imagenet_model: str = "efficientnet_lite0") -> None:
        self.imagenet_name = imagenet_model
        self.notes: list[str] = []

    @cached_property
    def gender(self) -> tuple[Any, str]:
        """``(model, label)``: the trained gender CNN, or random weights (same architecture and
        cost) with a note when ``data/gender_cnn.weights.h5`` is missing."""
        try:
            return load_gender_cnn(), "gender_cnn (trained weights)"
        except (FileNotFoundError, ValueError) as err:
            note = f"gender CNN weights unusable ({type(err).__name__}); timed with random weights"
            log(note)
            self.notes.append(note + f": {DEFAULT_WEIGHTS}")
            return build_gender_cnn(), "gender_cnn (RANDOM weights)"

    @cached_property
    def imagenet(self) -> Any:
        return load_imagenet_model(self.imagenet_name, verbose=False)

    @cached_property
    def face(self) -> np.ndarray:
        """The astronaut's face, ``(1, 48, 48, 1)`` pixels."""
        return sample_face("astronaut")[None]

    @cached_property
    def cat(self) -> np.ndarray:
        """Chelsea the cat, ``(224, 224, 3)`` pixels."""
        return load_image(sample_image("chelsea"), size=224)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


def warm_up(plan: Plan, fn: Callable[[], Any]) -> tuple[float | None, Any]:
    """``(wall seconds, result)`` of one warm-up call, or ``(None, None)`` when the plan has none."""
    return timed(fn) if plan.warmup else (None, None)


def first_trace(warm: Any, timed_outputs: list[Any]) -> float:
    """The course's tracing seconds in its first call (the warm-up, else the first timed call)."""
    return (warm if warm is not None else timed_outputs[0]).compile_seconds


def traces_of(result: Any) -> int | None:
    """The graphs a course call traced (summed over a list of calls); ``None`` for no result."""
    if result is None:
        return None
    if isinstance(result, (list, tuple)):
        return sum(r.traces for r in result)
    return result.traces


def steps_if(plan: Plan, steps: int) -> int | None:
    return steps if plan.warmup else None



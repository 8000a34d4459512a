"""Timing, memory and device helpers for the benchmarks.

Timing: every candidate is a zero-argument callable; :func:`interleave` runs the candidates of one
workload in turn (A B A B ...), so a burst of load from other processes hits all of them alike,
and the report uses medians.

Memory: :class:`PeakMemory` gives the peak *resident* memory of this process over a block. On
Linux the kernel's high-water mark (``VmHWM``) is reset at the start of the block by writing ``5``
to ``/proc/self/clear_refs``, so each workload gets its own peak; where that is not possible the
process-lifetime peak ``ru_maxrss`` is reported instead (and labelled so). On a GPU the peak
memory TensorFlow allocated on ``GPU:0`` is reported as well.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import tensorflow as tf

__all__ = ["timed", "interleave", "median", "PeakMemory", "describe_device", "load_average"]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``fn()`` once; return ``(wall seconds, its result)``."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median(values: list[float]) -> float:
    """The median of ``values`` (a float; NaN for an empty list)."""
    return float(statistics.median(values)) if values else float("nan")


def interleave(candidates: dict[str, Callable[[], Any]], reps: int) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """Run every candidate once per round, in the given order, for ``reps`` rounds (A B A B ...).

    Returns ``(seconds, outputs)``: for each candidate name, the wall seconds of each call and what
    each call returned.
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    outputs: dict[str, list[Any]] = {name: [] for name in candidates}
    for _ in range(reps):
        for name, fn in candidates.items():
            wall, out = timed(fn)
            seconds[name].append(wall)
            outputs[name].append(out)
    return seconds, outputs


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _gpu_name() -> str | None:
    return "GPU:0" if tf.config.list_logical_devices("GPU") else None


@dataclass
class PeakMemory:
    """Peak resident memory (and GPU memory, on a GPU) of this process over a block of work.

    Use as ``with PeakMemory() as mem: ...`` then read :attr:`rss_mib`, :attr:`scope` and
    :attr:`gpu_mib`.
    """

    rss_mib: float = float("nan")
    scope: str = "block"
    gpu_mib: float | None = None
    _reset_ok: bool = field(default=False, repr=False)

    def __enter__(self) -> "PeakMemory":
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM (peak RSS) to the current RSS
            self._reset_ok = _status_kib("VmHWM") is not None
        except OSError:
            self._reset_ok = False
        gpu = _gpu_name()
        if gpu is not None:
            try:
                tf.config.experimental.reset_memory_stats(gpu)
            except (ValueError, RuntimeError):
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reset_ok:
            self.rss_mib = _status_kib("VmHWM") / 1024
            self.scope = "block"
        else:
            self.rss_mib = process_peak_rss_mib()
            self.scope = "process"
        gpu = _gpu_name()
        if gpu is not None:
            try:
                self.gpu_mib = tf.config.experimental.get_memory_info(gpu)["peak"] / 2**20
            except (ValueError, RuntimeError):
                self.gpu_mib = None


def process_peak_rss_mib() -> float:
    """The peak resident memory of this process since it started, in MiB (``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average (``None`` where the OS has none). Above the core count, other
    processes were competing for the CPU and timings are noisy."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def describe_device() -> tuple[str, dict[str, Any]]:
    """``(one line, details)``: the GPU TensorFlow runs on if there is one, else the CPU model and
    core count; details add the CPU, versions and thread settings."""
    cpu = f"{_cpu_model()}, {_cores()} cores"
    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
        except (ValueError, RuntimeError):
            names.append(gpu.name)
    line = f"GPU: {names[0]}" + (f" (x{len(names)})" if len(names) > 1 else "") + f"; host CPU: {cpu}" if names else f"CPU: {cpu}"
    import keras

    details = {
        "kind": "GPU" if names else "CPU",
        "gpus": names,
        "cpu": _cpu_model(),
        "cores": _cores(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }
    return line, details

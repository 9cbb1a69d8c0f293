"""Benchmarks, part of the product: ``python -m s2c.bench [SUITE ...] [--quick] [--json FILE]``.

Owns: the suite registry, timing helpers and the report format. Each suite lives in
``s2c/bench/suite_<name>.py`` and exposes ``run(quick: bool) -> dict[str, Metric]``;
every figure that has a baseline names it, measured in the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

SUITES = ("video", "codec", "relay", "audio", "crypto", "e2e", "avatar", "net", "cluster")


@dataclass
class Metric:
    median: float
    p99: float
    unit: str
    baseline: str | None = None  # name of the same-run baseline metric
    extra: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        out = {"median": self.median, "p99": self.p99, "unit": self.unit}
        if self.baseline:
            out["baseline"] = self.baseline
        out.update(self.extra)
        return out


def summarize(samples, unit: str, baseline: str | None = None, **extra) -> Metric:
    """Median and p99 of a list of samples."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no samples")
    return Metric(float(np.median(arr)), float(np.percentile(arr, 99)), unit, baseline, dict(extra))


def time_ms(fn, repeats: int, warmup: int = 3) -> list[float]:
    """Wall time of fn() in milliseconds, ``repeats`` samples after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append((clock() - t0) / 1e6)
    return out


def time_interleaved_ms(fns: dict, repeats: int, warmup: int = 3) -> dict[str, list[float]]:
    """Time several callables alternately so machine noise hits all of them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {k: [] for k in fns}
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = clock()
            fn()
            out[k].append((clock() - t0) / 1e6)
    return out

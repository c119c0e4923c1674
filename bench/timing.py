"""Latency figures for the micro-benchmarks (bench/rank.py, bench/ann.py): both clocks, and
tails only where the sample supports them.

- wall clock (``time.perf_counter``): what a caller waits, including time spent waiting for a
  core on a shared machine;
- thread CPU (``time.thread_time``): the work this thread did; equals wall time on a quiet
  machine for single-threaded code, and is the steadier figure on a loaded one. A figure from
  thread CPU time is always labelled so, with the wall-clock figure beside it.
- p99 is reported only from at least ``MIN_SAMPLES_P99`` samples (10 beyond the percentile);
  smaller samples report p95 and leave p99 out.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

MIN_SAMPLES_P99 = 1000


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean of ``ms`` (milliseconds), and p99 when there are enough samples."""
    a = np.asarray(ms, dtype=float)
    out = {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
           "mean_ms": float(a.mean())}
    if len(a) >= MIN_SAMPLES_P99:
        out["p99_ms"] = float(np.percentile(a, 99))
    return out


def summary(wall_s: Sequence[float], cpu_s: Sequence[float]) -> dict[str, Any]:
    """``{"samples", "wall": percentiles, "thread_cpu": percentiles}`` from per-call seconds."""
    return {"samples": len(wall_s), "wall": percentiles(1e3 * np.asarray(wall_s)),
            "thread_cpu": percentiles(1e3 * np.asarray(cpu_s))}


def timed_call(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, thread CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    out = fn()
    return out, time.perf_counter() - wall, time.thread_time() - cpu


def interleaved(fns: dict[str, Callable[[], Any]], requests: int, *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Time every function of ``fns`` ``requests`` times, interleaved: each round calls each
    function once, in an order shuffled per round (seeded), so that a comparison between them
    sees the same machine state (load, caches, frequency) rather than one run after another.
    One warm-up call each first. Returns ``summary`` per name."""
    for fn in fns.values():
        fn()
    order = list(fns)
    rng = random.Random(seed)
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(requests):
        rng.shuffle(order)
        for name in order:
            _, w, c = timed_call(fns[name])
            wall[name].append(w)
            cpu[name].append(c)
    return {name: summary(wall[name], cpu[name]) for name in fns}


def fmt(fig: dict[str, Any], clock: str) -> str:
    """'p50 0.047 / p99 1.113 ms' (or '/ p95 ...' when p99 is not supported) for one clock."""
    p = fig[clock]
    tail = f"p99 {p['p99_ms']:.3f}" if "p99_ms" in p else f"p95 {p['p95_ms']:.3f}"
    return f"p50 {p['p50_ms']:.3f} / {tail} ms"

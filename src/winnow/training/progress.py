"""Stage timing for ``winnow train``: wall time, CPU time and peak memory per named stage, with
progress lines that say how long has passed and an estimate of what is left.

Contract:
- ``StageClock(plan, events=E, previous=manifest, say=f)``: ``plan`` is the ordered list of
  stage names this run will go through. ``with clock.stage(name): ...`` times one stage; stages
  may overlap (a stage run in another thread), each keeps its own figures.
- ``clock.report()`` -> {name: {"wall_s", "cpu_s", "peak_rss_mib", "concurrent_with"}} for the
  bundle manifest (``stages``), plus ``clock.summary()`` with the run's totals.
- Estimates: each stage's expected seconds are the previous bundle's figure for that stage
  scaled by the ratio of event counts (linear; the costs that dominate -- ALS sweeps, candidate
  and feature work over a capped number of lists, index inserts -- are at most linear in events
  or items), else ``DEFAULT_S_PER_MEVENT`` (measured here, bench/train_scale.py). The estimate is
  printed, never relied on.
- Peak RSS is sampled every ``SAMPLE_S`` by a daemon thread reading /proc/self/statm (Linux;
  elsewhere the figures are None). A spike shorter than the sample period can be missed; the
  process-wide peak (``ru_maxrss``) in the summary catches it.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SAMPLE_S = 0.1
# seconds per million events on this 2-core machine, defaults (bench/results/train_scale.json)
DEFAULT_S_PER_MEVENT = {"load": 1.0, "evaluate": 6.0, "fit": 10.0, "two_tower": 60.0,
                        "segment": 0.5, "ranker": 20.0, "index": 8.0, "write": 1.0}
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """Resident set size of this process now, or None where /proc is not available."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _fmt(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class StageClock:
    """Times named stages (see module docstring). Thread-safe: stages may run concurrently."""

    def __init__(self, plan: list[str], *, events: int, previous: dict[str, Any] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.plan = list(plan)
        self.events = max(int(events), 1)
        self.say = say or (lambda _msg: None)
        self.expected = {name: self._expect(name, previous) for name in self.plan}
        self._t0 = time.perf_counter()
        self._lock = threading.Lock()
        self._open: dict[str, dict[str, Any]] = {}
        self._done: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="stage-rss", daemon=True)
        self._sampler.start()

    def _expect(self, name: str, previous: dict[str, Any] | None) -> float:
        prev = (previous or {}).get("stages", {}).get(name)
        prev_events = (previous or {}).get("data", {}).get("events")
        if isinstance(prev, dict) and prev_events:
            return float(prev.get("wall_s", 0.0)) * self.events / max(int(prev_events), 1)
        return DEFAULT_S_PER_MEVENT.get(name, 1.0) * self.events / 1e6

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            rss = rss_bytes()
            if rss is None:
                return
            with self._lock:
                for rec in self._open.values():
                    rec["peak"] = max(rec["peak"], rss)

    def remaining_s(self) -> float:
        """Estimated seconds left: unfinished stages' expectations, less time already spent."""
        now = time.perf_counter()
        with self._lock:
            left = 0.0
            for name in self.plan:
                if name in self._done:
                    continue
                spent = now - self._open[name]["t"] if name in self._open else 0.0
                left += max(self.expected[name] - spent, 0.0)
        return left

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time stage ``name`` (must be in the plan); prints a line at its start and end."""
        if name not in self.plan:
            raise ValueError(f"stage {name!r} is not in the plan {self.plan}")
        rss = rss_bytes() or 0
        with self._lock:
            others = sorted(self._open)
            self._open[name] = {"t": time.perf_counter(), "cpu": time.process_time(), "peak": rss,
                                "with": set(others)}
            for other in others:
                self._open[other]["with"].add(name)
        n = self.plan.index(name) + 1
        elapsed = time.perf_counter() - self._t0
        self.say(f"[{n}/{len(self.plan)}] {name} (elapsed {_fmt(elapsed)}, ~{_fmt(self.remaining_s())} left)")
        try:
            yield
        finally:
            end = time.perf_counter()
            rss = rss_bytes() or 0
            with self._lock:
                rec = self._open.pop(name)
                rec["peak"] = max(rec["peak"], rss)
                for still_open in self._open.values():
                    still_open["with"].add(name)
                self._done[name] = {
                    "wall_s": round(end - rec["t"], 3),
                    "cpu_s": round(time.process_time() - rec["cpu"], 3),
                    "peak_rss_mib": round(rec["peak"] / 2**20, 1) if rec["peak"] else None,
                    "concurrent_with": sorted(rec["with"]),
                }
            done = self._done[name]
            self.say(f"      {name} done in {done['wall_s']:.1f} s"
                     + (f", peak RSS {done['peak_rss_mib'] / 1024:.2f} GiB" if done["peak_rss_mib"] else ""))

    def skip(self, name: str) -> None:
        """Drop a planned stage that will not run (its estimate no longer counts)."""
        with self._lock:
            if name in self.plan and name not in self._done and name not in self._open:
                self.plan.remove(name)

    def report(self) -> dict[str, dict[str, Any]]:
        """Per-stage figures of the finished stages, in plan order."""
        with self._lock:
            return {name: dict(self._done[name]) for name in self.plan if name in self._done}

    def summary(self) -> dict[str, Any]:
        """Totals: wall seconds since the clock started, process CPU seconds, peak RSS (MiB)."""
        self._stop.set()
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return {"wall_s": round(time.perf_counter() - self._t0, 3),
                "cpu_s": round(time.process_time(), 3),
                "peak_rss_mib": round(peak_kib / 1024, 1)}

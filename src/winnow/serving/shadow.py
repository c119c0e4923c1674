"""The shadow worker: a challenger answers sampled live requests OFF the response path, with
only the CPU the worker process can spare.

The request thread only ``submit``s a job (a closure over what the champion saw) to a bounded
queue and returns; a full queue drops the job and counts it (``winnow_rollout_shadow_total
{result="dropped"}``), so a slow or failing challenger never delays the champion's response. One
daemon thread runs the jobs; each yields one comparison record (winnow.rollout.compare), written
to the store in batches (``Store.log_shadow``). A job never logs an impression, never writes
online state and never raises out of the worker (an exception becomes a record with ``error``).

Spare capacity only (``[rollout] shadow_max_cpu_share``), so the champion's latency does not pay
for the shadow:

- the shadow thread runs at the lowest OS priority (nice 19, Linux per-thread), so the kernel
  gives the cores to the serving threads of every worker first;
- a job runs only when this worker has no request in flight (``Busy``, counted by the app's
  middleware), waiting at most ``IDLE_WAIT_S`` for that; otherwise it is skipped
  (``result="skipped_busy"``);
- a token bucket on the shadow thread's measured CPU seconds (``time.thread_time``) refills at
  ``shadow_max_cpu_share`` CPU-seconds per second; an empty bucket skips (``"skipped_budget"``);
- a running job gives way to requests that arrive meanwhile. While it computes, the GIL
  switch interval is 0.5 ms (``swap.background_priority``; 5 ms by default), so an arriving
  request takes the GIL within 0.5 ms instead of up to 5; and between the challenger's stages
  (retrieve, rank, rerank) the job waits while a request is in flight (``yield_to_requests``;
  the default interval is back while it waits), giving up after ``PREEMPT_WAIT_S``
  (``"preempted"``). The nice-19 thread does not help here: niceness orders threads for the
  CPU, not for the GIL.

Skipping by load makes the shadowed requests lean toward quiet moments: their overlap and score
statistics describe those requests, not a uniform sample of the traffic. ``counts`` (per rollout:
ran / skipped_busy / skipped_budget / preempted / dropped) is shown by the rollout status with that note.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from winnow.data.store import Store
from winnow.serving.busy_board import Busy
from winnow.serving.swap import background_priority, enter_background_priority, leave_background_priority
from winnow.serving.telemetry import Metrics

log = logging.getLogger(__name__)
Job = Callable[[], dict[str, Any]]


IDLE_WAIT_S = 0.05  # a job waits at most this long for the worker to have no request in flight
PREEMPT_WAIT_S = 0.2  # ... and, between its stages, this long before it gives up (preempted)
SAMPLING_NOTE = ("requests are shadowed only while this worker is idle and within its CPU budget "
                 "([rollout] shadow_max_cpu_share): the shadowed sample leans toward quiet moments")


class Preempted(Exception):
    """A shadow job gave up between two stages: the worker stayed busy ``preempt_wait_s``."""


class CpuBudget:
    """Token bucket of CPU seconds: refills at ``share`` CPU-s per wall second up to ``burst_s``
    (2 s of refill); ``spend`` takes what a job used (it may go below zero: the next jobs wait)."""

    def __init__(self, share: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.burst = 2.0 * share
        self.tokens = self.burst
        self._clock = clock
        self._at = clock()

    def available(self) -> bool:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.share)
        self._at = now
        return self.tokens > 0.0

    def spend(self, cpu_s: float) -> None:
        self.tokens -= cpu_s


class ShadowWorker:
    """Bounded queue + one low-priority thread; ``submit`` never blocks; ``close`` is bounded."""

    def __init__(self, store: Store, metrics: Metrics, *, capacity: int, batch: int, busy: Busy | None = None,
                 max_cpu_share: float = 1.0, preempt_wait_s: float = PREEMPT_WAIT_S,
                 idle_class: bool = False,
                 write: Callable[[int, list[dict[str, Any]]], None] | None = None) -> None:
        """``idle_class``: run the jobs in the SCHED_IDLE class (the shadow process, which serves
        no request: serving/shadow_proc.py) instead of at nice 19; ``write(rollout_id, records)``:
        where a batch of records goes (default ``write_records`` to ``store`` in this thread; the shadow
        process hands them to a thread of normal priority, so that no SCHED_IDLE thread holds the
        store's write lock)."""
        self.store = store
        self._write = write if write is not None else (lambda rid, recs: write_records(store, metrics, rid, recs))
        self.idle_class = idle_class
        self.preempt_wait_s = preempt_wait_s
        self.metrics = metrics
        self.batch = batch
        self.busy = busy if busy is not None else Busy()
        self.budget = CpuBudget(max_cpu_share)
        self.counts: dict[int, Counter[str]] = {}  # rollout id -> ran / skipped_busy / skipped_budget / dropped
        self._queue: queue.Queue[tuple[int, Job] | None] = queue.Queue(maxsize=capacity)
        self._stopping = threading.Event()  # close() gave up waiting: drop the rest, write, end
        self._thread = threading.Thread(target=self._run, name="rollout-shadow", daemon=True)
        self._thread.start()

    def submit(self, rollout_id: int, job: Job) -> bool:
        """Queue ``job`` for rollout ``rollout_id``; False (dropped, counted) when the queue is full."""
        try:
            self._queue.put_nowait((rollout_id, job))
            return True
        except queue.Full:
            self.count(rollout_id, "dropped")
            return False

    def count(self, rollout_id: int, result: str) -> None:
        """Count one outcome of a job of rollout ``rollout_id`` (``counts`` and the metric)."""
        self.metrics.rollout_shadow.labels(result).inc()
        self.counts.setdefault(rollout_id, Counter())[result] += 1

    def yield_to_requests(self) -> None:
        """Between a job's stages (called only from a running job, which holds background
        priority): wait while this worker has a request in flight; Preempted when it is still
        busy after ``preempt_wait_s`` (PREEMPT_WAIT_S)."""
        if self.busy.in_flight <= 0:
            return
        leave_background_priority()  # waiting computes nothing: requests keep the default interval
        try:
            idle = self.busy.wait_idle(self.preempt_wait_s)
        finally:
            enter_background_priority()
        if not idle:
            raise Preempted

    def _skip(self) -> str | None:
        """Why the next job must not run now (None: run it): over budget, or requests in flight."""
        if not self.budget.available():
            return "skipped_budget"
        if not self.busy.wait_idle(IDLE_WAIT_S):
            return "skipped_busy"
        return None

    def _flush(self, pending: dict[int, list[dict[str, Any]]]) -> None:
        for rid, records in pending.items():
            self._write(rid, records)
        pending.clear()

    def _run(self) -> None:
        if self.idle_class and hasattr(os, "SCHED_IDLE"):
            try:  # this thread only (Linux): CPU only when no other thread wants it
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            except OSError:
                log.warning("shadow jobs at normal priority: SCHED_IDLE refused")
        elif sys.platform.startswith("linux"):  # nice is per thread only on Linux (elsewhere: a pid)
            try:  # the lowest OS priority for this thread only
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except OSError:  # not permitted: the budget and the idle rule still hold
                log.warning("shadow thread priority not lowered")
        pending: dict[int, list[dict[str, Any]]] = {}
        while True:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                self._flush(pending)
                if self._stopping.is_set():
                    return
                continue
            if item is None:
                self._flush(pending)
                return
            if self._stopping.is_set():
                self.metrics.rollout_shadow.labels("dropped").inc()
                if self._queue.empty():
                    self._flush(pending)
                    return
                continue
            rid, job = item
            why = self._skip()
            if why is not None:
                self.count(rid, why)
                if self._queue.empty():
                    self._flush(pending)
                continue
            cpu = time.thread_time()
            try:
                with background_priority():  # an arriving request takes the GIL within 0.5 ms
                    record = job()
            except Preempted:
                self.budget.spend(time.thread_time() - cpu)
                self.count(rid, "preempted")
                continue
            except Exception as exc:  # the job guards itself; this is the last line
                record = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            self.budget.spend(time.thread_time() - cpu)
            self.counts.setdefault(rid, Counter())["ran"] += 1
            self.metrics.rollout_shadow.labels("error" if record.get("error") else "ok").inc()
            pending.setdefault(rid, []).append(record)
            if sum(len(v) for v in pending.values()) >= self.batch or self._queue.empty():
                self._flush(pending)

    def close(self, timeout: float = 5.0) -> bool:
        """Finish queued jobs and write their records, waiting at most ``timeout`` s in all (the
        store closes after this); True when the thread has ended. Jobs still queued when the
        deadline passes are dropped (counted)."""
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:  # a slow challenger: drop what waits, then stop
            self._stopping.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._stopping.set()
            log.warning("shadow worker still running %.0f s after close", timeout)
            return False
        return True


def write_records(store: Store, metrics: Metrics, rollout_id: int, records: list[dict[str, Any]]) -> None:
    """Write one batch of comparison records; a store that refuses it loses the batch (logged,
    counted as ``unwritten``), never the serving."""
    try:
        store.log_shadow(rollout_id, records)
    except Exception:
        log.exception("shadow records of rollout %d not written (%d lost)", rollout_id, len(records))
        metrics.rollout_shadow.labels("unwritten").inc(len(records))


def shadow_job(runtime: Any, args: dict[str, Any], champion_ids: list[str], champion_scores: list[float], *,
               pause: Callable[[], None] | None = None) -> Job:
    """The job comparing challenger ``runtime``'s slate for one request with the champion's
    (``args``: the keyword arguments the champion's ``Runtime.answer`` ran with; ``pause``: called
    between the challenger's stages, ``ShadowWorker.yield_to_requests`` in a serving worker).
    An exception other than ``Preempted`` becomes a record with ``error``."""

    from winnow.rollout.compare import compare_slates

    def job() -> dict[str, Any]:
        rt = runtime
        base = {"ts": int(args["now"]), "request_id": args["request_id"], "user_id": args["user_id"],
                "challenger": rt.version}
        t0 = time.perf_counter()
        try:
            slate = rt.answer(**{**args, "explain": False}, pause=pause)
        except Preempted:
            raise
        except Exception as exc:
            return {**base, "error": f"{type(exc).__name__}: {exc}"[:300],
                    "challenger_ms": {"wall": (time.perf_counter() - t0) * 1000.0}}
        wall = (time.perf_counter() - t0) * 1000.0
        ids = rt.catalog.item_ids.decode([s.item for s in slate.items])
        rec = compare_slates(champion_ids, ids, k=int(args["k"]), champion_scores=champion_scores,
                             challenger_scores=[s.score for s in slate.items])
        rec["challenger_ms"] = {**{stage: secs * 1000.0 for stage, secs in slate.timings.items()}, "wall": wall}
        rec["challenger_fallbacks"] = list(slate.fallbacks)
        return {**base, **rec}

    return job

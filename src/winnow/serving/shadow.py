"""The shadow worker: a challenger answers sampled live requests OFF the response path.

The request thread only ``submit``s a job (a closure over what the champion saw) to a bounded
queue and returns; a full queue drops the job and counts it (``winnow_rollout_shadow_total
{result="dropped"}``), so a slow or failing challenger never delays the champion's response. One
daemon thread runs the jobs; each yields one comparison record (winnow.rollout.compare), written
to the store in batches (``Store.log_shadow``). A job never logs an impression, never writes
online state and never raises out of the worker (an exception becomes a record with ``error``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from winnow.data.store import Store
from winnow.serving.telemetry import Metrics

log = logging.getLogger(__name__)
Job = Callable[[], dict[str, Any]]


class ShadowWorker:
    """Bounded queue + one thread; ``submit`` never blocks; ``close`` is bounded."""

    def __init__(self, store: Store, metrics: Metrics, *, capacity: int, batch: int) -> None:
        self.store = store
        self.metrics = metrics
        self.batch = batch
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
            self.metrics.rollout_shadow.labels("dropped").inc()
            return False

    def _flush(self, pending: dict[int, list[dict[str, Any]]]) -> None:
        for rid, records in pending.items():
            try:
                self.store.log_shadow(rid, records)
            except Exception:  # the store refused: the comparison is lost, serving is not affected
                log.exception("shadow records of rollout %d not written (%d lost)", rid, len(records))
                self.metrics.rollout_shadow.labels("unwritten").inc(len(records))
        pending.clear()

    def _run(self) -> None:
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
            try:
                record = job()
            except Exception as exc:  # the job guards itself; this is the last line
                record = {"error": f"{type(exc).__name__}: {exc}"[:300]}
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


def shadow_job(service: Any, view: Any, args: dict[str, Any], champion_ids: list[str],
               champion_scores: list[float]) -> Job:
    """The job comparing the challenger's slate for one request with the champion's
    (``args``: the keyword arguments the champion's ``Service.funnel`` ran with)."""

    from winnow.rollout.compare import compare_slates

    def job() -> dict[str, Any]:
        rt = view.runtime
        base = {"ts": int(args["now"]), "request_id": args["request_id"], "user_id": args["user_id"],
                "challenger": rt.version}
        t0 = time.perf_counter()
        try:
            slate = service.funnel(rt, **{**args, "explain": False})
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

"""The shadow worker uses only spare capacity (serving/shadow.py): a job waits for the worker to
have no request in flight and is skipped (counted) when it stays busy; a token bucket on the
shadow thread's CPU seconds skips jobs once ``shadow_max_cpu_share`` is spent; skipped jobs
write no record. No timing luck: the budget's clock is injected, waits are conditions."""

from __future__ import annotations

import threading
import time
from typing import Any

from servers.throwaway import wait_for

from winnow.serving.shadow import IDLE_WAIT_S, Busy, CpuBudget, ShadowWorker
from winnow.serving.telemetry import Metrics


class Records:
    """A store stand-in keeping what ``log_shadow`` receives."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def log_shadow(self, rollout_id: int, records: list[dict[str, Any]]) -> None:
        with self.changed:
            self.written.extend(records)
            self.changed.notify_all()


def _until(worker: ShadowWorker, rid: int, key: str, n: int, timeout: float = 30.0) -> None:
    reached = wait_for(lambda: worker.counts.get(rid, {}).get(key, 0) >= n, timeout=timeout, interval=0.01)
    assert reached, f"{key} never reached {n}: {dict(worker.counts.get(rid, {}))}"


def _metric(metrics: Metrics, result: str) -> float:
    return metrics.registry.get_sample_value("winnow_rollout_shadow_total", {"result": result}) or 0.0


def test_the_bucket_refills_at_the_share_and_goes_negative_after_a_big_job() -> None:
    now = [0.0]
    b = CpuBudget(0.1, clock=lambda: now[0])
    assert b.available() and b.tokens == 0.2  # starts full: 2 s of refill
    b.spend(0.5)  # one job used 0.5 CPU-s: the bucket owes 0.3
    assert not b.available()
    now[0] = 2.5  # 2.5 s x 0.1 = 0.25 refilled: still owing 0.05
    assert not b.available() and abs(b.tokens + 0.05) < 1e-12
    now[0] = 4.0
    assert b.available() and abs(b.tokens - 0.1) < 1e-12
    now[0] = 100.0
    assert b.available() and b.tokens == 0.2  # never above the burst


def test_a_job_waits_for_no_request_in_flight_and_is_skipped_while_one_is() -> None:
    busy, store, metrics = Busy(), Records(), Metrics()
    worker = ShadowWorker(store, metrics, capacity=8, batch=1, busy=busy, max_cpu_share=1.0)  # type: ignore[arg-type]
    ran = threading.Event()
    try:
        busy.enter()  # a request in flight for longer than a job waits
        worker.submit(7, lambda: (ran.set(), {"ts": 1})[1])
        _until(worker, 7, "skipped_busy", 1)
        assert not ran.is_set() and store.written == [] and _metric(metrics, "skipped_busy") == 1
        busy.leave()
        assert busy.wait_idle(IDLE_WAIT_S)
        worker.submit(7, lambda: (ran.set(), {"ts": 2})[1])
        _until(worker, 7, "ran", 1)
        with store.changed:
            assert store.changed.wait_for(lambda: len(store.written) == 1, 30)
        assert ran.is_set() and store.written[0]["ts"] == 2 and _metric(metrics, "ok") == 1
        # a request that ends while the job waits lets it run
        busy.enter()
        worker.submit(7, lambda: {"ts": 3})
        busy.leave()
        _until(worker, 7, "ran", 2)
    finally:
        assert worker.close()


def test_jobs_beyond_the_cpu_budget_are_skipped_and_counted() -> None:
    store, metrics = Records(), Metrics()
    worker = ShadowWorker(store, metrics, capacity=8, batch=1, max_cpu_share=1e-6)  # type: ignore[arg-type]

    def burn() -> dict[str, Any]:
        end = time.thread_time() + 0.02  # 20 ms of this thread's CPU: far beyond a 2 us burst
        while time.thread_time() < end:
            pass
        return {"ts": 1}

    try:
        worker.submit(3, burn)
        _until(worker, 3, "ran", 1)
        for _ in range(3):
            worker.submit(3, burn)
        _until(worker, 3, "skipped_budget", 3)  # refilling 20 ms at 1e-6 CPU-s/s takes hours
        assert worker.counts[3]["ran"] == 1 and _metric(metrics, "skipped_budget") == 3
        assert worker.budget.tokens < 0
    finally:
        assert worker.close()


def test_a_running_job_gives_way_between_stages_and_gives_up_when_the_worker_stays_busy() -> None:
    """A job started while the worker was idle meets a request that arrived meanwhile at its
    next stage boundary (``yield_to_requests``): it waits while the request is in flight (with
    the default GIL switch interval back) and goes on once it ends; a worker still busy after
    ``preempt_wait_s`` preempts it (counted, no record). While it computes, the GIL's switch
    interval is lowered (requests get the GIL sooner)."""
    import sys

    default = sys.getswitchinterval()
    started, release = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def job_of(worker: ShadowWorker, busy: Busy):
        def job() -> dict[str, Any]:  # stage 1; a request arrives; the boundary; stage 2
            seen["interval"] = sys.getswitchinterval()
            started.set()
            assert release.wait(30)
            worker.yield_to_requests()
            seen["stage2_in_flight"] = busy.in_flight
            seen["stage2_interval"] = sys.getswitchinterval()
            return {"ts": 1}
        return job

    busy, store, metrics = Busy(), Records(), Metrics()
    patient = ShadowWorker(store, metrics, capacity=8, batch=1, busy=busy, preempt_wait_s=60.0)  # type: ignore[arg-type]
    try:
        patient.submit(5, job_of(patient, busy))
        assert started.wait(30)
        busy.enter()  # the arriving request: in flight when the job reaches its boundary ...
        release.set()
        assert wait_for(lambda: sys.getswitchinterval() == default, timeout=30, interval=0.005)  # waiting
        assert "stage2_in_flight" not in seen
        busy.leave()  # ... and ends: the job goes on
        _until(patient, 5, "ran", 1)
        assert seen["stage2_in_flight"] == 0 and seen["interval"] <= 0.0005 < default
        assert seen["stage2_interval"] <= 0.0005  # computing again
        assert sys.getswitchinterval() == default  # restored after the job
    finally:
        assert patient.close()
    started.clear(), release.clear(), seen.clear()
    busy, store, metrics = Busy(), Records(), Metrics()
    hasty = ShadowWorker(store, metrics, capacity=8, batch=1, busy=busy, preempt_wait_s=0.01)  # type: ignore[arg-type]
    try:
        hasty.submit(5, job_of(hasty, busy))
        assert started.wait(30)
        busy.enter()  # a request in flight for longer than the job waits at its boundary
        release.set()
        _until(hasty, 5, "preempted", 1)
        busy.leave()
        assert "stage2_in_flight" not in seen and _metric(metrics, "preempted") == 1
        assert store.written == [] and sys.getswitchinterval() == default
    finally:
        assert hasty.close()

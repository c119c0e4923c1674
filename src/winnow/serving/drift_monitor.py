"""The live drift monitor: a process of its own that answers no requests.

Every ``[drift] refresh_s`` it compares the store's last ``[drift] window_days`` (events,
impressions and outcomes every worker and replica writes, so the window is merged across them
by construction) with the ACTIVE bundle's reference profile through
``winnow.evaluation.drift_report.compare_live`` -- the one implementation behind ``winnow drift
report``, ``GET /v1/admin/drift`` and the dashboard's Drift page -- and writes the result, with
the bounded history, to ``<home>/drift/live.json`` (winnow.evaluation.drift_shared). The serving
workers only read that file (winnow.serving.drift_reader): the seconds of CPU a comparison takes
are never spent in a process that answers requests.

Who runs it: ``winnow serve`` with ``[drift] monitor = "process"`` starts one per server as a
child (winnow.serving.drift_supervisor: niced, restarted with back-off, stopped with the server);
``winnow drift monitor`` runs one by hand (``monitor = "external"``, e.g. beside replicas). One
per home: the monitor holds the home's drift lock for its life; a second one waits
``LOCK_WAIT_S`` for it and then exits with ``EXIT_BUSY``.

Contract of ``Monitor.run``:
- a comparison starts when the shared result is missing, older than its ``interval_s`` (by its
  ``attempted_at``: ``refresh_s``, or the last comparison's CPU seconds / ``[drift] max_duty``
  when that is longer, so the monitor uses at most that share of a core whatever the traffic), for another bundle than ACTIVE (checked every ``ACTIVE_POLL_S``), or when
  a refresh was requested through ``<home>/drift/refresh.fifo`` (requests that arrive during a
  comparison are answered by one more comparison started after it);
- a failed comparison (store down, unreadable profile) is written too (state "error", the
  previous report kept), so readers see why and it is retried after ``refresh_s``; ACTIVE
  without a reference profile is written as state "no_profile", no ACTIVE as "no_bundle";
- it returns when ``parent_fd`` (the read end of a pipe whose write end only the parent holds)
  reports end-of-file: the parent died, also by SIGKILL, so no monitor outlives its server.
"""

from __future__ import annotations

import logging
import os
import select
import time
from pathlib import Path
from typing import Any

from winnow import bundle as bundles
from winnow.core.config import WinnowConfig
from winnow.core.errors import WinnowError
from winnow.data.store import Store
from winnow.evaluation.drift_report import compare_live
from winnow.evaluation.drift_shared import SharedResult

log = logging.getLogger(__name__)
LOCK_WAIT_S = 5.0  # a second monitor on one home waits this long for the lock, then exits EXIT_BUSY
ACTIVE_POLL_S = 5.0  # ACTIVE is re-read at least this often (a new bundle is compared at once)
EXIT_BUSY = 3  # another monitor holds the home's lock


class Monitor:
    """One home's live drift monitor (module docstring)."""

    def __init__(self, config: WinnowConfig, store: Store) -> None:
        self.config = config
        self.cfg = config.drift
        self.store = store
        self.shared = SharedResult(Path(config.home))
        self._profiles: dict[str, dict[str, Any] | None] = {}  # version -> reference (None: none stored)
        self.computed_here = 0

    def run(self, *, parent_fd: int | None = None, max_computations: int | None = None) -> int:
        """Hold the home's lock and compare until the parent is gone (``parent_fd`` at EOF) or
        ``max_computations`` comparisons ran; returns the exit status (0, or ``EXIT_BUSY`` when
        another monitor holds the home)."""
        with self.shared.lock(wait_s=LOCK_WAIT_S) as held:
            if not held:
                log.warning("another drift monitor runs for home %s: exiting", self.config.home)
                return EXIT_BUSY
            rfd, wfd = self.shared.open_wakeup()
            try:
                return self._loop(rfd, parent_fd, max_computations)
            finally:
                os.close(rfd)
                os.close(wfd)

    def _loop(self, wake_fd: int, parent_fd: int | None, max_computations: int | None) -> int:
        requested = False
        log.info("drift monitor %d: home %s, refresh every %.0f s", os.getpid(), self.config.home, self.cfg.refresh_s)
        while max_computations is None or self.computed_here < max_computations:
            wait_s = self.step(force=requested)
            requested = False
            fds = [wake_fd] + ([parent_fd] if parent_fd is not None else [])
            ready, _, _ = select.select(fds, [], [], min(wait_s, ACTIVE_POLL_S))
            if parent_fd is not None and parent_fd in ready and not os.read(parent_fd, 64):
                log.info("drift monitor %d: the parent process is gone, exiting", os.getpid())
                return 0
            if wake_fd in ready:
                _drain(wake_fd)
                requested = True
        return 0

    def step(self, *, force: bool = False) -> float:
        """Compare now if due (or ``force``); the seconds until the next comparison is due."""
        version = bundles.active_version(self.config.home)
        doc = self.shared.read()
        if doc is not None and doc.get("bundle") == version and not force:
            age = time.time() - float(doc.get("attempted_at") or 0.0)
            due = self.interval(doc)
            if age < due:
                return due - age
        new = self.compute(version, doc)
        self.shared.write(new)
        self.computed_here += 1
        return float(new["interval_s"])

    def interval(self, doc: dict[str, Any]) -> float:
        """Seconds between scheduled comparisons after ``doc``: ``refresh_s``, stretched to the
        last comparison's CPU time / ``max_duty`` when that is longer."""
        return max(self.cfg.refresh_s, float(doc.get("compute_cpu_s") or 0.0) / self.cfg.max_duty)

    def _reference(self, version: str) -> dict[str, Any] | None:
        if version not in self._profiles:
            self._profiles = {version: bundles.load_profile(Path(bundles.bundles_dir(self.config.home)) / version)}
        return self._profiles[version]

    def compute(self, version: str | None, prev: dict[str, Any] | None) -> dict[str, Any]:
        """One comparison of ``version`` (ACTIVE) -> the next shared document (module docstring)."""
        keep = prev if prev is not None and prev.get("bundle") == version else None
        doc: dict[str, Any] = {"bundle": version, "state": "ok", "error": None,
                               "computed_at": keep and keep.get("computed_at"), "report": keep and keep.get("report"),
                               "history": list(prev.get("history") or []) if prev else [],
                               "computations": int(prev.get("computations") or 0) + 1 if prev else 1,
                               "computed_by": os.getpid(), "started_at": time.time()}
        t0, c0 = time.monotonic(), time.process_time()
        try:
            ref = self._reference(version) if version is not None else None
            if version is None:
                doc.update(state="no_bundle", error="no bundle is active: nothing to compare with")
            elif ref is None:
                doc.update(state="no_profile", error=f"bundle {version} has no reference profile (written "
                           "before drift profiles): train a new bundle")
            else:
                rep = compare_live(self.config, self.store, version, ref, until=int(time.time()) + 1)
                now = time.time()
                values = {f"{kind}:{r['name']}:{r['statistic']}": r["value"] for kind in ("data", "concept")
                          for r in rep[kind]}
                doc.update(computed_at=now, report=rep)
                doc["history"] = (doc["history"] + [{
                    "at": now, "bundle": version, "data_drift": rep["data_drift"],
                    "concept_drift": rep["concept_drift"], "live_events": rep["live"]["events"],
                    "values": values, "computation": doc["computations"], "by": doc["computed_by"]}])[-self.cfg.history:]
        except (WinnowError, OSError, ValueError) as exc:  # written, so readers see why; retried after refresh_s
            doc.update(state="error", error=f"{type(exc).__name__}: {exc}")
            log.warning("drift comparison failed: %s", doc["error"])
        doc.update(attempted_at=time.time(), compute_s=round(time.monotonic() - t0, 4),
                   compute_cpu_s=round(time.process_time() - c0, 4))
        doc["interval_s"] = round(self.interval(doc), 3)
        return doc


def _drain(fd: int) -> None:
    """Read every pending refresh request (one comparison answers them all)."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def run_monitor(config: WinnowConfig, *, parent_fd: int | None = None, nice: int = 0, idle: bool = False) -> int:
    """Open the home's store and run its monitor (``winnow drift monitor``); the exit status.
    ``nice``: added to this process's niceness first (the supervisor passes ``[drift] monitor_nice``);
    ``idle``: the SCHED_IDLE scheduling class too, where the platform has it (Linux; the
    supervisor passes ``[drift] monitor_idle``): this thread and the threads it starts run only
    on CPU nothing else wants. Both before any thread is started (Linux applies them per thread)."""
    from winnow.data.open_store import open_store

    if nice:
        os.nice(nice)
    if idle and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    if parent_fd is not None:
        os.set_blocking(parent_fd, False)
    store = open_store(config.store_url())
    try:
        return Monitor(config, store).run(parent_fd=parent_fd)
    finally:
        store.close()

"""Live drift monitoring in the service, off the request path.

One ``DriftMonitor`` thread per serving process (``[drift] monitor``), like the rollout follower,
and ONE computation per home per ``[drift] refresh_s``: the workers of a server share the home
and coordinate through ``<home>/drift/live.json`` and its lock (serving/drift_shared.py). When
the shared result is older than ``refresh_s`` (or for another bundle), the worker that gets the
lock computes the live window's profile FROM THE STORE (the last ``[drift] window_days`` before
now: events, impressions and outcomes every worker and replica writes, so the window is merged
across them by construction) and compares it with the serving bundle's reference profile
through ``winnow.evaluation.drift_report.compare_live`` -- the one implementation behind
``winnow drift report``, ``GET /v1/admin/drift`` and the dashboard's Drift page -- then writes
the result (with the bounded history) atomically; every other worker reads that file, so all
workers answer the same report and publish the same gauges. A worker that finds the lock taken
looks again after ``FOLLOW_S`` and meanwhile serves the last result it read. The computation
runs under ``swap.background_priority`` (requests get the GIL back within 0.5 ms); nothing is
added to ``Service.recommend``.

Published: ``snapshot()`` (the latest report, its time, who computed it and how many
computations the home has run, a short history of the flags and values, the last error) for
``GET /v1/admin/drift``, and Prometheus gauges ``winnow_drift_statistic{kind, feature,
statistic}`` (the latest value of every row), ``winnow_drift_detected{kind}`` (1 while that kind
is flagged) and ``winnow_drift_refreshed_timestamp_seconds``. A refresh that fails (store down,
unreadable profile) keeps the previous report and records the error (in the shared file too,
so the other workers do not retry it before ``refresh_s``); a bundle without a reference
profile (written before profiles existed) is reported as such, never as "no drift".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from winnow import bundle as bundles
from winnow.core.errors import WinnowError
from winnow.evaluation.drift_report import compare_live
from winnow.serving.drift_shared import SharedResult
from winnow.serving.swap import background_priority

if TYPE_CHECKING:
    from winnow.core.config import WinnowConfig
    from winnow.data.store import Store
    from winnow.serving.telemetry import Metrics

log = logging.getLogger(__name__)
JOIN_S = 5.0  # how long close() waits for a refresh in progress
FIRST_S = 5.0  # the first refresh waits this long (at most refresh_s): start-up and short-lived services first
FOLLOW_S = 1.0  # another worker holds the lock: look for its result again this soon (at most refresh_s)
FORCE_WAIT_S = 60.0  # the admin refresh waits this long for another worker's computation


class MonitoredService(Protocol):
    """What the monitor reads of the service (serving.service.Service is one)."""

    config: WinnowConfig
    store: Store
    metrics: Metrics

    @property
    def serving_version(self) -> str | None: ...


class DriftMonitor:
    """The service's drift monitor (module docstring)."""

    def __init__(self, service: MonitoredService) -> None:
        self.svc = service
        self.cfg = service.config.drift
        self.shared = SharedResult(Path(service.config.home))
        self.history: list[dict[str, Any]] = []
        self.report: dict[str, Any] | None = None
        self.computed_at: float | None = None
        self.computations = 0  # the home's, as last read from the shared result
        self.computed_by: int | None = None
        self.computed_here = 0  # comparisons this process ran
        self.state = "starting"  # starting | ok | no_bundle | no_profile | error
        self.error: str | None = None
        self.refreshes = 0
        self._next_s = self.cfg.refresh_s  # when the thread looks again (set by each refresh)
        self._profiles: dict[str, dict[str, Any] | None] = {}  # version -> reference (None: none stored)
        self._lock = threading.Lock()  # one refresh at a time (thread, admin route)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = JOIN_S) -> None:
        """Stop the thread and wait for it at most ``timeout`` seconds (a refresh in progress
        finishes its store read; the thread is a daemon, so a stuck read never blocks exit)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        delay = min(self.cfg.refresh_s, FIRST_S)
        while not self._stop.wait(delay):
            self.refresh()
            delay = self._next_s

    def _reference(self, version: str) -> dict[str, Any] | None:
        if version not in self._profiles:
            self._profiles = {version: bundles.load_profile(Path(bundles.bundles_dir(self.svc.config.home)) / version)}
        return self._profiles[version]

    def refresh(self, *, force: bool = False) -> dict[str, Any]:
        """Bring this worker up to date (module docstring): adopt the shared result when it is
        fresh, else compute it if this worker gets the lock. ``force`` (the admin route): a
        result attempted after this call began, computed here unless another worker just did,
        waiting at most ``FORCE_WAIT_S`` for the lock. Returns ``snapshot()``."""
        asked = time.time()
        with self._lock:
            version = self.svc.serving_version
            self._next_s = self.cfg.refresh_s
            try:
                if version is None:
                    self._set_state("no_bundle", "no bundle is serving: nothing to compare with")
                elif self._reference(version) is None:
                    self._set_state("no_profile", f"bundle {version} has no reference profile (written "
                                    "before drift profiles): train a new bundle")
                else:
                    self._shared_refresh(version, newer_than=asked if force else None)
            except (WinnowError, OSError, ValueError) as exc:  # keep the last report; try again next time
                self.state, self.error = "error", f"{type(exc).__name__}: {exc}"
                log.warning("drift refresh failed: %s", self.error)
            self.refreshes += 1
            return self.snapshot()

    def _fresh(self, doc: dict[str, Any] | None, version: str, newer_than: float | None) -> bool:
        if doc is None or doc.get("bundle") != version:
            return False
        at = float(doc.get("attempted_at") or 0.0)
        return at >= newer_than if newer_than is not None else time.time() - at < self.cfg.refresh_s

    def _shared_refresh(self, version: str, *, newer_than: float | None) -> None:
        doc = self.shared.read()
        if not self._fresh(doc, version, newer_than):
            with self.shared.lock(wait_s=FORCE_WAIT_S if newer_than is not None else 0.0) as held:
                if held:
                    doc = self.shared.read()  # another worker may have written it meanwhile
                    if not self._fresh(doc, version, newer_than):
                        doc = self._compute(version, doc)
                        self.computed_here += 1
                        self.shared.write(doc)
                else:  # another worker is computing: serve what it last wrote, look again soon
                    self._next_s = min(self.cfg.refresh_s, FOLLOW_S)
        if doc is not None and doc.get("bundle") == version:
            self._adopt(doc)
            if self._next_s == self.cfg.refresh_s:  # wake when the shared result turns stale
                due = float(doc["attempted_at"]) + self.cfg.refresh_s - time.time()
                self._next_s = min(self.cfg.refresh_s, max(due, FOLLOW_S))

    def _compute(self, version: str, prev: dict[str, Any] | None) -> dict[str, Any]:
        """One comparison (under the home's lock) -> the next shared document."""
        keep = prev if prev is not None and prev.get("bundle") == version else None
        doc: dict[str, Any] = {"bundle": version, "state": "ok", "error": None,
                               "computed_at": keep and keep.get("computed_at"), "report": keep and keep.get("report"),
                               "history": list(prev.get("history") or []) if prev else [],
                               "computations": int(prev.get("computations") or 0) + 1 if prev else 1,
                               "computed_by": os.getpid()}
        t0 = time.monotonic()
        try:
            with background_priority():
                rep = compare_live(self.svc.config, self.svc.store, version, self._reference(version) or {},
                                   until=int(time.time()) + 1)
        except (WinnowError, OSError, ValueError) as exc:  # shared, so the others do not retry at once
            doc.update(state="error", error=f"{type(exc).__name__}: {exc}")
            log.warning("drift refresh failed: %s", doc["error"])
        else:
            now = time.time()
            values = {f"{kind}:{r['name']}:{r['statistic']}": r["value"] for kind in ("data", "concept")
                      for r in rep[kind]}
            doc.update(computed_at=now, report=rep)
            doc["history"] = (doc["history"] + [{
                "at": now, "bundle": version, "data_drift": rep["data_drift"], "concept_drift": rep["concept_drift"],
                "live_events": rep["live"]["events"], "values": values, "computation": doc["computations"],
                "by": doc["computed_by"]}])[-self.cfg.history:]
        doc.update(attempted_at=time.time(), compute_s=round(time.monotonic() - t0, 4))
        return doc

    def _set_state(self, state: str, why: str) -> None:
        self.state, self.error, self.report = state, why, None
        self.svc.metrics.drift_statistic.clear()
        self.svc.metrics.drift_detected.clear()

    def _adopt(self, doc: dict[str, Any]) -> None:
        """Serve the shared document: state, report, history, and the gauges."""
        self.state, self.error = str(doc["state"]), doc.get("error")
        self.history = list(doc.get("history") or [])[-self.cfg.history:]
        self.computations, self.computed_by = int(doc.get("computations") or 0), doc.get("computed_by")
        rep = doc.get("report")
        if rep is None or (self.report is not None and doc.get("computed_at") == self.computed_at):
            return  # nothing new to publish
        self.report, self.computed_at = rep, doc.get("computed_at")
        m = self.svc.metrics
        m.drift_statistic.clear()  # a row gone since the last refresh must not linger
        for kind in ("data", "concept"):
            m.drift_detected.labels(kind).set(1.0 if rep[f"{kind}_drift"] else 0.0)
            for r in rep[kind]:
                m.drift_statistic.labels(kind, r["name"], r["statistic"]).set(r["value"])
        m.drift_refreshed.set(float(self.computed_at or 0.0))

    def snapshot(self) -> dict[str, Any]:
        """{"enabled", "state", "error", "refresh_s", "window_days", "computed_at", "refreshes"
        (this worker's), "computations" (the home's), "computed_by" (pid), "computed_here" (comparisons
        this worker ran), "report"
        (compare_live's, or None), "history" (oldest first: at, bundle, flags, values,
        computation, by)}."""
        return {"enabled": True, "state": self.state, "error": self.error, "refresh_s": self.cfg.refresh_s,
                "window_days": self.cfg.window_days, "computed_at": self.computed_at,
                "refreshes": self.refreshes, "computations": self.computations, "computed_by": self.computed_by,
                "computed_here": self.computed_here,
                "report": self.report, "history": list(self.history)}

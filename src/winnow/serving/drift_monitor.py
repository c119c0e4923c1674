"""Live drift monitoring in the service, off the request path.

One ``DriftMonitor`` thread per serving process (``[drift] monitor``), like the rollout follower:
every ``[drift] refresh_s`` it computes the live window's profile FROM THE STORE (the last
``[drift] window_days`` before now: events, impressions and outcomes every worker and replica
writes, so the window is merged across them by construction, and what a process holds is
bounded: one window's columnar read while it computes, the last ``[drift] history`` summaries
after) and compares it with the serving bundle's reference profile through
``winnow.evaluation.drift_report.compare_live`` -- the one implementation behind ``winnow drift
report``, ``GET /v1/admin/drift`` and the dashboard's Drift page. The computation runs under
``swap.background_priority`` (requests get the GIL back within 0.5 ms); nothing is added to
``Service.recommend``.

Published: ``snapshot()`` (the latest report, its time, a short history of the flags and values,
the last error) for ``GET /v1/admin/drift``, and Prometheus gauges
``winnow_drift_statistic{kind, feature, statistic}`` (the latest value of every row),
``winnow_drift_detected{kind}`` (1 while that kind is flagged) and
``winnow_drift_refreshed_timestamp_seconds``. A refresh that fails (store down, unreadable
profile) keeps the previous report and records the error; a bundle without a reference profile
(written before profiles existed) is reported as such, never as "no drift".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from winnow import bundle as bundles
from winnow.core.errors import WinnowError
from winnow.evaluation.drift_report import compare_live
from winnow.serving.swap import background_priority

if TYPE_CHECKING:
    from winnow.core.config import WinnowConfig
    from winnow.data.store import Store
    from winnow.serving.telemetry import Metrics

log = logging.getLogger(__name__)
JOIN_S = 5.0  # how long close() waits for a refresh in progress
FIRST_S = 5.0  # the first refresh waits this long (at most refresh_s): start-up and short-lived services first


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
        self.history: deque[dict[str, Any]] = deque(maxlen=self.cfg.history)
        self.report: dict[str, Any] | None = None
        self.computed_at: float | None = None
        self.state = "starting"  # starting | ok | no_bundle | no_profile | error
        self.error: str | None = None
        self.refreshes = 0
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
            delay = self.cfg.refresh_s

    def _reference(self, version: str) -> dict[str, Any] | None:
        if version not in self._profiles:
            self._profiles = {version: bundles.load_profile(Path(bundles.bundles_dir(self.svc.config.home)) / version)}
        return self._profiles[version]

    def refresh(self) -> dict[str, Any]:
        """Recompute now (module docstring); returns ``snapshot()``."""
        with self._lock:
            version = self.svc.serving_version
            try:
                if version is None:
                    self._set_state("no_bundle", "no bundle is serving: nothing to compare with")
                else:
                    ref = self._reference(version)
                    if ref is None:
                        self._set_state("no_profile", f"bundle {version} has no reference profile (written "
                                        "before drift profiles): train a new bundle")
                    else:
                        with background_priority():
                            rep = compare_live(self.svc.config, self.svc.store, version, ref,
                                               until=int(time.time()) + 1)
                        self._publish(rep)
            except (WinnowError, OSError, ValueError) as exc:  # keep the last report; try again next time
                self.state, self.error = "error", f"{type(exc).__name__}: {exc}"
                log.warning("drift refresh failed: %s", self.error)
            self.refreshes += 1
            return self.snapshot()

    def _set_state(self, state: str, why: str) -> None:
        self.state, self.error, self.report = state, why, None
        self.svc.metrics.drift_statistic.clear()
        self.svc.metrics.drift_detected.clear()

    def _publish(self, rep: dict[str, Any]) -> None:
        now = time.time()
        self.report, self.computed_at, self.state, self.error = rep, now, "ok", None
        m = self.svc.metrics
        m.drift_statistic.clear()  # a row gone since the last refresh must not linger
        values: dict[str, float] = {}
        for kind in ("data", "concept"):
            m.drift_detected.labels(kind).set(1.0 if rep[f"{kind}_drift"] else 0.0)
            for r in rep[kind]:
                m.drift_statistic.labels(kind, r["name"], r["statistic"]).set(r["value"])
                values[f"{kind}:{r['name']}:{r['statistic']}"] = r["value"]
        m.drift_refreshed.set(now)
        self.history.append({"at": now, "bundle": rep["bundle"], "data_drift": rep["data_drift"],
                             "concept_drift": rep["concept_drift"], "live_events": rep["live"]["events"],
                             "values": values})

    def snapshot(self) -> dict[str, Any]:
        """{"enabled", "state", "error", "refresh_s", "window_days", "computed_at", "refreshes",
        "report" (compare_live's, or None), "history" (oldest first: at, bundle, flags, values)}."""
        return {"enabled": True, "state": self.state, "error": self.error, "refresh_s": self.cfg.refresh_s,
                "window_days": self.cfg.window_days, "computed_at": self.computed_at,
                "refreshes": self.refreshes, "report": self.report, "history": list(self.history)}

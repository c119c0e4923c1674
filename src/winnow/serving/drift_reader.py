"""The serving workers' side of live drift monitoring: read the monitor's result, never compute it.

The comparison runs in the home's drift monitor, a process that answers no requests
(serving/drift_monitor.py, started by ``winnow serve`` or run as ``winnow drift monitor``); it
writes ``<home>/drift/live.json`` (evaluation/drift_shared.py). Every worker of every server on
that home runs one ``DriftReader``: a thread that looks at the file every ``FOLLOW_S`` (a stat;
it is parsed only when it changed) and publishes what it holds, so all workers answer the same
report and the same gauges. Nothing is added to ``Service.recommend``, and no worker ever runs
``compare_live``: ``computed_here`` stays 0 and ``computed_by`` is the monitor's pid.

Published: ``snapshot()`` (the latest report, its time, the monitor's pid, how many comparisons
the home has run, a short history of the flags and values, the last error) for ``GET
/v1/admin/drift``, and Prometheus gauges ``winnow_drift_statistic{kind, feature, statistic}``
(the latest value of every row), ``winnow_drift_detected{kind}`` (1 while that kind is flagged)
and ``winnow_drift_refreshed_timestamp_seconds``. A result for another bundle than the one this
worker serves (an activation in flight) is not served: the state says so. A bundle without a
reference profile (written before profiles existed) is reported as such, never as "no drift".

``refresh(force=True)`` (``POST /v1/admin/drift/refresh``) wakes the monitor through the home's
FIFO and waits at most ``FORCE_WAIT_S`` for a comparison that STARTED after the call (so it
read everything written before it); with no monitor
running (none started, or one being restarted for longer than ``MONITOR_WAIT_S``) it raises
``NoMonitor`` naming what to start.
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
from winnow.evaluation.drift_shared import SharedResult

if TYPE_CHECKING:
    from winnow.core.config import WinnowConfig
    from winnow.data.store import Store
    from winnow.serving.telemetry import Metrics

log = logging.getLogger(__name__)
FOLLOW_S = 1.0  # the shared file is looked at this often (at most refresh_s)
FORCE_WAIT_S = 60.0  # the admin refresh waits this long for the monitor's answer
MONITOR_WAIT_S = 10.0  # ... and this long for a monitor to be running (a restart's back-off)
POLL_S = 0.05  # pacing of those waits (each bounded by its deadline)
JOIN_S = 5.0


def logs_candidates(request_id: str, rate: float) -> bool:
    """Whether this request logs its candidate set (``[drift] candidate_sample``): the request id
    (uuid4 hex, uniform) read as a number in [0, 1) below ``rate``; hex digits 8-15, so the
    choice is independent of the shadow's sample (digits 0-7)."""
    return rate > 0 and int(request_id[8:16], 16) / 2.0**32 < rate


class NoMonitor(WinnowError):
    """No drift monitor is running for this home, or it did not answer in time."""


class MonitoredService(Protocol):
    """What the reader reads of the service (serving.service.Service is one)."""

    config: WinnowConfig
    store: Store
    metrics: Metrics

    @property
    def serving_version(self) -> str | None: ...


class DriftReader:
    """A worker's view of the home's live drift result (module docstring)."""

    def __init__(self, service: MonitoredService) -> None:
        self.svc = service
        self.cfg = service.config.drift
        self.shared = SharedResult(Path(service.config.home))
        self.history: list[dict[str, Any]] = []
        self.report: dict[str, Any] | None = None
        self.computed_at: float | None = None
        self.attempted_at: float | None = None
        self.computations = 0
        self.computed_by: int | None = None
        self.cost: dict[str, Any] = {}  # the last comparison's compute_s, compute_cpu_s, interval_s
        self.state = "starting"  # starting | ok | error | no_bundle | no_profile | other_bundle
        self.error: str | None = None
        self.refreshes = 0
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last parsed
        self._profiles: dict[str, bool] = {}  # version -> has a reference profile
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = JOIN_S) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        self.refresh()
        while not self._stop.wait(min(self.cfg.refresh_s, FOLLOW_S)):
            self.refresh()

    def _has_profile(self, version: str) -> bool:
        if version not in self._profiles:
            path = Path(bundles.bundles_dir(self.svc.config.home)) / version
            self._profiles = {version: bundles.load_profile(path) is not None}
        return self._profiles[version]

    def refresh(self, *, force: bool = False) -> dict[str, Any]:
        """Adopt the shared result if it changed; ``force``: first wake the monitor and wait for
        a result attempted after this call (module docstring). Returns ``snapshot()``."""
        asked = time.time()
        version = self.svc.serving_version
        with self._lock:
            self.refreshes += 1
            try:
                if version is None:
                    return self._local("no_bundle", "no bundle is serving: nothing to compare with")
                if not self._has_profile(version):
                    return self._local("no_profile", f"bundle {version} has no reference profile (written "
                                       "before drift profiles): train a new bundle")
            except (WinnowError, OSError, ValueError) as exc:
                return self._local("error", f"{type(exc).__name__}: {exc}")
        if force:
            self._wake_and_wait(asked)
        with self._lock:
            self._follow(version)
            return self.snapshot()

    def _wake_and_wait(self, asked: float) -> None:
        end = time.monotonic() + MONITOR_WAIT_S
        while not self.shared.request_refresh():
            if time.monotonic() >= end:
                raise NoMonitor(
                    f"no drift monitor is running for home {self.svc.config.home}: with [drift] monitor = "
                    f'"{self.cfg.monitor}" ' + ("`winnow serve` starts one (a server started another way "
                                                "has none)" if self.cfg.monitor == "process" else
                                                "run `winnow drift monitor` beside the server"))
            time.sleep(POLL_S)
        end = time.monotonic() + FORCE_WAIT_S
        while time.monotonic() < end:
            doc = self.shared.read()
            if doc is not None and float(doc.get("started_at") or 0.0) >= asked:
                return
            time.sleep(POLL_S)
        raise NoMonitor(f"the drift monitor of home {self.svc.config.home} did not answer within "
                        f"{FORCE_WAIT_S:.0f} s")

    def _follow(self, version: str) -> None:
        try:
            st = os.stat(self.shared.path)
        except FileNotFoundError:
            self.state, self.error = "starting", self._no_result()
            return
        if self._seen == (st.st_mtime_ns, st.st_size) and self.state != "other_bundle":
            return
        doc = self.shared.read()
        self._seen = (st.st_mtime_ns, st.st_size)
        if doc is None:
            self.state, self.error = "starting", self._no_result()
            return
        if doc.get("bundle") != version:
            self.state = "other_bundle"
            self.error = (f"the monitor's last result is for bundle {doc.get('bundle')}, this worker serves "
                          f"{version}: waiting for its next comparison")
            self._seen = None  # look again next time
            return
        self._adopt(doc)

    def _no_result(self) -> str:
        return ("waiting for the drift monitor's first result" if self.shared.monitor_running() else
                f"no drift monitor is running for this home ([drift] monitor = \"{self.cfg.monitor}\")")

    def _local(self, state: str, why: str) -> dict[str, Any]:
        """A state this worker knows without the monitor (no bundle, no profile)."""
        if self.state != state:
            self.svc.metrics.drift_statistic.clear()
            self.svc.metrics.drift_detected.clear()
        self.state, self.error, self.report = state, why, None
        self._seen = None  # the shared file is adopted again once this clears
        return self.snapshot()

    def _adopt(self, doc: dict[str, Any]) -> None:
        """Serve the shared document: state, report, history, and the gauges."""
        self.state, self.error = str(doc["state"]), doc.get("error")
        self.history = list(doc.get("history") or [])[-self.cfg.history:]
        self.computations, self.computed_by = int(doc.get("computations") or 0), doc.get("computed_by")
        self.cost = {k: doc.get(k) for k in ("compute_s", "compute_cpu_s", "interval_s")}
        self.attempted_at = doc.get("attempted_at")
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
        (this worker's reads), "computations" (the home's), "computed_by" (the monitor's pid),
        "compute_s" / "compute_cpu_s" (the last comparison's wall / CPU seconds), "interval_s"
        (seconds to the next scheduled one: refresh_s, or longer under ``max_duty``),
        "computed_here" (comparisons this worker ran: always 0), "report" (compare_live's, or
        None), "history" (oldest first: at, bundle, flags, values, computation, by)}."""
        return {"enabled": True, "state": self.state, "error": self.error, "refresh_s": self.cfg.refresh_s,
                "window_days": self.cfg.window_days, "computed_at": self.computed_at,
                "refreshes": self.refreshes, "computations": self.computations, "computed_by": self.computed_by,
                "computed_here": 0, "report": self.report, "history": list(self.history),
                "compute_s": self.cost.get("compute_s"), "compute_cpu_s": self.cost.get("compute_cpu_s"),
                "interval_s": self.cost.get("interval_s")}

"""The drift trigger of ``winnow autopilot``: start a cycle early when ``winnow drift report``
(winnow.evaluation.drift_report: the ACTIVE bundle's reference profile against the store's last
``[drift] window_days``) raises the flag ``[lifecycle] drift_trigger`` names ("data",
"concept" or "any"; "off" never computes it).

Bounded cost: the report is computed at most every ``drift_check_s`` seconds, only when events
arrived after the last cycle's cut (else the live window is what that cycle already trained on),
and it reads one window of events and impressions (the live window's end is passed in, never
found by reading the whole log). A live window with fewer than ``drift_min_events`` events does
not trigger: too little traffic to judge. A report that cannot be computed (e.g. the ACTIVE bundle
predates profiles) does not trigger; ``last_error`` says why.

One computation per home: when the home's live drift monitor (winnow.serving.drift_monitor, run
by ``winnow serve`` or ``winnow drift monitor``) has a result that is fresh -- for the ACTIVE
bundle, computed within the last 2 x ``[drift] refresh_s`` (a running monitor always has one),
over a live window whose end is within 2 x ``refresh_s`` of ``until`` (the same window this
trigger would read, up to the monitor's period) -- the trigger uses that report instead of
computing its own; ``last["source"]`` and the reason's closing "[report: ...]" say which
("monitor" or "computed").
"""

from __future__ import annotations

import math
import time
from typing import Any

from winnow.bundle import active_version
from winnow.core.config import WinnowConfig
from winnow.core.errors import WinnowError
from winnow.data.store import Store
from winnow.evaluation.drift_report import drift_report
from winnow.evaluation.drift_shared import SharedResult


class DriftWatch:
    """Remembers when the drift report was last computed and what it said (``last``)."""

    def __init__(self, config: WinnowConfig) -> None:
        self.config = config
        self.checked_at = -math.inf
        self.last: dict[str, Any] | None = None
        self.last_error: str | None = None

    def check(self, store: Store, *, until: int, now: float) -> str | None:
        """The trigger's reason ("drift: ...", naming the kinds and the drifted statistics) when
        it fires now, else None. ``until``: the newest event's timestamp + 1 (the live window's end)."""
        lc = self.config.lifecycle
        if lc.drift_trigger == "off" or now - self.checked_at < lc.drift_check_s:
            return None
        self.checked_at = now
        rep, source = self.shared_report(until), "monitor"
        try:
            if rep is None:
                rep, source = drift_report(self.config, store, until=until), "computed"
        except WinnowError as exc:
            self.last, self.last_error = None, f"{type(exc).__name__}: {exc}"
            return None
        self.last_error = None
        kinds = [k for k in ("data", "concept") if rep[f"{k}_drift"] and lc.drift_trigger in (k, "any")]
        self.last = {"bundle": rep["bundle"], "live_events": rep["live"]["events"], "source": source,
                     "data_drift": rep["data_drift"], "concept_drift": rep["concept_drift"],
                     "drifted": {k: [r["name"] for r in rep[k] if r["drifted"]] for k in ("data", "concept")},
                     "concept_note": rep["concept_note"]}
        if not kinds or rep["live"]["events"] < lc.drift_min_events:
            return None
        rows = [f"{r['name']} {r['statistic']} {r['value']:.3f} > {r['threshold']}"
                for k in kinds for r in rep[k] if r["drifted"]]
        return (f"drift: {' and '.join(kinds)} drift against bundle {rep['bundle']} over "
                f"{rep['live']['events']:,} live events ({'; '.join(rows)}) [report: {source}]")

    def shared_report(self, until: int) -> dict[str, Any] | None:
        """The home's live monitor's report when it is fresh for this check (module docstring),
        else None."""
        doc = SharedResult(self.config.home).read()
        if doc is None or doc.get("state") != "ok" or not isinstance(doc.get("report"), dict):
            return None
        period = 2 * self.config.drift.refresh_s
        rep = doc["report"]
        try:
            fresh = time.time() - float(doc["computed_at"]) <= period
            same_window = abs(int(rep["live"]["window"][1]) - until) <= period
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        if not (fresh and same_window and doc.get("bundle") == active_version(self.config.home)):
            return None
        return rep

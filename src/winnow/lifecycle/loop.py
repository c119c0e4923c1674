"""The long-running ``winnow autopilot``: checks every ``[lifecycle] poll_s`` whether a cycle is
due and runs it (winnow.lifecycle.cycle.run_once), recording why (the cycle record's ``trigger``).

A cycle is due (``due``), in this order, when:

- no cycle ever ran ("first cycle");
- the newest one is unfinished: a killed one (``running``) resumes at once; a failed, resumable
  one after ``retry_backoff_s`` x 2^(attempts-1) since it failed (a cycle that failed
  ``max_attempts`` times is final, see cycle.py); while it backs off nothing else starts;
- with ``after_gate = "canary"``, nothing new starts while a rollout runs: its champion is about
  to change, and the hand-off could only be deferred;
- ``retrain_every_s`` passed since the newest cycle started, or since the last check that found
  nothing to do (``unchanged_at``: a schedule over a store with no new data costs one snapshot
  per ``retrain_every_s``, not one per poll) ("schedule");
- a trigger fired since the newest cycle's cut: at least ``min_new_events`` new events,
  ``min_new_items`` more catalog items, or drift (winnow.lifecycle.drift_trigger, with ``drift``).

A failed cycle is reported loudly (the reason, on ``say``) and the loop goes on. The process
trains on its own: it is never a serving process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from winnow.core.config import WinnowConfig
from winnow.core.errors import WinnowError
from winnow.data.store import Store
from winnow.lifecycle.cycle import run_once
from winnow.lifecycle.drift_trigger import DriftWatch
from winnow.cyclelog.record import load_records


def _unfinished(config: WinnowConfig, last: dict[str, Any], now: float) -> str | None:
    """"resume ..." for a resumable newest cycle whose back-off passed, "" while it backs off,
    None when the newest cycle is finished (or failed for good)."""
    if last["status"] == "running":
        return f"resume cycle {last['cycle']} (left running: the process stopped)"
    if last["status"] != "failed" or not last.get("resumable", True):
        return None
    attempts = int(last.get("attempts", 1))
    wait = config.lifecycle.retry_backoff_s * 2 ** (attempts - 1)
    if now - float(last.get("failed_at", 0)) < wait:
        return ""
    return (f"retry cycle {last['cycle']} (attempt {attempts + 1} of {config.lifecycle.max_attempts}, "
            f"after a {wait:.0f} s back-off)")


def due(config: WinnowConfig, store: Store, records: list[dict[str, Any]], now: float, *,
        drift: DriftWatch | None = None, unchanged_at: float = 0.0) -> str | None:
    """Why a cycle should start now, or None (module docstring)."""
    lc = config.lifecycle
    if not records:
        return "first cycle"
    last = records[-1]
    resume = _unfinished(config, last, now)
    if resume is not None:
        return resume or None
    if lc.after_gate == "canary":
        r = store.rollout()
        if r is not None and r.running:
            return None
    if now - max(float(last["started_at"]), unchanged_at) >= lc.retrain_every_s:
        since = "the last check found nothing to do" if unchanged_at > float(last["started_at"]) \
            else f"cycle {last['cycle']} started"
        return f"schedule: {lc.retrain_every_s:.0f} s since {since}"
    snap = last["stages"].get("snapshot", {}).get("outputs") or {}
    if "cut" not in snap:
        return "the last cycle has no snapshot"
    new = store.read_events(since=int(snap["cut"]))
    if len(new) >= lc.min_new_events:
        return f"trigger: {len(new):,} new events since the last cut (min_new_events = {lc.min_new_events:,})"
    new_items = store.counts()["items"] - int(snap.get("items", 0))
    if new_items >= lc.min_new_items:
        return f"trigger: {new_items:,} new catalog items (min_new_items = {lc.min_new_items:,})"
    if drift is not None and len(new):
        return drift.check(store, until=int(np.asarray(new.timestamp).max()) + 1, now=now)
    return None


def run_forever(config: WinnowConfig, store: Store, *, say: Callable[[str], None] = print,
                stop: threading.Event | None = None, max_cycles: int | None = None) -> int:
    """Run due cycles until ``stop`` is set (or ``max_cycles`` ran); returns the cycles run."""
    stop = stop or threading.Event()
    watch = DriftWatch(config)
    ran = 0
    unchanged_at = 0.0  # when run_once last found no new data (due: the schedule restarts there)
    while not stop.is_set() and (max_cycles is None or ran < max_cycles):
        try:  # a daemon: an empty store, a store outage or a failed cycle is reported, then retried
            now = time.time()
            reason = due(config, store, load_records(config.home), now, drift=watch, unchanged_at=unchanged_at)
            if reason is not None:
                say(f"autopilot: starting a cycle ({reason})")
                ran += 1
                if run_once(config, store, say=say, trigger=reason).status == "unchanged":
                    unchanged_at = now
        except WinnowError as exc:
            say(f"autopilot: cycle FAILED: {type(exc).__name__}: {exc}")
        stop.wait(config.lifecycle.poll_s)
    return ran

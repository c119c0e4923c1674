"""The long-running ``winnow autopilot``: checks every ``[lifecycle] poll_s`` whether a cycle is
due and runs it (winnow.lifecycle.cycle.run_once).

A cycle is due (``due``) when: no cycle ever ran; the newest one is unfinished (resume it);
``retrain_every_s`` passed since the newest cycle started; or a trigger fired since the newest
cycle's cut: at least ``min_new_events`` new events, or ``min_new_items`` more catalog items.
A failed cycle is reported loudly (the reason, on ``say``) and the loop goes on; the next due
check resumes it. The process trains on its own: it is never a serving process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from winnow.core.config import WinnowConfig
from winnow.core.errors import WinnowError
from winnow.data.store import Store
from winnow.lifecycle.cycle import run_once
from winnow.lifecycle.record import load_records


def due(config: WinnowConfig, store: Store, records: list[dict[str, Any]], now: float) -> str | None:
    """Why a cycle should start now, or None (module docstring)."""
    lc = config.lifecycle
    if not records:
        return "first cycle"
    last = records[-1]
    if last["status"] == "running" or (last["status"] == "failed" and last.get("resumable", True)):
        return f"resume cycle {last['cycle']}"
    if now - float(last["started_at"]) >= lc.retrain_every_s:
        return f"schedule: {lc.retrain_every_s:.0f} s since cycle {last['cycle']} started"
    snap = last["stages"].get("snapshot", {}).get("outputs") or {}
    if "cut" not in snap:
        return "the last cycle has no snapshot"
    new_events = len(store.read_events(since=int(snap["cut"])))
    if new_events >= lc.min_new_events:
        return f"trigger: {new_events:,} new events since the last cut (min_new_events = {lc.min_new_events:,})"
    new_items = store.counts()["items"] - int(snap.get("items", 0))
    if new_items >= lc.min_new_items:
        return f"trigger: {new_items:,} new catalog items (min_new_items = {lc.min_new_items:,})"
    return None


def run_forever(config: WinnowConfig, store: Store, *, say: Callable[[str], None] = print,
                stop: threading.Event | None = None, max_cycles: int | None = None) -> int:
    """Run due cycles until ``stop`` is set (or ``max_cycles`` ran); returns the cycles run."""
    stop = stop or threading.Event()
    ran = 0
    while not stop.is_set() and (max_cycles is None or ran < max_cycles):
        try:  # a daemon: an empty store, a store outage or a failed cycle is reported, then retried
            reason = due(config, store, load_records(config.home), time.time())
            if reason is not None:
                say(f"autopilot: starting a cycle ({reason})")
                ran += 1
                run_once(config, store, say=say)
        except WinnowError as exc:
            say(f"autopilot: cycle FAILED: {type(exc).__name__}: {exc}")
        stop.wait(config.lifecycle.poll_s)
    return ran

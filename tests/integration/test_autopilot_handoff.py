"""`winnow autopilot` handing a gated bundle to a canary rollout, and starting early on drift
(winnow.lifecycle.handoff, drift_trigger, loop) on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from serve_harness import trained_home
from test_autopilot import FAST, _cycle, _home, _manifest
from winnow.bundle import active_version
from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.lifecycle.cycle import run_once
from winnow.lifecycle.drift_trigger import DriftWatch
from winnow.lifecycle.loop import due
from winnow.cyclelog.record import load_records
from winnow.lifecycle.snapshot import take_snapshot
from winnow.rollout import control

CANARY = "[lifecycle]\nafter_gate = \"canary\"\ncanary_plan = [10, 100]\ncanary_min_exposed = 50\n"


def _append_recent(home: Path, cut: int, n: int = 400) -> None:
    """``n`` new events after ``cut`` (the last ``n`` pairs replayed an hour later)."""
    store = open_store(load_config(home).store_url())
    try:
        old = store.read_events()
        store.append_events(pd.DataFrame({
            "user_id": [old.user_ids[int(u)] for u in old.user[-n:]],
            "item_id": [old.item_ids[int(i)] for i in old.item[-n:]], "event_type": "click",
            "timestamp": [cut + 3600 + i for i in range(n)], "event_id": [f"new{i}" for i in range(n)]}))
    finally:
        store.close()


def test_a_gated_bundle_becomes_the_canary_challenger_and_active_does_not_move(tmp_path: Path) -> None:
    home, champion = _home(tmp_path, CANARY)
    out = _cycle(home)
    assert out.record["gate"]["passed"] is True
    challenger = out.record["gate"]["challenger"]
    hand = out.record["stages"]["handoff"]["outputs"]
    assert hand["action"].startswith("canary started") and hand["active_after"] == champion
    assert active_version(home) == champion
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        r = store.rollout()
        assert r is not None and r.running and r.state == "canary"
        assert (r.challenger, r.champion, r.plan) == (challenger, champion, (10, 100))
        assert r.params["min_exposed"] == 50 and r.params["step_s"] == cfg.rollout.step_s  # [rollout]'s
        assert hand["rollout"]["id"] == r.id and r.decisions[0].evidence["by"] == "autopilot"
        label = _manifest(home, challenger)["lifecycle"]
        assert label["gate"] == "passed" and label["served"] is False and label["rollout"] == {"id": r.id}
        # while the canary runs, the long-running loop starts nothing new, even on schedule
        assert due(cfg, store, load_records(home), 1e12) is None
    finally:
        store.close()

    # a cycle run anyway (--once, new data) defers its hand-off: no second rollout, ACTIVE unchanged
    _append_recent(home, out.record["stages"]["snapshot"]["outputs"]["cut"])
    out2 = _cycle(home)
    hand2 = out2.record["stages"]["handoff"]["outputs"]
    assert out2.record["gate"]["passed"] is True and out2.record["status"] == "done"
    assert hand2["action"].startswith(f"deferred: rollout {r.id}") and hand2["rollout"]["id"] == r.id
    assert active_version(home) == champion
    assert _manifest(home, hand2["version"])["lifecycle"]["rollout"] == {"deferred_by": r.id}
    store = open_store(cfg.store_url())
    try:
        latest = store.rollout()
        assert latest is not None and latest.id == r.id and latest.challenger == challenger
        control.operator(store, home, "abort")
        assert due(cfg, store, load_records(home), 1e12).startswith("schedule")  # free again
    finally:
        store.close()


def _window(log, rows: np.ndarray, shift: int, tag: str, items: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [log.user_ids[int(u)] for u in log.user[rows]],
        "item_id": items if items is not None else [log.item_ids[int(i)] for i in log.item[rows]],
        "event_type": [log.event_types[int(e)] for e in log.event_type[rows]],
        "timestamp": np.asarray(log.timestamp)[rows] + shift, "event_id": [f"{tag}{j}" for j in range(len(rows))]})


def test_an_injected_shift_starts_a_cycle_early_and_an_a_a_window_does_not(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # schedule and counts far away: only the drift trigger can fire
    toml = FAST + ("[lifecycle]\ndrift_trigger = \"data\"\ndrift_check_s = 1.0\ndrift_min_events = 1000\n"
                   "min_new_events = 1000000\nretrain_every_s = 1e9\n")
    cfg, _, info = trained_home(home, toml, n_users=200, n_items=100, n_events=60_000)
    store = open_store(cfg.store_url())
    try:
        # the last cycle (as the loop reads it): its snapshot is the store now; ACTIVE is `winnow
        # train`'s bundle, whose reference profile is the last window of the world (a stationary one)
        records = [{"cycle": "c-earlier", "status": "done", "started_at": 1000.0,
                    "stages": {"snapshot": {"outputs": take_snapshot(store)}}}]
        log = store.read_events()
        ts = np.asarray(log.timestamp)
        end, week = int(ts.max()) + 1, int(cfg.drift.window_days * 86400)
        last_week = np.flatnonzero(ts >= end - week)
        rng = np.random.default_rng(1)
        # A/A: a resample of the last window, a window later: same behaviour, another sample
        store.append_events(_window(log, np.sort(rng.choice(last_week, len(last_week))), week, "aa"))
        watch = DriftWatch(cfg)
        assert due(cfg, store, records, 1000.0, drift=watch) is None
        assert watch.last is not None and watch.last["data_drift"] is False and watch.last_error is None
        assert watch.last["live_events"] == len(last_week)
        assert due(cfg, store, records, 1000.5, drift=watch) is None and watch.checked_at == 1000.0  # bounded
        # the shift: the same traffic, a window later again, on other items (tastes moved)
        perm = rng.permutation(len(log.item_ids))
        moved = [log.item_ids[int(perm[i])] for i in log.item[last_week]]
        store.append_events(_window(log, last_week, 2 * week, "shift", items=moved))
        reason = due(cfg, store, records, 1002.0, drift=watch)
        assert reason is not None and reason.startswith("drift: data drift against bundle")
        assert "item_popularity psi" in reason and watch.last["drifted"]["data"]
        out = run_once(cfg, store, say=lambda _m: None, trigger=reason)
        assert out.status == "done" and load_records(home)[-1]["trigger"] == reason
    finally:
        store.close()
    assert info is not None and watch.last["bundle"] == info.version


def test_the_hand_off_starts_the_canary_on_the_clock_run_once_is_given(tmp_path: Path) -> None:
    """A simulation (bench/lifecycle.py) runs the cycle on its own clock: the rollout's start, its
    first step and its start decision carry that time, not the wall clock."""
    home, champion = _home(tmp_path, CANARY)
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        when = 1_600_000_123.0  # 2020: far from the wall clock
        out = run_once(cfg, store, say=lambda _m: None, now=when)
        assert out.record["stages"]["handoff"]["outputs"]["action"].startswith("canary started")
        r = store.rollout()
        assert r is not None and r.running and r.challenger == out.record["gate"]["challenger"]
        assert (r.started, r.step_started, r.decisions[0].at) == (int(when),) * 3
        assert active_version(home) == champion
    finally:
        store.close()

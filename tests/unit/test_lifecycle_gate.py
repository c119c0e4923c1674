"""The gate's arithmetic against hand-computed values, the snapshot hash, and the autopilot's
triggers (winnow.lifecycle)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from winnow.core.config import GateConfig, load_config
from winnow.data.open_store import open_store
from winnow.lifecycle.gate import decide
from winnow.lifecycle.loop import due
from winnow.lifecycle.snapshot import take_snapshot

GATE = GateConfig(k=10, min_ndcg=0.05, min_recall=0.1, min_coverage=0.2, max_relative_drop=0.05)


def _check(verdict: dict, name: str) -> dict:
    return next(c for c in verdict["checks"] if c["check"] == name)


def test_floors_and_relative_drops_are_hand_computed() -> None:
    challenger = {"ndcg": 0.0900, "recall": 0.2000, "coverage": 0.30}
    champion = {"ndcg": 0.1000, "recall": 0.2080, "coverage": 0.0}
    v = decide(challenger, champion, GATE)
    # ndcg: (0.1 - 0.09) / 0.1 = 0.10 > 0.05 -> fails; recall: (0.208 - 0.2) / 0.208 = 0.03846 <= 0.05
    assert _check(v, "ndcg@10 drop vs champion")["value"] == pytest.approx(0.10)
    assert _check(v, "ndcg@10 drop vs champion")["passed"] is False
    assert _check(v, "recall@10 drop vs champion")["value"] == pytest.approx(0.008 / 0.208)
    assert _check(v, "recall@10 drop vs champion")["passed"] is True
    cov = _check(v, "coverage@10 drop vs champion")  # champion 0: nothing to drop from
    assert cov["passed"] is True and cov["value"] is None
    assert all(_check(v, f"{m}@10 floor")["passed"] for m in ("ndcg", "recall", "coverage"))
    assert v["passed"] is False and v["reasons"] == ["ndcg@10 drop vs champion: 10.0% > 5.0% (champion 0.1000)"]


def test_a_floor_fails_on_its_own_and_nan_never_passes() -> None:
    v = decide({"ndcg": 0.049, "recall": float("nan"), "coverage": 0.2}, None, GATE)
    assert [c["check"] for c in v["checks"]] == ["ndcg@10 floor", "recall@10 floor", "coverage@10 floor"]
    assert [c["passed"] for c in v["checks"]] == [False, False, True]  # 0.2 >= 0.2 passes
    assert v["passed"] is False and v["reasons"][0] == "ndcg@10 floor: 0.0490 < 0.0500"
    assert math.isnan(v["checks"][1]["value"])


def test_an_improvement_passes_and_a_champion_that_saw_the_holdout_is_not_compared() -> None:
    better = decide({"ndcg": 0.12, "recall": 0.25, "coverage": 0.4},
                    {"ndcg": 0.10, "recall": 0.20, "coverage": 0.4}, GATE)
    assert better["passed"] is True
    assert _check(better, "ndcg@10 drop vs champion")["value"] == pytest.approx(-0.2)
    leaky = decide({"ndcg": 0.06, "recall": 0.12, "coverage": 0.3},
                   {"ndcg": 0.10, "recall": 0.20, "coverage": 0.4}, GATE, champion_saw_holdout=True)
    drops = [c for c in leaky["checks"] if "drop" in c["check"]]
    assert [c["applied"] for c in drops] == [False] * 3
    assert _check(leaky, "ndcg@10 drop vs champion")["value"] == pytest.approx(0.4)  # recorded anyway
    assert leaky["passed"] is True


def _events(ids: range, t0: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i % 5}" for i in ids], "item_id": [f"i{i % 7}" for i in ids],
                         "event_type": "click", "timestamp": [t0 + i for i in ids],
                         "event_id": [f"e{i}" for i in ids]})


def test_the_snapshot_hash_covers_the_events_below_the_cut_only(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, environ={})
    store = open_store(cfg.store_url())
    try:
        store.append_events(_events(range(50), 1_000_000))
        first = take_snapshot(store)
        assert first["cut"] == 1_000_050 and first["events"] == 50
        # events (and a new user) after the cut leave the snapshot at that cut unchanged
        later = _events(range(100, 110), 1_000_000).assign(user_id="u-new")
        store.append_events(later)
        assert take_snapshot(store, first["cut"]) == first
        # an event below the cut changes it
        store.append_events(_events(range(200, 201), 999_000))
        again = take_snapshot(store, first["cut"])
        assert again["events"] == 51 and again["events_sha256"] != first["events_sha256"]
        assert take_snapshot(store)["cut"] == 1_000_110
    finally:
        store.close()


def test_a_cycle_is_due_first_on_resume_on_schedule_or_on_a_trigger(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, overrides={"lifecycle": {"retrain_every_s": 1000, "min_new_events": 20,
                                                         "min_new_items": 3}}, environ={})
    store = open_store(cfg.store_url())
    try:
        store.append_events(_events(range(50), 1_000_000))
        snap = take_snapshot(store)
        done = {"cycle": "c1", "status": "done", "started_at": 5000, "stages": {"snapshot": {"outputs": snap}}}
        assert due(cfg, store, [], 5000) == "first cycle"
        assert due(cfg, store, [{**done, "status": "running"}], 5000).startswith("resume")
        assert due(cfg, store, [{**done, "status": "failed", "resumable": False}], 5100) is None
        assert due(cfg, store, [done], 5999) is None
        assert due(cfg, store, [done], 6000).startswith("schedule")
        # the schedule found nothing new at 6000: the next schedule check is 1000 s later, not every poll
        assert due(cfg, store, [done], 6500, unchanged_at=6000) is None
        assert due(cfg, store, [done], 7000, unchanged_at=6000) == "schedule: 1000 s since the last check found nothing to do"
        store.append_events(_events(range(100, 119), 1_000_000))  # 19 new events: below 20
        assert due(cfg, store, [done], 5100) is None
        store.append_events(_events(range(200, 201), 1_000_000))
        assert due(cfg, store, [done], 5100).startswith("trigger: 20 new events")
        items = pd.DataFrame({"item_id": ["n1", "n2", "n3"], "title": ["a", "b", "c"]})
        store.upsert_items(items)
        later = {**done, "stages": {"snapshot": {"outputs": take_snapshot(store)}}}
        assert due(cfg, store, [later], 5100) is None  # the snapshot saw them
        store.upsert_items(pd.DataFrame({"item_id": ["n4", "n5", "n6"], "title": ["d", "e", "f"]}))
        assert due(cfg, store, [later], 5100).startswith("trigger: 3 new catalog items")
    finally:
        store.close()


def test_the_loop_reports_a_failing_cycle_and_keeps_running(tmp_path) -> None:
    """An empty store (or a store outage) fails the cycle it was due to start; the daemon says
    so and polls again instead of dying with a traceback."""
    import threading

    from winnow.core.config import load_config
    from winnow.data.open_store import open_store
    from winnow.lifecycle.loop import run_forever

    cfg = load_config(tmp_path, overrides={"lifecycle": {"poll_s": 0.01}})
    store = open_store(cfg.store_url())
    stop, said = threading.Event(), []

    def say(msg: str) -> None:
        said.append(msg)
        if sum("FAILED" in m for m in said) >= 2:  # failed, polled again, failed again
            stop.set()

    try:
        run_forever(cfg, store, say=say, stop=stop)
    finally:
        store.close()
    assert sum("FAILED" in m for m in said) == 2, said


def test_the_loop_does_not_snapshot_every_poll_once_the_schedule_found_nothing_new(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """After a scheduled check that found no new data, later polls wait for the next schedule
    (each would take an O(events) snapshot to find nothing again)."""
    import threading

    from winnow.lifecycle import loop
    from winnow.lifecycle.cycle import CycleOutcome

    cfg = load_config(tmp_path, overrides={"lifecycle": {"retrain_every_s": 3600, "poll_s": 0.001}}, environ={})
    store = open_store(cfg.store_url())
    store.append_events(_events(range(50), 1_000_000))
    done = {"cycle": "c1", "status": "done", "started_at": 1.0,  # long ago: the schedule is due
            "stages": {"snapshot": {"outputs": take_snapshot(store)}}}
    stop, polls, runs = threading.Event(), [], []

    def records(home: object) -> list[dict]:
        polls.append(1)
        if len(polls) >= 20:
            stop.set()
        return [done]

    def run_once(config: object, st: object, **kw: object) -> CycleOutcome:
        runs.append(kw["trigger"])
        return CycleOutcome("unchanged", None, "nothing to do", None)

    monkeypatch.setattr(loop, "load_records", records)
    monkeypatch.setattr(loop, "run_once", run_once)
    try:
        loop.run_forever(cfg, store, say=lambda m: None, stop=stop)
    finally:
        store.close()
    assert len(polls) >= 20 and len(runs) == 1 and runs[0].startswith("schedule"), runs

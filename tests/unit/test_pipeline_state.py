"""Online user state over a real embedded store: lazy rebuild, in-place updates, LRU."""

from __future__ import annotations

import pandas as pd

from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.serving.state import OnlineState


def events(rows):
    return pd.DataFrame([{"user_id": u, "item_id": i, "event_type": t, "value": float("nan"), "timestamp": ts,
                          "event_id": None, "context": None} for u, i, t, ts in rows])


def test_state_rebuilds_from_store_and_applies_new_events(tmp_path):
    cfg = load_config(tmp_path)
    store = open_store(cfg.store_url())
    try:
        store.append_events(events([("u1", "a", "view", 10), ("u1", "b", "purchase", 20), ("u2", "a", "view", 5)]))
        state = OnlineState(store, cfg.events, history=10, capacity=1)
        rec = state.get("u1")
        assert [r[0] for r in rec.recent] == ["b", "a"]  # newest first
        assert rec.purchased == {"b"} and rec.event_count == 2
        assert rec.recent[0][2] == cfg.events.weights["purchase"]
        new = events([("u1", "c", "purchase", 30)])
        store.append_events(new)
        state.apply(new)
        assert state.get("u1").purchased == {"b", "c"} and state.get("u1").revision > rec.revision - 1
        assert state.get("u1").newest_timestamp == 30
        assert state.get("nobody") is None
        state.get("u2")  # capacity 1: u1 is evicted ...
        assert len(state) == 1
        again = state.get("u1")  # ... and rebuilt from the store with the applied event
        assert [r[0] for r in again.recent] == ["c", "b", "a"] and again.purchased == {"b", "c"}
    finally:
        store.close()


def test_shared_state_sees_events_written_by_another_process(tmp_path):
    cfg = load_config(tmp_path)
    store = open_store(cfg.store_url())
    other = open_store(cfg.store_url())  # stands in for a second worker process
    try:
        store.append_events(events([("u1", "a", "view", 10)]))
        mine = OnlineState(store, cfg.events, shared=True)
        assert mine.get("u1").purchased == set()
        other.append_events(events([("u1", "a", "purchase", 20)]))  # never applied to `mine`
        assert mine.get("u1").purchased == {"a"}
        unshared = OnlineState(store, cfg.events)
        unshared.get("u1")
        other.append_events(events([("u1", "b", "purchase", 30)]))
        assert unshared.get("u1").purchased == {"a"}  # single-process mode trusts its own apply()
    finally:
        store.close()
        other.close()


def test_purchases_older_than_the_recent_window_are_kept(tmp_path):
    cfg = load_config(tmp_path)
    store = open_store(cfg.store_url())
    try:
        rows = [("u1", "old", "purchase", 1)] + [("u1", f"i{t}", "view", 10 + t) for t in range(30)]
        store.append_events(events(rows))
        rec = OnlineState(store, cfg.events, history=10).get("u1")
        assert len(rec.recent) == 10 and "old" not in [r[0] for r in rec.recent]
        assert rec.purchased == {"old"} and rec.event_count == 31
    finally:
        store.close()


def test_a_load_between_a_store_write_and_its_apply_is_not_kept(tmp_path):
    """One process (no other writer): a request rebuilds a user's record after an ingest wrote
    its batch to the store but before it applied it. The record answers with the batch; keeping
    it would count the batch twice once ``apply`` adds it (``begin`` announces the write)."""
    cfg = load_config(tmp_path)
    store = open_store(cfg.store_url())
    try:
        store.append_events(events([("u1", "a", "view", 10)]))
        state = OnlineState(store, cfg.events, history=10)
        batch = events([("u1", "late", "purchase", 20)])
        state.begin(["u1"])
        store.append_events(batch)
        during = state.get("u1")
        assert during.event_count == 2 and len(state) == 0  # answered, not kept
        state.apply(batch)
        rec = state.get("u1")
        assert rec.event_count == 2 and [r[0] for r in rec.recent] == ["late", "a"], rec
        state.begin(["u1"])
        state.cancel(["u1"])  # a write that failed: loads are kept again
        state.forget("u1")
        state.get("u1")
        assert len(state) == 1
    finally:
        store.close()

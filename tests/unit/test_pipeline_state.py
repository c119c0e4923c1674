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
        assert rec.purchased == {"b"} and rec.event_count == 2 and rec.online_events == 0
        assert rec.recent[0][2] == cfg.events.weights["purchase"]
        new = events([("u1", "c", "purchase", 30)])
        store.append_events(new)
        state.apply(new)
        assert state.get("u1").purchased == {"b", "c"} and state.get("u1").online_events == 1
        assert state.get("nobody") is None
        state.get("u2")  # capacity 1: u1 is evicted ...
        assert len(state) == 1
        again = state.get("u1")  # ... and rebuilt from the store with the applied event
        assert [r[0] for r in again.recent] == ["c", "b", "a"] and again.purchased == {"b", "c"}
    finally:
        store.close()

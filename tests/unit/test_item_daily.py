"""Store.item_daily: the SQLite store's reads of per-day event and impression aggregates kept
at write time equal the contract's reference scan, including retried slates,
negative days, a store reopened, and a store whose aggregates are backfilled on open."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from winnow.data.sqlite_store import SQLiteStore
from winnow.data.store import Store

DAY = 86_400


def _fill(store: SQLiteStore, rng: np.random.Generator, t0: int) -> None:
    n = 3000
    store.append_events(pd.DataFrame({
        "user_id": [f"u{u}" for u in rng.integers(0, 40, n)], "item_id": [f"i{i}" for i in rng.integers(0, 15, n)],
        "event_type": rng.choice(["click", "view", "purchase"], n), "value": 1.0,
        "timestamp": t0 + rng.integers(-5 * DAY, 12 * DAY, n)}))
    slates = [{"request_id": f"r{k}", "user_id": f"u{k % 40}", "timestamp": int(t0 + rng.integers(-5 * DAY, 12 * DAY)),
               "model_version": "v", "surface": "home", "context": {},
               "items": [{"item_id": f"i{i}", "position": p, "score": 0.0, "sources": [], "propensity": 1.0}
                         for p, i in enumerate(rng.choice(15, 5, replace=False))]} for k in range(400)]
    for start in range(0, len(slates), 64):
        store.log_impressions(slates[start:start + 64])
    store.log_impressions(slates[:100])  # retried batch: request ids already stored count once


def _assert_equal_to_reference(store: SQLiteStore, first_day: int) -> int:
    compared = 0
    for item in [f"i{i}" for i in range(16)]:  # i15 never appears
        for days in (1, 7, 30):
            got = store.item_daily(item, first_day=first_day, days=days)
            want = Store.item_daily(store, item, first_day=first_day, days=days)
            assert got == want, (item, days)
            compared += sum(got["impressions"]) + sum(map(sum, got["events"].values()))
    return compared


def test_indexed_item_daily_equals_the_reference_scan(tmp_path) -> None:
    rng = np.random.default_rng(0)
    t0 = 10 * DAY + 3600  # days run negative too: day -2 holds events at -1.5 days
    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    _fill(store, rng, t0 - 12 * DAY)
    assert _assert_equal_to_reference(store, first_day=-3) > 1000  # not vacuous
    store.close()
    store = SQLiteStore(path)  # reopened: nothing counted twice
    assert _assert_equal_to_reference(store, first_day=-3) > 1000
    store.close()


def test_older_store_is_backfilled_on_open(tmp_path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    _fill(store, rng, 20 * DAY)
    store.close()
    con = sqlite3.connect(path)  # as a store written before the aggregates existed
    con.execute("DROP TABLE impression_item_days")
    con.execute("DROP TABLE event_item_days")
    con.execute("DELETE FROM meta WHERE key IN ('impression_item_days', 'event_item_days')")
    con.commit()
    con.close()
    store = SQLiteStore(path)
    assert _assert_equal_to_reference(store, first_day=14) > 1000
    store.close()


def test_counts_follow_writes_retries_and_erasure(tmp_path) -> None:
    rng = np.random.default_rng(2)
    store = SQLiteStore(tmp_path / "c.db")
    _fill(store, rng, 30 * DAY)
    con = store._reader()

    def truth() -> dict[str, int]:
        return {"events": con.execute("SELECT count(*) FROM events").fetchone()[0],
                "impressions": con.execute("SELECT count(*) FROM impressions").fetchone()[0]}

    got = store.counts()
    assert {k: got[k] for k in truth()} == truth() == {"events": 3000, "impressions": 400}
    store.delete_user("u3")
    got = store.counts()
    assert {k: got[k] for k in truth()} == truth() and got["events"] < 3000 and got["impressions"] < 400
    store.close()

"""The Store contract's ``item_daily`` (the dashboard's item timeline), run against every backend
in STORE_FACTORIES (SQLite and a real PostgreSQL server): the per-day aggregates each store keeps
in the transactions that write the rows must answer exactly what the contract's reference scan
(``Store.item_daily`` of the base class) computes from the logs -- after bulk (COPY) and
row-by-row appends, retried and repeated event ids and request ids, erasure, reopening, a
backfill of a store written before the aggregates existed, and two writers at once."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_store_contract import STORE_FACTORIES

from winnow.data.store import Store

DAY = 86_400
ITEMS = [f"i{i}" for i in range(15)] + ["7", "never"]  # "7": logged as the JSON number 7 in a slate


@pytest.fixture(params=sorted(STORE_FACTORIES))
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def opener(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return STORE_FACTORIES[backend](request, tmp_path)


def _events(rng: np.random.Generator, n: int, t0: int, *, ids: str | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({
        "user_id": [f"u{u}" for u in rng.integers(0, 30, n)], "item_id": [f"i{i}" for i in rng.integers(0, 15, n)],
        "event_type": rng.choice(["click", "view", "purchase"], n), "value": 1.0,
        "timestamp": t0 + rng.integers(-5 * DAY, 12 * DAY, n)})
    if ids is not None:  # the row-by-row path (event ids, a context with a request id)
        frame["event_id"] = [f"{ids}-{k}" for k in range(n)]
        frame["context"] = ['{"request_id": "r1"}'] * n
    return frame


def _slates(rng: np.random.Generator, n: int, t0: int, prefix: str = "r") -> list[dict]:
    out = []
    for k in range(n):
        shown: list = [f"i{i}" for i in rng.choice(15, 5, replace=False)]
        if k % 7 == 0:
            shown[-1] = 7  # a numeric id: item "7"
        out.append({"request_id": f"{prefix}{k}", "user_id": f"u{k % 30}",
                    "timestamp": int(t0 + rng.integers(-5 * DAY, 12 * DAY)), "model_version": "v",
                    "surface": "home", "context": {},
                    "items": [{"item_id": it, "position": p, "score": 0.0, "sources": [], "propensity": 1.0}
                              for p, it in enumerate(shown)]})
    return out


def _fill(store: Store, rng: np.random.Generator, t0: int) -> int:
    """Writes through every write path; returns how many of a half-retried keyed batch were new."""
    store.append_events(_events(rng, 2000, t0))                  # binary COPY path (PostgreSQL)
    store.import_all(events=_events(rng, 500, t0))
    keyed = _events(rng, 600, t0, ids="e")
    store.append_events(keyed)                                     # row-by-row path
    fresh = store.append_events(pd.concat([keyed.iloc[:100], _events(rng, 50, t0, ids="f")]))  # 100 retried
    slates = _slates(rng, 300, t0)
    for start in range(0, len(slates), 64):
        store.log_impressions(slates[start:start + 64])
    store.log_impressions(slates[:100])                            # a retried batch counts once
    more = _slates(rng, 20, t0, prefix="s")
    store.log_impressions(more + more[:5])                         # a request id repeated in one batch too
    return fresh


def _assert_reference(store: Store, first_day: int) -> int:
    """item_daily equals the reference scan for every item and window; returns what it counted."""
    counted = 0
    for item in ITEMS:
        for days in (1, 7, 30):
            got = store.item_daily(item, first_day=first_day, days=days)
            assert got == Store.item_daily(store, item, first_day=first_day, days=days), (item, days)
            counted += sum(got["impressions"]) + sum(map(sum, got["events"].values()))
    return counted


def test_item_daily_equals_the_reference_scan_through_writes_erasure_and_reopen(
        opener: Callable[[], Store]) -> None:
    store = opener()
    t0 = 3 * DAY + 3600  # the events span days -2 .. 14: negative days too
    try:
        assert _fill(store, np.random.default_rng(0), t0) == 50
        before = _assert_reference(store, first_day=-3)
        assert before > 3000  # not vacuous
        top = store.item_daily("i3", first_day=-3, days=30)
        for user in ("u4", "u11", "nobody"):  # erasure takes the user's events and slates back out
            store.delete_user(user)
        after = _assert_reference(store, first_day=-3)
        assert 0 < after < before
        assert store.counts()["impressions"] == len(store.read_impressions())
        assert store.counts()["events"] == len(store.read_events())
        assert store.item_daily("i3", first_day=-3, days=30) != top
    finally:
        store.close()
    store = opener()  # reopened: nothing counted twice, nothing backfilled again
    try:
        assert _assert_reference(store, first_day=-3) == after
    finally:
        store.close()


def _forget_aggregates(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Make the store look like one written before the per-day aggregates and row counts existed."""
    tables = ("event_item_days", "impression_item_days", "row_counts")
    if backend == "sqlite":
        con = sqlite3.connect(tmp_path / "winnow.db")
        for t in tables:
            con.execute(f"DROP TABLE {t}")
        con.execute("DELETE FROM meta WHERE key IN (?, ?, ?)", tables)
        con.commit()
        con.close()
        return
    import psycopg

    with psycopg.connect(request.getfixturevalue("postgres_url")) as con:
        con.execute("DROP TABLE event_item_days, impression_item_days, row_counts")
        con.execute("DELETE FROM winnow_meta WHERE key = ANY(%s)", (list(tables),))


def test_a_store_from_before_the_aggregates_is_backfilled_once(
        backend: str, opener: Callable[[], Store], request: pytest.FixtureRequest, tmp_path: Path) -> None:
    store = opener()
    _fill(store, np.random.default_rng(1), 20 * DAY)
    store.delete_user("u5")
    want = {item: Store.item_daily(store, item, first_day=14, days=30) for item in ITEMS}
    counts = store.counts()
    store.close()
    _forget_aggregates(backend, request, tmp_path)
    for _ in range(2):  # the first open backfills, the second must not count again
        store = opener()
        try:
            assert {item: store.item_daily(item, first_day=14, days=30) for item in ITEMS} == want
            assert sum(sum(want[i]["impressions"]) for i in ITEMS) > 1000
            assert store.counts() == counts and counts["events"] > 3000
        finally:
            store.close()
    store = opener()  # and writes after the backfill fold in as usual
    try:
        _fill(store, np.random.default_rng(2), 20 * DAY)  # new unkeyed events; ids and request ids retried
        assert _assert_reference(store, first_day=14) > 0
        got = store.counts()  # the unkeyed events were new (and the erased user's keyed ones)
        assert got["events"] == len(store.read_events()) > counts["events"] + 2500
        assert got["impressions"] == len(store.read_impressions()) > counts["impressions"]
    finally:
        store.close()


def test_two_writers_at_once_lose_no_counts(opener: Callable[[], Store]) -> None:
    """Two store objects (two connections, as two replicas) append events and log slates on the
    same items and days at once: every increment lands."""
    stores = [opener(), opener()]
    barrier = threading.Barrier(2, timeout=60)

    def work(k: int) -> None:
        rng = np.random.default_rng(10 + k)
        barrier.wait()
        for r in range(6):
            stores[k].append_events(_events(rng, 300, 5 * DAY))
            stores[k].append_events(_events(rng, 40, 5 * DAY, ids=f"w{k}-{r}"))
            stores[k].log_impressions(_slates(rng, 30, 5 * DAY, prefix=f"w{k}-{r}-"))

    try:
        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(work, k) for k in range(2)]:
                done.result()  # a writer's exception fails the test here
        counts = stores[0].counts()
        assert counts["events"] == 2 * 6 * 340 and counts["impressions"] == 2 * 6 * 30
        assert _assert_reference(stores[1], first_day=-1) > 4000
    finally:
        for s in stores:
            s.close()

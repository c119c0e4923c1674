"""The drift monitor's impression reads in SQL (``sample_impressions``, ``read_candidate_sets``,
``count_impressions``):
the SQLite store, the PostgreSQL store (a real server) and the contract's generic Python versions
(``Store.<method>`` of the base class, run on each store) return the same rows for the same log,
so the monitor sees the same sample and the same candidate sets on either backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.data.open_store import open_store
from winnow.data.sqlite_store import SQLiteStore
from winnow.data.store import Store


def _log(rng: np.random.Generator, n: int) -> list[dict]:
    """Slates with many timestamp ties (store order decides), NULL / "" / named model versions,
    and candidate lists of strings and numbers, empty, absent or not a list."""
    out = []
    versions = ["v1", "v2", None, ""]
    for k in range(n):
        ctx: dict = {"device": "web"}
        roll = rng.random()
        if roll < 0.3:
            ctx["candidates"] = [f"c{int(c)}" for c in rng.integers(0, 50, int(rng.integers(1, 6)))] + [int(k % 9)]
        elif roll < 0.35:
            ctx["candidates"] = []
        elif roll < 0.4:
            ctx["candidates"] = {"not": "a list"}
        out.append({"request_id": f"r{k}", "user_id": f"u{k % 17}", "timestamp": 1000 + int(rng.integers(0, 200)),
                    "model_version": versions[int(rng.integers(0, 4))], "surface": "home", "context": ctx,
                    "items": [{"item_id": f"i{int(i)}", "position": p, "score": float(p), "src": {"als": [0.5, p]}}
                              for p, i in enumerate(rng.integers(0, 30, 3))]})
    return out


@pytest.fixture
def stores(tmp_path: Path, postgres_url: str) -> list[Store]:
    opened = [SQLiteStore(tmp_path / "w.db"), open_store(postgres_url)]
    log = _log(np.random.default_rng(3), 700)
    for s in opened:
        for start in range(0, len(log), 128):  # same batches, same order: same store order
            s.log_impressions(log[start:start + 128])
    yield opened
    for s in opened:
        s.close()


WINDOWS = [(1000, 1200), (1050, 1130), (1199, 1200), (0, 1000), (1100, 1101)]


@pytest.mark.parametrize("version", [None, "v1", "v2", "", "absent"])
@pytest.mark.parametrize("limit", [1, 7, 50, 10_000])
def test_sample_impressions_same_on_both_backends_and_the_generic_version(
        stores: list[Store], version: str | None, limit: int) -> None:
    sampled = 0
    for since, until in WINDOWS:
        answers = [fn(s, since=since, until=until, model_version=version, limit=limit)
                   for s in stores for fn in (type(s).sample_impressions, Store.sample_impressions)]
        assert all(a == answers[0] for a in answers[1:]), (since, until)
        assert len(answers[0]) <= limit
        sampled += len(answers[0])
    if version != "absent":
        assert sampled > 0  # not vacuous
    else:
        assert sampled == 0


def test_count_impressions_same_on_both_backends_and_the_generic_version(stores: list[Store]) -> None:
    log = _log(np.random.default_rng(3), 700)  # what the fixture logged
    for since, until in WINDOWS + [(1000, 1000), (1200, 5000)]:
        want = sum(since <= imp["timestamp"] < until for imp in log)
        assert [fn(s, since=since, until=until) for s in stores
                for fn in (type(s).count_impressions, Store.count_impressions)] == [want] * 4, (since, until)
    assert stores[0].count_impressions(since=0, until=5000) == 700


def test_sqlite_counts_impressions_on_the_timestamp_index_alone(tmp_path: Path) -> None:
    """The drift monitor counts a window's slates before every comparison: on SQLite the count is
    a range scan of ``impressions_ts``, never a read of the (large) impression rows."""
    import sqlite3

    from winnow.data import sample_sql

    SQLiteStore(tmp_path / "w.db").close()
    con = sqlite3.connect(tmp_path / "w.db")
    try:
        real = con.execute
        plans: list[str] = []

        class Explaining:  # runs each query, and records its plan first
            def execute(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
                plans.extend(r[-1] for r in real("EXPLAIN QUERY PLAN " + sql, args).fetchall())
                return real(sql, args)

        assert sample_sql.count_impressions(Explaining(), "?", since=0, until=10) == 0
    finally:
        con.close()
    assert plans and all("COVERING INDEX impressions_ts" in p for p in plans), plans


def test_read_candidate_sets_same_on_both_backends_and_the_generic_version(stores: list[Store]) -> None:
    rows = 0
    for since, until in WINDOWS:
        frames = [fn(s, since=since, until=until)
                  for s in stores for fn in (type(s).read_candidate_sets, Store.read_candidate_sets)]
        for f in frames[1:]:
            pd.testing.assert_frame_equal(f, frames[0])
        assert frames[0]["timestamp"].dtype == np.int64
        rows += len(frames[0])
    assert rows > 200 and "0" in set(stores[1].read_candidate_sets(since=0, until=2000)["item_id"])


@pytest.mark.parametrize("keep", [None, 1, 3000, 5000, 10_000])
def test_user_sample_selects_the_same_users_in_every_read_on_every_backend(stores: list[Store], keep) -> None:
    """``user_sample`` (winnow.data.user_sample): the SQL versions on both backends and the generic
    versions return exactly the full read's rows of the sampled users, whole users only."""
    from winnow.data.user_sample import in_sample

    events = pd.DataFrame({"user_id": [f"u{k % 17}" for k in range(300)], "item_id": [f"i{k % 30}" for k in range(300)],
                           "event_type": ["click" if k % 3 else "view" for k in range(300)], "value": np.nan,
                           "timestamp": [1000 + k % 200 for k in range(300)]})
    for s in stores:
        s.append_events(events)
    full = stores[0].read_shown_items(since=1000, until=1200)
    want = full[in_sample(full["user_id"].tolist(), keep)].reset_index(drop=True)
    users = set(want["user_id"])
    assert (keep is None or keep == 10_000) == (users == set(full["user_id"]))
    for s in stores:
        for fn in (type(s), Store):
            shown = fn.read_shown_items(s, since=1000, until=1200, user_sample=keep)
            pd.testing.assert_frame_equal(shown, want)
            scores = fn.read_source_scores(s, since=1000, until=1200, user_sample=keep)
            assert len(scores) == len(want) and set(scores["source"]) <= {"als"}
            cand = fn.read_candidate_sets(s, since=1000, until=1200, user_sample=keep)
            assert set(cand["user_id"]) <= users
            allc = fn.read_candidate_sets(s, since=1000, until=1200)
            pd.testing.assert_frame_equal(
                cand, allc[allc["user_id"].isin(users)].reset_index(drop=True))
            pos = fn.read_feedback_events(s, event_types=["click"], since=1000, user_sample=keep)
            allp = fn.read_feedback_events(s, event_types=["click"], since=1000)
            assert set(pos["user_id"]) == users & set(allp["user_id"])
            assert len(pos) == int(allp["user_id"].isin(users).sum())
    with pytest.raises(ValueError, match="user sample"):
        stores[0].read_shown_items(since=1000, until=1200, user_sample=0)

"""The Store contract, run against every backend factory in STORE_FACTORIES.

A backend joins by adding a factory: a callable taking pytest's ``request`` and ``tmp_path`` and
returning ``open`` where ``open()`` opens a Store on the same underlying database (called again
to test durability across reopen). "postgres" runs against a real throwaway PostgreSQL server
(tests/servers/postgres.py; a fresh database per test); without the server binaries it is skipped
locally and fails when CI=true.
"""

from __future__ import annotations

from collections.abc import Callable
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.core.errors import ConfigError, DataError, StoreError, UnknownIdError
from winnow.data.open_store import open_store
from winnow.data.sqlite_store import SQLiteStore
from winnow.data.store import Store


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return lambda: SQLiteStore(tmp_path / "winnow.db")


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    url = request.getfixturevalue("postgres_url")  # fresh database on the session's server
    return lambda: open_store(url)


STORE_FACTORIES = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return STORE_FACTORIES[request.param](request, tmp_path)


@pytest.fixture
def store(opener: Callable[[], Store]) -> Store:
    s = opener()
    yield s
    s.close()


def _events(n: int, *, seed: int = 0, ids: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    value = rng.random(n) * 5
    value[rng.random(n) < 0.3] = np.nan
    frame = pd.DataFrame({"user_id": [f"u{i}" for i in rng.integers(0, 50, n)],
                          "item_id": [f"i{i}" for i in rng.integers(0, 80, n)],
                          "event_type": rng.choice(["view", "click", "purchase"], n),
                          "value": value, "timestamp": rng.integers(1_000, 2_000, n)})
    if ids:
        frame["event_id"] = [f"e{seed}-{i}" for i in range(n)]
    return frame


def _decoded(store: Store, **kw: int) -> pd.DataFrame:
    log = store.read_events(**kw)
    return pd.DataFrame({"user_id": np.asarray(log.user_ids, dtype=object)[log.user],
                         "item_id": np.asarray(log.item_ids, dtype=object)[log.item],
                         "event_type": np.asarray(log.event_types, dtype=object)[log.event_type],
                         "value": log.value, "timestamp": log.timestamp})


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = ["user_id", "item_id", "event_type", "value", "timestamp"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True),
                                  check_dtype=False)


def test_read_events_equals_what_was_written(store: Store) -> None:
    written = [_events(300, seed=s) for s in range(3)]
    for frame in written:
        assert store.append_events(frame) == len(frame)
    log = store.read_events()
    assert log.user.dtype == np.int32 and log.item.dtype == np.int32
    assert log.event_type.dtype == np.int16 and log.timestamp.dtype == np.int64
    _same(_decoded(store), pd.concat(written))
    assert store.counts()["events"] == 900


def test_many_small_appends_read_back_in_order(store: Store) -> None:
    frame = _events(150, seed=4)
    for start in range(0, 150, 2):  # many tiny transactions (exercises block merging)
        store.append_events(frame.iloc[start:start + 2])
    _same(_decoded(store), frame)


def test_time_range(store: Store) -> None:
    frame = _events(500, seed=1)
    store.append_events(frame)
    got = _decoded(store, since=1200, until=1500)
    want = frame[(frame.timestamp >= 1200) & (frame.timestamp < 1500)]
    assert len(got) == len(want) > 0
    _same(got, want)
    assert len(store.read_events(since=5000)) == 0


def test_bad_row_rejects_whole_batch(store: Store) -> None:
    store.append_events(_events(10))
    bad = _events(20, seed=2)
    bad["timestamp"] = bad["timestamp"].astype(object)
    bad.loc[13, "timestamp"] = "not a time"
    with pytest.raises(DataError) as err:
        store.append_events(bad, source="api")
    assert err.value.line == 13 and err.value.field == "timestamp" and err.value.source == "api"
    assert store.counts()["events"] == 10
    _same(_decoded(store), _events(10))


def test_import_all_is_atomic(store: Store) -> None:
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["A", "B"]})
    bad_users = pd.DataFrame({"user_id": ["ok", ""]})
    with pytest.raises(DataError):
        store.import_all(events=_events(5), items=items, users=bad_users)
    assert store.counts() == {"events": 0, "items": 0, "users": 0, "impressions": 0}
    got = store.import_all(events=_events(5), items=items, users=pd.DataFrame({"user_id": ["ok"]}))
    assert got == {"events": 5, "items": 2, "users": 1}


def test_idempotent_event_ids(store: Store) -> None:
    frame = _events(40, ids=True)
    assert store.append_events(frame) == 40
    assert store.append_events(frame) == 0  # a retried batch
    mixed = pd.concat([frame.iloc[:5], _events(7, seed=9, ids=True)])
    assert store.append_events(mixed) == 7
    dup_inside = _events(3, seed=5, ids=True)
    dup_inside["event_id"] = ["x", "x", "y"]
    assert store.append_events(dup_inside) == 2
    assert store.counts()["events"] == 49
    assert len(store.read_events()) == 49


def _outside(store: Store, sql: str) -> None:
    """Run ``sql`` on the store's database through a separate driver connection."""
    if isinstance(store, SQLiteStore):
        con = sqlite3.connect(store.path)
        try:
            con.execute(sql)
            con.commit()
        finally:
            con.close()
    else:
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as con:  # type: ignore[attr-defined]
            con.execute(sql)


def test_driver_errors_surface_as_store_errors(store: Store) -> None:
    # a failure inside the driver (here: a table gone behind the store's back) reaches the caller
    # as the one error tree's StoreError, chained to the driver's exception, never as
    # sqlite3.Error / psycopg.Error (callers such as serving/online_state.py name no driver)
    store.upsert_items(pd.DataFrame({"item_id": ["a"], "title": ["A"]}))
    store.append_events(_events(20))
    _outside(store, "ALTER TABLE items RENAME TO items_gone")
    _outside(store, "ALTER TABLE events RENAME TO events_gone")
    for call in (store.read_items, lambda: store.get_item("a"), lambda: store.user_events("u1")):
        with pytest.raises(StoreError) as info:
            call()
        assert info.value.__cause__ is not None
        assert type(info.value.__cause__).__module__.split(".")[0] in ("sqlite3", "psycopg")


def test_durable_across_reopen(opener: Callable[[], Store]) -> None:
    first = opener()
    first.append_events(_events(100))
    first.upsert_items(pd.DataFrame({"item_id": ["a"], "title": ["A"]}))
    first.close()
    first.close()  # idempotent
    with pytest.raises(StoreError):
        first.counts()
    again = opener()
    try:
        _same(_decoded(again), _events(100))
        assert again.get_item("a")["title"] == "A"
    finally:
        again.close()


def test_items_upsert_patch_and_read(store: Store) -> None:
    store.upsert_items(pd.DataFrame({"item_id": ["a", "b"], "title": ["A", "B"], "categories": ["x|y", ""],
                                     "sponsored": [True, False], "brand": ["acme", None]}))
    store.upsert_items(pd.DataFrame({"item_id": ["b"], "title": ["B2"]}))  # replace
    items = store.read_items().set_index("item_id")
    assert items.loc["a", "categories"] == ["x", "y"] and items.loc["a", "attributes"] == {"brand": "acme"}
    assert items.loc["b", "title"] == "B2" and items.loc["b", "categories"] == []
    store.patch_item("a", available=False, attributes={"price": 3})
    a = store.get_item("a")
    assert a["available"] is False and a["sponsored"] is True
    assert a["attributes"] == {"brand": "acme", "price": 3}
    with pytest.raises(UnknownIdError):
        store.patch_item("missing", available=True)
    assert store.get_item("missing") is None


def test_user_upsert_and_event_only_users(store: Store) -> None:
    store.upsert_users(pd.DataFrame({"user_id": ["u1"], "age": [30], "interests": ["jazz|rock"]}))
    store.upsert_users(pd.DataFrame({"user_id": ["u1"], "age": [31]}))
    assert store.get_user("u1")["attributes"] == {"age": 31}
    store.append_events(pd.DataFrame({"user_id": ["newbie"], "item_id": ["i"], "timestamp": [5]}))
    assert store.get_user("newbie") == {"user_id": "newbie", "created_at": None, "attributes": {},
                                        "interests": []}
    assert store.get_user("nobody") is None
    assert set(store.read_users()["user_id"]) == {"u1", "newbie"}


def test_user_events_newest_first(store: Store) -> None:
    frame = pd.DataFrame({"user_id": ["u", "u", "v", "u"], "item_id": ["a", "b", "c", "d"],
                          "event_type": ["view", "click", "view", "purchase"],
                          "timestamp": [3, 1, 2, 7], "context": [None, None, None, '{"device":"ios"}']})
    store.append_events(frame)
    got = store.user_events("u", limit=2)
    assert got["item_id"].tolist() == ["d", "a"]
    assert got["context"].iloc[0] == '{"device":"ios"}'
    assert store.user_events("nobody").empty


def test_user_version_grows_with_the_users_events(store: Store) -> None:
    """Stores that track user versions (several serving workers share in-process state over
    them) report a number that grows with every append of the user's events; others say None."""
    assert store.user_version("u") is None
    store.append_events(pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "b"],
                                      "event_type": ["view", "view"], "timestamp": [1, 2]}))
    first = store.user_version("u")
    store.append_events(pd.DataFrame({"user_id": ["v"], "item_id": ["c"], "event_type": ["view"],
                                      "timestamp": [3]}))
    assert store.user_version("u") == first  # another user's event does not move it
    store.append_events(pd.DataFrame({"user_id": ["u"], "item_id": ["d"], "event_type": ["click"],
                                      "timestamp": [4]}))
    if not store.tracks_user_versions:
        assert first is None and store.user_version("u") is None
        return
    assert first is not None and store.user_version("u") > first
    assert store.user_version("nobody") is None


def test_impressions_and_outcomes(store: Store) -> None:
    imp = {"request_id": "r1", "user_id": "u", "timestamp": 100, "model_version": "v1", "surface": "home",
           "context": {"device": "ios"},
           "items": [{"item_id": "a", "position": 0, "score": 0.9, "sources": ["als"], "propensity": 0.7},
                     {"item_id": "b", "position": 1, "score": 0.5, "sources": ["pop"], "propensity": 0.2}]}
    store.log_impressions([imp, dict(imp, request_id="r2", timestamp=200)])
    store.log_impressions([imp])  # retried: not duplicated
    assert store.read_impressions() == [imp, dict(imp, request_id="r2", timestamp=200)]
    assert [i["request_id"] for i in store.read_impressions(since=150)] == ["r2"]
    store.append_events(pd.DataFrame({"user_id": ["u"], "item_id": ["b"], "event_type": ["click"],
                                      "timestamp": [101], "context": ['{"request_id": "r1"}']}))
    out = store.impression_outcomes()
    r1 = out[out.request_id == "r1"].set_index("item_id")
    assert r1.loc["b", "events"] == ["click"] and r1.loc["a", "events"] == []
    assert r1.loc["a", "propensity"] == 0.7 and store.counts()["impressions"] == 2
    with pytest.raises(DataError):
        store.log_impressions([{"request_id": "r3", "user_id": "u", "timestamp": 1}])


def test_shown_items_and_source_scores_unnest_the_slates_of_a_time_range(store: Store) -> None:
    """read_shown_items / read_source_scores: one row per shown item (per source score), the
    range half-open, missing score -> 0.0, missing model_version -> "", numeric ids as text."""
    def imp(rid: str, ts: int, version: str | None, items: list[dict]) -> dict:
        return {"request_id": rid, "user_id": "u1", "timestamp": ts, "model_version": version, "items": items}
    store.log_impressions([
        imp("r1", 99, "v1", [{"item_id": "z", "position": 0, "score": 9.0, "src": {"als": [9.0, 0]}}]),
        imp("r2", 100, "v1", [{"item_id": "a", "position": 0, "score": 0.5, "src": {"als": [1.5, 0], "pop": [7, 2]}},
                              {"item_id": 7, "position": 1, "src": None}]),
        imp("r3", 150, None, [{"item_id": "b", "position": 0, "score": 0.25}]),
        imp("r4", 200, "v2", [{"item_id": "c", "position": 0, "score": 1.0, "src": {"pop": [3.0, 0]}}])])
    shown = store.read_shown_items(since=100, until=200)
    assert shown.to_dict("list") == {"user_id": ["u1"] * 3, "item_id": ["a", "7", "b"], "timestamp": [100, 100, 150],
                                     "score": [0.5, 0.0, 0.25], "model_version": ["v1", "v1", ""]}
    assert shown["timestamp"].dtype == np.int64 and shown["score"].dtype == np.float64
    src = store.read_source_scores(since=100, until=200).sort_values(["source", "score"]).reset_index(drop=True)
    assert src.to_dict("list") == {"source": ["als", "pop"], "score": [1.5, 7.0]}
    assert src["score"].dtype == np.float64
    empty = store.read_shown_items(since=1000, until=2000)
    assert len(empty) == 0 and list(empty.columns) == list(shown.columns) and empty["timestamp"].dtype == np.int64
    assert len(store.read_source_scores(since=1000, until=2000)) == 0


def test_sample_impressions_and_candidate_sets(store: Store) -> None:
    """sample_impressions: every ceil(n / limit)-th impression of one model version in the
    half-open range, oldest first, shaped like read_impressions; read_candidate_sets: one row
    per logged candidate of the impressions whose context carries a candidate list."""
    imps = [{"request_id": f"r{i}", "user_id": f"u{i % 3}", "timestamp": 100 + i,
             "model_version": "v1" if i % 5 else "v2", "context": {"device": "web"},
             "items": [{"item_id": f"i{i}", "position": 0, "score": 1.0, "src": {"als": [0.5, 3]}}]}
            for i in range(30)]
    imps[4]["context"] = {"candidates": ["a", "b", 7]}
    imps[6]["context"] = {"candidates": []}
    imps[29]["context"] = {"candidates": ["late"]}
    store.log_impressions(imps)
    v1 = [i for i in range(1, 29) if i % 5]  # ts 101..128 (until 129 is exclusive), version v1: 22 of them
    got = store.sample_impressions(since=101, until=129, model_version="v1", limit=10)
    assert [g["request_id"] for g in got] == [f"r{i}" for i in v1[::3]]  # stride ceil(22 / 10) = 3: 8 rows
    assert got[0]["context"] == {"device": "web"} and got[0]["items"][0]["src"] == {"als": [0.5, 3]}
    everything = store.sample_impressions(since=0, until=1000, model_version="v2", limit=100)
    assert [g["request_id"] for g in everything] == [f"r{i}" for i in range(0, 30, 5)]
    assert store.sample_impressions(since=0, until=1000, model_version="none", limit=5) == []
    anyone = store.sample_impressions(since=100, until=130, model_version=None, limit=15)  # every version
    assert [g["request_id"] for g in anyone] == [f"r{i}" for i in range(0, 30, 2)]  # stride ceil(30 / 15) = 2
    with pytest.raises(ValueError, match="limit"):
        store.sample_impressions(since=0, until=1000, model_version="v1", limit=0)
    cands = store.read_candidate_sets(since=100, until=129)
    assert cands.to_dict("list") == {"request_id": ["r4"] * 3, "user_id": ["u1"] * 3, "item_id": ["a", "b", "7"],
                                     "timestamp": [104] * 3}
    assert cands["timestamp"].dtype == np.int64
    assert store.read_candidate_sets(since=129, until=130)["item_id"].tolist() == ["late"]
    empty = store.read_candidate_sets(since=1000, until=2000)
    assert len(empty) == 0 and list(empty.columns) == list(cands.columns)


def test_read_feedback_events(store: Store) -> None:
    frame = _events(400, seed=8)
    store.append_events(frame)
    got = store.read_feedback_events(event_types=["click", "purchase", "never-stored"], since=1500)
    want = frame[frame.event_type.isin(["click", "purchase"]) & (frame.timestamp >= 1500)]
    want = want.sort_values("timestamp", kind="stable")[["user_id", "item_id", "event_type", "timestamp"]]
    assert list(got.columns) == ["user_id", "item_id", "event_type", "timestamp"] and len(got) > 0
    assert got.timestamp.dtype == np.int64
    assert got.values.tolist() == want.values.tolist()
    assert store.read_feedback_events(event_types=["never-stored"]).empty
    store.delete_user("u3")
    assert "u3" not in set(store.read_feedback_events(event_types=["click"])["user_id"])


def test_open_store_urls(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/x/w.db?synchronous=normal")
    assert isinstance(s, SQLiteStore) and s.path == tmp_path / "x" / "w.db"
    s.close()
    for bad in ["mysql://h/db", "winnow.db", f"sqlite:///{tmp_path}/w.db?bogus=1",
                f"sqlite:///{tmp_path}/w.db?synchronous=off", "sqlite:///"]:
        with pytest.raises(ConfigError):
            open_store(bad)


def test_postgres_urls_are_checked_before_connecting() -> None:
    # bad URLs fail with ConfigError naming the setting, without any server (nothing listens on :9)
    for bad in ["postgresql://127.0.0.1:9", "postgresql://127.0.0.1:9/", "postgres://127.0.0.1:9/db?pool_max=x",
                "postgresql://127.0.0.1:9/db?no_such_libpq_param=1", "postgresql://127.0.0.1:9/db?pool_min=3&pool_max=2"]:
        with pytest.raises(ConfigError, match=r"\[store\] url"):
            open_store(bad)
    with pytest.raises(ConfigError) as err:
        open_store("postgresql://winnow:s3cret@127.0.0.1:9/db?bogus=1")
    assert "s3cret" not in str(err.value)


def test_open_store_postgres_url(postgres_url: str) -> None:
    from winnow.data.postgres_store import PostgresStore

    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://") + "?pool_max=2"):
        s = open_store(url)
        try:
            assert isinstance(s, PostgresStore) and s.counts()["events"] == 0
        finally:
            s.close()


def test_concurrent_writers_and_readers(store: Store) -> None:
    # FastAPI's threadpool: appends (new users/items racing on the key tables) and reads at once
    import threading

    frames = [_events(200, seed=s, ids=True) for s in range(8)]
    errors: list[BaseException] = []

    def work(frame: pd.DataFrame) -> None:
        try:
            assert store.append_events(frame) == len(frame)
            assert store.append_events(frame) == 0
            assert len(store.read_events()) >= len(frame)
            store.user_events(str(frame.user_id.iloc[0]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f,)) for f in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    got = _decoded(store)
    assert len(got) == 1600
    want = pd.concat(frames).sort_values(["user_id", "item_id", "timestamp", "event_type", "value"]).reset_index(drop=True)
    _same(got.sort_values(["user_id", "item_id", "timestamp", "event_type", "value"]).reset_index(drop=True), want)


def test_large_batch_spans_several_blocks(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from winnow.data import postgres_store, sqlite_blocks
    monkeypatch.setattr(sqlite_blocks, "MAX_ROWS", 64)  # SQLite-specific knob; harmless elsewhere
    monkeypatch.setattr(postgres_store, "_BULK_ROWS", 100)  # PostgreSQL: the index-rebuild import path
    frame = _events(1000, seed=3)
    store.append_events(frame)
    _same(_decoded(store), frame)
    _same(_decoded(store, since=1100, until=1300), frame[(frame.timestamp >= 1100) & (frame.timestamp < 1300)])


def test_delete_user_erases_events_profile_and_impressions(opener: Callable[[], Store]) -> None:
    store = opener()
    # many small appends (several blocks, some merged) plus one big one: the user is in many blocks
    frames = [_events(40, seed=s, ids=True) for s in range(40)] + [_events(2000, seed=99)]
    for f in frames:
        store.append_events(f)
    written = pd.concat(frames, ignore_index=True)
    store.upsert_users(pd.DataFrame({"user_id": ["u7", "u8"], "attributes": [{"age": 30}, {"age": 40}]}))
    imp = {"request_id": "r-u7", "user_id": "u7", "timestamp": 5, "model_version": None, "surface": "home",
           "context": {}, "items": [{"item_id": "i1", "position": 0, "score": 1.0, "sources": [], "propensity": 1.0}]}
    store.log_impressions([imp, dict(imp, request_id="r-u8", user_id="u8")])
    n_u7 = int((written.user_id == "u7").sum())
    assert n_u7 > 40

    out = store.delete_user("u7")
    assert out == {"user_id": "u7", "found": True, "events": n_u7, "profile": True, "impressions": 1}
    rest = written[written.user_id != "u7"]
    got = _decoded(store)
    assert "u7" not in set(got.user_id)
    _same(got, rest)  # every other event intact, in order
    assert len(store.user_events("u7")) == 0 and store.get_user("u7") is None
    assert "u7" not in set(store.read_users().user_id)
    assert [i["request_id"] for i in store.read_impressions()] == ["r-u8"]
    assert store.get_user("u8")["attributes"] == {"age": 40}
    assert store.counts()["events"] == len(rest)
    assert store.delete_user("u7") == {"user_id": "u7", "found": False, "events": 0, "profile": False,
                                       "impressions": 0}
    # writes go on normally (a returning user id starts afresh), and it all survives reopen
    more = _events(300, seed=123)
    store.append_events(more)
    store.close()
    store = opener()
    try:
        _same(_decoded(store), pd.concat([rest, more], ignore_index=True))
        assert len(store.user_events("u7")) == int((more.user_id == "u7").sum())
    finally:
        store.close()


def test_postgres_key_ids_not_burned_and_gaps_decode(postgres_url: str) -> None:
    # PostgreSQL-only: identity ids are drawn even for rows ON CONFLICT skips, so known keys must
    # not be re-proposed (smallint event type ids would run out); gaps (a rolled-back insert or a
    # racing replica) must still decode to the right external ids
    import psycopg

    store = open_store(postgres_url)
    try:
        frame = _events(200, seed=6)
        for _ in range(10):
            store.append_events(frame)
        with psycopg.connect(postgres_url) as con:
            for table in ("user_keys", "item_keys", "event_types"):
                n, top = con.execute(f"SELECT count(*), max(id) FROM {table}").fetchone()
                assert top == n, (table, n, top)
            for table in ("user_keys", "item_keys", "event_types"):  # leave a gap of 5 ids
                con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) + 5 FROM {table}))")
        more = pd.DataFrame({"user_id": ["late-user", "u1"], "item_id": ["late-item", "i1"],
                             "event_type": ["late-type", "view"], "timestamp": [5000, 5001]})
        store.append_events(more)
        _same(_decoded(store), pd.concat([frame] * 10 + [more]))
    finally:
        store.close()


def test_postgres_bulk_import_rebuilds_indexes(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # a COPY batch larger than the table drops and rebuilds the secondary indexes in its transaction
    import psycopg

    from winnow.data import postgres_store
    monkeypatch.setattr(postgres_store, "_BULK_ROWS", 100)
    store = open_store(postgres_url)
    try:
        first, second = _events(1000, seed=11), _events(300, seed=12)
        store.append_events(first)   # rebuild path (1000 >= 0 rows stored)
        store.append_events(second)  # plain COPY path (300 < 1000), statistics refreshed
        _same(_decoded(store), pd.concat([first, second]))
        want = pd.concat([first, second])
        assert len(store.user_events("u3", limit=10_000)) == int((want.user_id == "u3").sum())
        with psycopg.connect(postgres_url) as con:
            names = {r[0] for r in con.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'events'")}
            analyzed = con.execute("SELECT reltuples FROM pg_class WHERE relname = 'events'").fetchone()[0]
        assert {"events_user_ts", "events_ts", "events_event_id", "events_request"} <= names
        assert analyzed == 1300
    finally:
        store.close()


def test_item_scalars_and_rows_by_id_equal_read_items(store: Store) -> None:
    """What a serving start reads (scalar columns of every item, full rows of a few) equals the
    same columns / rows of ``read_items``, types included, on every backend."""
    store.upsert_items(pd.DataFrame({"item_id": ["a", "b", "c", "d"], "title": ["A", "B", "C", "D"],
                                     "categories": ["x|y", "", "z", "x"], "creator": ["p", None, "q", ""],
                                     "created_at": [100, None, 300, 400], "sponsored": [True, False, False, True],
                                     "brand": ["acme", None, "z", None]}))
    store.patch_item("c", available=False)
    items = store.read_items()
    scalars = store.read_item_scalars()
    assert list(scalars.columns) == ["item_id", "creator", "created_at", "available", "sponsored"]
    for col in scalars.columns:  # the same values; item_id / creator as object columns of str
        assert scalars[col].tolist() == items[col].tolist() or col == "created_at", col
    assert scalars["created_at"].isna().tolist() == items["created_at"].isna().tolist()
    assert scalars["created_at"].dropna().tolist() == items["created_at"].dropna().tolist()
    assert scalars["item_id"].dtype == object and scalars["creator"].dtype == object
    assert scalars["available"].tolist() == [True, True, False, True]
    assert str(scalars["created_at"].dtype) == "Int64" and scalars["created_at"].isna().tolist()[1]
    by_id = store.read_items_by_id(["d", "missing", "b", "d"])
    assert by_id["item_id"].tolist() == ["d", "b"]
    pd.testing.assert_frame_equal(by_id, items.set_index("item_id").loc[["d", "b"]].reset_index())
    assert store.read_items_by_id([]).empty
    many = [f"m{i}" for i in range(1200)]  # more ids than one SQL statement binds
    store.upsert_items(pd.DataFrame({"item_id": many}))
    assert store.read_items_by_id(many[::-1])["item_id"].tolist() == many[::-1]


@pytest.mark.parametrize("batch", [1, 3, 4, 1000])
def test_item_scalars_in_batches_equal_the_whole_read(store: Store, batch: int) -> None:
    """``iter_item_scalars`` (what a worker building a challenger reads, a batch at a time) gives
    the rows of ``read_item_scalars`` in order, in frames of at most ``batch`` rows indexed from
    0, with the same columns and types, on every backend; an empty catalog gives no frame, and
    a batch below 1 is refused."""
    assert list(store.iter_item_scalars(batch=batch)) == []
    store.upsert_items(pd.DataFrame({"item_id": ["a", "b", "c", "d", "e", "f", "g"],
                                     "creator": ["p", None, "q", "", "r", None, "s"],
                                     "created_at": [100, None, 300, 400, None, 600, 700],
                                     "sponsored": [True, False, False, True, False, False, True]}))
    store.patch_item("c", available=False)
    whole = store.read_item_scalars()
    frames = list(store.iter_item_scalars(batch=batch))
    assert [len(f) for f in frames] == [min(batch, 7 - s) for s in range(0, 7, batch)]
    for f in frames:
        assert f.index.tolist() == list(range(len(f)))
        assert f.dtypes.to_dict() == whole.dtypes.to_dict()
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole)
    assert whole["item_id"].tolist() == ["a", "b", "c", "d", "e", "f", "g"]
    # the contract's generic versions (a projection of read_items, sliced) give the same frames
    pd.testing.assert_frame_equal(Store.read_item_scalars(store), whole)
    for mine, generic in zip(frames, Store.iter_item_scalars(store, batch=batch), strict=True):
        pd.testing.assert_frame_equal(generic, mine)
    for version in (store.iter_item_scalars, lambda batch: Store.iter_item_scalars(store, batch=batch)):
        with pytest.raises(ValueError, match="batch"):
            list(version(batch=0))

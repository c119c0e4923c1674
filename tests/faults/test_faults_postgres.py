"""Faults of the PostgreSQL store against a real server (its own, not the session one: these
tests crash, restart and reconfigure it).

- server crash (``pg_ctl stop -m immediate``) while the store is open and while a writer thread
  appends: every write raises StoreUnavailableError naming host:port/db; every acknowledged
  batch is still there after the restart, every batch is all-or-nothing; the same store object
  reads and writes again once the server is back (the pool reconnects);
- server hung (SIGSTOP: no answer, no reset): calls fail with StoreUnavailableError within a
  bounded time (the store's watchdog) and work again after SIGCONT;
- server made read-only (``default_transaction_read_only``, reloaded): writes refused with the
  reason, reads keep working, writes work again after the reset;
- no server at all: opening the store fails with StoreUnavailableError naming it.
Disk full (SQLSTATE 53100) is not produced against the server (its data directory would have
to live on a small mounted file system, as test_faults_filesystem.py does for SQLite); its
mapping to StoreUnavailableError is checked on psycopg's own error class.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import psycopg
import pytest
from servers.postgres import PostgresServer, require_postgres, start_postgres
from servers.throwaway import free_port, scoped_server, wait_for

from winnow.core.errors import StoreUnavailableError
from winnow.data import postgres_schema
from winnow.data.open_store import open_store

FAST = "?pool_timeout=1&connect_timeout=1"


@pytest.fixture(scope="module")
def pg() -> PostgresServer:
    require_postgres()
    yield from scoped_server(lambda: start_postgres(fsync=False))


@pytest.fixture
def url(pg: PostgresServer) -> str:
    if not pg.running:  # a failed test may have left it down
        pg.start()
    return pg.create_database() + FAST


def _batch(k: int, n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{(k * 7 + j) % 40}" for j in range(n)],
                         "item_id": [f"i{(k + j) % 90}" for j in range(n)],
                         "event_type": ["view"] * n, "timestamp": np.arange(n) + 1000 * k,
                         "event_id": [f"b{k}-{j}" for j in range(n)]})


def test_crash_refuses_writes_then_same_store_recovers(pg: PostgresServer, url: str) -> None:
    store = open_store(url)
    try:
        assert store.append_events(_batch(0)) == 50
        store.upsert_items(pd.DataFrame({"item_id": ["a"], "title": ["A"]}))
        pg.kill()
        where = f"{pg.host}:{pg.port}/"
        attempts = [lambda: store.append_events(_batch(1)),
                    lambda: store.append_events(_batch(2).drop(columns="event_id")),  # COPY path
                    lambda: store.upsert_items(pd.DataFrame({"item_id": ["b"], "title": ["B"]})),
                    lambda: store.patch_item("a", available=False),
                    lambda: store.delete_user("u1"),
                    lambda: store.log_impressions([{"request_id": "r", "user_id": "u1", "timestamp": 1,
                                                    "items": [{"item_id": "a"}]}])]
        for attempt in attempts:
            with pytest.raises(StoreUnavailableError) as err:
                attempt()
            assert where in str(err.value) and "nothing was written" in str(err.value), str(err.value)
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            store.read_events()
        pg.start()
        # same object, no reopen: the pool notices dead connections and reconnects
        deadline = time.monotonic() + 30
        while True:
            try:
                assert store.append_events(_batch(3)) == 50
                break
            except StoreUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert store.counts() == {"events": 100, "items": 1, "users": 40, "impressions": 0}
        assert store.get_item("a")["available"] is True and store.get_item("b") is None
        assert len(store.user_events("u1")) > 0
        assert store.append_events(_batch(1)) == 50  # the refused batch, retried, is written once
        assert store.append_events(_batch(1)) == 0
    finally:
        store.close()


def test_crash_under_write_load_loses_no_acknowledged_batch(pg: PostgresServer, url: str) -> None:
    store = open_store(url)
    acked: list[int] = []
    refused: list[int] = []
    ambiguous: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set():
            try:
                store.append_events(_batch(k))
                acked.append(k)
            except StoreUnavailableError as exc:
                (ambiguous if "may or may not" in str(exc) else refused).append(k)
                stop.wait(0.05)  # back-off pacing, ends at once when the test stops the writer
            k += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert wait_for(lambda: len(acked) >= 10, timeout=60, interval=0.05), "the writer never got going"
        pg.kill()
        n_refused = len(refused)
        assert wait_for(lambda: len(refused) > n_refused, timeout=60, interval=0.05), \
            "no write was refused while the server was down"
        pg.start()
        n_before = len(acked)  # acknowledged before the restart (nothing is acked while down)
        assert wait_for(lambda: len(acked) >= n_before + 5, timeout=60, interval=0.05), \
            f"writes did not resume within 60 s of the restart: {len(acked) - n_before} acknowledged"
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the writer thread hung"
    after_restart = acked[n_before:]
    assert len(after_restart) >= 5, after_restart
    try:
        log = store.read_events()
        # every batch is all or nothing (timestamps 1000*k .. 1000*k+49 identify batch k)
        batch_of, per_batch = np.unique(log.timestamp // 1000, return_counts=True)
        assert (per_batch == 50).all(), dict(zip(batch_of.tolist(), per_batch.tolist()))
        stored = set(batch_of.tolist())
        assert set(acked) <= stored, sorted(set(acked) - stored)  # nothing acknowledged was lost
        assert set(after_restart) <= stored  # writes after the restart really landed
        assert not (set(refused) & stored), sorted(set(refused) & stored)  # nothing refused was written
        assert stored <= set(acked) | set(ambiguous)
    finally:
        store.close()


def _read_only_setting(pg: PostgresServer) -> str:
    """default_transaction_read_only as a NEW session sees it (after the postmaster's reload)."""
    with psycopg.connect(pg.url(), autocommit=True) as con:
        return con.execute("SHOW default_transaction_read_only").fetchone()[0]


def test_read_only_server_refuses_writes_reads_keep_working(pg: PostgresServer, url: str) -> None:
    store = open_store(url)
    admin = psycopg.connect(pg.url(), autocommit=True)
    try:
        store.append_events(_batch(0))
        admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        admin.execute("SELECT pg_reload_conf()")
        # the postmaster re-reads the file and signals every session, which applies it before
        # its next command: once a new session sees the setting, the store's sessions have it too
        assert wait_for(lambda: _read_only_setting(pg) == "on", timeout=30, interval=0.05)
        with pytest.raises(StoreUnavailableError, match="read-only.*nothing was written"):
            store.append_events(_batch(1))
        with pytest.raises(StoreUnavailableError, match="read-only"):
            store.delete_user("u1")
        assert store.counts()["events"] == 50 and len(store.read_events()) == 50
        admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        admin.execute("SELECT pg_reload_conf()")
        assert wait_for(lambda: _read_only_setting(pg) == "off", timeout=30, interval=0.05)
        assert store.append_events(_batch(1)) == 50
        assert store.delete_user("u1")["found"] is True
    finally:
        admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        admin.execute("SELECT pg_reload_conf()")
        admin.close()
        store.close()


def test_hung_server_answers_unavailable_within_bounded_time(pg: PostgresServer, url: str) -> None:
    # SIGSTOP: no answer, no reset (libpq alone would wait forever); the watchdog cuts calls off
    store = open_store(url + "&op_timeout=1")
    try:
        store.append_events(_batch(0))
        pg.pause()
        try:
            for call in (lambda: store.append_events(_batch(1)), lambda: store.user_events("u1"),
                         lambda: store.get_item("a"), lambda: store.delete_user("u2")):
                t0 = time.monotonic()
                with pytest.raises(StoreUnavailableError, match=f"{pg.host}:{pg.port}/"):
                    call()
                assert time.monotonic() - t0 < 10
        finally:
            pg.resume()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert store.append_events(_batch(1)) == 50
                break
            except StoreUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert store.counts()["events"] == 100 and store.get_user("u2") is not None
    finally:
        store.close()


def test_watchdog_cuts_off_a_call_without_answer(url: str) -> None:
    # a statement the server does not answer in time (here: pg_sleep) is cut off by the watchdog
    store = open_store(url + "&op_timeout=1")
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="no answer within 1 s"):
            store._read(lambda cur: cur.execute("SELECT pg_sleep(20)").fetchall())
        assert time.monotonic() - t0 < 8
        assert store.append_events(_batch(0)) == 50  # the next call gets a healthy connection
    finally:
        store.close()


def test_no_server_at_open_names_it() -> None:
    port = free_port()
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}/nowhere"):
        open_store(f"postgresql://postgres@127.0.0.1:{port}/nowhere?pool_timeout=1&connect_timeout=1")


def test_disk_full_and_shutdown_codes_mean_unavailable() -> None:
    assert "disk full" in postgres_schema.unavailable_reason(psycopg.errors.DiskFull("no space left"))
    assert "shut down" in postgres_schema.unavailable_reason(psycopg.errors.AdminShutdown("terminating"))
    assert postgres_schema.unavailable_reason(psycopg.errors.UniqueViolation("dup")) is None


def test_service_refuses_writes_with_503_while_down_then_recovers(pg: PostgresServer, url: str, tmp_path) -> None:
    # the real app on a PostgresStore: what a replica does when its database goes away
    import os

    from fastapi.testclient import TestClient

    from winnow.core.config import load_config
    from winnow.data.synthetic import generate_world
    from winnow.serving.app import create_app
    from winnow.training.job import train as run_train

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    cfg = load_config(tmp_path, overrides={"security": {"auth": False}, "store": {"url": url}})
    world = generate_world(60, 120, 2000, seed=7)
    store = open_store(cfg.store_url())
    store.import_all(events=world.events, items=world.items, users=world.users)
    run_train(cfg, store)
    body = {"events": [{"user_id": "u1", "item_id": str(world.items.item_id.iloc[0]), "event_type": "view",
                        "event_id": f"svc-{j}"} for j in range(20)]}
    try:
        with TestClient(create_app(cfg, store=store)) as client:
            before = store.counts()["events"]
            pg.kill()
            r = client.post("/v1/events", json=body)
            assert r.status_code == 503, r.text
            assert "nothing was written" in r.json()["detail"] and f":{pg.port}/" in r.json()["detail"]
            pg.start()
            deadline = time.monotonic() + 30
            while (r := client.post("/v1/events", json=body)).status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert r.status_code == 200 and r.json()["written"] == 20, r.text
            assert store.counts()["events"] == before + 20
    finally:
        store.close()

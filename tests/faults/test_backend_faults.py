"""Backend outages under a real `winnow serve` process: Redis (online state) and PostgreSQL
(store) are real servers started by this module, killed, paused and restarted mid-test.

- Redis killed: recommendations answer 200 from the store's history (fallback
  ``online_state_store`` in the response, ``winnow_backend_up{backend="redis"} 0`` and
  ``winnow_backend_errors_total`` in /metrics); back to normal by itself once Redis restarts.
- Redis paused (SIGSTOP: connections hang): requests still answer, bounded by the op timeout,
  with the fallback reported; an event acknowledged meanwhile is not lost from the record
  Redis serves after it resumes (the stale record is invalidated on recovery).
- PostgreSQL killed: recommendations degrade (a user whose record is not in Redis gets the
  cold-start chain, fallback ``online_state_unavailable``); event posts are refused with 503
  "not durable, nothing acknowledged" and nothing refused ever appears in the store; writes
  work again once PostgreSQL restarts (the pool reconnects).
- Throughout: /readyz stays 200 "ready" (reads keep serving) and its ``backends`` name the
  down backend ("store" / "online": "down") while it is down, "up" again after recovery.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from serve_harness import Server, make_home  # noqa: E402
from servers.postgres import require_postgres, start_postgres  # noqa: E402
from servers.redis import require_redis, start_redis  # noqa: E402
from servers.throwaway import wait_for  # noqa: E402

from winnow.data.open_store import open_store  # noqa: E402

OP_TIMEOUT_MS = 500
RETRY_S = 2.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    require_redis()
    require_postgres()
    home = tmp_path_factory.mktemp("backend_faults")
    pg = start_postgres(fsync=False)
    rd = server = None
    try:
        rd = start_redis()
        store_url = pg.create_database("faults") + "?pool_timeout=1&connect_timeout=1"
        (home / "winnow.toml").write_text(
            f'[store]\nurl = "{store_url}"\n\n[online]\nurl = "{rd.url}"\n'
            f"op_timeout_ms = {OP_TIMEOUT_MS}\nconnect_timeout_ms = 200\nretry_s = {RETRY_S}\n")
        cfg = make_home(home, n_users=120, n_items=250, n_events=6000)
        server = Server(home)
        yield cfg, server, rd, pg
    finally:
        if server is not None:
            server.stop()
        if rd is not None:
            rd.stop()
        pg.stop()


def recs(server: Server, user: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/users/{user}/recommendations", params={"k": 10}, timeout=30)


def post(server: Server, user: str, item: str, event_type: str = "purchase") -> httpx.Response:
    return httpx.post(f"{server.url}/v1/events", json={"events": [
        {"user_id": user, "item_id": item, "event_type": event_type}]}, timeout=30)


def metric(server: Server, name: str, backend: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels.get("backend") == backend:
                return s.value
    return 0.0


def items(r: httpx.Response) -> list[str]:
    return [it["item_id"] for it in r.json()["items"]]


def backends(server: Server) -> dict[str, str]:
    """/readyz's backend states; readiness itself must hold through every outage."""
    r = httpx.get(f"{server.url}/readyz", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ready", r.text
    return r.json()["backends"]


def test_redis_killed_requests_degrade_to_the_store_and_recover(world):
    _, server, rd, _ = world
    r = recs(server, "u1")
    assert r.status_code == 200 and r.json()["fallback"] is None
    assert metric(server, "winnow_backend_up", "redis") == 1.0
    assert backends(server) == {"store": "up", "online": "up"}
    errors0 = metric(server, "winnow_backend_errors_total", "redis")
    rd.kill()
    try:
        r = recs(server, "u1")
        assert r.status_code == 200, r.text
        assert r.json()["fallback"] == "online_state_store" and len(items(r)) == 10
        top = items(r)[0]
        assert post(server, "u1", top).status_code == 200  # durable in PostgreSQL: acknowledged
        r = recs(server, "u1")
        assert r.json()["fallback"] == "online_state_store" and top not in items(r)  # history from the store
        assert metric(server, "winnow_backend_up", "redis") == 0.0
        assert metric(server, "winnow_backend_errors_total", "redis") > errors0
        assert backends(server) == {"store": "up", "online": "down"}
    finally:
        rd.start()  # empty: every record is rebuilt from the store
    r = wait_for(lambda: (lambda x: x if x.json()["fallback"] is None else None)(recs(server, "u1")))
    assert r and r.status_code == 200 and top not in items(r)
    assert wait_for(lambda: metric(server, "winnow_backend_up", "redis") == 1.0)
    assert wait_for(lambda: backends(server) == {"store": "up", "online": "up"})


def test_paused_redis_answers_within_the_op_timeout_and_keeps_events(world):
    _, server, rd, _ = world
    r = recs(server, "u2")
    assert r.status_code == 200 and r.json()["fallback"] is None  # u2's record is now in Redis
    top = items(r)[0]
    rd.pause()
    try:
        t0 = time.monotonic()
        r = recs(server, "u2")
        took = time.monotonic() - t0
        assert r.status_code == 200 and r.json()["fallback"] == "online_state_store", r.text
        assert took < 5.0, f"a hung Redis held the request {took:.1f}s (op timeout {OP_TIMEOUT_MS} ms)"
        # within retry_s Redis is skipped: this purchase reaches only the store (and the
        # replica's list of records to invalidate), never Redis' stale copy of u2
        assert post(server, "u2", top).status_code == 200
        r = recs(server, "u2")
        assert r.json()["fallback"] == "online_state_store" and top not in items(r)
        assert backends(server)["online"] == "down"
    finally:
        rd.resume()
    # back on Redis: its old record of u2 (without the purchase) must not be served again
    r = wait_for(lambda: (lambda x: x if x.json()["fallback"] is None else None)(recs(server, "u2")))
    assert r and top not in items(r), "the event acknowledged during the outage was lost from Redis"


def test_postgres_killed_recommendations_degrade_and_events_are_refused(world):
    cfg, server, _, pg = world
    assert recs(server, "u3").json()["fallback"] is None  # u3's record is in Redis
    pg.kill()
    try:
        r = recs(server, "u3")
        assert r.status_code == 200 and len(items(r)) == 10  # Redis still has u3's history
        r = recs(server, "u7")  # not in Redis: its history would come from the store
        assert r.status_code == 200, r.text
        assert r.json()["fallback"] == "online_state_unavailable" and len(items(r)) == 10
        r = post(server, "u3", "refused-item", "click")
        assert r.status_code == 503, r.text
        assert "not durable, nothing acknowledged" in r.json()["detail"]
        assert metric(server, "winnow_backend_up", "store") == 0.0
        assert metric(server, "winnow_backend_errors_total", "store") >= 1
        assert backends(server) == {"store": "down", "online": "up"}
    finally:
        pg.start()
    ok = wait_for(lambda: post(server, "u3", "after-restart", "click").status_code == 200)
    assert ok, "event posts did not recover after PostgreSQL restarted"
    r = wait_for(lambda: (lambda x: x if x.json()["fallback"] is None else None)(recs(server, "u7")))
    assert r and r.status_code == 200
    assert wait_for(lambda: metric(server, "winnow_backend_up", "store") == 1.0)
    assert wait_for(lambda: backends(server) == {"store": "up", "online": "up"})
    store = open_store(cfg.store_url())
    try:
        seen = store.user_events("u3", limit=1000)["item_id"].tolist()
    finally:
        store.close()
    assert "refused-item" not in seen and "after-restart" in seen

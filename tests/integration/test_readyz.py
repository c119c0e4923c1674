"""/readyz names each backend's state; the embedded case (SQLite store, in-process online state).

The store is made to refuse writes the way a read-only file system does (its writer connection
reopened with ``mode=ro``): event posts answer 503, /readyz stays 200 "ready" (reads keep
serving) with ``store: "down"``, and ``"up"`` again after the next durable write. A remote
online-state backend's up/down/up cycle is checked on ``ResilientState.backends`` with a stand-in
at the backend seam; the real servers (PostgreSQL, Redis) are killed and restarted under a real
``winnow serve`` in tests/faults/test_backend_faults.py.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_harness import make_home  # noqa: E402
from servers.throwaway import wait_for  # noqa: E402

from winnow.core.config import load_config  # noqa: E402
from winnow.data.sqlite_store import SQLiteStore  # noqa: E402
from winnow.serving.app import create_app  # noqa: E402
from winnow.serving.online_base import OnlineStateUnavailableError  # noqa: E402
from winnow.serving.online_state import FROM_STORE, ResilientState  # noqa: E402

# retry_s: the health thread must not probe (and mark the store up) in the middle of the test
OVERRIDES = {"security": {"auth": False}, "online": {"retry_s": 600}}


@pytest.fixture
def served(tmp_path):
    make_home(tmp_path, n_users=40, n_items=60, n_events=800, train=False)
    store = SQLiteStore(tmp_path / "winnow.db")
    with TestClient(create_app(load_config(tmp_path, overrides=OVERRIDES), store=store)) as client:
        yield client, store


def _event(tag: str) -> dict:
    return {"events": [{"user_id": "u1", "item_id": "i1", "event_type": "view", "event_id": tag}]}


def _ready(client: TestClient) -> dict:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    return body


def test_readyz_body_names_store_and_in_process_online_state(served):
    client, _ = served
    body = _ready(client)
    assert body["backends"] == {"store": "up", "online": "in-process"}
    assert body["mode"] == "no_bundle_popularity" and body["model_version"] is None  # no bundle trained
    assert client.get("/healthz").json()["status"] == "ok"


def test_readyz_reports_a_store_refusing_writes_then_its_recovery(served):
    client, store = served
    writer = store._writer
    read_only = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, isolation_level=None,
                                check_same_thread=False)
    with store._write_lock:  # swapped between transactions: the impression writer thread also writes
        store._writer = read_only
    try:
        r = client.post("/v1/events", json=_event("refused"))
        assert r.status_code == 503, r.text
        body = _ready(client)  # still ready: reads are served
        assert body["backends"] == {"store": "down", "online": "in-process"}
        rec = client.get("/v1/users/u1/recommendations", params={"k": 5})
        assert rec.status_code == 200 and len(rec.json()["items"]) == 5
    finally:
        with store._write_lock:
            store._writer = writer
        read_only.close()
    assert client.post("/v1/events", json=_event("after")).status_code == 200
    assert _ready(client)["backends"] == {"store": "up", "online": "in-process"}


class _FlakyRemote:
    """Stand-in for the Redis backend at its seam: a miss, or OnlineStateUnavailableError while
    ``down`` (what RedisOnlineState raises for a refused or timed-out connection)."""

    name = "redis"

    def __init__(self) -> None:
        self.down = False

    def weight(self, event_type: str, value: float | None = None) -> float:
        return 1.0

    def get(self, user_id: str, *, rebuild: bool = True) -> None:
        if self.down:
            raise OnlineStateUnavailableError("redis: ConnectionError: connection refused")
        return None

    def ping(self) -> bool:
        return not self.down

    def invalidate(self, users: list[str]) -> None:
        if self.down:
            raise OnlineStateUnavailableError("redis: ConnectionError: connection refused")

    def begin(self, user_ids: list[str]) -> None:
        if self.down:
            raise OnlineStateUnavailableError("redis: ConnectionError: connection refused")

    def cancel(self, user_ids: list[str]) -> None: ...

    def apply(self, events) -> None: ...

    def forget(self, user_id: str) -> bool:
        return False

    def close(self) -> None: ...


def test_backends_report_a_remote_online_state_going_down_and_back(tmp_path):
    cfg = load_config(tmp_path, overrides={"online": {"retry_s": 0.05}})
    store = SQLiteStore(tmp_path / "winnow.db")
    remote = _FlakyRemote()
    state = ResilientState(remote, store, config=cfg, metrics=None)
    try:
        assert state.backends() == {"store": "up", "online": "up"}
        remote.down = True
        assert state.lookup("u1") == (None, FROM_STORE)  # degraded read, reported
        assert state.backends() == {"store": "up", "online": "down"}
        remote.down = False  # the health thread's next PING marks it up
        assert wait_for(lambda: state.backends()["online"] == "up", timeout=10, interval=0.02)
        assert state.backends() == {"store": "up", "online": "up"}
    finally:
        state.close()
        store.close()

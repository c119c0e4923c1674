"""Faults of the store and of bundles, injected into the real app and its real SQLite store.

- disk full: SQLite's ``max_page_count`` caps the database at its current size, so the next
  write fails inside SQLite exactly as on a full disk (SQLITE_FULL);
- read-only store: the writer connection is reopened with ``mode=ro`` (SQLITE_READONLY;
  ``chmod`` would not do: the tests may run as root);
- corrupt bundle published through the ACTIVE pointer (another process "activating" it).

Disk full and read-only are simulated at the SQLite layer here, so that recovery can be tested
too; the same faults on real file systems (a full tmpfs, an ext4 the kernel remounts read-only)
are in test_faults_filesystem.py.

Writes must be refused with 503 and a message naming the cause, nothing half-written; reads
keep serving; writes work again once the fault is gone. kill -9 under write load is covered
by tests/integration/test_serve_durability.py (real process, acknowledged events counted).
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from serve_harness import make_home
from servers.throwaway import wait_for

from winnow.core.config import load_config
from winnow.data.sqlite_store import SQLiteStore
from winnow.serving.app import create_app
from winnow import bundle as bundles

OPEN = {"security": {"auth": False}, "serving": {"bundle_poll_s": 0.1}}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults")
    make_home(path, n_users=100, n_items=200, n_events=3000)
    return path


@pytest.fixture
def served(home):
    cfg = load_config(home, overrides=OPEN)
    store = SQLiteStore(home / "winnow.db")
    with TestClient(create_app(cfg, store=store)) as client:
        yield client, store


def _events(n: int, tag: str) -> dict:
    return {"events": [{"user_id": f"u{j % 30}", "item_id": f"i{j % 150}", "event_type": "view",
                        "event_id": f"{tag}-{j}", "context": {"pad": "p" * 400}} for j in range(n)]}


def _writes(client: TestClient, tag: str) -> list:
    return [client.post("/v1/events", json=_events(800, tag)),
            client.post("/v1/items", json={"items": [{"item_id": f"{tag}-item-{j}", "title": "t" * 500}
                                                     for j in range(200)]}),
            client.put(f"/v1/users/{tag}-user", json={"attributes": {"bio": "b" * 20_000}}),
            client.delete("/v1/users/u5")]


def _reads_ok(client: TestClient) -> None:
    r = client.get("/v1/users/u1/recommendations", params={"k": 5})
    assert r.status_code == 200 and len(r.json()["items"]) == 5
    assert client.get("/v1/items/i1/similar", params={"k": 3}).status_code == 200
    assert client.get("/v1/users/u2").status_code == 200
    assert client.get("/readyz").status_code == 200


def _assert_refused(responses: list, cause: str) -> None:
    for r in responses:
        assert r.status_code == 503, (r.request.method, r.request.url.path, r.status_code, r.text)
        detail = r.json()["detail"]
        assert "nothing was written" in detail and cause in detail, detail


def test_disk_full_refuses_writes_with_503_reads_keep_serving_then_recovers(served):
    client, store = served
    before = store.counts()
    with store._write_lock:  # the impression logger thread writes through the same connection
        pages = store._writer.execute("PRAGMA page_count").fetchone()[0]
        store._writer.execute(f"PRAGMA max_page_count = {pages}")
    try:
        _assert_refused(_writes(client, "full"), "SQLITE_FULL")
        _reads_ok(client)
        assert store.counts()["events"] == before["events"] and store.counts()["items"] == before["items"]
        assert store.get_user("full-user") is None and len(store.user_events("u5")) > 0
    finally:
        with store._write_lock:
            store._writer.execute("PRAGMA max_page_count = 4294967294")
    ok = _writes(client, "after-full")
    assert [r.status_code for r in ok] == [200, 200, 200, 200]
    assert store.counts()["events"] == before["events"] + 800 - ok[3].json()["erased"]["events"]


def test_read_only_store_refuses_writes_with_503_reads_keep_serving_then_recovers(served):
    client, store = served
    before = store.counts()
    with store._write_lock:  # never swap the connection under a background write (segfault risk)
        writer = store._writer
        store._writer = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, isolation_level=None,
                                        check_same_thread=False)
    try:
        _assert_refused(_writes(client, "ro"), "SQLITE_READONLY")
        _reads_ok(client)
        assert store.counts() == {**before, "impressions": store.counts()["impressions"]}
    finally:
        with store._write_lock:
            store._writer.close()
            store._writer = writer
    ok = _writes(client, "after-ro")
    assert [r.status_code for r in ok[:3]] == [200, 200, 200]
    assert ok[0].json()["written"] == 800


def test_corrupt_bundle_published_as_active_is_refused_and_old_one_serves(home, served):
    client, _ = served
    good = client.get("/readyz").json()["model_version"]
    assert good is not None
    bad = "20991231T235959Z-badbad"
    shutil.copytree(bundles.bundles_dir(home) / good, bundles.bundles_dir(home) / bad)
    try:
        with open(bundles.bundles_dir(home) / bad / "items.npz", "r+b") as f:
            f.seek(64)
            f.write(b"\x00corrupt\x00")
        (bundles.bundles_dir(home) / bundles.ACTIVE).write_text(bad + "\n")  # as another process would
        refused = 'winnow_bundle_swaps_total{result="refused"}'
        assert wait_for(lambda: refused + " 1.0" in client.get("/metrics").text, timeout=30, interval=0.1)
        assert client.get("/readyz").json()["model_version"] == good
        r = client.get("/v1/users/u1/recommendations", params={"k": 5})
        assert r.status_code == 200 and r.json()["model_version"] == good
        r = client.post(f"/v1/admin/bundles/{bad}/activate")
        assert r.status_code == 409 and "keeps serving" in r.json()["detail"]
    finally:
        (bundles.bundles_dir(home) / bundles.ACTIVE).write_text(good + "\n")
        shutil.rmtree(bundles.bundles_dir(home) / bad)

"""kill -9 during an event load loses no acknowledged event; no bundle -> popularity, said so."""

from __future__ import annotations

import threading

import httpx
import pytest
from serve_harness import Server, make_home
from servers.throwaway import wait_for

from winnow.data.open_store import open_store


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_durable")
    cfg = make_home(home, n_users=100, n_items=200, n_events=3000, train=False)
    return home, cfg


def test_no_bundle_serves_store_popularity_and_says_so(home):
    path, _ = home
    server = Server(path)
    try:
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["mode"] == "no_bundle_popularity" and ready["model_version"] is None
        body = httpx.get(server.url + "/v1/users/u1/recommendations", params={"k": 5}).json()
        assert len(body["items"]) == 5 and body["fallback"] == "no_bundle_popularity"
        assert body["model_version"] is None
    finally:
        server.stop()


def test_kill9_during_event_load_loses_no_acknowledged_event(home):
    path, cfg = home
    server = Server(path)
    acked: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            batch = 0
            while not stop.is_set():
                ids = [f"kill-{w}-{batch}-{j}" for j in range(50)]
                evs = [{"user_id": f"u{j % 20}", "item_id": f"i{j}", "event_type": "view", "event_id": e}
                       for j, e in enumerate(ids)]
                try:
                    r = c.post("/v1/events", json={"events": evs})
                except httpx.HTTPError:
                    return  # server gone: this batch was never acknowledged
                if r.status_code == 200:
                    acked.extend(ids)
                else:
                    errors.append(r.text)
                batch += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 1500, timeout=60, interval=0.02)  # asserted below
    server.kill9()  # SIGKILL mid-load
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(acked) >= 1500
    store = open_store(cfg.store_url())
    try:
        con_ids = set()
        for u in range(20):
            frame = store.user_events(f"u{u}", limit=1_000_000)
            con_ids.update(x for x in frame["event_id"].tolist() if x and x.startswith("kill-"))
    finally:
        store.close()
    missing = set(acked) - con_ids
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"

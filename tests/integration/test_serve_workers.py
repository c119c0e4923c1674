"""Two worker processes sharing one store: events and activations reach both workers."""

from __future__ import annotations

import time

import httpx
import pytest
from serve_harness import Server, make_home

from winnow.data.open_store import open_store
from winnow.training.job import train


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_workers")
    cfg = make_home(home, n_users=150, n_items=300, n_events=8000)
    server = Server(home, workers=2)
    wait_for_both_workers(server.url)
    yield home, cfg, server
    server.stop()


def wait_for_both_workers(url: str, *, timeout_s: float = 60.0) -> None:
    """Readiness of one worker says nothing of the other (a loaded machine starts them seconds
    apart): spread fresh connections until both have answered, or fail naming what was seen."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(fresh_get(url, "/v1/users/u1/recommendations", k=5).headers["x-winnow-worker"])
        time.sleep(0.05)
    assert len(seen) == 2, f"only worker(s) {sorted(seen)} answered within {timeout_s:.0f} s"


def fresh_get(url: str, path: str, **params) -> httpx.Response:
    """A new connection per call, so calls spread over the workers."""
    with httpx.Client(base_url=url, timeout=30) as c:
        return c.get(path, params=params)


def test_purchase_on_one_worker_is_seen_by_every_worker(two_workers):
    _, _, server = two_workers
    workers: set[str] = set()
    for user in ("u1", "u2", "u3"):
        top = fresh_get(server.url, f"/v1/users/{user}/recommendations", k=10).json()["items"][0]["item_id"]
        for _ in range(4):  # prime both workers' caches with the pre-purchase state
            fresh_get(server.url, f"/v1/users/{user}/recommendations", k=10)
        with httpx.Client(base_url=server.url) as c:
            r = c.post("/v1/events", json={"events": [{"user_id": user, "item_id": top, "event_type": "purchase"}]})
            assert r.status_code == 200
        for _ in range(6):
            r = fresh_get(server.url, f"/v1/users/{user}/recommendations", k=10)
            workers.add(r.headers["x-winnow-worker"])
            assert top not in [it["item_id"] for it in r.json()["items"]]
    assert len(workers) == 2, "requests never reached the second worker: the test proved nothing"


def test_activation_reaches_every_worker(two_workers):
    home, cfg, server = two_workers
    store = open_store(cfg.store_url())
    try:
        v2 = train(cfg, store, evaluate_models=False, activate_bundle=False).version
    finally:
        store.close()
    with httpx.Client(base_url=server.url) as c:
        assert c.post(f"/v1/admin/bundles/{v2}/activate").status_code == 200
    deadline = time.monotonic() + 15
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {fresh_get(server.url, "/readyz").json()["model_version"] for _ in range(8)}
        if seen == {v2}:
            break
        time.sleep(0.2)
    assert seen == {v2}

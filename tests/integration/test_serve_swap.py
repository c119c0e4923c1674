"""Bundle hot swap under load, rollback, and refusal of a corrupt bundle (real server process)."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter

import httpx
import pytest
from serve_harness import Server, make_home

from winnow.bundle import active_version, bundles_dir, new_version
from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.training.job import train


@pytest.fixture(scope="module")
def two_bundles(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_swap")
    cfg = make_home(home)
    v1 = active_version(home)
    store = open_store(cfg.store_url())
    try:
        v2 = train(cfg, store, evaluate_models=False).version
    finally:
        store.close()
    assert v1 != v2 and active_version(home) == v2
    server = Server(home)
    client = httpx.Client(base_url=server.url, timeout=30)
    yield home, server, client, v1, v2
    client.close()
    server.stop()


def fetch_outcome(c: httpx.Client, path: str, **params) -> tuple[str, str | None]:
    """One request's outcome, whatever happens: ("ok", model_version) for a 200 with a JSON
    body naming the version; otherwise ("status 500", body), ("not json", body) or
    ("TransportError", message), so that no failure can escape the count."""
    try:
        r = c.get(path, params=params)
    except httpx.HTTPError as exc:
        return type(exc).__name__, str(exc)
    try:
        body = r.json()
    except ValueError:
        return "not json", f"{r.status_code}: {r.text[:200]}"
    if r.status_code != 200:
        return f"status {r.status_code}", r.text[:200]
    if not isinstance(body, dict) or not body.get("model_version"):
        return "no model_version", r.text[:200]
    return "ok", body["model_version"]


def test_repeated_activation_under_load_fails_no_request(two_bundles):
    home, server, client, v1, v2 = two_bundles
    stop = threading.Event()
    results: list[tuple[str, str | None]] = []
    finished: list[int] = []  # a load thread appends its index when its loop ends normally

    def load(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            i = 0
            while not stop.is_set():
                results.append(fetch_outcome(c, f"/v1/users/u{i % 50}/recommendations", k=10))
                i += 1
        finished.append(n)

    threads = [threading.Thread(target=load, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        for version in (v1, v2, v1, v2, v1):
            r = client.post(f"/v1/admin/bundles/{version}/activate")
            assert r.status_code == 200, r.text
            assert r.json()["serving"] == version
            assert client.get("/v1/users/u1/recommendations").json()["model_version"] == version
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert sorted(finished) == [0, 1, 2], "a load thread died or hung: its failures were not counted"
    assert len(results) > 20
    failed = [(kind, detail) for kind, detail in results if kind != "ok"]
    assert not failed, (len(failed), Counter(kind for kind, _ in failed), failed[:3])
    assert {v for _, v in results} <= {v1, v2}
    assert active_version(home) == v1


def test_rollback_returns_to_previous_version(two_bundles):
    home, _, client, v1, v2 = two_bundles
    assert client.post(f"/v1/admin/bundles/{v2}/activate").status_code == 200
    r = client.post("/v1/admin/bundles/rollback")
    assert r.status_code == 200, r.text
    assert r.json()["serving"] == v1 and r.json()["previous"] == v2
    assert active_version(home) == v1
    listing = client.get("/v1/admin/bundles").json()
    assert listing["serving"] == v1 and {b["version"] for b in listing["bundles"]} >= {v1, v2}
    assert all("metrics" in b for b in listing["bundles"])


def test_corrupt_bundle_is_refused_and_old_one_keeps_serving(two_bundles):
    home, _, client, v1, v2 = two_bundles
    serving = client.get("/readyz").json()["model_version"]
    bad = new_version()
    shutil.copytree(bundles_dir(home) / v2, bundles_dir(home) / bad)
    with open(bundles_dir(home) / bad / "items.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage\x00")
    r = client.post(f"/v1/admin/bundles/{bad}/activate")
    assert r.status_code == 409 and "checksum" in r.json()["detail"]
    assert client.get("/readyz").json()["model_version"] == serving
    assert client.get("/v1/users/u1/recommendations").json()["model_version"] == serving
    assert active_version(home) == serving


def test_server_follows_a_bundle_trained_by_another_process(two_bundles):
    home, _, client, v1, v2 = two_bundles
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        v3 = train(cfg, store, evaluate_models=False).version  # activates: writes ACTIVE
    finally:
        store.close()
    deadline = time.monotonic() + 60  # polled every bundle_poll_s; generous for a loaded machine
    while time.monotonic() < deadline and client.get("/readyz").json()["model_version"] != v3:
        time.sleep(0.2)
    assert client.get("/readyz").json()["model_version"] == v3
    assert client.get("/v1/users/u1/recommendations").json()["model_version"] == v3

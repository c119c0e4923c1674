"""Two worker processes sharing one store: events and activations reach both workers.

Which worker accepts a connection is the kernel's choice, so every claim about "every worker"
is checked with ``Server.until_every_worker``: fresh connections until each worker process has
answered (by pid, the ``x-winnow-worker`` header), to a bounded deadline."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path

import httpx
import pytest
from serve_harness import Server, build_window, fresh_request, home_and_challenger, make_home

from winnow.core.files import held_flock
from winnow.data.open_store import open_store
from winnow.serving.workers import BUILD_LOCK_ENV
from winnow.training.job import train


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_workers")
    cfg = make_home(home, n_users=150, n_items=300, n_events=8000)
    server = Server(home, workers=2)  # ready = /readyz 200 from both workers
    yield home, cfg, server
    server.stop()


def slate(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [it["item_id"] for it in r.json()["items"]]


def test_purchase_on_one_worker_is_seen_by_every_worker(two_workers):
    _, _, server = two_workers
    for user in ("u1", "u2", "u3"):
        path = f"/v1/users/{user}/recommendations"
        top = slate(fresh_request(server.url, "GET", path, params={"k": 10}))[0]
        # every worker serves (and caches) the pre-purchase state, with the item in it
        before = server.until_every_worker("GET", path, params={"k": 10})
        assert all(top in slate(r) for rs in before.values() for r in rs), (user, top)
        r = fresh_request(server.url, "POST", "/v1/events",
                          json={"events": [{"user_id": user, "item_id": top, "event_type": "purchase"}]})
        assert r.status_code == 200 and r.json()["written"] == 1, r.text
        # the purchase was answered once durable: no worker may serve the item afterwards,
        # not even once (each validates its cached state against the store on every request)
        after = server.until_every_worker("GET", path, params={"k": 10})
        for pid, rs in after.items():
            assert all(top not in slate(r) for r in rs), f"worker {pid} still serves {top} to {user}"


def test_activation_reaches_every_worker(two_workers):
    home, cfg, server = two_workers
    store = open_store(cfg.store_url())
    try:
        v2 = train(cfg, store, evaluate_models=False, activate_bundle=False).version
    finally:
        store.close()
    before = server.until_every_worker("GET", "/readyz")
    assert all(rs[-1].json()["model_version"] != v2 for rs in before.values())
    r = fresh_request(server.url, "POST", f"/v1/admin/bundles/{v2}/activate")
    assert r.status_code == 200, r.text
    # the other worker follows the ACTIVE pointer within bundle_poll_s; 60 s bounds a loaded machine
    after = server.until_every_worker("GET", "/readyz", ok=lambda r: r.json()["model_version"] == v2)
    assert all(rs[-1].json()["model_version"] == v2 for rs in after.values())


def server_build_lock(pid: str) -> str:
    """The build lock file a worker was started with ($WINNOW_BUILD_LOCK in its environment)."""
    env = dict(kv.split(b"=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in kv)
    return env.get(BUILD_LOCK_ENV.encode(), b"").decode()


def test_the_workers_of_a_server_build_one_at_a_time(tmp_path):
    """Every worker builds a swap's runtime; this server's build lock (serving.swap.one_build_at_a_time,
    one file the dispatcher names in every worker's environment) makes them build one at a time:
    while someone else holds it no worker builds, and afterwards their build windows (each
    worker's /metrics) do not overlap. Two builds at once on 2 cores left no core for requests.
    Started as users start it (``winnow serve`` with [serving] workers = 2: the dispatcher makes
    the lock)."""
    cfg, target = home_and_challenger(tmp_path, n_users=100, n_items=200, n_events=4000)
    server = Server(tmp_path, workers=2, cli=True)
    try:
        built_one_at_a_time(server, target)
        lock = server_build_lock(str(next(iter(server.until_every_worker("GET", "/readyz")))))
    finally:
        server.stop()
    assert not Path(lock).exists(), "the dispatcher leaves its lock file behind"


def built_one_at_a_time(server: Server, target: str) -> None:
    locks = {server_build_lock(pid) for pid in server.until_every_worker("GET", "/readyz")}
    assert len(locks) == 1 and Path(next(iter(locks))).is_file(), f"one lock file per server: {locks}"
    asked = time.time()
    with ThreadPoolExecutor(1) as pool:
        with held_flock(next(iter(locks))) as held:
            assert held
            answer = pool.submit(fresh_request, server.url, "POST", f"/v1/admin/bundles/{target}/activate")
            with pytest.raises(FuturesTimeout):  # the activation waits for the lock ...
                answer.result(timeout=1.0)
            before = server.until_every_worker("GET", "/readyz")  # ... and no worker serves it yet
            assert all(rs[-1].json()["model_version"] != target for rs in before.values())
        r = answer.result(timeout=120)
    assert r.status_code == 200, r.text

    def built(resp: httpx.Response) -> bool:
        start, end = build_window(resp)
        return start >= asked and end >= start

    server.until_every_worker("GET", "/readyz", ok=lambda resp: resp.json()["model_version"] == target)
    windows = sorted(build_window(rs[-1]) for rs in server.until_every_worker("GET", "/metrics", ok=built).values())
    (_, first_end), (second_start, _) = windows
    assert first_end <= second_start, f"the workers' builds overlapped: {windows}"


def test_until_every_worker_fails_when_a_worker_never_answers():
    """The helper the tests above rely on can fail: a one-process server passed off as two."""
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import SimpleNamespace

    class OneWorker(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("x-winnow-worker", str(os.getpid()))
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), OneWorker)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        fake = SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", workers=2,
                               proc=SimpleNamespace(pid=os.getpid()))
        with pytest.raises(AssertionError, match="1 distinct worker"):
            Server.until_every_worker(fake, "GET", "/readyz", timeout_s=1.0)
        fake.workers = 1
        assert list(Server.until_every_worker(fake, "GET", "/readyz", timeout_s=1.0)) == [str(os.getpid())]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)

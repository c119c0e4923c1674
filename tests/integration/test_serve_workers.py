"""Two worker processes sharing one store: events and activations reach both workers.

Which worker accepts a connection is the kernel's choice, so every claim about "every worker"
is checked with ``Server.until_every_worker``: fresh connections until each worker process has
answered (by pid, the ``x-winnow-worker`` header), to a bounded deadline."""

from __future__ import annotations

import httpx
import pytest
from serve_harness import Server, fresh_request, make_home

from winnow.data.open_store import open_store
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

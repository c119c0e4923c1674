"""`winnow serve` with [serving] workers = 2: the dispatcher deals kept-alive connections out
evenly (2 connections -> one per worker, 4 -> two each), counts closed connections back, and
stops its workers on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest
from serve_harness import free_port, make_home


def _worker_of(client: httpx.Client) -> str:
    r = client.get("/v1/users/u1/recommendations", params={"k": 5})
    assert r.status_code == 200, r.text
    return r.headers["x-winnow-worker"]


@pytest.fixture(scope="module")
def dispatched(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_dispatch")
    make_home(home, n_users=150, n_items=300, n_events=8000)
    port = free_port()
    env = {**os.environ, "WINNOW__SECURITY__AUTH": "false", "WINNOW__SERVING__WORKERS": "2",
           "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from winnow.cli import main; main()", "--home", str(home),
                             "serve", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    ready = 0
    while time.monotonic() < deadline and ready < 2:  # both workers said ready: 2 connections, 2 pids
        try:
            clients = [httpx.Client(base_url=url, timeout=30) for _ in range(2)]
            ready = len({_worker_of(c) for c in clients})
            for c in clients:
                c.close()
        except httpx.HTTPError:
            ready = 0
        if ready < 2:
            time.sleep(0.2)
    assert ready == 2, "the two workers never both answered within 120 s"
    yield url, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def test_kept_alive_connections_are_dealt_evenly(dispatched):
    url, _ = dispatched
    for n in (2, 4, 6):
        clients = [httpx.Client(base_url=url, timeout=30) for _ in range(n)]
        try:
            per_conn = [_worker_of(c) for c in clients]
            # each kept-alive connection stays on its worker
            assert all(_worker_of(c) == w for c, w in zip(clients, per_conn, strict=True))
            assert sorted(Counter(per_conn).values()) == [n // 2, n // 2], per_conn
        finally:
            for c in clients:
                c.close()


def test_sigterm_stops_dispatcher_and_workers(tmp_path):
    home = tmp_path
    make_home(home, n_users=60, n_items=80, n_events=1500, train=False)
    port = free_port()
    env = {**os.environ, "WINNOW__SECURITY__AUTH": "false", "WINNOW__SERVING__WORKERS": "2"}
    proc = subprocess.Popen([sys.executable, "-c", "from winnow.cli import main; main()", "--home", str(home),
                             "serve", "--port", str(port)], env=env)
    pids: set[str] = set()
    deadline = time.monotonic() + 120
    while len(pids) < 2 and time.monotonic() < deadline:
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                pids.add(c.get("/healthz").headers["x-winnow-worker"])
        except httpx.HTTPError:
            time.sleep(0.2)
    assert len(pids) == 2, pids
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, f"dispatcher exited {proc.returncode} on SIGTERM"
    for pid in pids:  # every worker is gone once the dispatcher returned
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived the dispatcher"

"""The live drift comparison runs ONCE per home per refresh on a real two-worker ``winnow serve``,
in the drift monitor process it starts (serving/drift_monitor.py, drift_supervisor.py), never in
a serving worker: the shared result's history shows consecutive computations at least
``refresh_s`` apart, numbered without gaps, each by the monitor's pid (a child of the server that
is not one of its workers); every worker answers ``computed_here`` 0; both workers answer the
same report for the same computation; the admin refresh wakes the monitor, answers a result
attempted after the call, and every worker then serves it.

Which worker accepts a connection is the kernel's choice, so every claim about "both workers"
is checked with ``Server.until_every_worker`` (fresh connections to a bounded deadline); every
wait is on a condition with a deadline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from serve_harness import Server, fresh_request, monitor_pids, process_tree, trained_home
from servers.throwaway import wait_for

REFRESH_S = 2.0
TOML = f"""
[drift]
refresh_s = {REFRESH_S}
max_duty = 1.0  # the refresh period under test, not the duty bound (tests/unit/test_drift_monitor_duty.py)
history = 50
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("drift_workers")
    trained_home(home, TOML, n_users=150, n_items=300, n_events=8000)
    srv = Server(home, workers=2, cli=True)
    yield home, srv
    srv.stop()


def _shared(home: Path) -> dict | None:
    path = home / "drift" / "live.json"
    return json.loads(path.read_text()) if path.exists() else None


def worker_pids(srv: Server) -> set[int]:
    return process_tree(srv.proc.pid) - {srv.proc.pid} - monitor_pids(srv.proc.pid)


def test_one_computation_per_refresh_for_the_whole_server(server):
    home, srv = server
    doc = wait_for(lambda: (d := _shared(home)) and d["computations"] >= 5 and d, timeout=120, interval=0.1)
    assert doc, f"fewer than 5 computations within 120 s: {_shared(home)}"
    assert doc["state"] == "ok" and doc["report"] is not None, doc
    hist = doc["history"]
    numbers = [h["computation"] for h in hist]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[-1] == doc["computations"]
    gaps = [b["at"] - a["at"] for a, b in zip(hist, hist[1:])]
    assert min(gaps) >= REFRESH_S, f"two computations within one refresh period: {gaps}"
    monitors = monitor_pids(srv.proc.pid)
    assert len(monitors) == 1, monitors  # one monitor child for the server
    assert {h["by"] for h in hist} == monitors and doc["computed_by"] in monitors, (hist, monitors)
    # no serving worker ever ran a comparison: each says so, and none of them is the monitor
    answers = srv.until_every_worker("GET", "/v1/admin/drift")
    assert {int(pid) for pid in answers} <= worker_pids(srv) and not {int(pid) for pid in answers} & monitors
    assert all(r.json()["computed_here"] == 0 for rs in answers.values() for r in rs), answers


def test_both_workers_answer_the_same_report(server):
    home, srv = server
    seen: dict[int, dict[str, dict]] = {}  # computation -> {worker pid: body}

    def common():
        answers = srv.until_every_worker("GET", "/v1/admin/drift", ok=lambda r: r.json()["state"] == "ok")
        for pid, rs in answers.items():
            for r in rs:
                body = r.json()
                seen.setdefault(body["computations"], {})[pid] = body
        return next((bodies for bodies in seen.values() if len(bodies) == 2), None)

    bodies = wait_for(common, timeout=60, interval=0.05)
    assert bodies, f"no computation answered by both workers within 60 s: { {c: list(b) for c, b in seen.items()} }"
    a, b = bodies.values()
    assert a["report"] == b["report"] and a["computed_at"] == b["computed_at"] and a["history"] == b["history"]
    assert a["computed_by"] == b["computed_by"]


def test_the_admin_refresh_computes_once_and_every_worker_serves_it(server):
    home, srv = server
    asked = time.time()
    r = fresh_request(srv.url, "POST", "/v1/admin/drift/refresh")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "ok" and body["computed_by"] in monitor_pids(srv.proc.pid) and body["computed_here"] == 0
    assert body["history"][-1]["at"] >= asked  # the answer is a comparison that began after the call
    forced = body["computations"]
    doc = _shared(home)
    assert doc is not None and doc["computations"] >= forced
    after = srv.until_every_worker("GET", "/v1/admin/drift", ok=lambda r: r.json()["computations"] >= forced)
    assert all(rs[-1].json()["report"] is not None for rs in after.values())

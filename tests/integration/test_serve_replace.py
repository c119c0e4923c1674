"""`winnow serve` with [serving] workers = 2 and rebuild = "replace" (the default): a rollout's
challenger is not built by the workers serving; each is replaced, one at a time, by a fresh
worker process that loads the champion and the challenger at idle CPU priority, and the old
one retires after its connections move (serving/workers.py, serving/worker_proc.py).

Proof: clients on kept-alive connections see only 200s throughout; every worker that answers
afterwards holds the challenger and is a new process; the replaced ones exit; no thread of a
new worker is left in the SCHED_IDLE class; each spare's start-up build took the server's
build lock (its /metrics build window). A bundle ACTIVE then names (`winnow train`) reaches the
workers the same way."""

from __future__ import annotations

import os
import threading
import time

import httpx
from serve_harness import (WORKER_HEADER, Server, build_window, fresh_request, home_and_challenger, policies,
                           wait_exited)

from winnow import bundle as bundles


def hammer(url: str, stop: threading.Event, seen: dict[str, list], answered: threading.Condition) -> None:
    """Recommendations on one kept-alive client until ``stop``: statuses, errors, answering pids
    (``answered`` is notified after each)."""
    with httpx.Client(base_url=url, timeout=30) as c:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = c.get(f"/v1/users/u{i % 50}/recommendations", params={"k": 5})
                with answered:
                    seen["status"].append(r.status_code)
                    seen["pids"].append(r.headers.get(WORKER_HEADER))
                    answered.notify_all()
            except httpx.HTTPError as exc:
                seen["errors"].append(repr(exc))
            stop.wait(0.005)  # paced (not a wait for anything): CPU stays for the spares' idle-class builds


def test_a_challenger_is_loaded_by_fresh_workers_while_the_old_ones_serve(tmp_path):
    cfg, challenger = home_and_challenger(tmp_path, n_users=150, n_items=300, n_events=8000)
    # a shadow whose challenger the workers hold ([rollout] shadow_process = false; with the
    # default the server's shadow process holds it: test_serve_shadow_process.py)
    server = Server(tmp_path, workers=2, cli=True, env={"WINNOW__ROLLOUT__POLL_S": "0.2",
                                                         "WINNOW__ROLLOUT__SHADOW_PROCESS": "false"})
    stop = threading.Event()
    seen: dict[str, list] = {"status": [], "errors": [], "pids": []}
    answered = threading.Condition()
    clients = [threading.Thread(target=hammer, args=(server.url, stop, seen, answered)) for _ in range(2)]
    try:
        old = {int(pid) for pid in server.until_every_worker("GET", "/readyz")}
        for t in clients:
            t.start()
        asked = time.time()
        r = fresh_request(server.url, "POST", "/v1/admin/rollout/shadow", json={"bundle": challenger, "sample": 0.2})
        assert r.status_code == 200, r.text
        running = wait_exited(old, 240)
        assert not running, f"the workers were not replaced, {running} still run: {server.read_log()}"
        with answered:  # the clients go on past the replacement
            n = len(seen["status"])
            assert answered.wait_for(lambda: len(seen["status"]) >= n + 20, timeout=60), seen["errors"][:5]
        stop.set()
        for t in clients:
            t.join(60)

        def loaded(resp: httpx.Response) -> bool:
            return resp.status_code == 200 and resp.json()["here"]["challenger_loaded"] == challenger

        # no kept-alive client now: fresh connections reach every worker
        new = {int(pid) for pid in server.until_every_worker("GET", "/v1/admin/rollout", ok=loaded, timeout_s=120)}
        assert not new & old, f"workers {new & old} loaded the challenger themselves (expected fresh processes)"
        for pid in new:
            idle = {tid: p for tid, p in policies(pid).items() if p != os.SCHED_OTHER}
            assert not idle, f"worker {pid}: threads left in a non-default scheduling class: {idle}"
        windows = [build_window(rs[-1]) for rs in server.until_every_worker(
            "GET", "/metrics", ok=lambda resp: build_window(resp)[0] >= asked).values()]
        assert all(start >= asked and end >= start for start, end in windows), windows
        # the ACTIVE follower the same way: `winnow train` (here: the pointer written) -> fresh workers
        assert fresh_request(server.url, "POST", "/v1/admin/rollout/abort").status_code == 200
        bundles.activate(cfg.home, challenger)
        served = server.until_every_worker("GET", "/readyz", ok=lambda resp: resp.json()["model_version"] == challenger,
                                           timeout_s=240)
        assert not {int(pid) for pid in served} & new, "a worker built the ACTIVE bundle itself"
    finally:
        stop.set()
        for t in clients:
            if t.is_alive():
                t.join(60)
        log = server.read_log()
        server.stop()
    assert not seen["errors"], seen["errors"][:5]
    assert set(seen["status"]) == {200}, sorted(set(seen["status"]))
    assert {int(p) for p in seen["pids"][-10:]} <= new, "the clients did not move to the new workers"
    assert {int(p) for p in seen["pids"]} & old, "the old workers served nothing meanwhile"
    assert "replaces pid" in log, log

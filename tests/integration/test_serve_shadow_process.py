"""`winnow serve` with [serving] workers = 2 and [rollout] shadow_process = true (the default): a
shadow rollout's challenger lives in one shadow process of the server (serving/shadow_proc.py),
not in the workers, which only send it their sampled requests (serving/shadow_link.py).

Proof: the workers that answer during the shadow are the ones that answered before (none is
replaced, none builds); every worker reports the challenger loaded once the shadow process holds
it; the process's job thread runs in the SCHED_IDLE class and no worker thread does; every
job the process received is settled (ran, or skipped while a worker was busy: counted) and every one
that ran (sample 1.0) is a comparison record of the challenger in the store; events
posted meanwhile reach the process (none lost); at the abort the process exits by itself and the
workers report no challenger."""

from __future__ import annotations

import os

import httpx
from serve_harness import Server, fresh_request, home_and_challenger, policies, process_tree, wait_exited
from servers.throwaway import wait_for

from winnow.data.open_store import open_store


def test_a_shadow_is_answered_by_the_shadow_process_not_by_the_workers(tmp_path):
    cfg, challenger = home_and_challenger(tmp_path, n_users=150, n_items=300, n_events=8000)
    server = Server(tmp_path, workers=2, cli=True, env={"WINNOW__ROLLOUT__POLL_S": "0.2"})
    try:
        workers = {int(pid) for pid in server.until_every_worker("GET", "/readyz")}
        r = fresh_request(server.url, "POST", "/v1/admin/rollout/shadow", json={"bundle": challenger, "sample": 1.0})
        assert r.status_code == 200, r.text
        rid = r.json()["rollout"]["id"]

        def loaded(resp: httpx.Response) -> bool:
            return resp.status_code == 200 and resp.json()["here"]["challenger_loaded"] == challenger

        status = server.until_every_worker("GET", "/v1/admin/rollout", ok=loaded, timeout_s=180)
        assert {int(pid) for pid in status} == workers, "a worker was replaced for a shadow"
        shadow = next(iter(status.values()))[-1].json()["here"]["shadow"]
        pid = shadow["process"]["pid"]
        assert pid in process_tree(server.proc.pid) and pid not in workers, shadow
        assert os.sched_getscheduler(pid) == os.SCHED_OTHER  # its receiver: normal priority
        assert os.SCHED_IDLE in policies(pid).values(), f"no SCHED_IDLE thread in the shadow process {pid}"
        for w in workers:
            assert os.SCHED_IDLE not in policies(w).values(), f"worker {w} has a SCHED_IDLE thread"
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.post("/v1/events", json={"events": [{"user_id": "u1", "item_id": "i1", "event_type": "click"}]}
                          ).status_code in (200, 201, 202)
            answered = [c.get(f"/v1/users/u{i}/recommendations", params={"k": 5}) for i in range(40)]
        assert all(a.status_code == 200 for a in answered)
        request_ids = {a.json()["request_id"] for a in answered}

        # Jobs run only while no worker serves a request, so on a busy machine some are skipped
        # (counted): wait until the process has settled every job it received (its marker is
        # rewritten every poll_s), then every job that ran must have its record.
        outcomes = ("ran", "skipped_busy", "skipped_budget", "preempted", "dropped", "stale")

        def settled(resp: httpx.Response) -> bool:
            counts = resp.json()["here"]["shadow"]["process"]["counts"]
            return counts.get("received", 0) > 0 and counts["received"] == sum(counts.get(k, 0) for k in outcomes)

        here = [rs[-1].json()["here"]["shadow"]
                for rs in server.until_every_worker("GET", "/v1/admin/rollout", ok=settled, timeout_s=120).values()]
        counts = here[0]["process"]["counts"]
        assert counts["ran"] >= 1 and counts.get("stale", 0) == 0, counts
        assert counts["received"] <= sum(h["sent"] for h in here) <= len(request_ids), here
        assert all(h["events_lost"] == 0 and h["unavailable"] == 0 for h in here), here
        st = open_store(cfg.store_url())
        try:
            assert wait_for(lambda: len(st.read_shadow(rid)) >= counts["ran"], timeout=60, interval=0.1), \
                "a job that ran left no record"
            records = {rec["request_id"]: rec for rec in st.read_shadow(rid)}
        finally:
            st.close()
        assert len(records) == counts["ran"] and set(records) <= request_ids, (len(records), counts)
        assert {rec["challenger"] for rec in records.values()} == {challenger}
        assert not any(rec.get("error") for rec in records.values()), list(records.values())[:2]
        assert fresh_request(server.url, "POST", "/v1/admin/rollout/abort").status_code == 200
        assert not wait_exited({pid}, 60), f"the shadow process {pid} did not exit after the abort"
        server.until_every_worker("GET", "/v1/admin/rollout",
                                  ok=lambda resp: resp.json()["here"]["challenger_loaded"] is None)
        assert wait_exited(workers, 0) == workers, "a worker exited"
    finally:
        log = server.read_log()
        server.stop()
    assert "shadow process started" in log and "not handled" not in log and "Traceback" not in log, log

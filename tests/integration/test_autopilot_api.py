"""``GET /v1/admin/autopilot`` on a REAL `winnow serve` over a home where `winnow autopilot --once`
(a separate process, as users run it) has written a cycle record: the route answers what
`winnow autopilot status` prints (one implementation), typed by the Python client; admin scope
only; a record that cannot be read answers 409 naming the file, never a 500 or a partial list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serve_harness import Server, trained_home
from winnow_client import AutopilotStatus, Client

from winnow.core.config import load_config
from winnow.cyclelog.record import STAGES, cycles_dir, load_records
from winnow.cyclelog.status import status_data
from winnow.serving.auth import KeyFile, keys_path

pytestmark = pytest.mark.slow
FAST = "[ranker]\nenabled = false\n"  # a bundle fast: the ranker is training's business


def _cli(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "winnow", "--home", str(home), *args], check=False,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home: Path = tmp_path_factory.mktemp("autopilot-api")
    trained_home(home, FAST, n_users=150, n_items=200, n_events=6_000)
    run = _cli(home, "autopilot", "--once")
    assert run.returncode == 0, run.stdout + run.stderr
    keys = KeyFile(keys_path(load_config(home)))
    tokens = {s: keys.create([s], name=f"autopilot-{s}")[1] for s in ("read", "admin")}
    server = Server(home, auth=True)
    client = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {tokens['admin']}"})
    yield home, server, client, tokens
    client.close()
    server.stop()


def test_admin_scope_only(served):
    _, server, _, tokens = served
    assert httpx.get(server.url + "/v1/admin/autopilot").status_code == 401
    r = httpx.get(server.url + "/v1/admin/autopilot", headers={"Authorization": f"Bearer {tokens['read']}"})
    assert r.status_code == 403


def test_the_route_answers_the_cycle_as_autopilot_status_shows_it(served):
    home, _, client, _ = served
    r = client.get("/v1/admin/autopilot")
    assert r.status_code == 200, r.text
    body = r.json()
    records = load_records(home)
    assert body["total"] == len(records) == 1
    (c,) = body["cycles"]
    rec = records[0]
    assert c["cycle"] == rec["cycle"] and c["status"] == "done" and c["trigger"] == rec["trigger"]
    assert c["attempts"] == 1 and c["reason"] is None and c["finished_at"] >= c["started_at"]
    assert [s["name"] for s in c["stages"]] == list(STAGES)
    for s in c["stages"]:
        st = rec["stages"][s["name"]]
        assert s["status"] == "done" and s["wall_s"] == st["wall_s"] and s["wall_s"] >= 0
        assert s["peak_rss_mib"] == st.get("peak_rss_mib") and s["runs"] == 1
    fit = next(s for s in c["stages"] if s["name"] == "fit")
    assert fit["summary"] == f"bundle {rec['stages']['fit']['outputs']['version']}"
    gate = c["gate"]
    assert gate["challenger"] == rec["gate"]["challenger"] and gate["passed"] == rec["gate"]["passed"]
    assert gate["passed"] == all(chk["passed"] for chk in gate["checks"]) and gate["passed"] == (not gate["reasons"])
    assert set(gate["metrics"]["challenger"]) >= {"ndcg", "recall", "coverage", "users"}
    assert c["handoff"]["action"] and c["handoff"]["active_after"]
    assert body == status_data(records)  # the same data the CLI formats
    # the CLI prints the same stages, summaries and verdict
    out = _cli(home, "autopilot", "status", timeout=120)
    assert out.returncode == 0, out.stderr
    assert c["cycle"] in out.stdout and fit["summary"] in out.stdout
    assert ("gate: PASSED" if gate["passed"] else "gate: FAILED") in out.stdout
    assert all(s["summary"] in out.stdout for s in c["stages"])


def test_last_and_its_bounds(served):
    _, _, client, _ = served
    assert len(client.get("/v1/admin/autopilot", params={"last": 1}).json()["cycles"]) == 1
    r = client.get("/v1/admin/autopilot", params={"last": 0})
    assert r.status_code == 422 and "last" in r.text


def test_the_python_client_types_the_answer(served):
    _, server, _, tokens = served
    with Client(server.url, api_key=tokens["admin"]) as c:
        st = c.autopilot(last=5)
    assert isinstance(st, AutopilotStatus) and st.total == 1
    cyc = st.cycles[0]
    assert [s.name for s in cyc.stages] == list(STAGES) and cyc.gate is not None
    assert cyc.gate.challenger == cyc.stages[2].summary.removeprefix("bundle ")


def test_an_unreadable_record_is_a_409_naming_the_file(served):
    home, _, client, _ = served
    bad = cycles_dir(home) / "c20990101T000000Z-abcdef.json"
    bad.write_text("{not json")
    try:
        r = client.get("/v1/admin/autopilot")
        assert r.status_code == 409, r.text
        assert bad.name in r.json()["detail"] and "unreadable cycle record" in r.json()["detail"]
    finally:
        bad.unlink()
    assert client.get("/v1/admin/autopilot").status_code == 200

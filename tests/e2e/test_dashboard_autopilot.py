"""The dashboard's Autopilot page in a real browser (headless Chromium) over a REAL `winnow serve`:
two cycles written by `winnow autopilot --once` (a separate process, as users run it) -- one
whose challenger passes the gate and is activated, one, after new events, whose gate floor
fails -- render with their trigger, stages (timings, peak RSS), gate verdicts and reasons and the
hand-off, without console errors (GET /v1/admin/autopilot, read from the cycle records)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dashboard_harness import (
    WinnowServer, create_key, open_view, recent_world, screenshot, signed_in_page,
)

from winnow.cyclelog.record import STAGES, load_records
from winnow.data.open_store import open_store

pytestmark = pytest.mark.slow
DAY = 86400
FAST = "[ranker]\nenabled = false\n"
FAILING_GATE = FAST + "[lifecycle.gate]\nmin_ndcg = 0.99\n"  # no model reaches it: the gate must fail


def _autopilot_once(home: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "winnow", "--home", str(home), "autopilot", "--once"],
                         check=False, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home: Path = tmp_path_factory.mktemp("autopilot-page")
    cfg, world, _ = recent_world(home, FAST, n_users=150, n_items=200, n_events=6_000, seed=3,
                                 start=int(time.time()) - 40 * DAY)
    _autopilot_once(home)  # passes the default gate: activated
    later = world.events.assign(timestamp=world.events["timestamp"] + 8 * DAY,  # new events, a new cut
                                event_id="later-" + world.events["event_id"])
    store = open_store(cfg.store_url())
    try:
        store.import_all(events=later)
    finally:
        store.close()
    (home / "winnow.toml").write_text(FAILING_GATE)
    _autopilot_once(home)  # the gate's floor fails: the challenger is kept, labelled, never served
    records = load_records(home)
    assert [r["status"] for r in records] == ["done", "done"], records
    assert records[0]["gate"]["passed"] is True and records[1]["gate"]["passed"] is False
    token = create_key(cfg)
    server = WinnowServer(home)
    yield {"server": server, "token": token, "records": records}
    server.stop()


def test_autopilot_page_shows_cycles_stages_gate_and_handoff(served):
    passed, failed = served["records"]
    with signed_in_page(served["token"]) as (page, con):
        open_view(page, served["server"].url, "autopilot")
        assert page.inner_text("#autopilot-count").startswith("2 of 2 cycles")
        cycles = page.eval_on_selector_all(".cycle", "els => els.map(e => e.dataset.cycle)")
        assert cycles == [failed["cycle"], passed["cycle"]]  # newest first
        for rec in (passed, failed):
            panel = page.locator(f'.cycle[data-cycle="{rec["cycle"]}"]')
            rows = panel.locator("tbody tr").evaluate_all("els => els.map(e => [...e.cells].map(c => c.textContent))")
            assert [r[0] for r in rows] == list(STAGES)
            assert all(r[1] == "done" for r in rows)
            walls = [float(r[2]) for r in rows]
            assert all(w >= 0 for w in walls)
            fit = next(r for r in rows if r[0] == "fit")
            assert fit[6] == f"bundle {rec['stages']['fit']['outputs']['version']}"
            assert f"trigger: {rec['trigger']}" in panel.inner_text()
            handoff = panel.locator(".handoff").inner_text()
            assert rec["stages"]["handoff"]["outputs"]["action"] in handoff
        ok = page.locator(f'.cycle[data-cycle="{passed["cycle"]}"] .gate-verdict').inner_text()
        bad = page.locator(f'.cycle[data-cycle="{failed["cycle"]}"] .gate-verdict').inner_text()
        assert (ok, bad) == ("gate PASSED", "gate FAILED")
        reasons = page.locator(f'.cycle[data-cycle="{failed["cycle"]}"] .gate-reason').all_inner_texts()
        assert reasons and all(r.startswith("failed: ") for r in reasons)
        assert any("ndcg" in r for r in reasons), reasons
        text = page.inner_text("#view")
        assert "undefined" not in text and "NaN" not in text and "null" not in text
        screenshot(page, "autopilot")
        con.check("autopilot page")

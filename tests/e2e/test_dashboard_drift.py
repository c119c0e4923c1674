"""Live drift monitoring on a REAL `winnow serve` process, and its dashboard page in a real
browser (headless Chromium): the monitor thread compares the store's last week with the serving
bundle's reference profile; over the traffic the bundle was trained on nothing is flagged (A/A);
events posted to the service that pile onto a handful of items show up as DATA drift (not
concept drift) in GET /v1/admin/drift and /metrics within a bounded deadline (waited on, never
slept); the Drift page shows the per-feature table with a sparkline of each statistic's history.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from dashboard_harness import (
    WinnowServer, create_key, open_view, recent_world, screenshot, signed_in_page,
)
from servers.throwaway import wait_for


pytestmark = pytest.mark.slow
DAY = 86400
TOML = """
[ranker]
enabled = false
[drift]
refresh_s = 0.5
history = 20
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home: Path = tmp_path_factory.mktemp("drift")
    # the last 30 days up to now: the bundle's reference week is (almost) the live week
    cfg, world, info = recent_world(home, TOML, n_users=200, n_items=300, n_events=8_000, seed=5,
                                    start=int(time.time()) - 30 * DAY)
    token = create_key(cfg)
    server = WinnowServer(home)
    client = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"})
    yield {"server": server, "client": client, "token": token, "version": info.version, "world": world}
    client.close()
    server.stop()


def _drift(client: httpx.Client) -> dict:
    r = client.get("/v1/admin/drift")
    assert r.status_code == 200, r.text
    return r.json()


def test_the_endpoint_returns_the_table_and_an_aa_window_raises_nothing(served):
    client = served["client"]
    assert httpx.get(served["server"].url + "/v1/admin/drift").status_code == 401  # admin scope
    d = wait_for(lambda: (lambda x: x if x["report"] is not None else None)(_drift(client)), timeout=60)
    assert d, f"no drift report within 60 s: {_drift(client)}\n{served['server'].read_log()}"
    rep = d["report"]
    assert d["state"] == "ok" and rep["bundle"] == served["version"]
    names = {(r["name"], r["statistic"]) for r in rep["data"]}
    assert {("event_mix", "psi"), ("item_popularity", "js"), ("user_activity", "ks"),
            ("item_activity", "wasserstein"), ("new_item_share", "psi")} <= names
    for r in rep["data"] + rep["concept"]:
        assert set(r) >= {"name", "statistic", "value", "threshold", "drifted"}
    assert rep["data_drift"] is False and rep["concept_drift"] is False, rep
    assert any("no ranker profile" in n for n in rep["notes"])  # [ranker] enabled = false: said, not hidden
    metrics = client.get("/metrics").text
    assert 'winnow_drift_detected{kind="data"} 0.0' in metrics
    assert 'winnow_drift_statistic{feature="item_popularity",kind="data",statistic="psi"}' in metrics


def test_an_injected_shift_shows_up_as_data_drift_within_a_deadline(served):
    client = served["client"]
    before = _drift(client)["report"]["live"]["events"]
    now = int(time.time())
    hot = ["i1", "i2", "i3"]  # a handful of items suddenly take most of the traffic
    events = [{"user_id": f"u{k % 200}", "item_id": hot[k % 3], "event_type": "click", "timestamp": now - k % 600}
              for k in range(4_000)]
    for start in range(0, len(events), 1_000):
        r = client.post("/v1/events", json={"events": events[start:start + 1_000]})
        assert r.status_code in (200, 202), r.text

    def flagged():
        d = _drift(client)
        rep = d["report"]
        return d if rep and rep["live"]["events"] >= before + 4_000 and rep["data_drift"] else None

    d = wait_for(flagged, timeout=60)
    assert d, f"shift not flagged within 60 s: {_drift(client)}"
    rep = d["report"]
    pop = {r["statistic"]: r for r in rep["data"] if r["name"] == "item_popularity"}
    assert pop["psi"]["drifted"] and pop["psi"]["value"] > 1.0
    assert rep["concept_drift"] is False  # the inputs moved, not the relation
    assert d["history"][0]["data_drift"] is False and d["history"][-1]["data_drift"] is True
    assert 'winnow_drift_detected{kind="data"} 1.0' in client.get("/metrics").text
    # recomputing on demand gives the same verdict
    r = client.post("/v1/admin/drift/refresh")
    assert r.status_code == 200 and r.json()["report"]["data_drift"] is True


def test_drift_page_shows_the_table_and_sparklines(served):
    with signed_in_page(served["token"]) as (page, con):
        open_view(page, served["server"].url, "drift")
        assert page.inner_text("#drift-bundle") == served["version"]
        assert page.inner_text("#flag-data") == "data drift: YES"
        assert page.inner_text("#flag-concept") == "concept drift: no"
        rows = page.eval_on_selector_all("#drift-data tbody tr", "els => els.map(e => [...e.cells].map(c => c.textContent))")
        by_name = {(r[0], r[1]): r for r in rows}
        assert by_name[("item_popularity", "psi")][4] == "DRIFT" and by_name[("event_mix", "js")][4] in ("ok", "DRIFT")
        points = page.eval_on_selector_all("#drift-data svg.sparkline", "els => els.map(e => Number(e.dataset.points))")
        assert len(points) == len(rows) and min(points) >= 2  # a line of the recent history per statistic
        assert page.locator("#drift-notes li").count() >= 1
        page.click("#drift-refresh")  # recompute now: the page renders again, no error
        page.wait_for_selector("#drift-refresh:not([disabled])")
        assert page.inner_text("#flag-data") == "data drift: YES"
        text = page.inner_text("#view")
        assert "undefined" not in text and "NaN" not in text and "null" not in text
        screenshot(page, "drift")
        con.check("drift page")

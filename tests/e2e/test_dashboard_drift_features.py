"""The Drift page's table of ranker features, in a real browser (headless Chromium) against a
real `winnow serve`: with [drift] monitor = "external" nothing computes, so the test writes the
home's monitor result itself (evaluation/drift_shared.py, under the monitor's lock) with a report
holding input rows and ranker-feature rows (``group`` "ranker_feature"), and the page must show
the features in a table of their own -- drifted features first, the count of features that moved
in its heading, a sparkline per statistic -- and keep them out of the inputs table."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from dashboard_harness import WinnowServer, create_key, open_view, recent_world, signed_in_page
from servers.throwaway import wait_for

from winnow.evaluation.drift_shared import SharedResult

pytestmark = pytest.mark.slow
DAY = 86400
TOML = """
[ranker]
enabled = false
[drift]
monitor = "external"
history = 5
"""


def _row(name: str, stat: str, value: float, *, feature: bool) -> dict:
    r = {"name": name, "statistic": stat, "value": value, "threshold": 0.1, "drifted": value > 0.1}
    return {**r, "group": "ranker_feature"} if feature else r


def test_the_drift_page_shows_ranker_features_in_their_own_table(tmp_path_factory) -> None:
    home: Path = tmp_path_factory.mktemp("drift_feats_ui")
    cfg, _, info = recent_world(home, TOML, n_users=100, n_items=150, n_events=3_000, seed=5,
                                start=int(time.time()) - 30 * DAY)
    token = create_key(cfg)
    now = time.time()
    data = [_row("event_mix", "psi", 0.01, feature=False), _row("event_mix", "js", 0.02, feature=False),
            _row("feature:pop_all", "wasserstein", 0.03, feature=True), _row("feature:pop_all", "ks", 0.04, feature=True),
            _row("feature:src_als_score", "wasserstein", 0.9, feature=True),
            _row("feature:src_als_score", "ks", 0.05, feature=True)]
    report = {"bundle": info.version, "reference": {"window": [now - 7 * DAY, now], "events": 3000},
              "live": {"window": [now - 7 * DAY, now], "events": 3000, "served_items": 0},
              "data": data, "concept": [], "notes": [], "data_drift": True, "concept_drift": False,
              "concept_note": "no served slates with positives in one of the windows"}
    history = [{"at": now - 60 * (5 - i), "bundle": info.version, "data_drift": True, "concept_drift": False,
                "live_events": 3000, "computation": i + 1, "by": 1,
                "values": {f"data:{r['name']}:{r['statistic']}": r["value"] * (i + 1) / 5 for r in data}}
               for i in range(5)]
    shared = SharedResult(home)
    with shared.lock(wait_s=5.0) as held:
        assert held
        shared.write({"bundle": info.version, "state": "ok", "error": None, "computed_at": now, "attempted_at": now,
                      "started_at": now, "computations": 5, "computed_by": 1, "compute_s": 0.1,
                      "report": report, "history": history})
    server = WinnowServer(home)
    try:
        client = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"})
        body = wait_for(lambda: (lambda d: d if d["report"] else None)(client.get("/v1/admin/drift").json()), timeout=60)
        assert body and len(body["report"]["data"]) == 6, server.read_log()
        client.close()
        with signed_in_page(token) as (page, con):
            open_view(page, server.url, "drift")
            inputs = page.eval_on_selector_all("#drift-data tbody tr", "els => els.map(e => e.cells[0].textContent)")
            assert inputs == ["event_mix", "event_mix"]  # the features are not mixed into the inputs' table
            assert page.inner_text("#drift-features h2") == "Data drift in the ranker's features: 1 of 2 moved"
            rows = page.eval_on_selector_all("#drift-features tbody tr",
                                             "els => els.map(e => [...e.cells].slice(0, 5).map(c => c.textContent))")
            assert [r[:2] for r in rows] == [["feature:src_als_score", "ks"], ["feature:src_als_score", "wasserstein"],
                                             ["feature:pop_all", "ks"], ["feature:pop_all", "wasserstein"]]
            assert rows[1][4] == "DRIFT" and rows[0][4] == "ok"  # drifted feature first, each statistic its verdict
            points = page.eval_on_selector_all("#drift-features svg.sparkline", "els => els.map(e => Number(e.dataset.points))")
            assert points == [5, 5, 5, 5]
            text = page.inner_text("#view")
            assert "undefined" not in text and "NaN" not in text and "null" not in text
            con.check("drift page, ranker features")
    finally:
        server.stop()

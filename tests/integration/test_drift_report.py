"""`winnow drift report` on a trained home: the bundle carries its reference profile, and the
report over the same traffic finds no drift of either kind."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from serve_harness import trained_home
from winnow.bundle import load_profile


def test_drift_report_on_the_traffic_the_bundle_was_trained_on(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _, world, info = trained_home(home, "[ranker]\nenabled = false\n", n_users=200, n_items=300, n_events=12_000)
    profile = load_profile(info.path)
    assert profile is not None and "profile.json" in info.manifest["files"]
    week = world.events[world.events["timestamp"] >= profile["window"][1] - 7 * 86400]
    assert profile["events"] == len(week)  # the last 7 days before the cut
    assert profile["event_mix"] == week["event_type"].value_counts().to_dict()

    from winnow.cli import app

    out = tmp_path / "drift.json"
    page = tmp_path / "drift.html"
    res = CliRunner().invoke(app, ["--home", str(home), "drift", "report", "--json", str(out), "--html", str(page)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["bundle"] == info.version and rep["data_drift"] is False
    assert {r["name"] for r in rep["data"]} == {"event_mix", "item_popularity", "user_activity", "item_activity",
                                                "new_item_share"}
    assert "data drift: no" in res.output and "concept drift" in res.output
    html = page.read_text()  # the same rows, one per statistic, in the HTML page
    assert html.startswith("<!doctype html>") and html.count("<tr class=") == len(rep["data"]) + len(rep["concept"])
    assert f"bundle {info.version}" in html
    # no learned ranker: the report says why the ranker's rows are absent instead of dropping them in silence
    assert any(n.startswith("ranker: the reference has no ranker profile") for n in rep["notes"])

"""Live ranker-feature drift and candidate-set recall through the real pieces: a service that
logs every request's candidate set ([drift] candidate_sample = 1), a ranker retrained on its
impression log, a real `winnow drift monitor` process computing the served ranker's features on
the slates that bundle served, and what every surface shows of it: GET /v1/admin/drift, the
/metrics gauges and `winnow drift report`. Waits are conditions with deadlines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from serve_harness import trained_home
from servers.throwaway import wait_for
from typer.testing import CliRunner

from winnow.core.config import load_config
from winnow.data.open_store import open_store

TOML = """
[security]
auth = false  # not a test of access control

[ranker]
per_source = 40
num_boost_round = 40
early_stopping_rounds = 10
min_impression_lists = 40

[models.als]
iterations = 3

[pipeline]
rules = ["exclude"]

[drift]
candidate_sample = 1.0
min_served = 100
min_positives = 20
refresh_s = 0.5
"""
K = 10


def _serve(client: TestClient, users: list[str]) -> int:
    """A slate for each user, who then clicks every item the item-item source proposed; the
    number of slates with a click."""
    clicked = 0
    for user in users:
        body = client.get(f"/v1/users/{user}/recommendations", params={"k": K}).json()
        ii = [it for it in body["items"] if "itemitem" in it["sources"]]
        if ii:
            r = client.post("/v1/events", json={"events": [
                {"user_id": user, "item_id": it["item_id"], "event_type": "click",
                 "context": {"request_id": body["request_id"]}} for it in ii]})
            assert r.status_code == 200, r.text
            clicked += 1
    return clicked


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A home whose ACTIVE bundle's ranker learned from the impression log, and a second round of
    traffic served by it (every request's candidate set logged)."""
    from winnow.serving.app import create_app
    from winnow.training.job import train

    path = tmp_path_factory.mktemp("drift_feats")
    cfg, world, first = trained_home(path, TOML, n_users=200, n_items=300, n_events=8_000, seed=3)
    users = sorted(world.events["user_id"].astype(str).unique())[:150]
    with TestClient(create_app(cfg)) as client:
        assert _serve(client, users) >= 40
    store = open_store(cfg.store_url())
    try:
        logged = train(cfg, store, evaluate_models=False)  # [ranker] train_on = "auto": the log
    finally:
        store.close()
    assert logged.manifest["ranker"]["training_data"] == "impressions", logged.manifest["ranker"]
    with TestClient(create_app(cfg)) as client:
        assert client.app.state.service.runtime.version == logged.version
        assert _serve(client, users) >= 40
    return path, users, logged


def test_every_sampled_request_logs_its_candidate_set(served) -> None:
    path, users, _ = served
    store = open_store(load_config(path).store_url())
    try:
        imps = store.read_impressions()
        sets = store.read_candidate_sets(since=0, until=2**62)
    finally:
        store.close()
    assert len(imps) == 2 * len(users)
    per_request = sets.groupby("request_id")["item_id"].apply(list)
    assert len(per_request) == len(imps)  # candidate_sample = 1: every request
    for imp in imps:
        cands = imp["context"]["candidates"]
        assert cands == per_request[imp["request_id"]] and len(set(cands)) == len(cands) >= K
        assert len(cands) >= imp["context"]["n_ranked"]  # the rules only remove
        proposed = [s["item_id"] for s in imp["items"] if s.get("src")]  # not backfilled
        assert set(proposed) <= set(cands)


def test_the_monitor_compares_the_served_rankers_features_on_every_surface(served) -> None:
    from winnow.bundle import load_profile
    from winnow.cli import app as cli
    from winnow.serving.app import create_app

    path, _, logged = served
    ref = load_profile(logged.path)
    assert ref["ranker"]["labels"] == "impressions" and ref["ranker"]["feature_rows"] > 0
    assert ref["candidate_recall"] is not None  # the first round's candidate sets, before the cut
    cfg = load_config(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    monitor = subprocess.Popen([sys.executable, "-m", "winnow", "--home", str(path), "drift", "monitor"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with TestClient(create_app(cfg)) as client:
            svc = client.app.state.service

            def compared():
                snap = svc.drift.snapshot()
                rep = snap["report"]
                return snap if rep and any(r["name"].startswith("feature:") for r in rep["data"]) else None

            assert wait_for(compared, timeout=120, interval=0.1), svc.drift.snapshot()
            body = client.get("/v1/admin/drift").json()
            assert body["computed_by"] == monitor.pid and body["computed_here"] == 0
            rep = body["report"]
            feats = {r["name"] for r in rep["data"] if r["name"].startswith("feature:")}
            assert set(f"feature:{n}" for n, q in ref["ranker"]["features"].items() if q) >= feats
            assert "feature:pop_all" in feats and all(r.get("group") == "ranker_feature" for r in rep["data"]
                                                      if r["name"] in feats)
            assert any(r["name"] == "candidate_recall" for r in rep["concept"])
            sample = rep["live"]["ranker_features"]  # what the feature rows were computed on
            assert sample["version"] == logged.version and sample["rows"] >= 100 and sample["slates"] >= 40
            metrics = client.get("/metrics").text
            assert 'winnow_drift_statistic{feature="feature:pop_all",kind="data",statistic="ks"}' in metrics
            assert 'winnow_drift_statistic{feature="candidate_recall",kind="concept",statistic="drop"}' in metrics
    finally:
        monitor.terminate()
        monitor.wait(30)
    res = CliRunner().invoke(cli, ["--home", str(path), "drift", "report"])
    assert res.exit_code == 0, res.output
    assert "ranker features compared" in res.output and "feature:pop_all" in res.output
    assert "candidate_recall" in res.output

"""The served ranker learns from the impression log: slates the service showed (with the source
scores it logged) and the clicks that followed. Users here click only what the item-item source
proposed; after a retrain on the log, slates lean further toward item-item than the slates of the
bundle that produced the log. (A history-trained ranker retrained on the same store sees the same
clicks as its most recent events; where its time split falls among them depends on the second
each click landed, so its share is not a stable yardstick -- 0.61..0.97 over 14 runs here,
while the log-trained ranker served 0.99 every time.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_harness import trained_home

from winnow.core.config import load_config
from winnow.data.open_store import open_store

TOML = """
[security]
auth = false  # not a test of access control

[ranker]
per_source = 40
num_boost_round = 60
early_stopping_rounds = 15
min_impression_lists = 40

[models.als]
iterations = 3

[pipeline]
rules = ["exclude"]
"""
K = 10


def _serve(client: TestClient, users: list[str], *, click: bool) -> float:
    """Request a slate for each user; with ``click`` the user clicks every item the item-item
    source proposed. Returns the share of served items item-item proposed."""
    hits = total = 0
    for user in users:
        body = client.get(f"/v1/users/{user}/recommendations", params={"k": K}).json()
        items = body["items"]
        assert len(items) == K, body
        ii = [it for it in items if "itemitem" in it["sources"]]
        hits, total = hits + len(ii), total + len(items)
        if click and ii:
            r = client.post("/v1/events", json={"events": [
                {"user_id": user, "item_id": it["item_id"], "event_type": "click",
                 "context": {"request_id": body["request_id"]}} for it in ii]})
            assert r.status_code == 200, r.text
    return hits / total


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("rank_imps")
    cfg, world, info = trained_home(path, TOML, n_users=200, n_items=300, n_events=8_000, seed=3)
    assert info.manifest["ranker"]["training_data"] == "history"  # nothing logged yet
    return path, world, info


def test_retrain_on_the_impression_log(home) -> None:
    path, world, first = home
    from winnow.serving.app import create_app
    from winnow.training.job import train

    users = sorted(world.events["user_id"].astype(str).unique())[:120]
    cfg = load_config(path)
    with TestClient(create_app(cfg)) as client:
        share_first = _serve(client, users, click=True)
    # the log now holds the slates with their source scores (flushed at shutdown)
    store = open_store(cfg.store_url())
    try:
        logged = store.read_impressions()
        assert len(logged) == len(users)
        shown = [s for imp in logged for s in imp["items"]]
        assert any(s.get("src") and "itemitem" in s["src"] for s in shown)
        for s in shown:
            for name, (score, rank) in (s.get("src") or {}).items():
                assert name in s["sources"] and np.isfinite(score) and rank >= 0
        # same store, same events (the clicks included): one ranker from history, one from the log
        hist = train(load_config(path, overrides={"ranker": {"train_on": "history"}}), store,
                     evaluate_models=False)
        strict = load_config(path, overrides={"ranker": {"train_on": "impressions",
                                                         "min_impression_lists": 100_000}})
        refused = train(strict, store, evaluate_models=False, activate_bundle=False)
    finally:
        store.close()
    assert hist.manifest["ranker"]["training_data"] == "history"
    assert "fewer than min_impression_lists" in refused.manifest["ranker"]["skipped"]
    with TestClient(create_app(cfg)) as client:
        assert client.app.state.service.runtime.version == hist.version
        assert _serve(client, users, click=False) > 0  # the history-trained bundle serves
    store = open_store(cfg.store_url())
    try:
        logged_run = train(cfg, store, evaluate_models=False)  # train_on = "auto"
    finally:
        store.close()
    rep = logged_run.manifest["ranker"]
    assert rep["training_data"] == "impressions", rep
    assert rep["impression_log"]["labelled_slates"] >= 40 and rep["train_lists"] >= 10
    # the drift reference: the ranker's features, scores and calibration on the slates it learned from
    from winnow.bundle import load_profile

    for bundle, labels in ((hist, "history"), (logged_run, "impressions")):
        prof = load_profile(bundle.path)["ranker"]
        assert prof["labels"] == labels and prof["rows"] > 0
        assert len(prof["features"]) == len(load_ranker_names(bundle.path)) and len(prof["scores"]) == 101
        cal = prof["calibration"]
        assert sum(cal["shown"]) == prof["rows"] and len(cal["rate"]) == len(cal["edges"]) + 1
    assert load_profile(logged_run.path)["source_scores"]  # the logged slates' source scores
    # the history-trained bundle also holds its features on the served slates of its reference
    # window (the log holds them): what live served slates compare with (evaluation/drift_features)
    served_ref = load_profile(hist.path)["ranker"]["served_features"]
    assert served_ref["version"] is None and served_ref["rows"] > 0 and served_ref["labelled_slates"] > 0
    assert set(served_ref["features"]) == set(load_ranker_names(hist.path))
    assert "served_features" not in load_profile(logged_run.path)["ranker"]  # its training rows are slates
    # the default position-bias correction ran on the shown positions; its curve is in the
    # manifest and in the bundle's ranker.json (winnow.models.position_bias)
    pb = rep["position_bias"]
    assert pb["mode"] == "lambdarank" and pb["applied"] is True and pb["valid_metric"] == "ips_ndcg@10", pb
    assert pb["examination"][0] == 1.0 and len(pb["shown"]) == len(pb["examination"]) == K
    assert sum(pb["clicks"]) <= sum(pb["shown"]) and all(0 < v <= 1e3 for v in pb["examination"])
    saved = json.loads((logged_run.path / "ranker" / "ranker.json").read_text(encoding="utf-8"))
    assert saved["position_bias"] == pb
    with TestClient(create_app(cfg)) as client:
        assert client.app.state.service.runtime.version == logged_run.version
        share_log = _serve(client, users, click=False)
    assert share_log > share_first + 0.05, (share_first, share_log)


def load_ranker_names(bundle_path) -> list[str]:
    """The bundle's ranker feature names (its ranker.json spec)."""
    from winnow.bundle import load_ranker

    loaded = load_ranker(bundle_path)
    assert loaded is not None
    return loaded[0].spec.names

"""The dashboard's JSON API in-process (no browser): search, previews, metrics, timelines, results files."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
from dashboard_harness import create_key, make_world
from fastapi.testclient import TestClient

from winnow.core.config import load_config
from winnow.serving.app import create_app


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui_api")
    cfg = make_world(home, bundles=1)
    app = create_app(load_config(home))
    with TestClient(app, headers={"Authorization": f"Bearer {create_key(cfg)}"}) as client:
        yield app, client, home


def test_dashboard_api_needs_an_admin_key(app_client):
    app, client, home = app_client
    read_only = create_key(load_config(home), ("read",))
    anonymous = TestClient(app)  # no `with`: its lifespan exit would close the shared service
    assert anonymous.get("/ui/api/stats").status_code == 401
    assert anonymous.get("/ui/app.js").status_code == 200  # the static shell holds no data
    assert anonymous.get("/ui", follow_redirects=False).status_code in (302, 307)
    r = anonymous.get("/ui/api/stats", headers={"Authorization": f"Bearer {read_only}"})
    assert r.status_code == 403 and "admin" in r.text


def test_user_and_item_search(app_client):
    _, client, _ = app_client
    users = client.get("/ui/api/users", params={"q": "u1", "limit": 5}).json()["users"]
    assert users[0] == "u1" and len(users) == 5 and all(u.startswith("u1") for u in users)
    items = client.get("/ui/api/items", params={"q": "i", "limit": 20}).json()["items"]
    stats = client.get("/ui/api/items/" + items[0]).json()["catalog"]
    assert stats["popularity_rank"] == 1  # most popular first
    assert client.get("/ui/api/users/nobody").status_code == 404
    assert client.get("/ui/api/items/nothing").status_code == 404


def test_metrics_snapshot_counts_requests_and_stages(app_client):
    _, client, _ = app_client
    before = client.get("/ui/api/stats").json()["metrics"]
    for _ in range(4):
        assert client.get("/v1/users/u2/recommendations", params={"k": 5}).status_code == 200
    after = client.get("/ui/api/stats").json()["metrics"]
    stage = {s["labels"]["stage"]: s for s in after["histograms"]["winnow_stage_seconds"]}
    old = {s["labels"]["stage"]: s for s in before["histograms"].get("winnow_stage_seconds", [])}
    for name in ("retrieve", "rank", "rerank", "total"):
        count = stage[name]["count"] - (old[name]["count"] if name in old else 0)
        assert count == 4
        cum = [c for _, c in stage[name]["buckets"]]
        assert cum == sorted(cum) and stage[name]["buckets"][-1][0] is None and cum[-1] == stage[name]["count"]
    reqs = [s for s in after["counters"]["winnow_requests_total"]
            if s["labels"]["route"] == "/v1/users/{user_id}/recommendations" and s["labels"]["status"] == "200"]
    assert reqs and reqs[0]["value"] >= 4


def test_item_timeline_buckets_by_utc_day(app_client):
    _, client, _ = app_client
    now = int(time.time())
    events = [{"user_id": "u3", "item_id": "i5", "event_type": "click", "timestamp": now - 2 * 86400},
              {"user_id": "u4", "item_id": "i5", "event_type": "click", "timestamp": now - 2 * 86400},
              {"user_id": "u4", "item_id": "i5", "event_type": "view", "timestamp": now}]
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    tl = client.get("/ui/api/items/i5", params={"days": 7}).json()["timeline"]
    assert len(tl["days"]) == 7 and tl["days"][-1] == time.strftime("%Y-%m-%d", time.gmtime(now))
    assert tl["clicks"] == [0, 0, 0, 0, 2, 0, 0] and tl["events"]["view"][-1] == 1
    assert tl["events_total"] == 3


def test_cold_start_weight_from_the_two_tower_item_counts(app_client):
    app, client, _ = app_client
    rt = app.state.service.runtime
    idx = rt.catalog.item_ids.get("i9")
    counts = np.zeros(len(rt.catalog), np.int64)
    counts[idx] = 30
    rt.two_tower = SimpleNamespace(item_counts_=counts, config=SimpleNamespace(item_k=10.0))
    try:
        cold = client.get("/ui/api/items/i9").json()["cold_start"]
        assert cold == {"present": True, "n_train_events": 30, "item_k": 10.0, "weight": 0.75}
    finally:
        del rt.two_tower
    assert client.get("/ui/api/items/i9").json()["cold_start"]["present"] is False


def test_experiments_lists_files_by_kind(app_client, monkeypatch):
    _, client, home = app_client
    monkeypatch.chdir(home)  # ./bench/results is read relative to the working directory
    assert client.get("/ui/api/experiments").json()["files"] == []
    reports = home / "reports"
    reports.mkdir()
    files = {"ab.json": {"experiment": "e", "control": "a", "comparisons": [], "srm": {}},
             "ope.json": {"benchmark": "ope_x", "results": [{"estimators": {}}]},
             "sim.json": {"runs": {"greedy": {"rounds": [{"round": 0}]}}, "summary": {}},
             "eval.json": {"dataset": "d", "protocol": "random", "k": 10, "summary": []},
             "bench.json": {"benchmark": "serve"}}
    for name, data in files.items():
        (reports / name).write_text(json.dumps(data), encoding="utf-8")
    (reports / "broken.json").write_text("{not json", encoding="utf-8")
    kinds = {f["name"]: f["kind"] for f in client.get("/ui/api/experiments").json()["files"]}
    assert kinds == {"ab.json": "ab", "ope.json": "ope", "sim.json": "simulator", "eval.json": "evaluation",
                     "bench.json": "benchmark", "broken.json": "invalid"}

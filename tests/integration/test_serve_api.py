"""The service over HTTP against a real server process: funnel, real-time updates, 4xx cases."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
from serve_harness import Server, make_home
from servers.throwaway import wait_for

from winnow.data.open_store import open_store


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_api")
    cfg = make_home(home)
    server = Server(home)
    client = httpx.Client(base_url=server.url, timeout=30)
    yield cfg, server, client
    client.close()
    server.stop()


def recs(client, user, **params):
    r = client.get(f"/v1/users/{user}/recommendations", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_recommendations_shape_and_impression_log(served):
    cfg, _, client = served
    body = recs(client, "u1", k=10)
    assert len(body["items"]) == 10
    assert body["model_version"] and body["fallbacks"] == []
    assert [it["position"] for it in body["items"]] == list(range(10))
    assert len({it["item_id"] for it in body["items"]}) == 10
    assert all(it["propensity"] == 1.0 and it["sources"] for it in body["items"])
    store = open_store(cfg.store_url())
    try:
        logged = wait_for(lambda: [i for i in store.read_impressions() if i["request_id"] == body["request_id"]],
                          interval=0.05)
        assert logged, "served slate was not written to the impression log within 30 s"
        assert [x["item_id"] for x in logged[0]["items"]] == [it["item_id"] for it in body["items"]]
        assert logged[0]["model_version"] == body["model_version"]
        clicked = body["items"][3]["item_id"]
        r = client.post("/v1/events", json={"events": [{"user_id": "u1", "item_id": clicked, "event_type": "click",
                                                         "request_id": body["request_id"]}]})
        assert r.status_code == 200
        out = store.impression_outcomes()
        row = out[(out["request_id"] == body["request_id"]) & (out["item_id"] == clicked)]
        assert len(row) == 1 and list(row["events"].iloc[0]) == ["click"]
    finally:
        store.close()


def test_purchased_item_disappears_at_once(served):
    _, _, client = served
    top = recs(client, "u2", k=10)["items"][0]["item_id"]
    r = client.post("/v1/events", json={"events": [
        {"user_id": "u2", "item_id": top, "event_type": "purchase", "event_id": "p-u2-1"}]})
    assert r.status_code == 200 and r.json()["written"] == 1
    after = recs(client, "u2", k=10, explain="true")
    assert top not in [it["item_id"] for it in after["items"]]
    assert {"item_id": top, "rule": "exclude", "reason": "purchased"} in after["removed"]


def test_click_burst_moves_category_up(served):
    _, _, client = served
    items = client.get("/v1/users/u3/recommendations", params={"k": 200}).json()["items"]
    store_items = {}
    cfg = served[0]
    store = open_store(cfg.store_url())
    try:
        frame = store.read_items()
    finally:
        store.close()
    for iid, cats in zip(frame["item_id"], frame["categories"], strict=True):
        store_items[iid] = cats[0] if len(cats) else None
    top10 = Counter(store_items[it["item_id"]] for it in items[:10])
    # a category with items in the catalog but few in the current top 10
    cats_all = Counter(store_items.values())
    target = min((c for c in cats_all if c and cats_all[c] >= 15), key=lambda c: (top10[c], -cats_all[c]))
    burst = [iid for iid, c in store_items.items() if c == target][:8]
    now = int(time.time())
    r = client.post("/v1/events", json={"events": [
        {"user_id": "u3", "item_id": iid, "event_type": "click", "timestamp": now} for iid in burst]})
    assert r.status_code == 200
    after = recs(client, "u3", k=10)["items"]
    after10 = Counter(store_items[it["item_id"]] for it in after)
    assert after10[target] > top10[target], (target, top10, after10)


def test_unknown_user_gets_cold_start_chain(served):
    _, _, client = served
    body = recs(client, "never-seen-user", k=10)
    assert len(body["items"]) == 10
    assert body["fallback"] == "cold_start"
    assert all(set(it["sources"]) <= {"trending", "fresh", "popularity"} for it in body["items"])


def test_explain_traces_sources_rank_and_rules(served):
    _, _, client = served
    body = recs(client, "u4", k=10, explain="true")
    for it in body["items"]:
        tr = it["trace"]
        assert set(tr["sources"]) == set(it["sources"])
        assert tr["rank_score"] is not None
        assert isinstance(tr["rules"], list)


def test_post_context_category_filter_and_exclude(served):
    _, _, client = served
    base = recs(client, "u5", k=10)["items"]
    first = base[0]["item_id"]
    cfg = served[0]
    store = open_store(cfg.store_url())
    try:
        cat = store.get_item(first)["categories"][0]
    finally:
        store.close()
    r = client.post("/v1/users/u5/recommendations", params={"k": 5, "explain": "true"},
                    json={"device": "mobile", "filters": {"categories": [cat]}, "exclude": [first]})
    assert r.status_code == 200, r.text
    got = r.json()["items"]
    assert got and first not in [g["item_id"] for g in got]
    assert all("category_filter" not in str(g["trace"]["rules"]) for g in got)
    removed = r.json()["removed"]
    assert any(x["reason"] == "category_filter" for x in removed)
    assert {"item_id": first, "rule": "exclude", "reason": "request_exclude"} in removed


def test_similar_items_and_user_profile(served):
    _, _, client = served
    r = client.get("/v1/items/i3/similar", params={"k": 5})
    assert r.status_code == 200 and 0 < len(r.json()["items"]) <= 5
    assert "i3" not in [x["item_id"] for x in r.json()["items"]]
    assert client.get("/v1/items/no-such-item/similar").status_code == 404
    u = client.get("/v1/users/u2")
    assert u.status_code == 200 and u.json()["event_count"] > 0 and u.json()["recent_items"]
    assert client.get("/v1/users/no-such-user").status_code == 404
    put = client.put("/v1/users/newbie", json={"attributes": {"age": "25-34"}, "interests": ["cars"]})
    assert put.status_code == 200
    assert client.get("/v1/users/newbie").json()["interests"] == ["cars"]


def test_event_id_makes_retries_idempotent(served):
    _, _, client = served
    ev = {"events": [{"user_id": "u6", "item_id": "i7", "event_type": "view", "event_id": "idem-1"}]}
    assert client.post("/v1/events", json=ev).json()["written"] == 1
    assert client.post("/v1/events", json=ev).json()["written"] == 0


def test_batch_mixing_rows_with_and_without_timestamp_is_stored(served):
    # regression (found by the schema fuzzer): a missing timestamp next to a given one was a 500
    _, _, client = served
    before = client.get("/v1/users/u6").json()["event_count"]
    ev = {"events": [{"user_id": "u6", "item_id": "i8", "event_type": "view"},
                     {"user_id": "u6", "item_id": "i9", "event_type": "view", "timestamp": 1_700_000_000}]}
    resp = client.post("/v1/events", json=ev)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"received": 2, "written": 2}
    assert client.get("/v1/users/u6").json()["event_count"] == before + 2


def test_patch_item_unavailable_removes_it(served):
    _, _, client = served
    top = recs(client, "u8", k=5)["items"][0]["item_id"]
    assert client.patch(f"/v1/items/{top}", json={"available": False}).status_code == 200
    assert top not in [it["item_id"] for it in recs(client, "u8", k=5)["items"]]
    assert client.patch(f"/v1/items/{top}", json={"available": True}).status_code == 200
    r = client.post("/v1/items", json={"items": [{"item_id": "brand-new", "categories": ["cars"],
                                                  "created_at": int(time.time())}]})
    assert r.status_code == 200
    cold = recs(client, "another-new-user", k=50)
    assert "brand-new" in [it["item_id"] for it in cold["items"]]  # fresh source


# --- 4xx, never 5xx: one test per case ----------------------------------------------------------
def test_malformed_json_is_400(served):
    r = served[2].post("/v1/events", content=b'{"events": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]


def test_wrong_types_are_422_naming_row_and_field(served):
    _, _, client = served
    before = client.get("/v1/users/u9").json()["event_count"]
    r = client.post("/v1/events", json={"events": [
        {"user_id": "u9", "item_id": "i1", "event_type": "view"},
        {"user_id": "u9", "item_id": "i2", "event_type": "view", "timestamp": "yesterday"},
        {"user_id": "u9", "event_type": "view"}]})
    assert r.status_code == 422
    errs = r.json()["errors"]
    assert {"row": 1, "field": "timestamp"}.items() <= errs[0].items()
    assert any(e["row"] == 2 and e["field"] == "item_id" for e in errs)
    assert client.get("/v1/users/u9").json()["event_count"] == before  # nothing written


def test_oversized_batch_is_413(served):
    evs = [{"user_id": "u1", "item_id": "i1", "event_type": "view"}] * 10_001
    r = served[2].post("/v1/events", json={"events": evs})
    assert r.status_code == 413 and "10000" in r.json()["detail"]


def test_oversized_body_is_413(served):
    r = served[2].post("/v1/events", content=b" " * 9_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_k_out_of_range_is_422(served):
    for k in (0, 100_000, "ten"):
        r = served[2].get("/v1/users/u1/recommendations", params={"k": k})
        assert r.status_code == 422 and "k" in r.json()["detail"]


def test_unknown_item_patch_is_404(served):
    r = served[2].patch("/v1/items/does-not-exist", json={"available": False})
    assert r.status_code == 404 and "does-not-exist" in r.json()["detail"]


def test_bad_bundle_version_is_rejected_before_touching_files(served):
    client = served[2]
    assert client.post("/v1/admin/bundles/..%2F..%2Fetc/activate").status_code in (404, 422)
    assert client.post("/v1/admin/bundles/not-a-version/activate").status_code == 422
    assert client.post("/v1/admin/bundles/20990101T000000Z-abcdef/activate").status_code == 404


def test_metrics_expose_stages_fallbacks_and_events(served):
    text = served[2].get("/metrics").text
    for name in ("winnow_stage_seconds_bucket", "winnow_request_seconds_bucket", "winnow_fallbacks_total",
                 "winnow_events_ingested_total", "winnow_requests_total"):
        assert name in text
    assert 'stage="retrieve"' in text


def test_openapi_docs_are_served(served):
    client = served[2]
    spec = client.get("/openapi.json").json()
    assert {"/v1/events", "/v1/users/{user_id}/recommendations", "/v1/admin/bundles/rollback"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_wrong_types_in_items_users_and_context_are_422(served):
    client = served[2]
    r = client.post("/v1/items", json={"items": [{"item_id": "x1", "available": "sometimes"}]})
    assert r.status_code == 422 and "available" in r.json()["detail"]
    r = client.put("/v1/users/u1", json={"attributes": "not-an-object"})
    assert r.status_code == 422 and "attributes" in r.json()["detail"]
    r = client.post("/v1/users/u1/recommendations", json={"filters": {"categories": "cars"}})
    assert r.status_code == 422 and "categories" in r.json()["detail"]
    r = client.post("/v1/users/u1/recommendations", json={"unknown_field": 1})
    assert r.status_code == 422 and "unknown_field" in r.json()["detail"]

"""The dashboard in a real browser (headless Chromium) against a real `winnow serve` process.

A person's path through it: every page loads with no console error, the user inspector shows a
slate with explanations, switching a rule off changes the slate, changing k changes its
length, a model rollback (and re-activation) works, and the experiments page shows "nothing yet"
until results files appear. Screenshots of each page go to $WINNOW_SCREENSHOT_DIR/dashboard-<page>.png
(default: a temp dir; WINNOW_SCREENSHOT_DIR=docs/img refreshes the README's images).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from dashboard_harness import (
    CHROMIUM_ARGS, REPO, Console, WinnowServer, create_key, make_world, open_view, require_browser, screenshot,
)
from servers.throwaway import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    chromium = require_browser()  # before the (slow) world: a missing browser fails fast
    home = tmp_path_factory.mktemp("dashboard")
    cfg = make_world(home, bundles=2)
    token = create_key(cfg)
    server = WinnowServer(home)
    client = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"})
    # some live traffic: served slates (impressions), clicks on them, a few bad requests
    first = None
    for u in ("u1", "u2", "u3", "u4", "u5", "u1"):
        body = client.get(f"/v1/users/{u}/recommendations", params={"k": 10}).json()
        first = first or body
    top = first["items"][0]["item_id"]
    now = int(time.time())
    client.post("/v1/events", json={"events": [
        {"user_id": "u1", "item_id": top, "event_type": "click", "timestamp": now, "request_id": first["request_id"]},
        {"user_id": "u7", "item_id": top, "event_type": "click", "timestamp": now - 86400}]})
    assert client.get("/v1/users/u1/recommendations", params={"k": 0}).status_code == 422
    yield {"server": server, "client": client, "home": home, "chromium": chromium, "top_item": top, "token": token}
    client.close()
    server.stop()


@pytest.fixture(scope="module")
def browser(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=served["chromium"], args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, served):
    """A page of a browser that has the API key saved (as after signing in once)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_init_script(f"localStorage.setItem('winnow.apiKey', {json.dumps(served['token'])})")
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


def no_junk(page) -> None:
    """No rendering slip (a null/undefined/NaN printed as text) in the visible page."""
    text = page.inner_text("#view")
    slips = re.findall(r"\b(?:null|undefined|NaN)\b|\[object \w+\]", text)
    assert not slips, f"rendering slips {slips} in: {text[:500]}"


def slate_ids(page, panel: str) -> list[str]:
    return page.eval_on_selector_all(f"#{panel} ol.slate > li", "els => els.map(e => e.dataset.itemId)")


def test_ui_is_served_by_winnow_serve(served):
    client = served["client"]
    r = httpx.get(served["server"].url + "/ui", follow_redirects=False)  # the shell needs no key
    assert r.status_code in (301, 302, 307, 308) and r.headers["location"].endswith("/ui/")
    html = httpx.get(served["server"].url + "/ui/").text
    assert '<script type="module" src="app.js">' in html
    js = client.get("/ui/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/ui/pages/user.js").status_code == 200


def test_dashboard_asks_for_an_api_key_first(served, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    con = Console(page, allow=r"status of 401")  # the refused call before signing in
    assert httpx.get(served["server"].url + "/ui/api/stats").status_code == 401
    open_view(page, served["server"].url, "overview")
    assert page.locator("#sign-in").count() == 1 and "missing API key" in page.inner_text("#sign-in")
    page.fill("#api-key", "wn_00000000_" + "x" * 43)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector('#sign-in:has-text("invalid or revoked API key")')
    page.fill("#api-key", served["token"])
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#count-events")
    assert page.locator("#sign-in").count() == 0
    ctx.close()
    con.check("sign in")


def test_overview_shows_counts_and_live_metrics(served, page):
    con = Console(page)
    open_view(page, served["server"].url, "overview")
    assert page.inner_text("#count-events .v") == "20,002"  # 20,000 imported + 2 posted
    assert page.inner_text("#count-items .v") == "500"
    # the live charts need polls; recommendation traffic meanwhile shows up as a rate and latencies
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=served["server"].url, timeout=30, headers=served["client"].headers) as c:
            i = 0
            while not stop.is_set():
                c.get(f"/v1/users/u{i % 50}/recommendations", params={"k": 10})
                i += 1
                stop.wait(0.05)  # pacing (~20 req/s); ends at once when the test stops it

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        page.wait_for_function("Number(document.getElementById('view').dataset.samples) >= 5", timeout=30_000)
        assert float(page.inner_text("#req-rate .v").replace(",", "")) > 0
    finally:
        stop.set()
        worker.join()
    stages = page.eval_on_selector_all("#view table tbody tr td:first-child", "els => els.map(e => e.textContent)")
    assert {"retrieve", "rank", "rerank", "total"} <= set(stages)
    assert page.inner_text("#err-rate .v").endswith("%")
    no_junk(page)
    screenshot(page, "overview")
    con.check("overview")


def test_user_inspector_explains_the_served_slate(served, page):
    con = Console(page)
    open_view(page, served["server"].url, "user/u2")  # no fresh events: scores do not drift
    page.wait_for_selector('#slate-variant[data-ready="true"]')
    ui = slate_ids(page, "slate-current")
    api = served["client"].get("/v1/users/u2/recommendations", params={"k": 10, "explain": "true"}).json()
    assert ui == [it["item_id"] for it in api["items"]], "the inspector must show what the API serves"
    assert page.locator("#profile table tbody tr").count() > 0  # history
    first = page.locator("#slate-current ol.slate > li").first
    text = first.inner_text()
    assert "rank score" in text and "propensity" in text
    assert first.locator(".chip[data-source]").count() >= 1  # sources with scores and ranks
    assert first.locator(".contrib").count() == 1  # top feature contributions
    traced = api["items"][0]["trace"]
    for name in traced["sources"]:
        assert first.locator(f'.chip[data-source="{name}"]').count() == 1
    # every rule that touched an item is shown on it
    touched = sum(len(it["trace"]["rules"]) for it in api["items"])
    assert page.locator("#slate-current .chip[data-rule]").count() == touched
    con.check("user inspector")


def test_switching_a_rule_off_changes_the_slate(served, page):
    con = Console(page)
    client = served["client"]
    # make the sponsored rule bite for u1: sponsor the user's strongest candidate outside the top 10
    deep = client.get("/v1/users/u1/recommendations", params={"k": 40}).json()["items"]
    sponsored = deep[12]["item_id"]
    assert client.patch(f"/v1/items/{sponsored}", json={"sponsored": True}).status_code == 200
    open_view(page, served["server"].url, "user/u1")
    page.wait_for_selector('#slate-variant[data-ready="true"]')
    before = slate_ids(page, "slate-current")
    assert sponsored in before and page.locator('#slate-current .chip[data-rule="sponsored"]').count() >= 1
    assert slate_ids(page, "slate-variant") == before
    page.uncheck("#rule-sponsored")
    page.wait_for_selector('#variant-diff:has-text("differs")')
    page.wait_for_selector('#slate-variant[data-ready="true"]')
    after = slate_ids(page, "slate-variant")
    assert after != before and sponsored not in after
    assert page.locator('#slate-variant .chip[data-rule="sponsored"]').count() == 0
    assert slate_ids(page, "slate-current") == before  # side by side: the current slate stays
    expect = client.post("/ui/api/users/u1/slate", json={"k": 10, "disable_rules": ["sponsored"]}).json()
    assert after == [it["item_id"] for it in expect["items"]]
    # a source off, and a longer slate
    page.uncheck("#source-als")
    page.fill("#k", "15")
    page.dispatch_event("#k", "change")
    page.wait_for_function("document.querySelectorAll('#slate-variant ol.slate > li').length === 15")
    page.wait_for_selector('#slate-variant[data-ready="true"]')
    assert page.locator('#slate-variant .chip[data-source="als"]').count() == 0
    no_junk(page)
    screenshot(page, "user")
    client.patch(f"/v1/items/{sponsored}", json={"sponsored": False})
    con.check("user inspector switches")


def test_item_page_shows_metadata_similar_items_and_exposure(served, page):
    con = Console(page)
    item = served["top_item"]
    open_view(page, served["server"].url, f"item/{item}")
    assert item in page.inner_text("#item-meta")
    assert page.locator("#item-similar table tbody tr").count() > 0
    summary = page.inner_text("#item-timeline")
    assert "impressions" in summary and page.locator("#item-timeline svg.chart").count() >= 1
    data = served["client"].get(f"/ui/api/items/{item}").json()
    assert data["timeline"]["impressions_total"] >= 1 and sum(data["timeline"]["clicks"]) == 2
    assert page.locator("#cold-start").count() == 1
    no_junk(page)
    screenshot(page, "item")
    con.check("item page")


def test_models_rollback_and_activate(served, page):
    con = Console(page)
    client = served["client"]
    bundles = sorted(b["version"] for b in client.get("/v1/admin/bundles").json()["bundles"])
    older, newer = bundles[-2], bundles[-1]
    assert client.get("/readyz").json()["model_version"] == newer
    open_view(page, served["server"].url, "models")
    assert page.inner_text("#serving-version") == newer
    assert page.locator("#view table tbody tr td:first-child .mono").count() >= 2
    page.click("#rollback")
    page.wait_for_selector(f'#action-result:has-text("now serving {older}")')
    assert client.get("/readyz").json()["model_version"] == older
    page.wait_for_selector(f'#serving-version:has-text("{older}")')
    page.click(f'button[data-action="activate"][data-version="{newer}"]')
    page.wait_for_selector(f'#action-result:has-text("now serving {newer}")')
    assert client.get("/readyz").json()["model_version"] == newer
    no_junk(page)
    screenshot(page, "models")
    con.check("models")


def _ab_report() -> dict:
    from winnow.core.config import ExperimentConfig
    from winnow.evaluation import ab

    rng = np.random.default_rng(3)
    n = 400
    variant = np.where(rng.random(n) < 0.5, "control", "more_diversity")
    clicks = rng.poisson(np.where(variant == "control", 2.0, 2.4)).astype(float)
    shown = rng.integers(20, 40, n).astype(float)
    frame = pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "variant": variant, "shown": shown,
                          "clicks": clicks, "ctr": clicks / shown, "conversions": rng.poisson(0.2, n).astype(float),
                          "engagement": clicks + rng.poisson(3, n), "revenue": rng.gamma(1.0, 5.0, n),
                          "pre_clicks": rng.poisson(2.0, n).astype(float)})
    exp = ExperimentConfig(name="diversity", variants=[{"name": "control", "traffic": 0.5},
                                                       {"name": "more_diversity", "traffic": 0.5}])
    return ab.report(frame, exp)


def test_experiments_page_empty_then_results(served, page):
    con = Console(page)
    base = served["server"].url
    open_view(page, base, "experiments")
    assert page.locator("#no-results").count() == 1
    assert "No A/B test results yet" in page.inner_text("#view")
    reports = served["home"] / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "ab_diversity.json").write_text(json.dumps(_ab_report()), encoding="utf-8")
    from winnow.core.config import load_config
    from winnow.evaluation.datasets import load_named_dataset
    from winnow.evaluation.runner import evaluate_models

    cfg = load_config(served["home"])
    res = evaluate_models(load_named_dataset("synthetic:200,300,6000", cfg), ["popularity", "itemitem"], cfg, k=10)
    (reports / "eval.json").write_text(json.dumps(res.to_json()), encoding="utf-8")
    ope = REPO / "bench" / "results" / "ope_obd.json"
    if ope.exists():
        shutil.copy(ope, reports / "ope_obd.json")
    open_view(page, base, "experiments")
    assert page.locator("#no-results").count() == 0
    ab_panel = page.locator('[data-kind="ab"]')
    assert ab_panel.count() == 1 and ab_panel.locator("svg.chart").count() == 1
    assert ab_panel.locator("tbody tr").count() >= 4  # one row per metric
    assert page.locator('[data-kind="evaluation"] tbody tr').count() == 2
    if ope.exists():
        assert page.locator('[data-kind="ope"] svg.chart').count() >= 1
    assert "could not render" not in page.inner_text("#view")
    screenshot(page, "experiments")
    con.check("experiments")


def test_slate_preview_api_validates_switches_and_logs_nothing(served):
    client = served["client"]
    bad = client.post("/ui/api/users/u1/slate", json={"disable_rules": ["nope"]})
    assert bad.status_code == 422 and "nope" in bad.text
    assert client.post("/ui/api/users/u1/slate", json={"disable_sources": ["x"]}).status_code == 422
    assert client.post("/ui/api/users/u1/slate", json={"k": 0}).status_code == 422
    from winnow.core.config import load_config
    from winnow.data.open_store import open_store

    store = open_store(load_config(served["home"]).store_url())

    def logged(request_id: str) -> bool:
        return any(i["request_id"] == request_id for i in store.read_impressions())

    def served_and_logged() -> str:
        """A real slate, once the (FIFO) impression writer has written it: everything queued
        before it has been written too."""
        rid = client.get("/v1/users/u2/recommendations", params={"k": 5}).json()["request_id"]
        assert wait_for(lambda: logged(rid), interval=0.05), f"slate {rid} never reached the impression log"
        return rid

    try:
        served_and_logged()  # drains what earlier tests served
        n0 = store.counts()["impressions"]
        for _ in range(3):
            assert client.post("/ui/api/users/u2/slate", json={"k": 5}).status_code == 200
        served_and_logged()  # a preview queued before this slate would be written by now
        assert store.counts()["impressions"] == n0 + 1, "a preview must not be logged as an impression"
    finally:
        store.close()
    # contributions: the blend ranker's add up to the rank score; the learned ranker's are its
    # top pred_contrib features (a partial sum: the bias and the other features are left out)
    body = client.post("/ui/api/users/u3/slate", json={"k": 10}).json()
    for it in body["items"]:
        tr = it["trace"]
        if tr.get("rank_features"):
            assert tr["contributions"] == {f["feature"]: f["contribution"] for f in tr["rank_features"]}
            mags = [abs(f["contribution"]) for f in tr["rank_features"]]
            assert mags == sorted(mags, reverse=True)
        else:
            assert abs(sum(tr["contributions"].values()) - tr["rank_score"]) < 1e-4


def test_rollout_page_shows_state_arms_and_every_decision(served, page):
    """Last in this module: it starts (and aborts) a canary of the older bundle."""
    from winnow.core.config import load_config
    from winnow.data.open_store import open_store
    from winnow.data.rollouts import Rollout, RolloutDecision

    con = Console(page)
    base, client = served["server"].url, served["client"]
    open_view(page, base, "rollout")
    assert page.locator("#rollout-none").count() == 1  # none yet: says how to start one
    assert [e for e in con.errors if "status of 404" not in e] == []  # the browser logs the API's 404 itself
    con.errors.clear()
    older = sorted(b["version"] for b in client.get("/v1/admin/bundles").json()["bundles"])[-2]
    r = client.post("/v1/admin/rollout/canary", json={"bundle": older, "plan": [50, 100], "step_min": "1h",
                                                      "min_exposed": 5})
    assert r.status_code == 200, r.text
    try:
        assert wait_for(lambda: client.get("/v1/admin/rollout").json()["here"]["challenger_loaded"] == older,
                        timeout=60, interval=0.1)
        arms = {client.get(f"/v1/users/u{i}/recommendations").json()["arm"] for i in range(40)}
        assert arms == {"champion", "challenger"}
        open_view(page, base, "rollout")
        assert page.inner_text("#rollout-state") == "canary" and page.inner_text("#rollout-challenger") == older
        assert "challenger share 50.0%" in page.inner_text("#rollout-share")
        assert page.locator("#rollout-arms tbody tr").count() == 2
        assert "waiting: step duration" in page.inner_text("#rollout-waiting")
        assert page.locator('#rollout-decisions [data-action="start"]').count() == 1
        no_junk(page)
        screenshot(page, "rollout")
        page.click("#rollout-abort")
        page.wait_for_selector('#rollout-action-result:has-text("is aborted")')
        page.wait_for_selector('#rollout-state:has-text("aborted")')
        assert page.locator("#rollout-abort").count() == 0
        assert "by api" in page.inner_text("#rollout-decisions")
    finally:
        client.post("/v1/admin/rollout/abort")
    # a finished rollout with a decision of each kind (as the follower writes them): each says why
    store = open_store(load_config(served["home"]).store_url())
    try:
        t = int(time.time())
        done = store.start_rollout(Rollout(id=0, state="canary", revision=0, started=t, challenger=older,
                                           champion="x", mode="canary", plan=(5, 50, 100), step_started=t,
                                           params={"metric": "ctr"},
                                           decisions=(RolloutDecision(t, 0, "operator", "start",
                                                                      {"by": "cli", "mode": "canary",
                                                                       "plan": [5, 50, 100]}),)))
        done = store.update_rollout(done.id, revision=done.revision, changes={"step": 1}, decision=RolloutDecision(
            t + 60, 0, "step_complete:non_inferior", "next_step",
            {"test": {"diff": 0.01, "low": -0.001, "high": 0.02}, "non_inferiority_bound": -0.005}))
        store.update_rollout(done.id, revision=done.revision, changes={"state": "rolled_back", "ended": t + 120},
                             decision=RolloutDecision(t + 120, 1, "guardrail:fallback_rate,coverage", "roll_back",
                                                      {"breaches": ["fallback_rate", "coverage"], "coverage": {
                                                          "requests": 300, "champion_items": 200,
                                                          "challenger_items": 40, "ratio": 0.2},
                                                       "rate_tests": {"fallback_rate": {
                                                           "diff": 0.3, "low": 0.2, "high": 0.4, "limit": 0.1,
                                                           "breach": True}}}))
    finally:
        store.close()
    open_view(page, base, "rollout")
    assert page.inner_text("#rollout-state") == "rolled_back"
    rows = page.locator("#rollout-decisions tbody tr")
    assert rows.count() == 3
    newest, middle, oldest = (rows.nth(i).inner_text() for i in range(3))
    assert "guardrail breached: fallback_rate, coverage" in newest and "distinct items 40 vs 200 at 300 requests" in newest
    assert "fallback_rate increase 0.300, always-valid interval [0.200, 0.400] above the allowed 0.100" in newest
    assert "2/3 (50%)" in newest and "interval [-0.00100, 0.0200]" in middle and "bound -0.00500" in middle
    assert "started by cli (canary, plan 5,50,100)" in oldest
    assert page.locator("#rollout-promote").count() == 0
    no_junk(page)
    con.check("rollout")

"""Drift statistics against hand-computed values; an A/A window raises no drift; an injected
shift raises the right kind (winnow.evaluation.drift, drift_profile)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.evaluation.drift import compare, js, numeric, psi
from winnow.evaluation.drift_profile import reference_profile, window_profile

DAY = 86400
T0 = 1_700_000_000


def test_psi_and_js_by_hand() -> None:
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    assert psi(p, q) == pytest.approx(-0.25 * math.log(0.5) + 0.25 * math.log(1.5))
    m = (p + q) / 2
    kl = lambda a, b: sum(x * math.log2(x / y) for x, y in zip(a, b))  # noqa: E731
    assert js(p, q) == pytest.approx(math.sqrt((kl(p, m) + kl(q, m)) / 2))
    assert psi(p, p) == 0.0 and js(p, p) == 0.0
    # an empty category stays finite: share floored at 1e-4
    assert psi(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(
        (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 1e-4) * math.log(0.5 / 1e-4))


def test_numeric_distances_by_hand() -> None:
    ref = np.linspace(0, 100, 101).tolist()
    shifted = (np.asarray(ref) + 10).tolist()
    m = numeric(ref, shifted)
    assert m["wasserstein"] == pytest.approx(10 / 50)  # W1 = 10, IQR = 75 - 25
    assert m["ks"] == pytest.approx(10 / 101)  # ref points in [0, 10): 10 of 101
    assert numeric(ref, ref) == {"wasserstein": 0.0, "ks": 0.0}


def _world(tmp_path: Path, *, live_items: str, live_shown: str):
    """50 users click 20 items over two weeks; week 1 every click follows a slate showing the
    item. Week 2: ``live_items`` "same" (same items) or "shifted" (items 100+); ``live_shown``
    "clicked" (slates show what is then clicked) or "other" (slates show other items)."""
    cfg = load_config(tmp_path, environ={})
    store = open_store(cfg.store_url())
    events, imps = [], []
    n = 0
    for week in (0, 1):
        for u in range(50):
            for j in range(6):
                item = (u + j) % 20 + (100 if week and live_items == "shifted" else 0)
                t = T0 + week * 7 * DAY + u * 3000 + j * 400
                shown = item if (week == 0 or live_shown == "clicked") else item + 1000
                rid = f"r{n}"
                imps.append({"request_id": rid, "user_id": f"u{u}", "timestamp": t, "context": {},
                             "items": [{"item_id": f"i{shown}", "position": 0, "propensity": 1.0}]})
                events.append({"user_id": f"u{u}", "item_id": f"i{item}", "event_type": "click",
                               "value": np.nan, "timestamp": t + 5, "event_id": f"e{n}",
                               "context": json.dumps({"request_id": rid})})
                n += 1
    store.log_impressions(imps)
    store.append_events(pd.DataFrame(events))
    return cfg, store


def _report(tmp_path: Path, *, live_items: str, live_shown: str) -> dict:
    """Week 1 as the reference profile, week 2 as the live window."""
    cfg, store = _world(tmp_path, live_items=live_items, live_shown=live_shown)
    try:
        ref = reference_profile(store, cfg, until=T0 + 7 * DAY)
        live = window_profile(store, cfg, since=T0 + 7 * DAY, until=T0 + 14 * DAY)
    finally:
        store.close()
    return compare(ref, live, cfg.drift)


def test_an_aa_window_raises_no_drift(tmp_path: Path) -> None:
    rep = _report(tmp_path, live_items="same", live_shown="clicked")
    assert rep["data_drift"] is False and rep["concept_drift"] is False
    assert all(r["value"] == pytest.approx(0.0, abs=1e-12) for r in rep["data"])
    assert rep["concept"][0]["value"] == pytest.approx(0.0)


def test_moved_inputs_are_data_drift(tmp_path: Path) -> None:
    rep = _report(tmp_path, live_items="shifted", live_shown="clicked")
    pop = {r["statistic"]: r for r in rep["data"] if r["name"] == "item_popularity"}
    assert pop["psi"]["drifted"] and pop["js"]["value"] == pytest.approx(1.0)  # disjoint items
    assert rep["data_drift"] is True and rep["concept_drift"] is False


def test_a_moved_relation_with_unmoved_inputs_is_concept_drift(tmp_path: Path) -> None:
    rep = _report(tmp_path, live_items="same", live_shown="other")
    assert rep["data_drift"] is False
    hit = rep["concept"][0]
    assert hit["name"] == "served_hit_share" and hit["value"] == pytest.approx(1.0) and hit["drifted"]
    assert rep["concept_drift"] is True


def test_calibration_table_and_gap_by_hand() -> None:
    from winnow.evaluation.drift import calibration_gap, calibration_table

    scores = np.arange(100, dtype=np.float64)  # 10 equal-count bins of 10 rows
    clicked = np.zeros(100, bool)
    clicked[90:] = True  # only the top bin is clicked: rate 1.0 there, 0 elsewhere
    clicked[0] = True  # one click in the bottom bin: rate 0.1
    tab = calibration_table(scores, clicked)
    assert tab["shown"] == [10] * 10 and tab["clicked"] == [1] + [0] * 8 + [10]
    assert tab["rate"] == pytest.approx([0.1] + [0.0] * 8 + [1.0])
    assert tab["edges"] == pytest.approx(np.quantile(scores, np.linspace(0, 1, 11)[1:-1]))
    # live: 20 items in the bottom bin, 20 in the top: predicted (20*0.1 + 20*1.0)/40 = 0.55
    live = {"shown": [20] + [0] * 8 + [20], "clicked": [2] + [0] * 8 + [10]}
    g = calibration_gap(tab, live)
    assert g["predicted"] == pytest.approx(0.55) and g["observed"] == pytest.approx(12 / 40)
    assert g["gap"] == pytest.approx(abs(0.3 - 0.55) / 0.55)
    assert calibration_gap(tab, {"shown": [20] + [0] * 8 + [20], "clicked": [2] + [0] * 8 + [20]})["gap"] == 0.0


def _ranker_ref(labels: str) -> dict:
    from winnow.evaluation.drift_profile import ranker_profile

    rng = np.random.default_rng(0)
    scores = rng.normal(size=5000)
    clicked = rng.random(5000) < 1 / (1 + np.exp(-scores))  # a calibrated click model
    x = np.column_stack([scores, np.full(5000, np.nan)])
    prof = ranker_profile(["f_score", "f_missing"], x, clicked.astype(np.float32), scores, labels=labels)
    assert prof["features"]["f_missing"] == [] and len(prof["features"]["f_score"]) == 101
    return prof


def _live_calibration(ref: dict, scores: np.ndarray, clicked: np.ndarray) -> dict:
    from winnow.evaluation.drift import quantiles

    bins = np.searchsorted(ref["calibration"]["edges"], scores, side="right")
    return {"version": "v", "shown": np.bincount(bins, minlength=10).tolist(),
            "clicked": np.bincount(bins, weights=clicked, minlength=10).astype(int).tolist(),
            "scores": quantiles(scores)}


def test_ranker_calibration_is_concept_drift_only_when_comparable(tmp_path: Path) -> None:
    cfg, store = _world(tmp_path, live_items="same", live_shown="clicked")
    try:
        ref = reference_profile(store, cfg, until=T0 + 7 * DAY, ranker=_ranker_ref("impressions"))
        live = window_profile(store, cfg, since=T0 + 7 * DAY, until=T0 + 14 * DAY)
    finally:
        store.close()
    rng = np.random.default_rng(1)
    s = rng.normal(size=4000)
    same = rng.random(4000) < 1 / (1 + np.exp(-s))  # the same relation: calibrated
    rep = compare(ref, {**live, "calibration": _live_calibration(ref["ranker"], s, same)}, cfg.drift)
    cal = [r for r in rep["concept"] if r["name"] == "ranker_calibration"]
    assert len(cal) == 1 and not cal[0]["drifted"] and cal[0]["value"] < 0.05
    assert not rep["data_drift"] and not rep["concept_drift"]  # A/A, ranker scores included
    assert any(r["name"] == "ranker_score" for r in rep["data"])
    # the same scores (inputs unmoved), users now click a third as often: concept drift only
    fewer = same & (rng.random(4000) < 1 / 3)
    rep = compare(ref, {**live, "calibration": _live_calibration(ref["ranker"], s, fewer)}, cfg.drift)
    cal = next(r for r in rep["concept"] if r["name"] == "ranker_calibration")
    assert cal["drifted"] and cal["observed"] == pytest.approx(cal["predicted"] / 3, rel=0.15)
    assert rep["concept_drift"] and not rep["data_drift"]
    # too few served items, or a ranker that learned from history lists: no row, a note
    small = _live_calibration(ref["ranker"], s[:100], same[:100])
    rep = compare(ref, {**live, "calibration": small}, cfg.drift)
    assert not any(r["name"].startswith("ranker") for r in rep["concept"] + rep["data"])
    assert any("fewer than min_served" in n for n in rep["notes"])
    hist = {**ref, "ranker": _ranker_ref("history")}
    rep = compare(hist, {**live, "calibration": _live_calibration(ref["ranker"], s, fewer)}, cfg.drift)
    assert not rep["concept_drift"] and any("carved from history" in n for n in rep["notes"])


def test_new_item_share_counts_events_on_recently_created_items(tmp_path: Path) -> None:
    cfg, store = _world(tmp_path, live_items="same", live_shown="clicked")
    try:  # items 0-9 created a day before week 2: week 2's events on them are new (7-day rule)
        store.upsert_items(pd.DataFrame({"item_id": [f"i{i}" for i in range(10)],
                                         "created_at": [T0 + 6 * DAY] * 10}))
        ref = reference_profile(store, cfg, until=T0 + 7 * DAY)
        live = window_profile(store, cfg, since=T0 + 7 * DAY, until=T0 + 14 * DAY)
    finally:
        store.close()
    # week 1 events precede the items' creation (never new); week 2: the events with (u + j) % 20 < 10,
    # all within 2.8 days of the creation
    expected = np.mean([(u + j) % 20 < 10 for u in range(50) for j in range(6)])
    assert ref["new_item_share"] == 0.0 and live["new_item_share"] == pytest.approx(expected)
    rep = compare(ref, live, cfg.drift)
    rows = {r["statistic"]: r for r in rep["data"] if r["name"] == "new_item_share"}
    assert rows["psi"]["drifted"] and rep["data_drift"]


def test_a_profile_written_before_the_new_fields_still_compares(tmp_path: Path) -> None:
    cfg, store = _world(tmp_path, live_items="same", live_shown="clicked")
    try:
        ref = reference_profile(store, cfg, until=T0 + 7 * DAY)
        live = window_profile(store, cfg, since=T0 + 7 * DAY, until=T0 + 14 * DAY)
    finally:
        store.close()
    old = {k: v for k, v in ref.items() if k not in ("new_item_share", "source_scores", "served_items", "ranker")}
    rep = compare(old, live, cfg.drift)
    assert {r["name"] for r in rep["data"]} == {"event_mix", "item_popularity", "user_activity", "item_activity"}
    assert not rep["data_drift"] and not rep["concept_drift"]
    assert any("no ranker profile" in n for n in rep["notes"])

"""The drift signals of ranker features (data drift) and candidate sets (concept drift):
hand-computed values; an A/A window raises nothing; a shift in one ranker feature raises data
drift on that feature only; a taste change lowers the candidate sets' share of later positives
(winnow.evaluation.drift, drift_features, drift_served)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.bundle import FeatureInputs
from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.data.training_data import load_dataset
from winnow.evaluation.drift import compare, feature_scale, numeric
from winnow.evaluation.drift_features import live_features
from winnow.evaluation.drift_profile import reference_profile, window_profile
from winnow.features import FeatureCatalog, fit_spec

DAY = 86400
T0 = 1_700_006_400  # a Wednesday, 00:00 UTC: week 2 has the same hours and weekdays
SLATE = 5


def test_feature_scale_and_distances_by_hand() -> None:
    ref = np.linspace(0, 100, 101).tolist()
    assert feature_scale(ref) == 50.0  # the IQR
    spiky = [0.0] * 90 + list(range(1, 12))  # IQR 0: the 1st..99th percentile spread, 10 - 0
    assert feature_scale(spiky) == pytest.approx(10.0)
    assert feature_scale([3.0] * 101) == 1.0  # constant: one unit reads 1.0
    moved = numeric(spiky, (np.asarray(spiky) + 1).tolist(), scale=feature_scale(spiky))
    assert moved["wasserstein"] == pytest.approx(1 / 10)  # every quantile moved by 1
    assert moved["ks"] == pytest.approx(90 / 101)  # the 90 zeros sit below every live point


def _slate_world(tmp_path: Path, *, als_factor: float = 1.0, environ: dict | None = None):
    """Two weeks; week 2 is week 1 moved by 7 days with fresh user and item ids, so every
    point-in-time feature has the same distribution in both (A/A; the item popularity row, by
    item id, does move: other ids). Each of 40 users sees 6
    slates of 5 items (logged source scores of "als" and "pop", device "web" or "app") and clicks
    one item of each slate 60 s later. ``als_factor``: week 2's logged "als" scores multiplied
    by it (its rank, share of the list's best and z-score unchanged: one feature moves)."""
    cfg = load_config(tmp_path, environ=environ or {})
    store = open_store(cfg.store_url())
    events, imps = [], []
    for week in (0, 1):
        for u in range(40):
            for j in range(6):
                t = T0 + week * 7 * DAY + u * 7000 + j * 900
                base = (u * 3 + j * 7) % 50
                items = [f"w{week}i{(base + k * 11) % 50}" for k in range(SLATE)]
                als = np.random.default_rng(u * 10 + j).gamma(2.0, 1.0, SLATE) * (als_factor if week else 1.0)
                imps.append({"request_id": f"r{week}-{u}-{j}", "user_id": f"w{week}u{u}", "timestamp": t,
                             "model_version": "v1", "context": {"device": "web" if u % 3 else "app"},
                             "items": [{"item_id": it, "position": k, "score": float(-k),
                                        "src": {"als": [float(als[k]), k], "pop": [float(50 - k), k + 2]}}
                                       for k, it in enumerate(items)]})
                events.append({"user_id": f"w{week}u{u}", "item_id": items[(u + j) % SLATE], "event_type": "click",
                               "value": np.nan, "timestamp": t + 60, "event_id": f"e{week}-{u}-{j}"})
    store.log_impressions(imps)
    store.append_events(pd.DataFrame(events))
    ds = load_dataset(store, cfg.events, name="world")
    spec = fit_spec(ds, ["als", "pop"])
    spec.devices = ["web", "app"]
    inputs = FeatureInputs(spec, FeatureCatalog.from_dataset(ds, spec), ds.user_ids, ds.item_ids)
    return cfg, store, inputs


def _feature_report(tmp_path: Path, *, als_factor: float) -> tuple[dict, dict]:
    """Week 1's served-slate features as the reference's ranker profile (what the ranker trained
    on, "impressions"), week 2's as the live profile, compared."""
    cfg, store, inputs = _slate_world(tmp_path, als_factor=als_factor)
    try:
        week1 = live_features(store, cfg, inputs, version="v1", since=T0, until=T0 + 7 * DAY)
        live = window_profile(store, cfg, since=T0 + 7 * DAY, until=T0 + 14 * DAY)
        live["ranker_features"] = live_features(store, cfg, inputs, version="v1", since=T0 + 7 * DAY,
                                                until=T0 + 14 * DAY)
        ref = reference_profile(store, cfg, until=T0 + 7 * DAY,
                                ranker={"labels": "impressions", "rows": week1["rows"], "features": week1["features"]})
    finally:
        store.close()
    assert week1["slates"] == 240 and week1["labelled_slates"] == 240 and week1["rows"] == 240 * SLATE
    return compare(ref, live, cfg.drift), live["ranker_features"]


def test_ranker_features_on_an_aa_window_raise_no_drift(tmp_path: Path) -> None:
    rep, live = _feature_report(tmp_path, als_factor=1.0)
    feats = [r for r in rep["data"] if r["name"].startswith("feature:")]
    names = {r["name"] for r in feats}
    assert {"feature:src_als_score", "feature:pop_all", "feature:user_events", "feature:ctx_device"} <= names
    assert len(feats) == 2 * len(names)  # wasserstein and ks per feature
    assert all(r["value"] == pytest.approx(0.0, abs=1e-9) and not r["drifted"] for r in feats)
    assert rep["concept_drift"] is False
    assert {r["name"] for r in rep["data"] if r["drifted"]} == {"item_popularity"}  # other item ids, by design
    assert live["features"]["ctx_device"][0] == 0.0 and live["features"]["ctx_device"][-1] == 1.0


def test_a_shift_in_one_ranker_feature_is_data_drift_on_that_feature_only(tmp_path: Path) -> None:
    rep, _ = _feature_report(tmp_path, als_factor=3.0)
    drifted = {r["name"] for r in rep["data"] if r["drifted"]}
    # the logged scores moved too (source_score:als, from the same log); item_popularity: other ids
    assert drifted == {"feature:src_als_score", "source_score:als", "item_popularity"}
    assert rep["data_drift"] is True and rep["concept_drift"] is False
    unmoved = [r for r in rep["data"] if r["name"] in ("feature:src_als_rel", "feature:src_als_z", "feature:pop_7d")]
    assert len(unmoved) == 6 and all(r["value"] == pytest.approx(0.0, abs=1e-9) for r in unmoved)


def test_feature_rows_need_served_slates_and_enough_rows(tmp_path: Path) -> None:
    cfg, store, inputs = _slate_world(tmp_path)
    try:
        other = live_features(store, cfg, inputs, version="v-other", since=T0, until=T0 + 14 * DAY)
        week1 = live_features(store, cfg, inputs, version="v1", since=T0, until=T0 + 7 * DAY)
        few = live_features(store, cfg.model_copy(update={"drift": cfg.drift.model_copy(update={"feature_slates": 20})}),
                            inputs, version="v1", since=T0, until=T0 + 7 * DAY)
        live = window_profile(store, cfg, since=T0 + 7 * DAY, until=T0 + 14 * DAY)
        ranker = {"labels": "impressions", "rows": week1["rows"], "features": week1["features"]}
        ref = reference_profile(store, cfg, until=T0 + 7 * DAY, ranker=ranker)
    finally:
        store.close()
    assert other == {"version": "v-other", "slates": 0, "labelled_slates": 0, "rows": 0, "features": {}}
    assert few["slates"] == 20 and few["rows"] == 20 * SLATE  # the bound: 20 evenly spread slates
    rep = compare(ref, {**live, "ranker_features": few}, cfg.drift)
    assert not any(r["name"].startswith("feature:") for r in rep["data"])
    assert any("100 rows in 20 labelled slates of the 20 sampled, fewer than min_served" in n for n in rep["notes"])
    hist = {**ref, "ranker": {**ranker, "labels": "history"}}
    rep = compare(hist, {**live, "ranker_features": week1}, cfg.drift)
    assert not any(r["name"].startswith("feature:") for r in rep["data"])
    assert any("carved from history" in n and "no served slate was logged" in n for n in rep["notes"])
    # a history-trained ranker with its features on the reference window's served slates
    # (training/job.py: served_reference): those are the reference; too few rows: a note
    served = {**hist, "ranker": {**hist["ranker"], "served_features": {**week1, "window": [T0, T0 + 7 * DAY]}}}
    rep = compare(served, {**live, "ranker_features": week1}, cfg.drift)
    feats = [r for r in rep["data"] if r["name"].startswith("feature:")]
    assert feats and all(r["value"] == 0.0 for r in feats)  # the same slates on both sides
    thin = {**hist, "ranker": {**hist["ranker"], "served_features": few}}
    rep = compare(thin, {**live, "ranker_features": week1}, cfg.drift)
    assert not any(r["name"].startswith("feature:") for r in rep["data"])
    assert any("served slates gave 100 rows, fewer than min_served" in n for n in rep["notes"])


def _candidate_world(tmp_path: Path, *, taste: str):
    """60 users, one request a day for 14 days; a request logs its candidate set (10 items) in
    its context and shows 2 of them; 300 s later the user clicks an item. Week 1 the clicked
    item is in the user's candidate set. Week 2 ``taste`` "same": still; "changed": each user
    clicks what user (u + 30) % 60 clicked -- the same items, as often (item popularity, event
    mix and activity unmoved), but outside the user's own candidate set."""
    cfg = load_config(tmp_path, environ={"WINNOW__DRIFT__MIN_POSITIVES": "100"})
    store = open_store(cfg.store_url())
    events, imps = [], []
    for day in range(14):
        for u in range(60):
            t = T0 + day * DAY + u * 600
            cands = [f"i{u * 10 + k}" for k in range(10)]
            wanted = u if day < 7 or taste == "same" else (u + 30) % 60
            clicked = f"i{wanted * 10 + day % 7}"
            imps.append({"request_id": f"r{day}-{u}", "user_id": f"u{u}", "timestamp": t, "model_version": "v1",
                         "context": {"candidates": cands},
                         "items": [{"item_id": cands[0], "position": 0}, {"item_id": cands[1], "position": 1}]})
            events.append({"user_id": f"u{u}", "item_id": clicked, "event_type": "click", "value": np.nan,
                           "timestamp": t + 300, "event_id": f"e{day}-{u}", "context": json.dumps({"request_id": f"r{day}-{u}"})})
    store.log_impressions(imps)
    store.append_events(pd.DataFrame(events))
    try:
        ref = reference_profile(store, cfg, until=T0 + 7 * DAY)
        live = window_profile(store, cfg, since=T0 + 7 * DAY, until=T0 + 14 * DAY)
    finally:
        store.close()
    return cfg, ref, live


def test_candidate_recall_by_hand_and_on_an_aa_window(tmp_path: Path) -> None:
    cfg, ref, live = _candidate_world(tmp_path, taste="same")
    # every positive follows its user's logged set within the attribution window and is in it
    assert ref["candidate_recall"] == 1.0 and ref["candidate_positives"] == 7 * 60
    assert live["candidate_recall"] == 1.0 and live["candidate_positives"] == 7 * 60
    # a slate shows candidates 0 and 1, clicked on days d % 7 in (0, 1): 2 of 7 days
    assert ref["served_hit_share"] == pytest.approx(2 / 7) and live["served_hit_share"] == pytest.approx(2 / 7)
    rep = compare(ref, live, cfg.drift)
    row = next(r for r in rep["concept"] if r["name"] == "candidate_recall")
    assert row["value"] == 0.0 and not row["drifted"] and row["positives"] == 420
    assert rep["data_drift"] is False and rep["concept_drift"] is False


def test_a_taste_change_lowers_candidate_recall_as_concept_drift(tmp_path: Path) -> None:
    cfg, ref, live = _candidate_world(tmp_path, taste="changed")
    assert ref["candidate_recall"] == 1.0 and live["candidate_recall"] == 0.0
    rep = compare(ref, live, cfg.drift)
    row = next(r for r in rep["concept"] if r["name"] == "candidate_recall")
    assert row["drifted"] and row["value"] == 1.0 and row["reference"] == 1.0 and row["live"] == 0.0
    assert rep["concept_drift"] is True and rep["data_drift"] is False
    assert all(r["value"] == pytest.approx(0.0, abs=1e-12) for r in rep["data"])  # inputs unmoved
    hit = next(r for r in rep["concept"] if r["name"] == "served_hit_share")  # the slates miss too
    assert hit["drifted"] and hit["value"] == pytest.approx(2 / 7)


def test_candidate_recall_needs_min_positives(tmp_path: Path) -> None:
    cfg, ref, live = _candidate_world(tmp_path, taste="changed")
    strict = cfg.drift.model_copy(update={"min_positives": 421})
    rep = compare(ref, live, strict)
    assert not any(r["name"] == "candidate_recall" for r in rep["concept"])
    assert any("420 reference / 420 live positives" in n and "min_positives = 421" in n for n in rep["notes"])


def test_which_requests_log_their_candidate_set() -> None:
    from winnow.serving.drift_reader import logs_candidates

    rng = np.random.default_rng(3)
    ids = [rng.bytes(16).hex() for _ in range(20_000)]  # uniform, as uuid4().hex is in these digits
    assert not any(logs_candidates(r, 0.0) for r in ids) and all(logs_candidates(r, 1.0) for r in ids)
    share = np.mean([logs_candidates(r, 0.1) for r in ids])
    assert abs(share - 0.1) < 0.01  # 20,000 uniform ids: standard error 0.002
    # digits 8-15 decide, not the shadow's digits 0-7
    assert logs_candidates("f" * 8 + "0" * 24, 0.01) and not logs_candidates("0" * 8 + "f" * 24, 0.5)

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

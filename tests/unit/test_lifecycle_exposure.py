"""The gate's holdout and the impression log (winnow.lifecycle.datasets / scoring): with
``shown_positives = "exclude"`` a holdout positive on an item shown to that user in the holdout
window is dropped, and shown items leave both bundles' top-k; with "include" neither happens."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from winnow.core.config import load_config
from winnow.core.ids import IdMap
from winnow.data.open_store import open_store
from winnow.lifecycle.datasets import build
from winnow.lifecycle.scoring import bundle_topk, holdout_metrics

DAY = 86_400
T0 = 1_700_000_000
USERS = [f"u{u}" for u in range(4)]
ITEMS = [f"i{i}" for i in range(8)]


def _ev(user: str, item: str, ts: int, n: int) -> dict:
    return {"user_id": user, "item_id": item, "event_type": "click", "timestamp": ts, "event_id": f"e{n}"}


def _impression(user: str, ts: int, items: list[str], req: str) -> dict:
    return {"request_id": req, "user_id": user, "timestamp": ts, "model_version": "champ", "surface": "home",
            "context": {}, "items": [{"item_id": i, "position": j, "score": 0.0} for j, i in enumerate(items)]}


def _store(tmp_path: Path, mode: str):
    """Every user: i0 before the holdout (day 0), i1 shown and clicked in it, i2 clicked unshown,
    i3 shown, not clicked; i4 shown BEFORE the holdout (day 0) and clicked in it."""
    cfg = load_config(tmp_path, overrides={"lifecycle": {"gate": {"holdout_days": 1.0, "min_holdout_users": 1,
                                                                  "shown_positives": mode}}}, environ={})
    store = open_store(cfg.store_url())
    rows, imps, n = [], [], 0
    for k, u in enumerate(USERS):
        imps.append(_impression(u, T0 + 10 + k, ["i4", "i5"], f"early-{u}"))
        imps.append(_impression(u, T0 + DAY + 100 + k, ["i1", "i3"], f"late-{u}"))
        for item, ts in (("i0", T0 + k), ("i1", T0 + DAY + 200 + k), ("i2", T0 + DAY + 300 + k),
                         ("i4", T0 + DAY + 400 + k)):
            rows.append(_ev(u, item, ts, n))
            n += 1
    for item in ("i3", "i5", "i6", "i7"):  # another user makes the rest of the catalog known
        rows.append(_ev("ux", item, T0 + 50, n))
        n += 1
    store.log_impressions(imps)
    store.append_events(pd.DataFrame(rows))
    return cfg, store, T0 + DAY + 400 + len(USERS)  # cut: newest event + 1


def _built(tmp_path: Path, mode: str):
    """(the gate's CycleData of ``_store``'s log at its cut, the cut)."""
    cfg, store, cut = _store(tmp_path, mode)
    try:
        return build(store, cfg, cut), cut
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["exclude", "include"])
def test_holdout_positives_on_shown_items_are_dropped_only_when_excluded(tmp_path: Path, mode: str) -> None:
    data, cut = _built(tmp_path, mode)
    assert data.holdout_start == cut - DAY
    held = {(data.ds.user_ids.decode(np.array([u]))[0], data.ds.item_ids.decode(np.array([i]))[0])
            for u, i in zip(data.holdout.user, data.holdout.item, strict=True)}
    if mode == "exclude":
        # i1 was shown in the window: its clicks are the slate's outcome; i4 was shown only before it
        assert held == {(u, i) for u in USERS for i in ("i2", "i4")}
        assert data.shown_dropped == len(USERS)
        shown = {(data.ds.user_ids.decode(np.array([u]))[0], data.ds.item_ids.decode(np.array([i]))[0])
                 for u, i in zip(*data.shown.nonzero(), strict=True)}
        assert shown == {(u, i) for u in USERS for i in ("i1", "i3")}
    else:
        assert held == {(u, i) for u in USERS for i in ("i1", "i2", "i4")}
        assert data.shown is None and data.shown_dropped == 0


class _Ranked:
    """A retrieval model that ranks the bundle's items in a fixed order, honouring ``exclude``."""

    def __init__(self, order: list[int]) -> None:
        self.order = order

    def recommend(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None):
        out = np.full((len(users), k), -1, np.int64)
        for row, u in enumerate(users):
            banned = set(exclude[int(u)].indices.tolist()) if exclude is not None else set()
            kept = [i for i in self.order if i not in banned][:k]
            out[row, :len(kept)] = kept
        return out, np.zeros(out.shape, np.float32)


@pytest.mark.parametrize("mode", ["exclude", "include"])
def test_shown_items_leave_both_top_k_lists_and_the_served_order_loses_its_lead(tmp_path: Path, mode: str) -> None:
    data, _ = _built(tmp_path, mode)
    ids = IdMap("item", ITEMS)

    def bundle(order: list[str]) -> SimpleNamespace:
        return SimpleNamespace(version="b", models={"als": _Ranked([ids.index(i) for i in order])},
                               user_ids=IdMap("user", USERS), item_ids=ids)

    served = bundle(["i1", "i3", "i5", "i6", "i2", "i4", "i7", "i0"])  # the slates' order: shown items first
    other = bundle(["i2", "i4", "i6", "i1", "i3", "i5", "i7", "i0"])   # finds what users did unshown
    tops = {name: bundle_topk(b, "als", data, data.users, 2) for name, b in (("served", served), ("other", other))}
    names = {name: {tuple(data.ds.item_ids.decode(row[row >= 0])) for row in t} for name, t in tops.items()}
    m = {name: holdout_metrics(t, data, 2) for name, t in tops.items()}
    if mode == "exclude":
        assert names == {"served": {("i5", "i6")}, "other": {("i2", "i4")}}  # i0 trained on, i1 / i3 shown
        assert m["served"]["recall"] == 0.0 and m["other"]["recall"] == 1.0
    else:
        assert names == {"served": {("i1", "i3")}, "other": {("i2", "i4")}}
        # the served order is credited with the clicks its own slates produced
        assert m["served"]["recall"] == pytest.approx(1 / 3) and m["other"]["recall"] == pytest.approx(2 / 3)

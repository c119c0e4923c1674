"""Warm start of the two-tower (winnow.models.two_tower.warm, components/two_tower.py) on a tiny
grown world: two user groups each touching their own items (a group's items carry its
category). The previous model saw 20 items and 60 users under other indices; the new catalog
adds 8 items and 20 users. Carried rows start from the previous weights, new rows as a cold
model's, the fit runs at most ``warm_epochs`` and its quality matches a cold fit's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from winnow.bundle.warm import WarmSource
from winnow.components import FitContext, component
from winnow.core.config import load_config
from winnow.core.ids import IdMap
from winnow.data.interactions import Dataset, Interactions
from winnow.engine import LocalEngine
from winnow.models.two_tower import TwoTowerRecommender

SMALL = {"dim": 16, "embedding": 8, "hidden": 32, "epochs": 20, "batch_size": 64, "learning_rate": 0.01,
         "temperature": 0.1, "history": 10, "half_life": 5.0, "user_buckets": 1009, "attr_buckets": 101,
         "creator_buckets": 64, "text_backend": "none", "refit": False, "patience": 20, "seed": 0,
         "id_dropout": 0.3, "warm_epochs": 4}
N_ITEMS, N_USERS = 28, 80


def group(item: np.ndarray) -> np.ndarray:
    return np.asarray(item) % 2  # even items: group A, odd: group B


def _world(item_ids: list[str], user_ids: list[str], seed: int) -> Dataset:
    """Each user (group = index parity of its id) touches 6 items of its group among item_ids."""
    rng = np.random.default_rng(seed)
    items = np.array([int(i[1:]) for i in item_ids])
    users, rows, ts = [], [], []
    for u, uid in enumerate(user_ids):
        pool = np.flatnonzero(group(items) == int(uid[1:]) % 2)
        for j, i in enumerate(rng.choice(pool, 6, replace=False)):
            users.append(u)
            rows.append(i)
            ts.append(1_700_000_000 + 3600 * (u + 97 * j))
    inter = Interactions.from_arrays(np.array(users), np.array(rows), timestamp=np.array(ts),
                                     n_users=len(user_ids), n_items=len(item_ids))
    frame = pd.DataFrame({"item_id": item_ids, "title": [""] * len(items), "text": [""] * len(items),
                          "categories": [[f"cat{'AB'[g]}"] for g in group(items)], "creator": [""] * len(items),
                          "created_at": pd.array([None] * len(items), dtype="Int64")})
    ufr = pd.DataFrame({"user_id": user_ids, "attributes": [{} for _ in user_ids],
                        "interests": [[] for _ in user_ids]})
    return Dataset("w", inter, IdMap("user", user_ids), IdMap("item", item_ids), frame, ufr)


@pytest.fixture(scope="module")
def worlds() -> tuple[Dataset, Dataset]:
    # the previous catalog in another order (odd items first), without the last 8 items / 20 users
    prev_items = [f"i{i}" for i in list(range(1, 20, 2)) + list(range(0, 20, 2))]
    prev_users = [f"u{u}" for u in reversed(range(60))]
    return _world(prev_items, prev_users, 1), _world([f"i{i}" for i in range(N_ITEMS)],
                                                     [f"u{u}" for u in range(N_USERS)], 2)


@pytest.fixture(scope="module")
def previous(worlds) -> TwoTowerRecommender:
    prev = worlds[0]
    return TwoTowerRecommender(**SMALL).with_side_info(prev.items, prev.users).fit(prev.interactions)


def _fit(worlds, previous, tmp_path: Path, monkeypatch: pytest.MonkeyPatch | None = None, **params):
    cfg = load_config(home=tmp_path)
    tt = cfg.models.two_tower.model_copy(update={**SMALL, **params})
    cfg = cfg.model_copy(update={"models": cfg.models.model_copy(update={"two_tower": tt})})
    prev_ds = worlds[0]
    src = WarmSource("20260101T000000Z-abcdef", Path("."), "2" * 64, {}, prev_ds.user_ids, prev_ds.item_ids,
                     {"two_tower": previous})
    starts: list[dict[str, torch.Tensor]] = []
    if monkeypatch is not None:  # the network as its first epoch gets it
        real = TwoTowerRecommender._train

        def spy(self, *a, **kw):
            starts.append({k: v.clone() for k, v in self.net_.state_dict().items()})
            return real(self, *a, **kw)

        monkeypatch.setattr(TwoTowerRecommender, "_train", spy)
    ctx = FitContext(cfg, worlds[1], LocalEngine(), warm=src)
    model = component("two_tower").fit(ctx)
    return model, ctx.warm_reports["two_tower"], starts


def _group_precision(model: TwoTowerRecommender, ds: Dataset) -> float:
    users = np.arange(N_USERS)
    recs, _ = model.recommend(users, 4, exclude=ds.interactions.to_csr())
    return float((group(recs) == (users % 2)[:, None]).mean())


def test_carried_rows_start_from_the_previous_weights_and_new_rows_as_a_cold_model(
        worlds, previous, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, rec, starts = _fit(worlds, previous, tmp_path, monkeypatch)
    assert rec["mode"] == "warm" and rec["from"]["version"] == "20260101T000000Z-abcdef"
    assert rec["items"] == {"carried": 20, "new": 8} and rec["users"] == {"carried": 60, "new": 20}
    assert 1 <= rec["epochs"] <= SMALL["warm_epochs"] and len(model.history_["loss"]) <= SMALL["warm_epochs"]
    start, old = starts[0], previous.net_.state_dict()
    cold = model.build_net(model.table_, N_ITEMS).state_dict()  # what a cold fit starts from
    prev_index = {x: i for i, x in enumerate(worlds[0].item_ids.ids)}
    for item in range(N_ITEMS):
        row = start["item.id_emb.weight"][item + 1]
        if item < 20:  # known: its previous row, wherever it was
            torch.testing.assert_close(row, old["item.id_emb.weight"][prev_index[f"i{item}"] + 1])
        else:
            torch.testing.assert_close(row, cold["item.id_emb.weight"][item + 1])
    torch.testing.assert_close(start["item.mlp.0.weight"], old["item.mlp.0.weight"])
    torch.testing.assert_close(start["user.mlp.0.weight"], old["user.mlp.0.weight"])
    prev_cats, cats = previous.structure_.categories_, model.structure_.categories_
    for name in ("catA", "catB"):
        torch.testing.assert_close(start["item.cat_emb.weight"][cats[name] + 1],
                                   old["item.cat_emb.weight"][prev_cats[name] + 1])
    assert model._warm is None  # the previous model is not kept


def test_warm_fit_with_fewer_epochs_matches_the_cold_fit(worlds, previous, tmp_path: Path) -> None:
    cold = TwoTowerRecommender(**SMALL).with_side_info(worlds[1].items, worlds[1].users).fit(worlds[1].interactions)
    warm, rec, _ = _fit(worlds, previous, tmp_path)
    assert rec["mode"] == "warm"
    cold_p, warm_p = _group_precision(cold, worlds[1]), _group_precision(warm, worlds[1])
    assert cold_p >= 0.8 and warm_p >= cold_p - 0.05, (cold_p, warm_p)


def test_a_changed_dense_shape_falls_back_to_cold_and_says_why(worlds, previous, tmp_path: Path) -> None:
    model, rec, _ = _fit(worlds, previous, tmp_path, hidden=24)
    assert rec["mode"] == "cold" and "item.mlp.0.weight changed shape (32, 48) -> (24, 48)" in rec["reason"]
    assert rec["from"]["sha256"] == "2" * 64
    assert len(model.history_["loss"]) > SMALL["warm_epochs"]  # the cold epoch budget, not warm_epochs

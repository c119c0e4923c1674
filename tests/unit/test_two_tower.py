"""Two-tower model on tiny worlds whose right answer is known by construction.

Two user groups (attribute group=A / group=B) each touch only their own items; items carry
their group as a category. Cold items (no events) with a group's category must be recommended
to that group's users; users without events are served from their attributes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from winnow.data.interactions import Interactions
from winnow.models.two_tower import TwoTowerRecommender, blend_item_vectors
from winnow.models.two_tower.train import EventArrays

N_USERS, N_ITEMS, N_WARM = 80, 28, 24  # items 24..27 are cold: 24, 25 in group A, 26, 27 in B
SMALL = {"dim": 16, "embedding": 8, "hidden": 32, "epochs": 25, "batch_size": 64, "learning_rate": 0.01,
         "temperature": 0.1, "history": 10, "half_life": 5.0, "user_buckets": 1009, "attr_buckets": 101,
         "creator_buckets": 64, "text_backend": "tfidf", "text_dim": 4, "refit": False, "patience": 25,
         "seed": 0, "id_dropout": 0.5}


def item_group(i: np.ndarray) -> np.ndarray:
    i = np.asarray(i)
    return np.where(i < N_WARM, (i >= N_WARM // 2).astype(int), (i >= N_WARM + 2).astype(int))


@pytest.fixture(scope="module")
def world() -> tuple[Interactions, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    users, items, ts = [], [], []
    for u in range(N_USERS - 10):  # users 70..79 have no events (cold users)
        pool = np.arange(12) if u % 2 == 0 else np.arange(12, 24)
        for j, i in enumerate(rng.choice(pool, 6, replace=False)):
            users.append(u)
            items.append(i)
            ts.append(1_700_000_000 + 3600 * (u + 7 * j))
    inter = Interactions.from_arrays(np.array(users), np.array(items), timestamp=np.array(ts),
                                     n_users=N_USERS, n_items=N_ITEMS)
    grp = ["A", "B"]
    cat_frame = pd.DataFrame({
        "item_id": [str(i) for i in range(N_ITEMS)],
        "title": [f"{'alpine hiking' if item_group(i) == 0 else 'baking bread'} item {i}" for i in range(N_ITEMS)],
        "text": [""] * N_ITEMS,
        "categories": [[f"cat{grp[item_group(i)]}"] for i in range(N_ITEMS)],
        "creator": [""] * N_ITEMS, "created_at": pd.array([None] * N_ITEMS, dtype="Int64")})
    user_frame = pd.DataFrame({"user_id": [str(u) for u in range(N_USERS)],
                               "attributes": [{"group": grp[u % 2]} for u in range(N_USERS)],
                               "interests": [[] for _ in range(N_USERS)]})
    return inter, cat_frame, user_frame


@pytest.fixture(scope="module")
def fitted(world) -> TwoTowerRecommender:
    inter, items, users = world
    return TwoTowerRecommender(**SMALL).with_side_info(items, users).fit(inter)


def test_cold_items_go_to_their_content_group(fitted: TwoTowerRecommender, world) -> None:
    inter = world[0]
    warm_users = np.arange(0, 70)
    recs, _ = fitted.recommend(warm_users, 2, candidates=np.arange(N_WARM, N_ITEMS), exclude=inter.to_csr())
    right = item_group(recs) == (warm_users % 2)[:, None]
    assert right.mean() >= 0.9, right.mean()


def test_cold_users_served_from_attributes(fitted: TwoTowerRecommender, world) -> None:
    cold_users = np.arange(70, 80)
    recs, _ = fitted.recommend(cold_users, 3, candidates=np.arange(N_WARM))
    right = item_group(recs) == (cold_users % 2)[:, None]
    assert right.mean() >= 0.8, right.mean()


def test_item_vectors_blend_by_event_count(fitted: TwoTowerRecommender) -> None:
    counts = fitted.item_counts_
    assert (counts[N_WARM:] == 0).all()
    np.testing.assert_allclose(fitted.item_vectors_[N_WARM:], fitted.content_vectors_[N_WARM:], atol=1e-6)
    v = blend_item_vectors(fitted.collab_vectors_, fitted.content_vectors_, np.full(N_ITEMS, 10**6), k=10)
    np.testing.assert_allclose(v, fitted.collab_vectors_, atol=1e-4)
    mid = blend_item_vectors(fitted.collab_vectors_[:1], fitted.content_vectors_[:1], np.array([10]), k=10)
    expect = fitted.collab_vectors_[0] + fitted.content_vectors_[0]
    np.testing.assert_allclose(mid[0], expect / np.linalg.norm(expect), atol=1e-5)


def test_training_history_is_causal() -> None:
    ev = EventArrays.build(np.array([1, 0, 0, 0]), np.array([9, 5, 6, 7]), np.array([1, 30, 10, 20]))
    hist, w = ev.history(np.arange(4), 2, half_life=1.0)
    # user 0's events in time order are items 6, 7, 5; user 1 has one event (item 9)
    np.testing.assert_array_equal(ev.item1, [7, 8, 6, 10])
    np.testing.assert_array_equal(hist, [[0, 0], [0, 7], [7, 8], [0, 0]])
    np.testing.assert_allclose(w[0], [0.5, 1.0])


def test_validation_history_recorded(fitted: TwoTowerRecommender) -> None:
    h = fitted.history_
    assert len(h["loss"]) >= 1 and h["loss"][-1] < h["loss"][0]
    assert len(h["validation_ndcg"]) == len(h["loss"])


def test_save_load_no_pickle(fitted: TwoTowerRecommender, tmp_path: Path) -> None:
    from winnow.models.registry import load_model

    fitted.save(tmp_path / "tt")
    names = {p.name for p in (tmp_path / "tt").rglob("*") if p.is_file()}
    assert "weights.safetensors" in names and not any(n.endswith((".pkl", ".pt")) for n in names)
    loaded = load_model(tmp_path / "tt")
    users = np.arange(N_USERS)
    np.testing.assert_allclose(loaded._score(users), fitted._score(users), atol=1e-5)


def test_user_vector_query_and_interests(fitted: TwoTowerRecommender) -> None:
    q = fitted.text_encoder_.encode(["alpine hiking"])
    base = fitted.user_vector(attributes={}, interests=[])
    with_query = fitted.user_vector(attributes={}, interests=[], query=q[0])
    assert base.shape == (16,) and not np.allclose(base, with_query)
    v = fitted.user_vector(attributes={}, interests=["catA"])
    top = np.argsort(-(fitted.item_vectors_[:N_WARM] @ v))[:3]
    assert (item_group(top) == 0).all()


MASKED = {**SMALL, "objective": "masked", "mask_fraction": 0.4, "validation": "random", "use_user_id": False,
          "share_embeddings": True, "init_std": 0.05, "batch_size": 16, "epochs": 30, "history": 6,
          "half_life": 1000.0, "refit": True, "patience": 30}


@pytest.fixture(scope="module")
def fitted_masked(world) -> TwoTowerRecommender:
    inter, items, users = world
    return TwoTowerRecommender(**MASKED).with_side_info(items, users).fit(inter)


def test_masked_objective_learns_groups(fitted_masked: TwoTowerRecommender, world) -> None:
    inter = world[0]
    warm_users = np.arange(0, 70)
    recs, _ = fitted_masked.recommend(warm_users, 3, candidates=np.arange(N_WARM), exclude=inter.to_csr())
    assert (item_group(recs) == (warm_users % 2)[:, None]).mean() >= 0.9
    h = fitted_masked.history_
    assert h["loss"][-1] < h["loss"][0] and h["refit_epochs"] == h["best_epoch"] + 1


def test_masked_shared_embeddings_save_load(fitted_masked: TwoTowerRecommender, tmp_path: Path) -> None:
    from winnow.models.registry import load_model

    net = fitted_masked.net_
    assert net.user.hist_emb is net.item.id_emb
    fitted_masked.save(tmp_path / "tt")
    loaded = load_model(tmp_path / "tt")
    assert loaded.net_.user.hist_emb is loaded.net_.item.id_emb
    np.testing.assert_allclose(loaded._score(np.arange(N_USERS)), fitted_masked._score(np.arange(N_USERS)), atol=1e-5)
    # without the user-id input, the user index does not change the query vector
    a = fitted_masked.user_vector(history=[0, 1, 2], user=3)
    np.testing.assert_allclose(a, fitted_masked.user_vector(history=[0, 1, 2], user=None), atol=1e-6)


def test_next_item_full_softmax_trains(world) -> None:
    inter, items, users = world
    m = TwoTowerRecommender(**{**SMALL, "negatives": "full", "epochs": 5, "patience": 5, "weight_decay": 0.01,
                               "dropout": 0.1}).with_side_info(items, users).fit(inter)
    assert m.history_["loss"][-1] < m.history_["loss"][0]


def test_pooled_history_and_user_sets() -> None:
    from winnow.models.two_tower.masked import UserSets, pooled_history

    # user 0: item 5 twice (deduplicated: last time 30, weights summed), items 6 (t=10), 7 (t=20)
    s = UserSets.build(np.array([0, 0, 0, 0, 1]), np.array([5, 6, 7, 5, 9]), np.array([1, 10, 20, 30, 5]),
                       np.array([1.0, 2.0, 3.0, 4.0, 1.0], np.float32), n_users=3, n_items=10)
    np.testing.assert_array_equal(s.user, [0, 0, 0, 1])
    np.testing.assert_array_equal(s.item, [6, 7, 5, 9])
    np.testing.assert_allclose(s.weight, [2.0, 3.0, 5.0, 1.0])
    hist, w = pooled_history(s.user, s.item, s.weight, 3, length=2, half_life=1.0)
    np.testing.assert_array_equal(hist, [[8, 6], [0, 10], [0, 0]])  # items + 1, oldest first
    np.testing.assert_allclose(w, [[1.5, 5.0], [0.0, 1.0], [0.0, 0.0]])


def test_random_validation_mask_is_per_user() -> None:
    from winnow.models.two_tower.masked import validation_mask

    user = np.repeat(np.arange(4), [10, 5, 1, 20])
    inter = Interactions.from_arrays(user, np.arange(len(user)) % 30, n_items=30)
    keep = validation_mask(inter, "random", 0.8, seed=0)
    np.testing.assert_array_equal(np.bincount(user[keep]), [8, 4, 1, 16])
    assert (keep == validation_mask(inter, "random", 0.8, seed=0)).all()
    assert not (keep == validation_mask(inter, "random", 0.8, seed=1)).all()


def test_config_ranges_validated() -> None:
    from pydantic import ValidationError

    for bad in ({"mask_fraction": 1.0}, {"objective": "next"}, {"negatives": "sampled"}, {"dropout": 1.0},
                {"init_std": 0.0}, {"validation": "kfold"}):
        with pytest.raises(ValidationError):
            TwoTowerRecommender(**bad)

"""The synthetic world: seeded, schema-conformant, causal in time, and learnable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winnow.data.interactions import Interactions
from winnow.data.schema import EVENT_COLUMNS, ITEM_COLUMNS, USER_COLUMNS
from winnow.data.synthetic import (EVENT_TYPES, ChoiceModel, SyntheticWorld, generate_world,
                                   write_world)
from winnow.metrics import evaluate_recs
from winnow.evaluation.splits import stratified_split


@pytest.fixture(scope="module")
def small() -> SyntheticWorld:
    return generate_world(300, 200, 8000, seed=11)


@pytest.fixture(scope="module")
def demo() -> SyntheticWorld:
    """The `make demo` size."""
    return generate_world(2000, 1000, 100_000, seed=0)


def _index(ids: pd.Series) -> np.ndarray:
    return ids.str.slice(1).astype(np.int64).to_numpy()


def _interactions(world: SyntheticWorld) -> Interactions:
    e = world.events
    return Interactions.from_arrays(_index(e["user_id"]), _index(e["item_id"]),
                                    timestamp=e["timestamp"].to_numpy(),
                                    n_users=len(world.users), n_items=len(world.items))


def test_same_seed_same_world_and_other_seed_differs(small: SyntheticWorld) -> None:
    again = generate_world(300, 200, 8000, seed=11)
    for name in ("events", "items", "users"):
        pd.testing.assert_frame_equal(getattr(small, name), getattr(again, name))
    np.testing.assert_array_equal(small.user_factors, again.user_factors)
    np.testing.assert_array_equal(small.item_factors, again.item_factors)
    other = generate_world(300, 200, 8000, seed=12)
    assert not small.events["item_id"].equals(other.events["item_id"])


def test_schema_and_sizes(small: SyntheticWorld) -> None:
    assert list(small.events.columns) == list(EVENT_COLUMNS)
    assert list(small.items.columns) == list(ITEM_COLUMNS)
    assert list(small.users.columns) == list(USER_COLUMNS)
    assert len(small.events) == 8000 and len(small.items) == 200 and len(small.users) == 300
    assert small.events["timestamp"].dtype == np.int64
    assert small.events["event_id"].is_unique
    assert small.user_factors.shape == (300, 16) and small.item_factors.shape == (200, 16)
    np.testing.assert_allclose(np.linalg.norm(small.item_factors, axis=1), 1.0, rtol=1e-5)
    assert small.items["item_id"].tolist()[:3] == ["i0", "i1", "i2"]
    assert set(_index(small.events["user_id"])) <= set(range(300))


def test_events_respect_time_and_funnel(small: SyntheticWorld) -> None:
    e = small.events
    created = small.items["created_at"].to_numpy()[_index(e["item_id"])]
    assert (e["timestamp"].to_numpy() >= created).all(), "event before its item was created"
    assert e["timestamp"].is_monotonic_increasing
    assert e["timestamp"].min() >= 1_700_000_000 and e["timestamp"].max() < 1_700_000_000 + 90 * 86400
    counts = e["event_type"].value_counts()
    assert set(counts.index) <= set(EVENT_TYPES)
    assert counts["view"] > 3 * counts["click"] > 0
    assert counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    rated = e["event_type"] == "rating"
    assert e.loc[rated, "value"].between(1, 5).all() and e.loc[~rated, "value"].isna().all()
    # Every deeper funnel step of a pair follows a view of that pair.
    first_view = e[e["event_type"] == "view"].groupby(["user_id", "item_id"])["timestamp"].min()
    deeper = e[e["event_type"] != "view"].groupby(["user_id", "item_id"])["timestamp"].min()
    joined = deeper.to_frame("deep").join(first_view.rename("view"), how="left")
    assert joined["view"].notna().all() and (joined["view"] <= joined["deep"]).all()


def test_catalog_text_carries_category_and_popularity_is_skewed(demo: SyntheticWorld) -> None:
    it = demo.items
    n_cats = it["categories"].map(len)
    assert n_cats.between(1, 3).all() and (n_cats == 1).mean() > 0.4
    # The primary category's vocabulary shows in the text of (nearly) every item.
    from winnow.data.synthetic_text import vocabulary
    _, vocab = vocabulary(len(demo.category_names))
    has = [bool(set(text.split()) & set(vocab[c])) for text, c in zip(it["text"], demo.item_category)]
    assert np.mean(has) > 0.95
    assert all(c[0] == demo.category_names[p] for c, p in zip(it["categories"], demo.item_category))
    counts = np.bincount(_index(demo.events["item_id"]), minlength=len(it))
    top = np.sort(counts)[::-1]
    assert top[:100].sum() > 0.4 * counts.sum()          # head-heavy (power law)
    title_words = it["title"].str.split()
    assert title_words.map(len).eq(3).all() and title_words.map(lambda w: w[1] != w[2]).all()


def test_users_have_demographics_that_carry_signal(demo: SyntheticWorld) -> None:
    attrs = pd.DataFrame(list(demo.users["attributes"]))
    assert set(attrs.columns) == {"age", "gender", "locale", "device"}
    assert all(set(i) <= set(demo.category_names) for i in demo.users["interests"])
    # Popularity within the (age, locale) segment predicts held-out items better than global.
    split = stratified_split(_interactions(demo), 0.75, seed=0)
    tr = split.train.to_csr(binary=True)
    seg = pd.factorize(attrs["age"] + "|" + attrs["locale"])[0]
    seg_pop = np.zeros((seg.max() + 1, tr.shape[1]))
    rows, cols = tr.nonzero()
    np.add.at(seg_pop, (seg[rows], cols), 1.0)
    glob = np.asarray(tr.sum(axis=0)).ravel()

    def top10(scores: np.ndarray) -> np.ndarray:
        s = scores.astype(np.float64).copy()
        s[tr.nonzero()] = -np.inf
        return np.argsort(-s, axis=1, kind="stable")[:, :10]

    seg_m = evaluate_recs(top10(seg_pop[seg] + 1e-3 * glob), split.test, k=10)
    glob_m = evaluate_recs(top10(np.tile(glob, (tr.shape[0], 1))), split.test, k=10)
    assert seg_m["ndcg@10"] > 1.2 * glob_m["ndcg@10"]


def test_demo_world_is_learnable_als_beats_popularity(demo: SyntheticWorld) -> None:
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import bm25_weight

    split = stratified_split(_interactions(demo), 0.75, seed=0)
    tr = split.train.to_csr()
    als = AlternatingLeastSquares(factors=32, iterations=15, regularization=0.05, random_state=0)
    als.fit(bm25_weight(tr).tocsr(), show_progress=False)
    users = np.arange(tr.shape[0])
    als_recs, _ = als.recommend(users, tr, N=10, filter_already_liked_items=True)
    pop = np.asarray((tr > 0).sum(axis=0), dtype=np.float64).ravel()
    scores = np.tile(pop, (tr.shape[0], 1))
    scores[tr.nonzero()] = -np.inf
    pop_recs = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    a = evaluate_recs(als_recs, split.test, k=10)
    p = evaluate_recs(pop_recs, split.test, k=10)
    assert a["ndcg@10"] > 1.5 * p["ndcg@10"], (a, p)
    assert a["recall@10"] > 1.5 * p["recall@10"], (a, p)


def test_write_world_csv_format(small: SyntheticWorld, tmp_path) -> None:
    paths = write_world(small, tmp_path / "world")
    ev = pd.read_csv(paths["events"])
    assert list(ev.columns) == ["user_id", "item_id", "timestamp", "event_type", "value"]
    assert len(ev) == 8000 and ev["value"].notna().sum() == (ev["event_type"] == "rating").sum()
    it = pd.read_csv(paths["items"], keep_default_na=False)
    assert list(it.columns)[:6] == ["item_id", "title", "text", "categories", "creator", "created_at"]
    assert it["categories"].str.split("|").tolist() == small.items["categories"].tolist()
    us = pd.read_csv(paths["users"], keep_default_na=False)
    assert {"user_id", "created_at", "age", "gender", "locale", "device", "interests"} <= set(us.columns)
    assert not list((tmp_path / "world").glob(".*tmp"))
    # The generic CSV importer reads the format back.
    from winnow.data.importers import generic
    imported = generic.load(events=paths["events"], items=paths["items"], users=paths["users"])
    assert len(imported.events) == 8000 and len(imported.items) == 200 and len(imported.users) == 300
    assert imported.items["categories"].tolist() == small.items["categories"].tolist()
    assert imported.users["interests"].tolist() == small.users["interests"].tolist()
    assert imported.events["event_type"].tolist() == small.events["event_type"].tolist()


def test_choice_model_knobs() -> None:
    w = generate_world(100, 50, 3000, seed=2, model=ChoiceModel(dim=8, rating_share=0.0))
    assert w.user_factors.shape == (100, 8)
    assert not (w.events["event_type"] == "rating").any()
    with pytest.raises(ValueError, match="rating_share"):
        ChoiceModel(rating_share=1.5)


def test_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_events must be >= 1"):
        generate_world(10, 10, 0)
    with pytest.raises(ValueError, match="n_creators"):
        generate_world(10, 10, 10, n_creators=0)

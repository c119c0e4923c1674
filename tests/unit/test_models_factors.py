"""ALS and BPR through implicit: factors for the ANN index and real-time fold-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from winnow.data.interactions import Interactions
from winnow.models.als import ALSRecommender
from winnow.models.bpr import BPRRecommender


def _two_groups(n_users: int = 120, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        pool = np.arange(10) if u % 2 == 0 else np.arange(10, 20)
        chosen = rng.choice(pool, 5, replace=False)
        users += [u] * 5
        items += chosen.tolist()
    return Interactions.from_arrays(np.array(users), np.array(items),
                                    weight=rng.integers(1, 5, len(users)), n_users=n_users,
                                    n_items=20)


@pytest.mark.parametrize("bm25", [True, False])
def test_als_factors_and_scores(bm25: bool) -> None:
    m = ALSRecommender(factors=4, regularization=0.05, alpha=1.0, bm25=bm25, num_threads=1).fit(_two_groups())
    assert m.user_factors_.dtype == m.item_factors_.dtype == np.float32
    assert m.user_factors_.shape == (120, 4) and m.item_factors_.shape == (20, 4)
    items, scores = m.recommend(np.array([3]), 20)
    np.testing.assert_allclose(scores[0], (m.user_factors_[3] @ m.item_factors_.T)[items[0]],
                               rtol=1e-5)


@pytest.mark.parametrize("bm25", [True, False])
def test_als_fold_in_reproduces_a_training_user(bm25: bool, tmp_path: Path) -> None:
    train = _two_groups()
    m = ALSRecommender(factors=2, regularization=0.05, alpha=1.0, bm25=bm25, iterations=30, num_threads=1).fit(train)
    row = train.to_csr()[4]
    vec = m.recalculate_user(row.indices, row.data)
    assert vec.shape == (2,) and vec.dtype == np.float32
    stored = m.user_factors_[4]
    cos = vec @ stored / (np.linalg.norm(vec) * np.linalg.norm(stored))
    assert cos > 0.99
    m.save(tmp_path)
    loaded = ALSRecommender.load(tmp_path)  # fold-in works from saved arrays alone
    np.testing.assert_allclose(loaded.recalculate_user(row.indices, row.data), vec, rtol=1e-4,
                               atol=1e-6)


def test_als_fold_in_of_a_new_user_prefers_their_group() -> None:
    m = ALSRecommender(factors=2, regularization=0.05, alpha=1.0, bm25=True, num_threads=1).fit(_two_groups())
    vec = m.recalculate_user(np.array([11, 12, 13]), None)
    scores = m.item_factors_ @ vec
    assert scores[10:20].min() > scores[:10].max()
    with pytest.raises(ValueError, match="out of range"):
        m.recalculate_user(np.array([20]))


def test_bpr_factors_and_fold_in() -> None:
    m = BPRRecommender(factors=2, iterations=200, learning_rate=0.05, regularization=0.001,
                       num_threads=1).fit(_two_groups())
    assert m.user_factors_.shape[0] == 120 and m.item_factors_.shape[0] == 20
    assert m.user_factors_.shape[1] == m.item_factors_.shape[1] >= 3  # + item-bias column
    vec = m.recalculate_user(np.array([1, 2, 3]), None, epochs=50)
    scores = m.item_factors_ @ vec
    assert np.mean(scores[:10]) > np.mean(scores[10:20])
    assert set(np.argsort(-scores)[:5].tolist()) <= set(range(10))


def test_bpr_seeded_single_thread_is_reproducible() -> None:
    train = _two_groups()
    a = BPRRecommender(factors=4, iterations=20, seed=5, num_threads=1).fit(train)
    b = BPRRecommender(factors=4, iterations=20, seed=5, num_threads=1).fit(train)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)

"""Item-item: similarities against a dense brute force, block planning, history scoring."""

from __future__ import annotations

import numpy as np
import pytest
from implicit.nearest_neighbours import CosineRecommender

import winnow.models.topk as topk_mod
from winnow.data.interactions import Interactions
from winnow.models.itemitem import ItemItemRecommender


def _random_world(seed: int = 0, n_users: int = 60, n_items: int = 25) -> Interactions:
    rng = np.random.default_rng(seed)
    x = rng.random((n_users, n_items)) < 0.2
    u, i = np.nonzero(x)
    w = rng.integers(1, 4, len(u)).astype(np.float32)
    return Interactions.from_arrays(u, i, weight=w, n_users=n_users, n_items=n_items)


def _brute_force(train: Interactions, k: int, shrink: float) -> np.ndarray:
    x = train.to_csr(binary=True).toarray().astype(np.float64)
    c = x.T @ x
    n = np.diag(c).copy()
    s = c / (np.sqrt(np.outer(n, n)) + shrink)
    np.fill_diagonal(s, 0.0)
    out = np.zeros_like(s)
    for i in range(len(s)):
        order = np.lexsort((np.arange(len(s)), -s[i]))[:k]  # ties: lower column first
        keep = order[s[i, order] > 0]
        out[i, keep] = s[i, keep]
    return out


@pytest.mark.parametrize("shrink", [0.0, 5.0])
def test_similarity_matches_brute_force(shrink: float) -> None:
    train = _random_world()
    m = ItemItemRecommender(neighbours=4, shrinkage=shrink).fit(train)
    np.testing.assert_allclose(m.similarity_.toarray(), _brute_force(train, 4, shrink), atol=1e-6)
    assert (m.similarity_.getnnz(axis=1) <= 4).all()


def test_small_blocks_give_the_same_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    train = _random_world(1)
    whole = ItemItemRecommender(neighbours=5, shrinkage=10.0).fit(train).similarity_.toarray()
    monkeypatch.setattr(topk_mod, "BLOCK_NNZ", 10)  # forces one item per block
    blocked = ItemItemRecommender(neighbours=5, shrinkage=10.0).fit(train).similarity_.toarray()
    np.testing.assert_array_equal(whole, blocked)


def test_zero_shrinkage_agrees_with_implicit_cosine() -> None:
    train = _random_world(2)
    ours = ItemItemRecommender(neighbours=30, shrinkage=0.0).fit(train).similarity_.toarray()
    ref = CosineRecommender(K=31, num_threads=1)
    ref.fit(train.to_csr(binary=True), show_progress=False)
    theirs = ref.similarity.toarray().astype(np.float64)
    np.fill_diagonal(theirs, 0.0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_raw_counts_when_not_normalised() -> None:
    train = _random_world(3)
    m = ItemItemRecommender(neighbours=100, shrinkage=10.0, normalize="none").fit(train)
    x = train.to_csr(binary=True).toarray()
    c = x.T @ x
    np.fill_diagonal(c, 0)
    np.testing.assert_allclose(m.similarity_.toarray(), c)


def test_score_from_history_matches_known_user() -> None:
    train = _random_world(4)
    m = ItemItemRecommender(neighbours=6, shrinkage=10.0).fit(train)
    hist = train.to_csr()[7]
    items, scores = m.score_from_history(hist.indices, hist.data, 5)
    ref_items, ref_scores = m.recommend(np.array([7]), 5, exclude=train.to_csr())
    valid = items >= 0
    np.testing.assert_array_equal(items[valid], ref_items[0][valid])
    np.testing.assert_allclose(scores[valid], ref_scores[0][valid], rtol=1e-5)
    assert not set(items.tolist()) & set(hist.indices.tolist())


def test_score_from_history_explicit_exclude_and_errors() -> None:
    m = ItemItemRecommender(neighbours=6, shrinkage=10.0).fit(_random_world(5))
    items, _ = m.score_from_history(np.array([0, 1]), None, 30, exclude=np.array([], np.int64))
    assert items.shape == (25,)
    assert (items[items >= 0] != -1).all()
    items2, _ = m.score_from_history(np.array([0, 1]), None, 30, exclude=np.array([2, 3]))
    assert not {2, 3} & set(items2.tolist())
    with pytest.raises(ValueError, match="out of range"):
        m.score_from_history(np.array([99]), None, 3)
    with pytest.raises(ValueError, match="weights has shape"):
        m.score_from_history(np.array([1, 2]), np.array([1.0]), 3)

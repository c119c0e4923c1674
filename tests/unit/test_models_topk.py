"""Shared sparse top-k helpers (models/topk.py) against dense brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import winnow.models.topk as topk_mod
from winnow.data.interactions import Interactions
from winnow.models.rp3beta import RP3betaRecommender
from winnow.models.topk import blocked_top_k_product, row_top_k, similar_from_sparse
from winnow.models.userknn import UserKNNRecommender


def _dense_top_k(m: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest non-zero entries per row (ties: lower column first), rest 0."""
    out = np.zeros_like(m)
    for r in range(m.shape[0]):
        nz = np.flatnonzero(m[r])
        order = nz[np.lexsort((nz, -m[r, nz]))][:k]
        out[r, order] = m[r, order]
    return out


def _random_sparse(seed: int, shape: tuple[int, int], density: float) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random(shape) < density, rng.integers(1, 4, shape), 0)
    return sp.csr_matrix(dense.astype(np.float64))


@pytest.mark.parametrize("k", [1, 2, 5, 40])
def test_row_top_k_matches_brute_force_with_ties(k: int) -> None:
    block = _random_sparse(0, (30, 20), 0.4)  # small integer values: many ties
    expected = _dense_top_k(block.toarray(), k)
    got = row_top_k(block.copy(), k)
    np.testing.assert_array_equal(got.toarray(), expected)
    assert got.has_sorted_indices
    assert (got.getnnz(axis=1) == np.minimum(block.getnnz(axis=1), k)).all()


def test_row_top_k_rejects_non_positive_k() -> None:
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        row_top_k(_random_sparse(1, (3, 3), 0.5), 0)


@pytest.mark.parametrize("block_nnz", [None, 1, 37])
@pytest.mark.parametrize("k", [1, 3, 25])
def test_blocked_product_matches_dense_reference(block_nnz: int | None, k: int) -> None:
    x = _random_sparse(2, (40, 25), 0.2)
    xt = x.T.tocsr()
    col_w = np.random.default_rng(3).random(25) + 0.5

    def weigh(block: sp.csr_matrix, rows: np.ndarray) -> None:
        block.data = block.data * col_w[block.indices] / (1.0 + rows)

    got = blocked_top_k_product(xt, x, k, weigh=weigh, block_nnz=block_nnz)
    dense = (xt @ x).toarray() * col_w[None, :] / (1.0 + np.arange(25))[:, None]
    np.fill_diagonal(dense, 0.0)
    assert got.dtype == np.float64 and got.shape == (25, 25)
    np.testing.assert_allclose(got.toarray(), _dense_top_k(dense, k), rtol=1e-12)
    assert (got.getnnz(axis=1) <= k).all()


def test_blocked_product_without_weigh_and_rectangular_left() -> None:
    left = _random_sparse(4, (12, 30), 0.3)
    right = _random_sparse(5, (30, 12), 0.3)
    got = blocked_top_k_product(left, right, 4, block_nnz=1)
    dense = (left @ right).toarray()
    np.fill_diagonal(dense, 0.0)
    np.testing.assert_array_equal(got.toarray(), _dense_top_k(dense, 4))


def test_blocked_product_of_empty_matrix() -> None:
    empty = sp.csr_matrix((0, 0))
    assert blocked_top_k_product(empty, empty, 3).shape == (0, 0)


def test_similar_from_sparse_excludes_self_and_pads() -> None:
    rng = np.random.default_rng(6)
    sim = sp.csr_matrix(np.where(rng.random((15, 15)) < 0.3, rng.random((15, 15)) + 0.1, 0.0))
    sim.setdiag(9.0)  # a stored self-similarity must still never come back
    sim = sim.tocsr()
    queries = np.array([0, 7, 14, 7])
    items, scores = similar_from_sparse(sim, queries, 6)
    dense = sim.toarray()
    for row, q in enumerate(queries):
        ref = dense[q].copy()
        ref[q] = 0.0
        nz = np.flatnonzero(ref)
        order = nz[np.lexsort((nz, -ref[nz]))][:6]
        n = len(order)
        np.testing.assert_array_equal(items[row, :n], order)  # distinct values: exact order
        np.testing.assert_allclose(scores[row, :n], ref[order].astype(np.float32))
        assert (items[row, n:] == -1).all() and np.isneginf(scores[row, n:]).all()
        assert q not in items[row].tolist()
    with pytest.raises(ValueError, match=r"out of range \[0, 15\)"):
        similar_from_sparse(sim, np.array([15]), 3)


def _world(seed: int) -> Interactions:
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((50, 30)) < 0.2)
    return Interactions.from_arrays(u, i, n_users=50, n_items=30)


@pytest.mark.parametrize("make", [lambda: RP3betaRecommender(alpha=0.8, beta=0.4, neighbours=5),
                                  lambda: UserKNNRecommender(neighbours=5, shrinkage=3.0)])
def test_models_give_the_same_matrix_with_tiny_blocks(make, monkeypatch: pytest.MonkeyPatch) -> None:
    train = _world(7)
    whole = make().fit(train).similarity_
    monkeypatch.setattr(topk_mod, "BLOCK_NNZ", 1)  # one row per block
    blocked = make().fit(train).similarity_
    np.testing.assert_array_equal(whole.toarray(), blocked.toarray())
    np.testing.assert_array_equal(whole.indptr, blocked.indptr)

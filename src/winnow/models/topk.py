"""Sparse top-k neighbourhoods shared by the neighbourhood models (item-item, RP3beta, user-kNN).

Contract (all indices are dense internal indices, never external ids):

- ``row_top_k(block, k)``: keep the ``k`` largest stored entries of every row of a CSR matrix
  (ties: lower column first); the result keeps the input's shape, with column-sorted rows.
- ``blocked_top_k_product(left, right, k, weigh=...)``: the row-wise top-k of
  ``left @ right`` [left.shape[0], right.shape[1]] with the diagonal dropped, computed in row
  blocks whose product holds at most about ``BLOCK_NNZ`` non-zeros, so a 1e5..1e6-row
  similarity never needs a dense square matrix. ``weigh(block, rows)`` may rescale a block's
  stored values in place before the diagonal is zeroed and the top-k taken.
- ``similar_from_sparse(similarity, items, k)``: the stored neighbours of each query row, best
  first, the query itself excluded, padded with -1 / -inf like ``models.base.top_k``.

Entries that are zero after weighing are dropped (explicit zeros never count as neighbours).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from winnow.models.base import top_k

# max non-zeros of one product row block (~240 MB transient in float64 + int32 indices)
BLOCK_NNZ = 20_000_000

#: ``weigh(block, rows)``: rescale ``block.data`` in place; ``rows`` [block.nnz] holds the global
#: row index of every stored entry (``block.indices`` holds its column).
Weigh = Callable[[sp.csr_matrix, np.ndarray], None]


def row_top_k(block: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of every row of ``block`` (ties: lower column first).

    Args:
        block: CSR [r, c]; sorted in place (``sort_indices``).
        k: entries kept per row (>= 1).
    Returns:
        CSR [r, c] with at most ``k`` stored entries per row, columns sorted within each row.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    block.sort_indices()
    counts = np.diff(block.indptr)
    rows = np.repeat(np.arange(block.shape[0]), counts)
    order = np.lexsort((-block.data, rows))  # by row, then value descending (stable in column)
    rank = np.arange(len(order)) - np.repeat(block.indptr[:-1], counts)
    keep = order[rank < k]
    keep.sort()  # back to row-major, column-sorted order
    return sp.csr_matrix((block.data[keep], block.indices[keep],
                          np.concatenate([[0], np.cumsum(np.minimum(counts, k))])),
                         shape=block.shape)


def blocked_top_k_product(left: sp.csr_matrix, right: sp.csr_matrix, k: int, *,
                          weigh: Weigh | None = None,
                          block_nnz: int | None = None) -> sp.csr_matrix:
    """Row-wise top-k of ``left @ right`` with the diagonal dropped, built block by block.

    Args:
        left: CSR [n, m]; row i of the result is row i of ``left`` times ``right``.
        right: CSR [m, n] (square result: the diagonal i == j is the row's own item/user).
        k: entries kept per row (>= 1), after weighing and dropping the diagonal.
        weigh: optional in-place rescaling of each block, see ``Weigh``.
        block_nnz: cap on the expected non-zeros of one product block; None reads ``BLOCK_NNZ``
            at call time (tests lower it to force one row per block).
    Returns:
        float64 CSR [n, right.shape[1]] with at most ``k`` non-zero entries per row, columns
        sorted; the same matrix whatever the block size.
    """
    cap = BLOCK_NNZ if block_nnz is None else int(block_nnz)
    pattern = left.copy()
    pattern.data = np.ones_like(pattern.data, dtype=np.float64)
    # nnz of row i of left @ right <= sum of the row lengths of right that row i touches
    work = pattern @ np.diff(right.indptr).astype(np.float64)
    n, n_cols = left.shape[0], right.shape[1]
    blocks: list[sp.csr_matrix] = []
    start = 0
    while start < n:
        cum = np.cumsum(work[start:])
        stop = start + max(1, int(np.searchsorted(cum, cap, side="right")))
        block = (left[start:stop] @ right).tocsr().astype(np.float64)
        rows = np.repeat(np.arange(start, stop), np.diff(block.indptr))
        if weigh is not None:
            weigh(block, rows)
        block.data[block.indices == rows] = 0.0  # drop the row's own item/user
        block.eliminate_zeros()
        blocks.append(row_top_k(block, k))
        start = stop
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((n, n_cols))


def similar_from_sparse(similarity: sp.csr_matrix, items: np.ndarray,
                        k: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored neighbours of each query row of a square sparse similarity, best first.

    Args:
        similarity: CSR [n, n] (row i = neighbours of i).
        items: int [q] query indices in [0, n).
        k: neighbours per query (>= 1).
    Returns:
        (items int32 [q, k'], scores float32 [q, k']), k' = min(k, n), padded with -1 / -inf;
        the query itself and unstored pairs are never returned.
    Raises:
        ValueError: a query index outside [0, n).
    """
    n = similarity.shape[0]
    items = np.asarray(items, dtype=np.int64)
    if len(items) and (items.min() < 0 or items.max() >= n):
        raise ValueError(f"item index out of range [0, {n})")
    sub = similarity[items]
    scores = np.full((len(items), similarity.shape[1]), -np.inf, np.float32)
    rows = np.repeat(np.arange(len(items)), np.diff(sub.indptr))
    scores[rows, sub.indices] = sub.data
    scores[np.arange(len(items)), items] = -np.inf
    return top_k(scores, k)

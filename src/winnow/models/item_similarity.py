"""Base of the item-to-item similarity models (item-kNN, RP3beta): what they share once fitted.

A subclass's ``_fit`` sets ``similarity_`` (CSR float32 [n_items, n_items], row i = the kept
neighbours of item i) and ``user_items_`` (CSR float32 [n_users, n_items], the training
interactions it scores users with). This base stores both as plain arrays in the bundle (no
pickle), answers ``similar_items`` from the stored neighbours, and proposes candidates
(``propose``) the way the serving source does: a user's history times the neighbour lists,
computed sparsely, positive scores only, ties by lower item index.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from winnow.models.base import Recommender

PROPOSE_BLOCK_NNZ = 4_000_000  # product non-zeros per user block of ``propose`` (~50 MB transient)
from winnow.models.topk import similar_from_sparse


class ItemSimilarityRecommender(Recommender):
    """Recommender whose fitted state is a sparse item-item matrix plus the training matrix."""

    similarity_: sp.csr_matrix
    user_items_: sp.csr_matrix

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored neighbours of each item, best first, padded with -1/-inf."""
        self._check_fitted()
        return similar_from_sparse(self.similarity_, items, k)

    def propose(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
                candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Items reached from each user's training history through the stored neighbours
        (score = ``user_items_[u] @ similarity_`` > 0), best first, ties by lower item index --
        the serving ``ItemItemSource``'s rule; excluded and non-candidate items dropped; rows
        padded with -1 / -inf. Cost: the sparse product's non-zeros, in user blocks of at most
        ``PROPOSE_BLOCK_NNZ``; no dense [users, n_items] block is ever formed."""
        users = self._checked_request(users, k)
        n_items = self.n_items_
        width = min(k, n_items)
        out_i = np.full((len(users), width), -1, np.int32)
        out_s = np.full((len(users), width), -np.inf, np.float32)
        allowed = None
        if candidates is not None:
            allowed = np.zeros(n_items, bool)
            allowed[np.asarray(candidates, dtype=np.int64)] = True
        reach = self.user_items_.copy()  # expected product non-zeros per user, to size blocks
        reach.data = np.ones_like(reach.data)
        work = reach[users] @ np.diff(self.similarity_.indptr).astype(np.float64) if len(users) else np.empty(0)
        start = 0
        while start < len(users):
            stop = start + max(1, int(np.searchsorted(np.cumsum(work[start:]), PROPOSE_BLOCK_NNZ, side="right")))
            chunk = users[start:stop]
            prod = (self.user_items_[chunk] @ self.similarity_).tocsr()
            row = np.repeat(np.arange(len(chunk)), np.diff(prod.indptr))
            col, val = prod.indices.astype(np.int64), prod.data
            keep = val > 0
            if allowed is not None:
                keep &= allowed[col]
            if exclude is not None:
                ex = sp.csr_matrix(exclude[chunk])
                ex_key = np.repeat(np.arange(len(chunk)), np.diff(ex.indptr)) * n_items + ex.indices
                keep &= ~np.isin(row * n_items + col, ex_key)
            row, col, val = row[keep], col[keep], val[keep]
            order = np.lexsort((col, -val, row))  # by row, score descending, then lower item
            row, col, val = row[order], col[order], val[order]
            first = np.searchsorted(row, np.arange(len(chunk)))
            pos = np.arange(len(row)) - first[row]
            top = pos < width
            out_i[start + row[top], pos[top]] = col[top]
            out_s[start + row[top], pos[top]] = val[top]
            start = stop
        return out_i, out_s

    def _state(self) -> dict[str, np.ndarray]:
        s, u = self.similarity_, self.user_items_
        return {"sim_data": s.data, "sim_indices": s.indices, "sim_indptr": s.indptr,
                "ui_data": u.data, "ui_indices": u.indices, "ui_indptr": u.indptr,
                "shape": np.array([u.shape[0], s.shape[0]], np.int64)}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        n_users, n_items = (int(v) for v in arrays["shape"])
        self.similarity_ = sp.csr_matrix(
            (arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=(n_items, n_items))
        self.user_items_ = sp.csr_matrix(
            (arrays["ui_data"], arrays["ui_indices"], arrays["ui_indptr"]), shape=(n_users, n_items))

"""Base of the item-to-item similarity models (item-kNN, RP3beta): what they share once fitted.

A subclass's ``_fit`` sets ``similarity_`` (CSR float32 [n_items, n_items], row i = the kept
neighbours of item i) and ``user_items_`` (CSR float32 [n_users, n_items], the training
interactions it scores users with). This base stores both as plain arrays in the bundle (no
pickle) and answers ``similar_items`` from the stored neighbours.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from winnow.models.base import Recommender
from winnow.models.topk import similar_from_sparse


class ItemSimilarityRecommender(Recommender):
    """Recommender whose fitted state is a sparse item-item matrix plus the training matrix."""

    similarity_: sp.csr_matrix
    user_items_: sp.csr_matrix

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The stored neighbours of each item, best first, padded with -1/-inf."""
        self._check_fitted()
        return similar_from_sparse(self.similarity_, items, k)

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

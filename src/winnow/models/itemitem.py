"""Item-item co-occurrence ("bought this, also bought") with shrunk cosine similarity.

On the binarised users x items matrix X (c_ij = users who touched both i and j, n_i = users of i):

    normalize="cosine":  s_ij = c_ij / (sqrt(n_i * n_j) + shrinkage)
    normalize="none":    s_ij = c_ij                      (raw co-occurrence counts)

Only the top ``neighbours`` j per item i are kept, in a sparse CSR ``similarity_`` [n_items,
n_items] (row i = neighbours of i, diagonal dropped). A user's score for item j is
sum_{i in history} w_i * s_ij. The product X^T X is computed in row blocks sized by their
expected number of non-zeros, so 1e5..1e6-item catalogs never need a dense item x item matrix.

Why not implicit.nearest_neighbours.CosineRecommender: it has no shrinkage (rare pairs with one
shared user get similarity ~1), and pruning to top-K before shrinking would keep the wrong
neighbours. With ``shrinkage=0`` this class gives the same similarities as CosineRecommender.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from winnow.core.config import ItemItemConfig
from winnow.data.interactions import Interactions
from winnow.models.als import positive_csr
from winnow.models.item_similarity import ItemSimilarityRecommender
from winnow.models.topk import blocked_top_k_product


_DEFAULTS = ItemItemConfig()  # constructor defaults = the config's (one source of defaults)


class ItemItemRecommender(ItemSimilarityRecommender):
    """Shrunk-cosine item-item neighbourhood model.

    Args:
        neighbours: similar items kept per item (>= 1).
        shrinkage: added to the cosine denominator; damps pairs with little support (>= 0).
        normalize: "cosine" or "none" (raw co-occurrence counts).
    """

    name = "itemitem"

    def __init__(self, neighbours: int = _DEFAULTS.neighbours, shrinkage: float = _DEFAULTS.shrinkage,
                 normalize: Literal["cosine", "none"] = _DEFAULTS.normalize) -> None:
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
        if normalize not in ("cosine", "none"):
            raise ValueError(f"normalize must be 'cosine' or 'none', got {normalize!r}")
        self.neighbours = int(neighbours)
        self.shrinkage = float(shrinkage)
        self.normalize = normalize

    @classmethod
    def from_config(cls, section: ItemItemConfig) -> ItemItemRecommender:
        return cls(**section.model_dump())

    def _fit(self, train: Interactions) -> None:
        weighted = positive_csr(train)  # users x items, non-positive cells dropped
        x = weighted.copy()
        x.data[:] = 1.0
        n_i = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
        shrink = self.shrinkage

        def cosine(block: sp.csr_matrix, rows: np.ndarray) -> None:
            block.data = block.data / (np.sqrt(n_i[rows] * n_i[block.indices]) + shrink)

        sim = blocked_top_k_product(x.T.tocsr(), x, self.neighbours,  # X^T X, top-k per row
                                    weigh=cosine if self.normalize == "cosine" else None)
        self.similarity_ = sim.astype(np.float32)
        self.user_items_ = weighted  # weighted history used to score known users

    def _score(self, users: np.ndarray) -> np.ndarray:
        return (self.user_items_[users] @ self.similarity_).toarray()

    def score_from_history(self, item_idx: np.ndarray, weights: np.ndarray | None, k: int,
                           exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for a user given only their (recent) history, e.g. one unseen at training.

        Args:
            item_idx: int [h] item indices of the history (repeats are summed).
            weights: float [h] per-event weights; None means 1 each.
            k: items to return (>= 1).
            exclude: int [e] item indices never returned; None excludes the history items.
        Returns:
            (items int32 [k'], scores float32 [k']), k' = min(k, n_items_), padded with -1/-inf
            where fewer items have a positive score.
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        item_idx = np.asarray(item_idx, dtype=np.int64)
        if len(item_idx) and (item_idx.min() < 0 or item_idx.max() >= self.n_items_):
            raise ValueError(f"history item index out of range [0, {self.n_items_})")
        w = np.ones(len(item_idx), np.float32) if weights is None else np.asarray(weights, np.float32)
        if w.shape != item_idx.shape:
            raise ValueError(f"weights has shape {w.shape}, expected {item_idx.shape}")
        row = sp.csr_matrix((w, (np.zeros(len(item_idx), np.int64), item_idx)),
                            shape=(1, self.n_items_))
        prod = (row @ self.similarity_).tocsr()  # sparse: no dense [n_items] score vector
        ex = item_idx if exclude is None else np.asarray(exclude, dtype=np.int64)
        keep = (prod.data > 0) & ~np.isin(prod.indices, ex)  # only items reached via a neighbour
        cand, sc = prod.indices[keep].astype(np.int32), prod.data[keep].astype(np.float32)
        order = np.lexsort((cand, -sc))[:k]  # best first; ties: lower index first
        width = min(k, self.n_items_)
        items = np.full(width, -1, np.int32)
        scores = np.full(width, -np.inf, np.float32)
        items[:len(order)], scores[:len(order)] = cand[order], sc[order]
        return items, scores

    def get_params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "shrinkage": self.shrinkage,
                "normalize": self.normalize}

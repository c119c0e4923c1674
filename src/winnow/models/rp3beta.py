"""RP3beta: item-item random walk with popularity re-weighting (Paudel et al., TiiS 2017;
the strong graph baseline of Dacrema et al., RecSys 2019).

On the binarised users x items matrix X (n_i = users of item i):

    P_ui = X / rowsum(X),   P_iu = X^T / rowsum(X^T)          (one-step transition matrices)
    W = (P_iu ** alpha) @ (P_ui ** alpha)                        (3-step walk item -> user -> item)
    W_ij = W_ij / n_j ** beta,  diagonal 0, top ``neighbours`` per row i kept (sparse)

A user's score for item j is sum_{i in history} W_ij. ``beta`` > 0 damps popular items; with
alpha = 1 and beta = 0 it is the plain P3 random walk. The item x item product is computed in row
blocks (shared with item-item), so no dense n_items x n_items matrix is ever built.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from winnow.core.config import RP3betaConfig
from winnow.data.interactions import Interactions
from winnow.models.als import positive_csr
from winnow.models.item_similarity import ItemSimilarityRecommender
from winnow.models.topk import blocked_top_k_product


_DEFAULTS = RP3betaConfig()  # constructor defaults = the config's (one source of defaults)


def _row_normalise(x: sp.csr_matrix) -> sp.csr_matrix:
    s = np.asarray(x.sum(axis=1), np.float64).ravel()
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    return sp.diags(inv) @ x


class RP3betaRecommender(ItemSimilarityRecommender):
    """Args: alpha (exponent of the transition probabilities, > 0), beta (popularity penalty
    exponent, >= 0), neighbours (items kept per item, >= 1)."""

    name = "rp3beta"

    def __init__(self, alpha: float = _DEFAULTS.alpha, beta: float = _DEFAULTS.beta, neighbours: int = _DEFAULTS.neighbours) -> None:
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours!r}")
        self.alpha, self.beta, self.neighbours = float(alpha), float(beta), int(neighbours)

    @classmethod
    def from_config(cls, section: RP3betaConfig) -> RP3betaRecommender:
        return cls(**section.model_dump())

    def _fit(self, train: Interactions) -> None:
        x = positive_csr(train).astype(np.float64)
        x.data[:] = 1.0
        p_ui = _row_normalise(x).tocsr()
        p_iu = _row_normalise(x.T.tocsr()).tocsr()
        if self.alpha != 1.0:
            p_ui.data **= self.alpha
            p_iu.data **= self.alpha
        n_i = np.asarray(x.sum(axis=0), np.float64).ravel()
        pop_pen = np.divide(1.0, n_i ** self.beta, out=np.zeros_like(n_i), where=n_i > 0)

        def penalise(block: sp.csr_matrix, rows: np.ndarray) -> None:
            block.data = block.data * pop_pen[block.indices]

        sim = blocked_top_k_product(p_iu, p_ui, self.neighbours, weigh=penalise)
        self.similarity_ = sim.astype(np.float32)
        self.user_items_ = x.astype(np.float32).tocsr()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return (self.user_items_[users] @ self.similarity_).toarray()

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "neighbours": self.neighbours}

"""User-kNN: score items by what the most similar users engaged with.

On the binarised users x items matrix X (n_u = items of user u):

    s_uv = |I_u & I_v| / (sqrt(n_u * n_v) + shrinkage)     (shrunk cosine, diagonal 0)
    only the top ``neighbours`` v per user u are kept (sparse S [n_users, n_users])
    score_u = S_u @ X                                        (neighbours' items, similarity-weighted)

Similarities are computed in row blocks (shared with item-item), so no dense users x users
matrix is built. Users unseen at fit time have no row: use a cold-start model for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from winnow.core.config import UserKNNConfig
from winnow.data.interactions import Interactions
from winnow.models.als import positive_csr
from winnow.models.base import Recommender
from winnow.models.topk import blocked_top_k_product


_DEFAULTS = UserKNNConfig()  # constructor defaults = the config's (one source of defaults)


class UserKNNRecommender(Recommender):
    """Args: neighbours (similar users kept per user, >= 1), shrinkage (>= 0)."""

    name = "userknn"

    def __init__(self, neighbours: int = _DEFAULTS.neighbours, shrinkage: float = _DEFAULTS.shrinkage) -> None:
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours!r}")
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {shrinkage!r}")
        self.neighbours, self.shrinkage = int(neighbours), float(shrinkage)

    @classmethod
    def from_config(cls, section: UserKNNConfig) -> UserKNNRecommender:
        return cls(**section.model_dump())

    def _fit(self, train: Interactions) -> None:
        x = positive_csr(train).astype(np.float64)
        x.data[:] = 1.0
        xt = x.T.tocsr()
        n_u = np.diff(x.indptr).astype(np.float64)
        shrink = self.shrinkage

        def cosine(block: sp.csr_matrix, rows: np.ndarray) -> None:
            block.data = block.data / (np.sqrt(n_u[rows] * n_u[block.indices]) + shrink)

        sim = blocked_top_k_product(x, xt, self.neighbours, weigh=cosine)  # X X^T, top-k per row
        self.similarity_ = sim.astype(np.float32)
        self.user_items_ = x.astype(np.float32).tocsr()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return (self.similarity_[users] @ self.user_items_).toarray()

    def get_params(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "shrinkage": self.shrinkage}

    def _state(self) -> dict[str, np.ndarray]:
        s, u = self.similarity_, self.user_items_
        return {"sim_data": s.data, "sim_indices": s.indices, "sim_indptr": s.indptr,
                "ui_data": u.data, "ui_indices": u.indices, "ui_indptr": u.indptr,
                "shape": np.array(u.shape, np.int64)}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        n_users, n_items = (int(v) for v in arrays["shape"])
        self.similarity_ = sp.csr_matrix(
            (arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=(n_users, n_users))
        self.user_items_ = sp.csr_matrix(
            (arrays["ui_data"], arrays["ui_indices"], arrays["ui_indptr"]), shape=(n_users, n_items))

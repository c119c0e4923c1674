"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019), closed form.

    G = X^T X + l2 * I,   P = G^{-1},   B = I - P / diag(P)  (column-wise), diag(B) = 0

X is the binarised users x items matrix; a user's scores are ``x_u @ B``. B is a dense
[n_items, n_items] matrix, so memory is n_items^2 floats: the model refuses catalogs above
``max_items`` or whose fit would need more than ``MEMORY_SHARE`` of the memory available
(``memory_refusal``, ConfigError naming both figures) instead of exhausting memory.

Precision: G and its inverse are computed in float64 when n_items <= 20,000 (at most 3.2 GB;
the inverse of a ridge-regularised Gram matrix loses several digits in float32) and in float32
above that to halve memory; B is stored in float32 either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from winnow.core.config import EASEConfig
from winnow.core.errors import ConfigError
from winnow.data.interactions import Interactions
from winnow.models.als import positive_csr
from winnow.models.base import Recommender, top_k

FLOAT64_MAX_ITEMS = 20_000
MEMORY_SHARE = 0.8  # EASE may plan on at most this share of the memory available at fit time


def fit_bytes(n_items: int) -> int:
    """Peak bytes of one EASE fit on ``n_items``: G (overwritten by its Cholesky factor), the
    identity solved in place into P, B = P / diag(P), and B's float32 copy -- 3 dense n x n
    matrices in the fit precision plus one float32."""
    itemsize = 8 if n_items <= FLOAT64_MAX_ITEMS else 4
    return int(n_items) ** 2 * (3 * itemsize + 4)


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_refusal(n_items: int, max_items: int) -> str | None:
    """Why EASE cannot fit ``n_items`` here (None when it can): above ``max_items``, or needing
    more than ``MEMORY_SHARE`` of the memory available now. Callers that can do without EASE
    (the funnel's sources) step aside with this reason; a direct fit raises it."""
    need = fit_bytes(n_items)
    if n_items > max_items:
        return (f"EASE refuses a catalog of {n_items} items: above models.ease.max_items={max_items} "
                f"(it would need ~{need / 2**30:.1f} GiB for its dense {n_items} x {n_items} matrices)")
    avail = available_bytes()
    if avail is not None and need > MEMORY_SHARE * avail:
        return (f"EASE on {n_items} items needs ~{need / 2**30:.1f} GiB (dense {n_items} x {n_items} "
                f"matrices), more than {MEMORY_SHARE:.0%} of the {avail / 2**30:.1f} GiB available")
    return None


class EASERecommender(Recommender):
    """Args: l2 (ridge strength lambda, > 0), max_items (largest catalog accepted)."""

    name = "ease"

    def __init__(self, l2: float = 500.0, max_items: int = 50_000) -> None:
        if not l2 > 0:
            raise ValueError(f"l2 must be > 0, got {l2!r}")
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items!r}")
        self.l2 = float(l2)
        self.max_items = int(max_items)

    @classmethod
    def from_config(cls, section: EASEConfig) -> EASERecommender:
        return cls(**section.model_dump())

    def _fit(self, train: Interactions) -> None:
        n = train.n_items
        why = memory_refusal(n, self.max_items)
        if why:
            raise ConfigError(f"{why}; use itemitem or als")
        dtype = np.float64 if n <= FLOAT64_MAX_ITEMS else np.float32
        x = positive_csr(train)
        x.data[:] = 1.0
        x = x.astype(dtype)
        g = (x.T @ x).toarray()
        g[np.diag_indices(n)] += self.l2
        # G is symmetric positive definite: a Cholesky solve is faster and stabler than LU
        p = scipy.linalg.cho_solve(scipy.linalg.cho_factor(g, overwrite_a=True, check_finite=False),
                                   np.eye(n, dtype=dtype), overwrite_b=True, check_finite=False)
        b = p / (-np.diag(p))[None, :]
        b[np.diag_indices(n)] = 0.0
        self.weights_ = b.astype(np.float32)
        self.user_items_ = x.astype(np.float32).tocsr()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_items_[users] @ self.weights_)

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Items whose score item i raises most: row i of B, the item itself excluded."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        if len(items) and (items.min() < 0 or items.max() >= self.n_items_):
            raise ValueError(f"item index out of range [0, {self.n_items_})")
        scores = np.array(self.weights_[items], dtype=np.float32, copy=True)
        scores[np.arange(len(items)), items] = -np.inf
        return top_k(scores, k)

    def get_params(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_items": self.max_items}

    def _state(self) -> dict[str, np.ndarray]:
        u = self.user_items_
        return {"weights": self.weights_, "ui_data": u.data, "ui_indices": u.indices,
                "ui_indptr": u.indptr, "n_users": np.array([u.shape[0]], np.int64)}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = arrays["weights"].astype(np.float32)
        n_items = self.weights_.shape[0]
        self.user_items_ = sp.csr_matrix(
            (arrays["ui_data"], arrays["ui_indices"], arrays["ui_indptr"]),
            shape=(int(arrays["n_users"][0]), n_items))

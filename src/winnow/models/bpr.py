"""Bayesian Personalized Ranking (Rendle et al. 2009) via implicit.cpu.bpr.

implicit appends an item-bias column to the factors (user side holds a constant 1), so
``user_factors_ @ item_factors_.T`` is the exact score and both go to the ANN index as they are
(dimension = factors + 1, possibly padded by implicit).

Training is Hogwild SGD: it is deterministic for a fixed seed only with ``num_threads=1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from winnow.core.config import BPRConfig
from winnow.data.interactions import Interactions
from winnow.models.als import FactorRecommender, positive_csr


_DEFAULTS = BPRConfig()  # constructor defaults = the config's (one source of defaults)


class BPRRecommender(FactorRecommender):
    """BPR matrix factorisation on the binarised positive interactions.

    Args: factors, iterations (epochs), learning_rate, regularization, seed (random_state),
    num_threads (0 = all cores; 1 for bit-for-bit reproducible training).
    """

    name = "bpr"

    def __init__(self, factors: int = _DEFAULTS.factors, iterations: int = _DEFAULTS.iterations, learning_rate: float = _DEFAULTS.learning_rate,
                 regularization: float = _DEFAULTS.regularization, seed: int = _DEFAULTS.seed, num_threads: int = 0) -> None:
        if factors < 1 or iterations < 1:
            raise ValueError(f"factors and iterations must be >= 1, got {factors}, {iterations}")
        if learning_rate <= 0 or regularization < 0:
            raise ValueError(f"need learning_rate > 0 and regularization >= 0, "
                             f"got {learning_rate}, {regularization}")
        self.factors = int(factors)
        self.iterations = int(iterations)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.seed = int(seed)
        self.num_threads = int(num_threads)

    @classmethod
    def from_config(cls, section: BPRConfig) -> BPRRecommender:
        return cls(**section.model_dump())

    def _fit(self, train: Interactions) -> None:
        x = positive_csr(train)
        x.data[:] = 1.0
        model = BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                            regularization=self.regularization,
                                            iterations=self.iterations, random_state=self.seed,
                                            num_threads=self.num_threads)
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit(x, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.__dict__.pop("_bias_col", None)  # refit: forget the cached bias slot

    def recalculate_user(self, item_idx: np.ndarray, weights: np.ndarray | None = None, *,
                         epochs: int = 30, seed: int = 0) -> np.ndarray:
        """Fold in one user: float32 [d] trained by BPR SGD against the fixed item factors.

        implicit's BPR has no fold-in (its recalculate_user raises), so this runs the same
        update rule on the user vector alone: for each (history item i, sampled negative j),
        u += lr * (sigmoid(-(u.(y_i - y_j))) * (y_i - y_j) - reg * u). Positive ``weights``
        only select items (BPR is trained on binarised data). The bias slot stays 1.
        """
        self._check_fitted()
        item_idx = np.asarray(item_idx, dtype=np.int64)
        if len(item_idx) and (item_idx.min() < 0 or item_idx.max() >= self.n_items_):
            raise ValueError(f"history item index out of range [0, {self.n_items_})")
        if weights is not None:
            w = np.asarray(weights, np.float32)
            if w.shape != item_idx.shape:
                raise ValueError(f"weights has shape {w.shape}, expected {item_idx.shape}")
            item_idx = item_idx[w > 0]
        pos = np.unique(item_idx)
        d = self.item_factors_.shape[1]
        rng = np.random.default_rng(seed)
        user = np.asarray(rng.standard_normal(d) * 0.01, np.float64)
        bias_col = self._bias_column()
        if bias_col is not None:
            user[bias_col] = 1.0
        if len(pos) == 0 or len(pos) == self.n_items_:
            return user.astype(np.float32)
        y = self.item_factors_.astype(np.float64)
        liked = np.zeros(self.n_items_, bool)
        liked[pos] = True
        for _ in range(epochs):
            for i in rng.permutation(pos):
                j = int(rng.integers(self.n_items_))
                while liked[j]:
                    j = int(rng.integers(self.n_items_))
                diff = y[i] - y[j]
                g = 1.0 / (1.0 + np.exp(user @ diff))
                user += self.learning_rate * (g * diff - self.regularization * user)
                if bias_col is not None:
                    user[bias_col] = 1.0
        return user.astype(np.float32)

    def _bias_column(self) -> int | None:
        """Index of implicit's constant-1 user column (the item-bias slot), if any; cached."""
        if not hasattr(self, "_bias_col"):
            ones = np.flatnonzero(np.all(self.user_factors_ == 1.0, axis=0))
            self._bias_col = int(ones[0]) if len(ones) else None
        return self._bias_col

    def get_params(self) -> dict[str, Any]:
        return {"factors": self.factors, "iterations": self.iterations,
                "learning_rate": self.learning_rate, "regularization": self.regularization,
                "seed": self.seed, "num_threads": self.num_threads}

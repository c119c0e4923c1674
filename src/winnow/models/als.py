"""Matrix factorisation through ``implicit`` (CPU): the shared factor-model base and ALS.

A factor model scores user u, item i as ``user_factors_[u] @ item_factors_[i]``; both are
float32 [n, d] and feed the ANN index directly (inner-product search). ``recommend`` uses
implicit's threaded top-k (``implicit.cpu.topk.topk``) in user batches, so no dense
[batch, n_items] score block is kept in Python even for 1e6-item catalogs.

BLAS threads are limited to 1 while implicit trains (threadpoolctl), as implicit recommends:
its own threads already use every core and nested BLAS threads oversubscribe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.topk import topk
from implicit.nearest_neighbours import bm25_weight

from winnow.core.blas import blas_limit
from winnow.core.config import ALSConfig
from winnow.data.interactions import Interactions
from winnow.models.base import Recommender, top_k

_FILTERED = -3.0e38  # implicit marks filtered items with -FLT_MAX


_DEFAULTS = ALSConfig()  # constructor defaults = the config's (one source of defaults)


def positive_csr(train: Interactions) -> sp.csr_matrix:
    """users x items float32 CSR of summed weights, non-positive cells dropped."""
    x = train.to_csr()
    x.data[x.data < 0] = 0.0
    x.eliminate_zeros()
    return x


def warm_factors(previous: np.ndarray, n_rows: int, new_rows: np.ndarray, old_rows: np.ndarray, *,
                 seed: int) -> np.ndarray:
    """float32 [n_rows, d] start factors: row ``new_rows[j]`` = ``previous[old_rows[j]]`` (an id the
    previous model knew), every other row drawn as implicit 0.7 draws a cold start (uniform
    [0, 0.01), ``np.random.default_rng(seed)``), so new ids start at the cold scale."""
    d = previous.shape[1]
    out = np.random.default_rng(seed).random((n_rows, d), dtype=np.float32) * np.float32(0.01)
    out[np.asarray(new_rows, np.int64)] = np.asarray(previous, np.float32)[np.asarray(old_rows, np.int64)]
    return out


class FactorRecommender(Recommender):
    """Base of latent-factor models: learned ``user_factors_`` [n_users, d], ``item_factors_``
    [n_items, d] (float32); score = inner product. Subclasses fill both in ``_fit``."""

    num_threads: int = 0

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T

    def recommend(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
                  candidates: np.ndarray | None = None,
                  batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Same contract as Recommender.recommend (k' = min(k, n_items_), -1/-inf padding)."""
        users = self._checked_request(users, k)
        width = min(k, self.n_items_)
        item_f, cand = self.item_factors_, None
        if candidates is not None:
            cand = np.unique(np.asarray(candidates, dtype=np.int64))
            if len(cand) and (cand[0] < 0 or cand[-1] >= self.n_items_):
                raise ValueError(f"candidate item index out of range [0, {self.n_items_})")
            item_f = item_f[cand]
        kq = min(k, item_f.shape[0])
        out_i = np.full((len(users), width), -1, np.int32)
        out_s = np.full((len(users), width), -np.inf, np.float32)
        if kq == 0:
            return out_i, out_s
        for start in range(0, len(users), batch_size):
            chunk = users[start:start + batch_size]
            filt = None
            if exclude is not None:
                filt = exclude[chunk]
                if cand is not None:
                    filt = filt[:, cand]
                filt = sp.csr_matrix(filt, dtype=np.float32)
            ids, scores = topk(item_f, np.ascontiguousarray(self.user_factors_[chunk]), kq,
                               filter_query_items=filt, num_threads=self.num_threads)
            ids = np.asarray(ids, np.int64)
            scores = np.asarray(scores, np.float32)
            bad = ~(scores > _FILTERED)
            if cand is not None:
                ids = cand[ids]
            ids[bad] = -1
            scores[bad] = -np.inf
            out_i[start:start + len(chunk), :kq] = ids
            out_s[start:start + len(chunk), :kq] = scores
        return out_i, out_s

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine of item factors; the query item itself is excluded."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        if len(items) and (items.min() < 0 or items.max() >= self.n_items_):
            raise ValueError(f"item index out of range [0, {self.n_items_})")
        norms = np.linalg.norm(self.item_factors_, axis=1)
        normed = self.item_factors_ / np.where(norms > 0, norms, 1.0)[:, None]
        scores = (normed[items] @ normed.T).astype(np.float32)
        scores[np.arange(len(items)), items] = -np.inf
        return top_k(scores, k)

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)


class ALSRecommender(FactorRecommender):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008) via implicit.cpu.als.

    Confidence = alpha * w, where w is the summed event weight, optionally BM25-weighted first
    (implicit.nearest_neighbours.bm25_weight on the items x users matrix, as implicit's examples
    do: items are the documents, users the terms).

    Args: factors, iterations, regularization, alpha, bm25, bm25_k1, bm25_b, seed (random_state),
    num_threads (0 = all cores), warm_iterations (the iterations of a fit after ``start_from``).

    Warm start: ``start_from(user_factors, item_factors)`` sets the factors the next ``fit``
    starts from (``warm_factors`` builds them from a previous model's rows). implicit 0.7's
    ``AlternatingLeastSquares.fit`` initialises its factors only when ``user_factors`` /
    ``item_factors`` are None, so factors set on it with the training matrix's shapes are where
    its first iteration starts (its CG solver also starts each row's solve from them).
    ``iterations_run_``: the iterations the last fit ran.
    """

    name = "als"

    def __init__(self, factors: int = _DEFAULTS.factors, iterations: int = _DEFAULTS.iterations, regularization: float = _DEFAULTS.regularization,
                 alpha: float = _DEFAULTS.alpha, bm25: bool = _DEFAULTS.bm25, bm25_k1: float = _DEFAULTS.bm25_k1,
                 bm25_b: float = _DEFAULTS.bm25_b, seed: int = _DEFAULTS.seed, num_threads: int = 0,
                 warm_iterations: int = _DEFAULTS.warm_iterations) -> None:
        if factors < 1 or iterations < 1 or warm_iterations < 1:
            raise ValueError(f"factors, iterations and warm_iterations must be >= 1, got {factors}, "
                             f"{iterations}, {warm_iterations}")
        if regularization < 0 or alpha <= 0:
            raise ValueError(f"need regularization >= 0 and alpha > 0, got {regularization}, {alpha}")
        self.factors = int(factors)
        self.iterations = int(iterations)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.bm25 = bool(bm25)
        self.bm25_k1 = float(bm25_k1)
        self.bm25_b = float(bm25_b)
        self.seed = int(seed)
        self.num_threads = int(num_threads)
        self.warm_iterations = int(warm_iterations)
        self._start: tuple[np.ndarray, np.ndarray] | None = None

    def start_from(self, user_factors: np.ndarray, item_factors: np.ndarray) -> ALSRecommender:
        """Start the next ``fit`` from these factors (float32 [n_users, factors] and
        [n_items, factors] of its training matrix; ValueError in fit when they do not match) and
        run ``warm_iterations`` iterations. Used once: the fit after clears them."""
        u = np.ascontiguousarray(user_factors, dtype=np.float32)
        i = np.ascontiguousarray(item_factors, dtype=np.float32)
        if u.ndim != 2 or i.ndim != 2 or u.shape[1] != self.factors or i.shape[1] != self.factors:
            raise ValueError(f"start factors must be [n, {self.factors}], got {u.shape} and {i.shape}")
        self._start = (u.copy(), i.copy())  # implicit updates them in place
        return self

    @classmethod
    def from_config(cls, section: ALSConfig) -> ALSRecommender:
        return cls(**section.model_dump())

    def _implicit(self) -> AlternatingLeastSquares:
        return AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                       alpha=self.alpha, iterations=self.iterations,
                                       random_state=self.seed, num_threads=self.num_threads)

    def _fit(self, train: Interactions) -> None:
        x = positive_csr(train)
        if self.bm25:
            item_sums = np.asarray(x.sum(axis=0), np.float64).ravel()
            mean = item_sums.mean() if len(item_sums) else 1.0
            # kept for fold-in: bm25 length norm of every item document
            self.item_length_norm_ = ((1.0 - self.bm25_b)
                                      + self.bm25_b * item_sums / (mean or 1.0)).astype(np.float32)
            x = bm25_weight(x.T, K1=self.bm25_k1, B=self.bm25_b).T.tocsr().astype(np.float32)
        # constructed inside the limit too: implicit checks every OpenBLAS in the process at
        # construction, including faiss's OpenMP build, which ignores OPENBLAS_NUM_THREADS
        start, self._start = self._start, None
        with blas_limit(1):
            model = self._implicit()
            if start is not None:
                if start[0].shape[0] != x.shape[0] or start[1].shape[0] != x.shape[1]:
                    raise ValueError(f"start factors have {start[0].shape[0]} users x {start[1].shape[0]} "
                                     f"items, the training matrix {x.shape[0]} x {x.shape[1]}")
                model.user_factors, model.item_factors = start
                model.iterations = self.warm_iterations
            self.iterations_run_ = int(model.iterations)
            model.fit(x, show_progress=False)
        self._model = model
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def recalculate_user(self, item_idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Fold in one user from their history without refitting: float32 [factors].

        Solves the ALS least-squares step for a single user against the fixed item factors
        (implicit's ``recalculate_user``), after the same BM25/alpha weighting as training.
        Args: item_idx int [h] item indices; weights float [h] event weights (None: 1 each).
        """
        self._check_fitted()
        item_idx = np.asarray(item_idx, dtype=np.int64)
        if len(item_idx) and (item_idx.min() < 0 or item_idx.max() >= self.n_items_):
            raise ValueError(f"history item index out of range [0, {self.n_items_})")
        w = np.ones(len(item_idx), np.float32) if weights is None else np.asarray(weights, np.float32)
        if w.shape != item_idx.shape:
            raise ValueError(f"weights has shape {w.shape}, expected {item_idx.shape}")
        row = sp.csr_matrix((w, (np.zeros(len(item_idx), np.int64), item_idx)),
                            shape=(1, self.n_items_), dtype=np.float32)
        row.sum_duplicates()
        row.data[row.data < 0] = 0.0
        row.eliminate_zeros()
        if self.bm25 and row.nnz:
            idf = np.log(self.n_items_) - np.log1p(row.nnz)
            tf = row.data
            row.data = (tf * (self.bm25_k1 + 1.0)
                        / (self.bm25_k1 * self.item_length_norm_[row.indices] + tf) * idf
                        ).astype(np.float32)
        if not hasattr(self, "_model"):
            self._model = self._implicit()
            self._model.user_factors = self.user_factors_
            self._model.item_factors = self.item_factors_
        with blas_limit(1):  # per request: the cached controller, not a library scan
            vec = self._model.recalculate_user(0, row)
        return np.asarray(vec, dtype=np.float32)

    def get_params(self) -> dict[str, Any]:
        return {"factors": self.factors, "iterations": self.iterations,
                "regularization": self.regularization, "alpha": self.alpha, "bm25": self.bm25,
                "bm25_k1": self.bm25_k1, "bm25_b": self.bm25_b, "seed": self.seed,
                "num_threads": self.num_threads, "warm_iterations": self.warm_iterations}

    def _state(self) -> dict[str, np.ndarray]:
        state = super()._state()
        if self.bm25:
            state["item_length_norm"] = self.item_length_norm_
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(arrays)
        if "item_length_norm" in arrays:
            self.item_length_norm_ = arrays["item_length_norm"].astype(np.float32)

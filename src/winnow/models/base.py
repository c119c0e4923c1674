"""The retrieval contract every candidate model honours (popularity, item-item, ALS, BPR, EASE...).

All ids here are dense internal indices (see winnow.core.ids). A model is fitted on an
``Interactions`` and answers, for a batch of users, the top-k items not excluded.

Conventions (scikit-learn style): __init__ stores parameters only; fit() validates, learns state
in attributes ending in ``_`` and returns self; using an unfitted model raises NotFittedError.
save()/load() write plain data (npz + JSON manifest), never pickle.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from winnow.core.errors import NotFittedError
from winnow.data.interactions import Interactions


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a dense [n, m] score matrix, best first.

    Entries equal to -inf are treated as excluded and come back as index -1 / score -inf.
    Returns (indices int32 [n, k'], scores float32 [n, k']) with k' = min(k, m).
    """
    n, m = scores.shape
    kk = min(k, m)
    if kk <= 0:
        return np.empty((n, 0), np.int32), np.empty((n, 0), np.float32)
    if kk < m:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    else:
        part = np.tile(np.arange(m), (n, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1).astype(np.int32)
    sc = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    idx[~np.isfinite(sc) & (sc < 0)] = -1
    return idx, sc


def apply_exclusions(scores: np.ndarray, users: np.ndarray, exclude: sp.csr_matrix | None,
                     candidates: np.ndarray | None) -> None:
    """In place: set excluded (user, item) scores and non-candidate items to -inf.

    Args:
        scores: float [len(users), n_items].
        users: int [len(users)] row indices into ``exclude``.
        exclude: users x items CSR; a stored entry means "never recommend".
        candidates: int [c] item indices allowed; None allows all.
    """
    if candidates is not None:
        mask = np.ones(scores.shape[1], bool)
        mask[np.asarray(candidates, dtype=np.int64)] = False
        scores[:, mask] = -np.inf
    if exclude is not None:
        sub = exclude[np.asarray(users)]
        rows = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))
        scores[rows, sub.indices] = -np.inf


class Recommender(ABC):
    """Base class of retrieval models. Subclasses implement _fit and _score (or override recommend)."""

    name: ClassVar[str] = "base"

    def fit(self, train: Interactions) -> Self:
        """Learn from ``train`` and return self."""
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self._fit(train)
        return self

    @abstractmethod
    def _fit(self, train: Interactions) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray:
        """Dense float32 scores [len(users), n_items] for known users (higher is better)."""

    def scores(self, users: np.ndarray) -> np.ndarray:
        """Dense scores [len(users), n_items_] of known users (higher is better), before any
        exclusion: what ``recommend`` ranks. The ranker's training lists and cold-start blending
        read them. NotFittedError before fit; ValueError for a user index outside [0, n_users_)."""
        return self._score(self._checked_request(users, 1))

    def _checked_request(self, users: np.ndarray, k: int) -> np.ndarray:
        """The validated user batch of a recommend/propose call: int64 [n]; raises
        NotFittedError before fit, ValueError for k < 1 or a user index outside [0, n_users_)."""
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        users = np.asarray(users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= self.n_users_):
            raise ValueError(f"user index out of range [0, {self.n_users_})")
        return users

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load() first")

    def recommend(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
                  candidates: np.ndarray | None = None,
                  batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items per user, best first.

        Args:
            users: int [n] user indices in [0, n_users_).
            k: items per user (>= 1).
            exclude: users x items CSR (rows indexed by user index); stored entries are never returned.
            candidates: optional int [c] item indices to restrict the choice to.
        Returns:
            (items int32 [n, k'], scores float32 [n, k']), k' = min(k, n_items_); rows with fewer
            eligible items are padded with index -1 and score -inf.
        """
        users = self._checked_request(users, k)
        # cap dense score blocks at ~2**25 floats (128 MB) so 1e6-item catalogs stay bounded
        batch_size = max(1, min(batch_size, (1 << 25) // max(1, self.n_items_)))
        out_i, out_s = [], []
        for start in range(0, len(users), batch_size):
            chunk = users[start:start + batch_size]
            scores = np.array(self._score(chunk), dtype=np.float32, copy=True)
            apply_exclusions(scores, chunk, exclude, candidates)
            i, s = top_k(scores, k)
            out_i.append(i)
            out_s.append(s)
        if not out_i:
            kk = min(k, self.n_items_)
            return np.empty((0, kk), np.int32), np.empty((0, kk), np.float32)
        return np.vstack(out_i), np.vstack(out_s)

    def propose(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
                candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The retrieval candidates this model proposes: ``recommend``'s shapes, dtypes,
        exclusions and -1 / -inf padding, except that a row may hold fewer than k' items where
        the model has no evidence for more -- what its serving source would propose. Used to
        build the ranker's training lists. Default: ``recommend``; neighbourhood models
        override it with a sparse product (only items reached through a neighbour), so its
        cost grows with the neighbours reached, never with the catalog size."""
        return self.recommend(users, k, exclude=exclude, candidates=candidates)

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k most similar items per query item (the item itself excluded).

        Returns (items int32 [n, k'], scores float32 [n, k']) padded with -1 / -inf.
        """
        raise NotImplementedError(f"{type(self).__name__} has no item similarity")

    # --- persistence: plain data only -------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable)."""
        return {}

    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (name -> ndarray)."""
        raise NotImplementedError

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, directory: str | Path) -> None:
        """Write ``model.json`` (name, params, sizes) and ``arrays.npz`` into ``directory``."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = self._state()
        np.savez(d / "arrays.npz", **arrays)
        meta = {"model": self.name, "params": self.get_params(),
                "n_users": self.n_users_, "n_items": self.n_items_}
        (d / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Inverse of save(); refuses a directory written by another model class."""
        d = Path(directory)
        meta = json.loads((d / "model.json").read_text(encoding="utf-8"))
        if meta.get("model") != cls.name:
            raise ValueError(f"{d} holds a {meta.get('model')!r} model, not {cls.name!r}")
        model = cls(**meta["params"])
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            model._set_state({key: z[key] for key in z.files})
        model.n_users_ = int(meta["n_users"])
        model.n_items_ = int(meta["n_items"])
        return model

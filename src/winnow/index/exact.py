"""Exact top-k search: BLAS matmul + argpartition. The oracle every approximate index is tested
against, and the backend for small catalogs.

Vectors live in one dense float32 [n, dim] matrix (row = slot); removal compacts it, so every
search scores live rows only. Queries are scored in batches so the [batch, n] score matrix stays
under ``batch_bytes``. Threads: numpy's BLAS pool; ``threads`` limits it per search through
threadpoolctl (None leaves the process setting alone).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Self

import numpy as np

from winnow.core.blas import blas_limit
from winnow.core.errors import BundleError
from winnow.index.base import (Exclude, IdSlots, Metric, VectorIndex, check_exclude, check_ids,
                               pad_results, read_npz, write_npz)

DATA_FILE = "exact.npz"


class ExactIndex(VectorIndex):
    """Brute-force maximum inner product (or cosine) search.

    Args:
        dim: vector dimension.
        metric: "ip" or "cosine".
        batch_bytes: memory bound of one [batch, n] float32 score block.
        threads: BLAS threads used by search (None: leave the process default).
    """

    backend = "exact"

    def __init__(self, dim: int, metric: Metric = "ip", *, batch_bytes: int = 64 << 20,
                 threads: int | None = None) -> None:
        super().__init__(dim, metric)
        if batch_bytes < 1:
            raise ValueError(f"batch_bytes must be >= 1, got {batch_bytes}")
        self.batch_bytes = int(batch_bytes)
        self.threads = threads
        self._vectors = np.empty((0, self._dim), np.float32)  # capacity >= n
        self._slots = IdSlots()
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def params(self) -> dict[str, Any]:
        return {"batch_bytes": self.batch_bytes}

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        arr_ids, vecs = self._prepare_upsert(ids, vectors)
        slots = self._slots.lookup(arr_ids)
        old = slots >= 0
        self._vectors[slots[old]] = vecs[old]
        n_new = int((~old).sum())
        if n_new:
            need = self._n + n_new
            if need > len(self._vectors):
                grown = np.empty((max(need, 2 * len(self._vectors)), self._dim), np.float32)
                grown[: self._n] = self._vectors[: self._n]
                self._vectors = grown
            new_slots = np.arange(self._n, need, dtype=np.int64)
            self._vectors[new_slots] = vecs[~old]
            self._slots.assign(arr_ids[~old], new_slots)
            self._n = need

    def remove(self, ids: np.ndarray) -> None:
        slots = self._slots.lookup(check_ids(ids))
        slots = np.unique(slots[slots >= 0])
        if len(slots) == 0:
            return
        keep = np.ones(self._n, bool)
        keep[slots] = False
        kept_ids = self._slots.id_at[: self._n][keep]
        self._vectors = np.ascontiguousarray(self._vectors[: self._n][keep])
        self._n = len(kept_ids)
        self._slots = IdSlots()
        self._slots.assign(kept_ids, np.arange(self._n, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int, *, ef_search: int | None = None,
               exclude: Exclude = None) -> tuple[np.ndarray, np.ndarray]:
        q = self._prepare_queries(queries, k)
        k = int(k)
        excl = check_exclude(exclude, len(q))
        out_ids, out_scores = pad_results(len(q), k)
        if self._n == 0 or len(q) == 0:
            return out_ids, out_scores
        shared = None
        if isinstance(excl, np.ndarray):
            shared = self._slots.lookup(excl)
            shared = shared[shared >= 0]
        batch = max(1, self.batch_bytes // (4 * self._n))
        base = self._vectors[: self._n]
        kk = min(k, self._n)
        with blas_limit(self.threads) if self.threads else contextlib.nullcontext():
            for start in range(0, len(q), batch):
                stop = min(start + batch, len(q))
                scores = q[start:stop] @ base.T
                if shared is not None:
                    scores[:, shared] = -np.inf
                elif isinstance(excl, list):
                    self._mask_rows(scores, excl[start:stop])
                if kk < self._n:
                    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
                else:
                    part = np.broadcast_to(np.arange(self._n), (stop - start, self._n))
                part_scores = np.take_along_axis(scores, part, axis=1)
                order = np.argsort(-part_scores, axis=1, kind="stable")
                top = np.take_along_axis(part, order, axis=1)
                top_scores = np.take_along_axis(part_scores, order, axis=1)
                top_ids = self._slots.id_at[top]
                top_ids[np.isneginf(top_scores)] = -1
                out_ids[start:stop, :kk] = top_ids
                out_scores[start:stop, :kk] = top_scores
        return out_ids, out_scores

    def _mask_rows(self, scores: np.ndarray, excl: list[np.ndarray]) -> None:
        """In place: scores[i, slot] = -inf for every excluded id of query i."""
        rows = np.repeat(np.arange(len(excl)), [len(e) for e in excl])
        if len(rows) == 0:
            return
        slots = self._slots.lookup(np.concatenate(excl))
        hit = slots >= 0
        scores[rows[hit], slots[hit]] = -np.inf

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 [n], vectors float32 [n, dim]) of the live entries (copies)."""
        return self._slots.id_at[: self._n].copy(), self._vectors[: self._n].copy()

    def _write_files(self, directory: Path) -> list[str]:
        write_npz(directory / DATA_FILE, ids=self._slots.id_at[: self._n],
                  vectors=self._vectors[: self._n])
        return [DATA_FILE]

    @classmethod
    def _read_files(cls, directory: Path, manifest: dict[str, Any]) -> Self:
        ids, vectors = read_npz(directory / DATA_FILE, "ids", "vectors")
        dim = int(manifest["dim"])
        if vectors.ndim != 2 or vectors.shape[1] != dim or len(ids) != len(vectors):
            raise BundleError(f"{directory / DATA_FILE}: vectors {vectors.shape} / ids "
                              f"{ids.shape} do not match dim {dim}")
        index = cls(dim, manifest["metric"], **manifest["params"])
        # Stored vectors are already normalised for cosine; insert them as they are.
        index._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index._n = len(ids)
        index._slots.assign(ids.astype(np.int64), np.arange(len(ids), dtype=np.int64))
        return index

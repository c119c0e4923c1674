"""Retrieval stage: the candidate-source contract and the source classes several components
share (winnow.components builds them, one component per kind).

A source answers ``candidates(request, k) -> (items int32 [<=k], scores float32 [<=k])``, best
first, internal item indices. Sources never raise for a user they cannot serve (no vector, no
history): they return nothing and the fallback chain fills the slate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from winnow.pipeline.types import Catalog, Request

EMPTY_I = np.empty(0, np.int32)
EMPTY_S = np.empty(0, np.float32)

# (history item indices int32 [h], weights float32 [h], k) -> (items int32, scores float32)
HistoryScorer = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class AnnIndex(Protocol):
    """The part of winnow.index.VectorIndex the ALS source uses (ids are item indices)."""

    def search(self, queries: np.ndarray, k: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]: ...


class CandidateSource(Protocol):
    name: str
    kind: str

    def candidates(self, request: Request, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def _clean(items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    items = np.asarray(items).ravel()
    scores = np.asarray(scores, np.float32).ravel()
    ok = items >= 0
    return items[ok].astype(np.int32), scores[ok]


@dataclass
class AlsSource:
    """Nearest items to the user's (folded-in) ALS vector through the ANN index."""

    name: str
    index: AnnIndex
    ef_search: int | None = None
    kind: str = "als"

    def candidates(self, request: Request, k: int) -> tuple[np.ndarray, np.ndarray]:
        vec = request.user.als_vector
        if vec is None:
            return EMPTY_I, EMPTY_S
        kwargs = {"ef_search": self.ef_search} if self.ef_search else {}
        ids, scores = self.index.search(np.asarray(vec, np.float32)[None, :], k, **kwargs)
        return _clean(ids[0], scores[0])


@dataclass
class ItemItemSource:
    """Items co-occurring with the user's recent items (weighted by recency and event weight):
    kind "itemitem" (any co-occurrence) or "sequence" (time-neighbours), same scorer contract."""

    name: str
    scorer: HistoryScorer
    recent: int = 50
    kind: str = "itemitem"

    def candidates(self, request: Request, k: int) -> tuple[np.ndarray, np.ndarray]:
        hist = request.user.recent_items[: self.recent]
        if len(hist) == 0:
            return EMPTY_I, EMPTY_S
        weights = request.user.recent_weights[: self.recent]
        if len(weights) != len(hist):
            weights = np.ones(len(hist), np.float32)
        items, scores = self.scorer(hist, weights, k)
        return _clean(items, scores)


def sparse_history_scorer(similarity: Any) -> HistoryScorer:
    """Item-item scores from a history without touching every item: float32 CSR [n, n] rows of
    the history items are gathered, weighted and summed (same result as history @ similarity,
    positive scores only, history items excluded), so the cost grows with the neighbours
    reached, not the catalog size (a dense 1M-item score row costs ~3 ms per request).
    """
    indptr, indices, data = similarity.indptr, similarity.indices, similarity.data
    n = similarity.shape[0]

    def score(hist: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        hist = np.asarray(hist, np.int64)
        ok = (hist >= 0) & (hist < n)
        hist, w = hist[ok], np.asarray(weights, np.float32)[ok]
        if len(hist) == 0:
            return EMPTY_I, EMPTY_S
        starts, ends = indptr[hist], indptr[hist + 1]
        lens = ends - starts
        if lens.sum() == 0:
            return EMPTY_I, EMPTY_S
        # every row's positions [start, end), concatenated, without a Python loop over the rows
        pos = np.arange(int(lens.sum())) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
        cols = indices[pos]
        vals = data[pos] * np.repeat(w, lens)
        uniq, inv = np.unique(cols, return_inverse=True)
        sums = np.bincount(inv, weights=vals).astype(np.float32)
        keep = (sums > 0) & ~np.isin(uniq, hist)
        uniq, sums = uniq[keep], sums[keep]
        if len(uniq) > k:
            part = np.argpartition(-sums, k - 1)[:k]
            uniq, sums = uniq[part], sums[part]
        order = np.lexsort((uniq, -sums))  # best first, ties by item index
        return uniq[order].astype(np.int32), sums[order]

    return score


class RankedArraySource:
    """Top of a precomputed per-item score (popularity, trending, recency), available items only.

    The order is computed once per catalog snapshot; at request time only a prefix is read.
    """

    def __init__(self, name: str, kind: str, catalog: Catalog, scores: Callable[[Catalog], np.ndarray],
                 *, prefix: int = 5000) -> None:
        self.name = name
        self.kind = kind
        self._catalog = catalog
        self._scores_fn = scores
        self._prefix = prefix
        self._n = -1
        self.refresh()

    def refresh(self) -> None:
        """Recompute the order (after catalog changes)."""
        s = np.asarray(self._scores_fn(self._catalog), np.float32)
        m = min(self._prefix, len(s))
        if m == 0:
            self._order, self._sorted = EMPTY_I, EMPTY_S
        else:
            part = np.argpartition(-s, m - 1)[:m] if m < len(s) else np.arange(len(s))
            order = part[np.argsort(-s[part], kind="stable")]
            keep = np.isfinite(s[order])  # -inf: not rankable (e.g. no creation time)
            self._order = order[keep].astype(np.int32)
            self._sorted = s[order][keep]
        self._n = len(self._catalog)

    def candidates(self, request: Request, k: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._catalog) != self._n:
            self.refresh()
        # read a prefix twice the quota first (enough unless many top items are unavailable);
        # widen to the whole precomputed order only when it is short of k available items
        order, ranked = self._order[: 2 * k], self._sorted[: 2 * k]
        avail = self._catalog.available[order]
        if np.count_nonzero(avail) < k and len(order) < len(self._order):
            order, ranked = self._order, self._sorted
            avail = self._catalog.available[order]
        return order[avail][:k], ranked[avail][:k]

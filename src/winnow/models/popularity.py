"""Popularity baselines: the same ranking for every user.

``PopularityRecommender`` ("popularity") ranks items by their all-time number of positive events.
``RecentPopularityRecommender`` ("popularity_recent") counts only events in the last
``window_days`` before the latest training timestamp, optionally decayed with a half-life, so
yesterday's hits beat last year's. Both are the cold-start and fallback source of the funnel.

Popularity order is not item similarity, so ``similar_items`` is unsupported (NotImplementedError).
Ties are broken by item index (lower first), so rankings are deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from winnow.core.config import PopularityConfig
from winnow.data.interactions import Interactions
from winnow.models.base import Recommender

_DAY = 86_400.0


class PopularityRecommender(Recommender):
    """All-time popularity: score(item) = number of events with positive weight on the item."""

    name = "popularity"

    def __init__(self) -> None:
        pass

    @classmethod
    def from_config(cls, section: PopularityConfig) -> PopularityRecommender:  # noqa: ARG003
        """All-time popularity ignores the window/half-life settings of ``[models.popularity]``."""
        return cls()

    def _event_weights(self, train: Interactions) -> np.ndarray:
        """float64 [n_events] contribution of each event (1 for all-time)."""
        return np.ones(len(train), np.float64)

    def _fit(self, train: Interactions) -> None:
        keep = train.weight > 0
        contrib = self._event_weights(train)
        scores = np.bincount(train.item[keep], weights=contrib[keep], minlength=train.n_items)
        self.item_scores_ = scores.astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores_, (len(users), self.n_items_))

    def propose(self, users: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
                candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The global ranking (score > 0 only, ties by lower item index) walked down per user
        past their excluded items: the same items for everyone, as the serving source proposes
        them, at O(users x (k + excluded per user)) instead of a dense row over the catalog."""
        users = self._checked_request(users, k)
        width = min(k, self.n_items_)
        out_i = np.full((len(users), width), -1, np.int32)
        out_s = np.full((len(users), width), -np.inf, np.float32)
        order = np.argsort(-self.item_scores_, kind="stable")
        order = order[self.item_scores_[order] > 0]
        if candidates is not None:
            order = order[np.isin(order, np.asarray(candidates, dtype=np.int64))]
        rank_of = np.full(self.n_items_, -1, np.int64)
        rank_of[order] = np.arange(len(order))
        ex = sp.csr_matrix(exclude[users]) if exclude is not None else sp.csr_matrix((len(users), self.n_items_))
        # an excluded item only matters if it ranks within the first k + (its user's exclusions)
        start = 0
        while start < len(users):  # blocks of 256 users: a [256, depth] bool mask at most
            stop = min(len(users), start + 256)
            depth = min(len(order), width + int(np.diff(ex.indptr[start:stop + 1]).max(initial=0)))
            blocked = np.zeros((stop - start, depth), bool)
            sub = ex[start:stop]
            r = rank_of[sub.indices]
            rows = np.repeat(np.arange(stop - start), np.diff(sub.indptr))
            inside = (r >= 0) & (r < depth)
            blocked[rows[inside], r[inside]] = True
            free = ~blocked
            pos = np.cumsum(free, axis=1) - 1
            take = free & (pos < width)
            rr, cc = np.nonzero(take)
            out_i[start + rr, pos[rr, cc]] = order[cc]
            out_s[start + rr, pos[rr, cc]] = self.item_scores_[order[cc]]
            start = stop
        return out_i, out_s

    def ranking(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The global top-k (items int32 [k'], scores float32 [k']), k' = min(k, n_items_)."""
        self._check_fitted()
        idx = np.argsort(-self.item_scores_, kind="stable")[:k].astype(np.int32)
        return idx, self.item_scores_[idx]

    def get_params(self) -> dict[str, Any]:
        return {}

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores_ = arrays["item_scores"].astype(np.float32)


class RecentPopularityRecommender(PopularityRecommender):
    """Popularity over a recent window, optionally with exponential time decay.

    Args:
        window_days: only events with timestamp >= t_max - window_days * 86400 count, where t_max
            is the latest timestamp in the training data. None: no window (decay only).
        half_life_days: an event ``d`` days older than t_max weighs 0.5 ** (d / half_life_days).
            None: every event in the window weighs 1.
    At least one of the two must be set (otherwise use ``PopularityRecommender``).
    """

    name = "popularity_recent"
    section = "popularity"  # [models.popularity] parameterises both popularity models

    def __init__(self, window_days: float | None = 30.0, half_life_days: float | None = None) -> None:
        if window_days is None and half_life_days is None:
            raise ValueError("popularity_recent needs window_days or half_life_days "
                             "(both are None); use 'popularity' for all-time counts")
        for key, value in (("window_days", window_days), ("half_life_days", half_life_days)):
            if value is not None and not value > 0:
                raise ValueError(f"{key} must be > 0, got {value!r}")
        self.window_days = window_days
        self.half_life_days = half_life_days

    @classmethod
    def from_config(cls, section: PopularityConfig) -> RecentPopularityRecommender:
        """From ``[models.popularity]``; a missing window with no half-life means 30 days."""
        window = section.window_days
        if window is None and section.half_life_days is None:
            window = 30.0
        return cls(window_days=window, half_life_days=section.half_life_days)

    def _event_weights(self, train: Interactions) -> np.ndarray:
        if len(train) == 0:
            return np.ones(0, np.float64)
        t = train.timestamp.astype(np.float64)
        t_max = float(t.max())
        age_days = (t_max - t) / _DAY
        w = np.ones(len(train), np.float64)
        if self.window_days is not None:
            w[age_days > self.window_days] = 0.0
        if self.half_life_days is not None:
            w *= np.power(0.5, age_days / self.half_life_days)
        return w

    def get_params(self) -> dict[str, Any]:
        return {"window_days": self.window_days, "half_life_days": self.half_life_days}

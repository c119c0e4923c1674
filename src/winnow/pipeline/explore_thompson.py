"""Thompson sampling (``ThompsonPolicy``) and the live per-item statistics it reads in the
service (``ItemCounts``, bound from an ``ItemStatsSource``). Re-exported by
winnow.pipeline.explore, which builds policies from config."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from winnow.core.errors import ConfigError
from winnow.core.ids import IdMap
from winnow.pipeline.explore_base import Selection, check_scores, mc_marginals


class ItemCounts(Protocol):
    """Live per-item feedback statistics (the service's winnow.serving.item_stats.CatalogCounts)."""

    def counts(self, items: np.ndarray, surface: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, shown) float64 [len(items)] for catalog item indices on ``surface``
        (None: all surfaces); items without statistics get (0, 0)."""
        ...


class ItemStatsSource(Protocol):
    """What the pipeline builder binds to a catalog's item ids to get live ``ItemCounts``
    (the service's winnow.serving.item_stats.ItemStats)."""

    def bind(self, item_ids: IdMap) -> ItemCounts: ...


class ThompsonPolicy:
    """Beta-Bernoulli Thompson sampling on click-through, aimed at new and low-data items.

    Each candidate (within the top ``pool``) gets theta ~ Beta(a0 + clicks, b0 + shown - clicks)
    from the item's logged stats; the slate is the top-k by theta. Items with little data have
    wide posteriors and get shown; well-measured items are shown in proportion to their chance
    of being best. Propensities: Monte Carlo over ``n_mc`` replays (same seeded generator, so a
    request with the same statistics replays exactly).

    Args:
        clicks, shown: float [n_items] per-item counts indexed by internal item index (the
            simulator's arrays; ``update`` adds to them). Ignored when ``live`` is given.
        prior: (a0, b0) of the Beta prior.
        live: the service's statistics (ItemCounts), read at each request.
        per_surface: with ``live``: count only the request's surface (True) or all surfaces.
    """

    name = "thompson"

    def __init__(self, clicks: np.ndarray | None, shown: np.ndarray | None, *,
                 prior: tuple[float, float] = (1.0, 20.0), pool: int | None = None, n_mc: int = 2000,
                 live: ItemCounts | None = None, per_surface: bool = True) -> None:
        if min(prior) <= 0:
            raise ConfigError(f"explore.prior must be positive, got {prior}")
        if pool is not None and pool < 1:
            raise ConfigError(f"explore.pool must be >= 1, got {pool}")
        if n_mc < 1:
            raise ConfigError(f"explore.n_mc must be >= 1, got {n_mc}")
        if live is None:
            clicks = np.asarray(clicks, np.float64)
            shown = np.asarray(shown, np.float64)
            if clicks.shape != shown.shape:
                raise ValueError(f"clicks {clicks.shape} and shown {shown.shape} differ in shape")
            if (clicks < 0).any() or (clicks > shown).any():
                bad = int(np.flatnonzero((clicks < 0) | (clicks > shown))[0])
                raise ValueError(f"item {bad}: clicks={clicks[bad]} not in [0, shown={shown[bad]}]")
        self.clicks, self.shown, self.prior = clicks, shown, prior
        self.live, self.per_surface = live, per_surface
        self.pool = pool
        self.n_mc = int(n_mc)

    def update(self, items: np.ndarray, clicked: np.ndarray) -> None:
        """Add observations: items shown (int [n]) and whether each was clicked (bool [n])."""
        if self.live is not None:
            raise TypeError("a live ThompsonPolicy reads the service's statistics; update those")
        assert self.shown is not None and self.clicks is not None  # not live: the policy's own counts
        np.add.at(self.shown, items, 1.0)
        np.add.at(self.clicks, items, np.asarray(clicked, np.float64))

    def _counts(self, it: np.ndarray, surface: str | None) -> tuple[np.ndarray, np.ndarray]:
        if self.live is not None:
            return self.live.counts(it, surface if self.per_surface else None)
        assert self.shown is not None and self.clicks is not None
        return self.clicks[it], self.shown[it]

    def select(self, scores: np.ndarray, k: int, *, seed: int,
               items: np.ndarray | None = None, surface: str | None = None) -> Selection:
        if items is None:
            raise ValueError("ThompsonPolicy.select needs the candidates' item indices (items=)")
        s, _ = check_scores(scores, k)
        n = len(s) if self.pool is None else min(len(s), self.pool)
        it = np.asarray(items)[:n]
        clicks, shown = self._counts(it, surface)
        a = self.prior[0] + clicks
        b = self.prior[1] + np.maximum(shown - clicks, 0.0)
        kk = min(k, n)
        rng = np.random.default_rng(seed)
        order = np.argsort(-rng.beta(a, b), kind="stable")[:kk].astype(np.int64)
        draws = np.argsort(-rng.beta(a, b, size=(self.n_mc, n)), axis=1)[:, :kk]
        return Selection(order, mc_marginals(draws, order), None, "mc")

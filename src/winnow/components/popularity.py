"""Catalog-ranked sources: ``popularity`` (all-time), ``trending`` (recent, decayed), ``fresh``
(newest items). Their scores live in the bundle's items.npz (the catalog), so each source is a
prefix of one precomputed order; each can back-fill any slate."""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.components.base import Component, FitContext, ServeContext
from winnow.models.popularity import RecentPopularityRecommender
from winnow.pipeline.sources import CandidateSource, RankedArraySource
from winnow.pipeline.types import Catalog


class PopularityComponent(Component):
    """All-time popularity (models.popularity); its item scores are the catalog's ``popularity``."""

    kind = "popularity"
    artefact = "popularity"
    section = "popularity"
    model = "popularity"
    always = True
    backfill = True

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        return RankedArraySource(name, self.kind, ctx.catalog, lambda c: c.popularity)


class TrendingComponent(Component):
    """Recent, time-decayed popularity (popularity_recent); the catalog's ``trending``. Its half
    life defaults to ``[pipeline] trending_half_life_days`` when ``[models.popularity]`` has none."""

    kind = "trending"
    artefact = "popularity_recent"
    section = "popularity"
    model = "popularity_recent"
    always = True
    backfill = True

    def fit(self, ctx: FitContext) -> Any:
        pc = ctx.config.models.popularity
        return RecentPopularityRecommender(
            window_days=pc.window_days,
            half_life_days=pc.half_life_days or ctx.config.pipeline.trending_half_life_days,
        ).fit(ctx.dataset.interactions)

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        return RankedArraySource(name, self.kind, ctx.catalog, lambda c: c.trending)


def fresh_scores(catalog: Catalog) -> np.ndarray:
    """float32 [n]: 1 / (1 + days older than the newest item); -inf without a creation time."""
    created = catalog.created_at.astype(np.float64)
    out = np.full(len(created), -np.inf, np.float32)
    known = created >= 0
    if known.any():
        newest = created[known].max()
        out[known] = (1.0 / (1.0 + (newest - created[known]) / 86400.0)).astype(np.float32)
    return out


class FreshComponent(Component):
    """Newest items first (the catalog's ``created_at``); nothing to fit."""

    kind = "fresh"
    backfill = True

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        return RankedArraySource(name, self.kind, ctx.catalog, fresh_scores)

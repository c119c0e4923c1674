"""``segment_popular``: what users with the same attributes engaged with (SegmentPopularity,
stored at the bundle's segment/), for users without history."""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.bundle import BundleContents, load_segment
from winnow.components.base import Component, FitContext, ServeContext
from winnow.core.errors import ConfigError
from winnow.models.coldstart import SegmentPopularity, user_attributes
from winnow.pipeline.sources import EMPTY_I, EMPTY_S, CandidateSource
from winnow.pipeline.types import Catalog, Request


class SegmentSource:
    kind = "segment_popular"

    def __init__(self, name: str, segment: SegmentPopularity, catalog: Catalog) -> None:
        self.name, self.segment, self.catalog = name, segment, catalog

    def candidates(self, request: Request, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.segment.score([request.user.attributes or {}])[0]
        n = min(len(scores), len(self.catalog.available))
        scores = np.where(self.catalog.available[:n], scores[:n], -np.inf)
        kk = min(k, int(np.isfinite(scores).sum()))
        if kk <= 0:
            return EMPTY_I, EMPTY_S
        part = np.argpartition(-scores, kk - 1)[:kk]
        order = part[np.argsort(-scores[part], kind="stable")]
        return order.astype(np.int32), scores[order].astype(np.float32)


class SegmentComponent(Component):
    kind = "segment_popular"
    artefact = "segment"
    needs_profile = True
    stage = "segment"

    def fit(self, ctx: FitContext) -> SegmentPopularity:
        cs, ds = ctx.config.coldstart, ctx.dataset
        return SegmentPopularity(l2=cs.segment_l2, first=cs.segment_first).fit(
            ds.interactions, user_attributes(ds.users, ds.interactions.n_users))

    def save(self, artefact: Any, contents: BundleContents) -> None:
        contents.segment = artefact

    def load(self, ctx: ServeContext) -> SegmentPopularity | None:
        return load_segment(ctx.bundle.path) if ctx.bundle is not None else None

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        if artefact is None:
            raise ConfigError(self.missing(name, "a segment model"))
        return SegmentSource(name, artefact, ctx.catalog)

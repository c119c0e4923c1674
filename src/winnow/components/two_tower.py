"""Cold-start sources over the two-tower model (models/two_tower): ``two_tower`` (nearest items
to the request's query vector) and ``content`` (nearest items in content space to the user's
recent and declared-interest items). Both share one fitted model (artefact "two_tower") and one
``TwoTowerServing`` per runtime (ANN index over the item vectors, exact index over the content
vectors; store items newer than the bundle are indexed from their content at load).
Every source returns nothing (never raises) for a request it cannot serve."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from winnow.components.base import Component, FitContext, ServeContext
from winnow.components.warm import carried, previous_model, record_cold, record_warm
from winnow.core.errors import ConfigError
from winnow.pipeline.sources import EMPTY_I, EMPTY_S, CandidateSource
from winnow.pipeline.types import Request

if TYPE_CHECKING:  # torch loads when a bundle's two-tower state is built, not when the registry
    # lists this component (a core install, without the neural extra, trains and serves the rest)
    from winnow.models.two_tower.serving import TwoTowerServing


def text_cache_dir(home: str | Path) -> Path:
    """Where training keeps item-text vectors between runs (winnow.models.text_cache)."""
    return Path(home) / "cache" / "text"


class TwoTowerSource:
    kind = "two_tower"

    def __init__(self, name: str, serving: TwoTowerServing) -> None:
        self.name, self.serving = name, serving

    def candidates(self, request: Request, k: int) -> tuple[np.ndarray, np.ndarray]:
        vec = self.serving.model.index_query(self.serving.query_vector(request))
        ids, scores = self.serving.index.search(vec[None, :].astype(np.float32), k)
        ok = ids[0] >= 0
        return ids[0][ok].astype(np.int32), scores[0][ok].astype(np.float32)


class ContentSource:
    kind = "content"

    def __init__(self, name: str, serving: TwoTowerServing, recent: int = 20) -> None:
        self.name, self.serving, self.recent = name, serving, recent

    def candidates(self, request: Request, k: int) -> tuple[np.ndarray, np.ndarray]:
        user = request.user
        items = list(user.interest_items) + [int(i) for i in user.recent_items[: self.recent]]
        vecs = [v for v in (self.serving.content_vector(int(i)) for i in items) if v is not None]
        if vecs:
            q = np.mean(vecs, axis=0)
        elif user.interests or user.attributes:
            q = self.serving.query_vector(request)
        else:
            return EMPTY_I, EMPTY_S
        q = (q / max(float(np.linalg.norm(q)), 1e-12)).astype(np.float32)
        exclude = np.asarray(items, np.int64) if items else None
        ids, scores = self.serving.content_index.search(q[None, :], k, exclude=exclude)
        ok = ids[0] >= 0
        return ids[0][ok].astype(np.int32), scores[0][ok].astype(np.float32)


class TwoTowerComponent(Component):
    kind = "two_tower"
    artefact = "two_tower"
    section = "two_tower"
    model = None  # scored by its own index, not by a retrieval model in the ranker's lists
    needs_profile = True
    stage = "two_tower"
    warm_capable = True

    def fit(self, ctx: FitContext) -> Any:
        """Fitted on the engine (Ray Train when ``--engine ray``); the run report goes to the
        manifest's engine.two_tower, with ``text``: item texts encoded now vs taken from the
        home's text-vector cache (``text_cache_dir``; encoded once here, before the engine, so
        Ray workers do not encode them again). Warm (``ctx.warm``, local engine): from the previous
        bundle's weights with at most ``warm_epochs`` epochs (winnow.models.two_tower.warm)."""
        from winnow.models.two_tower import TwoTowerRecommender

        assert ctx.engine is not None, "two-tower training needs an engine (winnow.engine)"
        ds = ctx.dataset
        model = TwoTowerRecommender.from_config(ctx.config.models.two_tower).with_side_info(ds.items, ds.users)
        prev, reason = previous_model(ctx, "two_tower")
        if prev is not None and ctx.engine.describe().get("name") != "local":
            prev, reason = None, "the ray engine trains the two-tower from its config (warm starts run locally)"
        rows = None
        if prev is not None:
            rows = carried(ctx, prev.n_users_, prev.n_items_)
            model.start_from(prev, items=rows.items, users=rows.users)
        text = model.prepare_text(ds.interactions.n_items, cache=text_cache_dir(ctx.config.home))
        model, report = ctx.engine.fit_two_tower(model, ds.interactions)
        ctx.reports["two_tower"] = {**report, "text": text.report}
        h = getattr(model, "history_", {}) or {}
        epochs = len(h.get("loss", [])) + int(h.get("refit_epochs", 0))
        if rows is not None and model.warm_reason_ is None:
            record_warm(ctx, "two_tower", rows, epochs=epochs)
        else:
            record_cold(ctx, "two_tower", reason or model.warm_reason_ or "no previous two-tower", epochs=epochs)
        return model

    def load(self, ctx: ServeContext) -> TwoTowerServing | None:
        """The bundle's model with its indices; store items newer than the bundle indexed too."""
        model = super().load(ctx)
        if model is None:
            return None
        assert ctx.config is not None
        from winnow.models.two_tower.serving import TwoTowerServing

        tts = TwoTowerServing.build(model, ctx.config.index)
        items = ctx.store.read_items() if ctx.store is not None else None
        if items is not None and len(items):
            idx = ctx.catalog.item_ids.encode(items["item_id"].tolist(), missing=-1)
            new = idx >= model.n_items_
            if new.any():
                tts.add_items([int(i) for i in idx[new]], items[new].reset_index(drop=True))
        return tts

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        if artefact is None:
            raise ConfigError(self.missing(name, "a two-tower model"))
        return TwoTowerSource(name, artefact)


class ContentComponent(TwoTowerComponent):
    kind = "content"

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        if artefact is None:
            raise ConfigError(self.missing(name, "a two-tower model"))
        return ContentSource(name, artefact, ctx.recent)

"""``als``: nearest items to the user's (folded-in) ALS vector through the bundle's ANN index
(index/, built over the ALS item factors by training).

Warm start (``FitContext.warm``): the fit starts from the previous bundle's factors -- rows of
ids it knew copied, new ids drawn as a cold start would (winnow.models.als.warm_factors) --
and runs ``[models.als] warm_iterations``. A previous model with another factor count or dtype
means a cold start, recorded with the reason (winnow.components.warm)."""

from __future__ import annotations

from typing import Any

import numpy as np

from winnow.components.base import Component, FitContext, ServeContext
from winnow.components.warm import carried, previous_model, record_cold, record_warm
from winnow.core.errors import ConfigError
from winnow.pipeline.sources import AlsSource, CandidateSource


class AlsComponent(Component):
    kind = "als"
    artefact = "als"
    section = "als"
    model = "als"
    always = True
    warm_capable = True

    def fit(self, ctx: FitContext) -> Any:
        """ALS on every training event, from the previous bundle's factors when warm."""
        from winnow.models.als import ALSRecommender, warm_factors

        model = ALSRecommender.from_config(ctx.config.models.als)
        prev, reason = previous_model(ctx, "als")
        if prev is not None:
            reason = self._incompatible(prev, model)
        if reason is not None or prev is None:
            model.fit(ctx.dataset.interactions)
            record_cold(ctx, "als", reason or "no previous ALS model", iterations=model.iterations_run_)
            return model
        rows = carried(ctx, prev.n_users_, prev.n_items_)
        model.start_from(warm_factors(prev.user_factors_, rows.n_users, *rows.users, seed=model.seed),
                         warm_factors(prev.item_factors_, rows.n_items, *rows.items, seed=model.seed + 1))
        model.fit(ctx.dataset.interactions)
        record_warm(ctx, "als", rows, iterations=model.iterations_run_)
        return model

    @staticmethod
    def _incompatible(prev: Any, model: Any) -> str | None:
        """Why ``prev``'s factors cannot start the ALSRecommender ``model`` (None: they can)."""
        if not isinstance(prev, type(model)):
            return f"the previous als model is a {type(prev).__name__}"
        d = prev.item_factors_.shape[1]
        if d != model.factors:
            return f"factors changed: the previous model has {d}, [models.als] factors = {model.factors}"
        for name in ("user_factors_", "item_factors_"):
            dtype = getattr(prev, name).dtype
            if dtype != np.float32:
                return f"the previous model's {name.rstrip('_')} are {dtype}, not float32"
        return None

    def load(self, ctx: ServeContext) -> Any:
        """The ANN index over the ALS item factors (None without an ALS model in the bundle)."""
        if ctx.bundle is None or "als" not in ctx.bundle.models:
            return None
        return ctx.bundle.index

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        if artefact is None:
            raise ConfigError(self.missing(name, "an ALS model and index"))
        return AlsSource(name, artefact, ctx.ef_search)

"""``als``: nearest items to the user's (folded-in) ALS vector through the bundle's ANN index
(index/, built over the ALS item factors by training)."""

from __future__ import annotations

from typing import Any

from winnow.components.base import Component, ServeContext
from winnow.core.errors import ConfigError
from winnow.pipeline.sources import AlsSource, CandidateSource


class AlsComponent(Component):
    kind = "als"
    artefact = "als"
    section = "als"
    model = "als"
    always = True

    def load(self, ctx: ServeContext) -> Any:
        """The ANN index over the ALS item factors (None without an ALS model in the bundle)."""
        if ctx.bundle is None or "als" not in ctx.bundle.models:
            return None
        return ctx.bundle.index

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        if artefact is None:
            raise ConfigError(self.missing(name, "an ALS model and index"))
        return AlsSource(name, artefact, ctx.ef_search)

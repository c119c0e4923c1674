"""``itemitem`` (co-occurrence neighbours) and ``sequence`` (time neighbours, "watched this,
then watched"): items near the user's recent items, scored from the model's sparse similarity."""

from __future__ import annotations

from typing import Any

from winnow.components.base import Component, ServeContext
from winnow.core.errors import ConfigError
from winnow.pipeline.sources import CandidateSource, ItemItemSource, sparse_history_scorer


class ItemItemComponent(Component):
    kind = "itemitem"
    artefact = "itemitem"
    section = "itemitem"
    model = "itemitem"
    always = True
    label = "an item-item model"

    def load(self, ctx: ServeContext) -> Any:
        """The history scorer over the model's similarity (None without the model)."""
        model = super().load(ctx)
        return sparse_history_scorer(model.similarity_) if model is not None else None

    def source(self, name: str, artefact: Any, ctx: ServeContext) -> CandidateSource:
        if artefact is None:
            raise ConfigError(self.missing(name, self.label))
        return ItemItemSource(name, artefact, ctx.recent, kind=self.kind)


class SequenceComponent(ItemItemComponent):
    kind = "sequence"
    artefact = "sequence"
    section = "sequence"
    model = "sequence"
    always = False
    label = "a sequence model"

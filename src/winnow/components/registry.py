"""The component registry at work: which components a config needs, their sources, the pipeline.

``winnow.core.registry.COMPONENTS`` is the one list of kinds; this module turns a config into
component instances (training fits ``components_for(config)``), builds every configured source
(plus the backfill source) from a ServeContext, and wires the Pipeline.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from winnow.components.base import Component, ServeContext
from winnow.core.config import PipelineConfig, SourceConfig, WinnowConfig
from winnow.core.errors import ConfigError
from winnow.core.registry import COMPONENTS
from winnow.pipeline.explore import ItemStatsSource
from winnow.pipeline.pipeline import Pipeline
from winnow.pipeline.rules import build_rules
from winnow.pipeline.sources import CandidateSource
from winnow.pipeline.types import Ranker

_instances: dict[type, Component] = {}


def component(kind: str) -> Component:
    """The component registered as ``kind`` (one instance per class); ConfigError naming the
    unknown kind and the known ones."""
    cls = COMPONENTS.get(kind)
    inst = _instances.get(cls)
    if inst is None:
        inst = _instances[cls] = cls()
    return inst


def components_for(config: WinnowConfig) -> list[Component]:
    """The components a bundle for ``config`` holds, in registry order: every ``always`` one,
    every configured source's, and the backfill kind's."""
    kinds = {s.kind for s in config.pipeline.sources} | {config.pipeline.backfill_source}
    return [component(k) for k in COMPONENTS if k in kinds or component(k).always]


def needs_profile(config: PipelineConfig) -> bool:
    """True when a configured source reads the user's stored profile."""
    return any(component(s.kind).needs_profile for s in config.sources)


def ranker_models(config: PipelineConfig) -> dict[str, str]:
    """Configured source name -> the retrieval model that scores it in the served ranker's
    training lists, for every model-backed source (the others the ranker does not see)."""
    return {s.name: m for s in config.sources if (m := component(s.kind).model) is not None}


def _load(comp: Component, ctx: ServeContext) -> Any:
    """The component's loaded artefact, loaded once per artefact name into ctx.artefacts."""
    key = comp.artefact or comp.kind
    if key not in ctx.artefacts:
        ctx.artefacts[key] = comp.load(ctx)
    return ctx.artefacts[key]


def build_source(cfg: SourceConfig, ctx: ServeContext) -> CandidateSource:
    """One source from its config; ConfigError when the bundle lacks what it needs."""
    comp = component(cfg.kind)
    return comp.source(cfg.name, _load(comp, ctx), ctx)


def build_sources(config: PipelineConfig, ctx: ServeContext) -> dict[str, CandidateSource]:
    """Every configured source by name, plus the backfill source when it names a kind
    (``backfill`` components only) rather than a configured source."""
    built = replace(ctx, recent=config.recent_items)  # shares ctx.artefacts: loaded once
    sources = {cfg.name: build_source(cfg, built) for cfg in config.sources}
    if config.backfill_source not in sources:
        kinds = [k for k in COMPONENTS if component(k).backfill]
        if config.backfill_source not in kinds:
            raise ConfigError(f"pipeline.backfill_source {config.backfill_source!r} is neither a "
                              f"configured source nor one of {sorted(kinds)}")
        sources[config.backfill_source] = build_source(
            SourceConfig(name=config.backfill_source, kind=config.backfill_source), ctx)
    return sources


def build_pipeline(config: PipelineConfig, ctx: ServeContext, *, ranker: Ranker | None = None,
                   blocked: frozenset[int] | None = None,
                   item_stats: ItemStatsSource | None = None) -> Pipeline:
    """Sources from config + components (ConfigError if one cannot be built), then the Pipeline.

    ``item_stats``: the service's winnow.serving.item_stats.ItemStats (Thompson sampling reads
    it through the catalog's indices); None: a thompson explore spec is refused."""
    sources = build_sources(config, ctx)
    if blocked is None:
        ids = ctx.catalog.item_ids
        blocked = frozenset(i for i in (ids.get(x) for x in config.blocked_items) if i >= 0)
    rules = build_rules(config, blocked=blocked)
    counts = item_stats.bind(ctx.catalog.item_ids) if item_stats is not None else None
    return Pipeline(config, sources, ctx.catalog, ranker=ranker, rules=rules, item_counts=counts)

"""Data helpers of the dashboard API (routes_ui.py): metrics as JSON, what-if pipelines, item timelines.

Contracts:
- ``metrics_snapshot(registry)``: every sample of a Prometheus registry, grouped as counters,
  gauges and histograms (cumulative values; the browser computes rates from two snapshots).
- ``variant_pipeline(pipeline, disable_sources=, disable_rules=)``: a Pipeline sharing the
  running one's built sources, catalog, rules and (learned) ranker, with some sources/rules left
  out. Nothing is rebuilt or copied from disk, so a preview costs one request.
- ``run_variant(...)``: the same steps as ``Service.recommend`` (online state -> user view ->
  funnel, explain on) but WITHOUT logging an impression or touching metrics: previews are not
  served to anyone.
- ``timeline(store, item_id, days=, now=)``: per-UTC-day impressions (from the impression log)
  and events by type for one item over the last ``days`` days.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry

from winnow.data.store import Store
from winnow.pipeline.pipeline import Pipeline
from winnow.pipeline.rank import BlendRanker
from winnow.pipeline.types import NO_CATEGORY, Catalog, Request, Slate, UserView
from winnow.serving.errors import ApiError

DAY = 86400


def metrics_snapshot(registry: CollectorRegistry) -> dict[str, Any]:
    """{"counters": {sample name: [{labels, value}]}, "gauges": {...}, "histograms": {family:
    [{labels, count, sum, buckets: [[le, cumulative count], ...]}]}} (le of +Inf is null)."""
    counters: dict[str, list] = {}
    gauges: dict[str, list] = {}
    hists: dict[str, list] = {}
    for fam in registry.collect():
        if fam.type == "histogram":
            series: dict[tuple, dict[str, Any]] = {}
            for s in fam.samples:
                labels = {k: v for k, v in s.labels.items() if k != "le"}
                key = tuple(sorted(labels.items()))
                entry = series.setdefault(key, {"labels": labels, "count": 0.0, "sum": 0.0, "buckets": []})
                if s.name.endswith("_bucket"):
                    le = float(s.labels["le"])
                    entry["buckets"].append([None if le == float("inf") else le, s.value])
                elif s.name.endswith("_count"):
                    entry["count"] = s.value
                elif s.name.endswith("_sum"):
                    entry["sum"] = s.value
            hists[fam.name] = list(series.values())
        elif fam.type == "counter":
            for s in fam.samples:
                if s.name.endswith("_total"):
                    counters.setdefault(s.name, []).append({"labels": dict(s.labels), "value": s.value})
        elif fam.type == "gauge":
            gauges[fam.name] = [{"labels": dict(s.labels), "value": s.value} for s in fam.samples]
    return {"counters": counters, "gauges": gauges, "histograms": hists}


def variant_pipeline(pipeline: Pipeline, *, disable_sources: list[str],
                     disable_rules: list[str]) -> tuple[Pipeline, BlendRanker | None]:
    """The running pipeline with some configured sources and rules switched off (422 on an
    unknown name). Returns (pipeline, its BlendRanker or None when the ranker is learned)."""
    cfg = pipeline.config
    source_names = [s.name for s in cfg.sources]
    rule_names = [r.name for r in pipeline.rules]
    bad = sorted(set(disable_sources) - set(source_names))
    if bad:
        raise ApiError(422, f"disable_sources: unknown source(s) {bad}; configured: {source_names}")
    bad = sorted(set(disable_rules) - set(rule_names))
    if bad:
        raise ApiError(422, f"disable_rules: unknown rule(s) {bad}; configured: {rule_names}")
    blend = pipeline.ranker if isinstance(pipeline.ranker, BlendRanker) else None
    if not disable_sources and not disable_rules:
        return pipeline, blend
    off_s, off_r = set(disable_sources), set(disable_rules)
    new_cfg = cfg.model_copy(update={
        "sources": [s for s in cfg.sources if s.name not in off_s],
        "cold_start_sources": [n for n in cfg.cold_start_sources if n not in off_s],
        "rules": [r for r in cfg.rules if r not in off_r]})
    # a blend ranker is rebuilt from the remaining sources' weights (as the config would);
    # a learned ranker is reused as is (a switched-off source's features are simply absent)
    ranker = None if blend is not None else pipeline.ranker
    variant = Pipeline(new_cfg, pipeline.sources, pipeline.catalog, ranker=ranker,
                       rules=[r for r in pipeline.rules if r.name not in off_r],
                       item_counts=pipeline.explore.item_counts)
    return variant, variant.ranker if isinstance(variant.ranker, BlendRanker) else None


def run_variant(service: Any, runtime: Any, pipeline: Pipeline, user_id: str, *, k: int,
                surface: str) -> tuple[UserView, Slate]:
    """Run ``pipeline`` for ``user_id`` as the service would (explain on), logging nothing."""
    now = time.time()
    rec = service.state.get(user_id)
    if getattr(runtime, "needs_profile", False):  # profile-based (cold-start) sources
        view = runtime.view(user_id, rec, now=now, profile=service.store.get_user(user_id))
    else:
        view = runtime.view(user_id, rec, now=now)
    request = Request(view, k, now, surface=surface, explain=True, context={"preview": True})
    slate = pipeline.recommend(request)
    if runtime.mode != "bundle":
        slate.fallbacks.insert(0, runtime.mode)
    return view, slate


def blend_contributions(blend: BlendRanker, trace: dict[str, Any], pipeline: Pipeline, view: UserView,
                        catalog: Catalog, item: int) -> dict[str, float]:
    """Each feature's share of a BlendRanker score, rebuilt from the explain trace:
    rank_<s> = w_s * (1 - rank/quota) / sum(w), affinity = w_aff * user affinity of the category.
    The values add up to the trace's rank_score (the score before re-ranking boosts)."""
    norm = sum(blend.weights.values()) or 1.0
    quota = {s.name: s.quota for s in pipeline.config.sources}
    quota.setdefault(pipeline.config.backfill_source, pipeline.config.min_candidates)
    out: dict[str, float] = {}
    for name, info in (trace.get("sources") or {}).items():
        w = blend.weights.get(name, 0.0)
        if w and info.get("rank") is not None and info["rank"] >= 0:
            f = 1.0 - info["rank"] / max(quota.get(name, 1), 1)
            out[f"rank_{name}"] = w * f / norm
    code = int(catalog.category[item]) if item < len(catalog.category) else NO_CATEGORY
    aff = view.category_affinity.get(code, 0.0) if code != NO_CATEGORY else 0.0
    if aff and blend.affinity_weight:
        out["affinity"] = blend.affinity_weight * aff
    return out


def timeline(store: Store, item_id: str, *, days: int, now: float) -> dict[str, Any]:
    """Daily impressions and events of one item over the last ``days`` UTC days (oldest first).
    One ``Store.item_daily`` call: indexed reads of per-day aggregates, so the cost does not
    grow with the event or impression log (bench/ui_reads.py)."""
    first_day = int(now) // DAY - days + 1
    labels = [datetime.fromtimestamp((first_day + i) * DAY, timezone.utc).strftime("%Y-%m-%d")
              for i in range(days)]
    daily = store.item_daily(item_id, first_day=first_day, days=days)
    events = daily["events"]
    shown = daily["impressions"]
    clicks = events.get("click", [0] * days)
    n_shown = int(sum(shown))
    return {"days": labels, "impressions": shown, "events": events, "clicks": clicks,
            "events_total": int(sum(sum(v) for v in events.values())), "impressions_total": n_shown,
            "ctr": (sum(clicks) / n_shown) if n_shown else None,
            "mean_position": daily["position_sum"] / n_shown if n_shown else None}

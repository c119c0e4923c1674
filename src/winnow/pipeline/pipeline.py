"""The funnel for one request: retrieve (sources + fallback chain) -> rank -> re-rank -> explore.

The explore stage (winnow.pipeline.explore, ``pipeline.explore`` per surface) picks the k
served items from the re-ranked list and gives each its propensity; with no policy configured
it is the deterministic top-k (propensity 1).

One Pipeline object serves tests and the server. Its wiring (source names, kinds, the
fallback chain, rule names) is checked in ``__init__`` so a mistake fails at start-up.

Fallback chain, in order:
1. ``cold_start``: a user with no history and no ALS vector gets only ``cold_start_sources``.
2. ``backfill``: fewer than ``min_candidates`` merged candidates -> the backfill source tops up.
3. ``empty``: even then nothing is left after the rules -> the backfill source's top available
   items are served, minus purchased and request-excluded items, without the other rules
   (never an empty slate in silence).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from winnow.core.config import PipelineConfig
from winnow.core.errors import ConfigError
from winnow.pipeline.explore import ItemCounts, SurfacePolicies
from winnow.pipeline.rank import BlendRanker, candidate_features
from winnow.pipeline.rules import build_rules
from winnow.pipeline.sources import CandidateSource
from winnow.pipeline.types import (
    Candidates,
    Catalog,
    RankedList,
    Ranker,
    Request,
    Rule,
    RuleContext,
    RuleRecord,
    Slate,
    SlateItem,
)

BACKFILL_WEIGHT = 0.1  # blend weight of the backfill source when it is not a configured source


class Pipeline:
    """retrieve -> rank -> re-rank for one request.

    Args:
        config: the [pipeline] section.
        sources: every configured source by name (plus the backfill source).
        catalog: item metadata shared with the rules.
        ranker: defaults to BlendRanker with the configured source weights.
        rules: defaults to build_rules(config).
    """

    def __init__(self, config: PipelineConfig, sources: dict[str, CandidateSource], catalog: Catalog, *,
                 ranker: Ranker | None = None, rules: Sequence[Rule] | None = None,
                 item_counts: ItemCounts | None = None) -> None:
        names = [s.name for s in config.sources]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"pipeline.sources: duplicate source names {sorted(dupes)}")
        for name in names + list(config.cold_start_sources):
            if name not in sources:
                raise ConfigError(f"pipeline: unknown source {name!r}; configured: {sorted(sources)}")
        if config.backfill_source not in sources:
            raise ConfigError(f"pipeline.backfill_source: unknown source {config.backfill_source!r}")
        if config.min_candidates > config.max_candidates:
            raise ConfigError(f"pipeline.min_candidates={config.min_candidates} > "
                              f"max_candidates={config.max_candidates}")
        self.config = config
        self.sources = dict(sources)
        self.catalog = catalog
        self._quota = {s.name: s.quota for s in config.sources}
        self._quota.setdefault(config.backfill_source, config.min_candidates)
        weights = {s.name: s.weight for s in config.sources}
        weights.setdefault(config.backfill_source, BACKFILL_WEIGHT)
        self.blend = BlendRanker(weights, affinity_weight=config.category_affinity_weight)
        self.ranker: Ranker = ranker or self.blend
        self.rules: list[Rule] = list(rules) if rules is not None else build_rules(config)
        # ConfigError here, at start-up; item_counts: the service's live statistics (Thompson)
        self.explore = SurfacePolicies(config.explore, item_counts=item_counts)

    def set_quota(self, source: str, quota: int) -> None:
        """How many candidates ``source`` may contribute from the next request on (benchmarks
        compare quotas on one loaded pipeline); an unknown source or a quota < 1 is a ConfigError."""
        if source not in self._quota:
            raise ConfigError(f"no source named {source!r}; the pipeline has {sorted(self._quota)}")
        if int(quota) < 1:
            raise ConfigError(f"quota must be >= 1, got {quota}")
        self._quota[source] = int(quota)

    # --- stages -------------------------------------------------------------------------------
    def retrieve(self, request: Request) -> Candidates:
        """Merged, de-duplicated candidates (at most max_candidates) with the fallbacks used."""
        cfg = self.config
        fallbacks: list[str] = []
        user = request.user
        if not user.known and user.als_vector is None and not len(user.recent_items):
            names = list(cfg.cold_start_sources)
            fallbacks.append("cold_start")
        else:
            names = [s.name for s in cfg.sources]
        results = [(n, *self.sources[n].candidates(request, self._quota[n])) for n in names]
        merged = _merge(results, cfg.max_candidates)
        if len(merged[0]) < cfg.min_candidates and cfg.backfill_source not in names:
            need = cfg.min_candidates - len(merged[0])
            b_items, b_scores = self.sources[cfg.backfill_source].candidates(
                request, self._quota[cfg.backfill_source] + len(merged[0]))
            results.append((cfg.backfill_source, b_items, b_scores))
            merged = _merge(results, cfg.max_candidates)
            if need > 0:
                fallbacks.append("backfill")
        items, rows_by_source = merged
        n = len(items)
        scores: dict[str, np.ndarray] = {}
        ranks: dict[str, np.ndarray] = {}
        for name, _, src_scores in results:
            sc = np.full(n, np.nan, np.float32)
            rk = np.full(n, -1, np.int32)
            rows = rows_by_source[name]
            ok = rows >= 0
            sc[rows[ok]] = src_scores[ok]
            rk[rows[ok]] = np.flatnonzero(ok).astype(np.int32)
            scores[name], ranks[name] = sc, rk
        return Candidates(items, scores, ranks, dict(self._quota), fallbacks)

    def rank(self, candidates: Candidates, request: Request) -> RankedList:
        """Score every candidate with the ranker; best first (ties keep retrieval order)."""
        own = self.ranker.score_request(candidates, request) if self.ranker.own_features else None
        if own is not None:  # e.g. the learned ranker with its live feature state
            scores = np.asarray(own, np.float32)
        else:  # the blend (also for users the learned ranker has no history for)
            feats = candidate_features(candidates, request, self.catalog)
            ranker = self.blend if self.ranker.own_features else self.ranker
            scores = np.asarray(ranker.score(candidates, feats), np.float32)
        order = np.argsort(-scores, kind="stable")
        return RankedList(candidates.items[order], scores[order], order.astype(np.int32))

    def rerank(self, ranked: RankedList, request: Request) -> tuple[RankedList, list[RuleRecord]]:
        """Apply the rules in order; returns the final list and what each rule did."""
        ctx = RuleContext(request, self.catalog)
        records = []
        for rule in self.rules:
            ranked, rec = rule(ranked, ctx)
            records.append(rec)
        return ranked, records

    # --- the whole funnel -----------------------------------------------------------------------
    def recommend_many(self, requests: Sequence[Request]) -> list[Slate]:
        """``recommend`` for each request, in order: the batched entry point (batch-recommend,
        offline evaluation; winnow.serving.batch). It runs the per-request code unchanged, so
        each slate is exactly what ``recommend(request)`` answers (items, scores, order) -- a
        deterministic explore stage is the caller's choice (batch mode configures none)."""
        return [self.recommend(request) for request in requests]

    def recommend(self, request: Request, *, pause: Callable[[], None] | None = None) -> Slate:
        """The top-k slate for ``request`` with per-stage timings (seconds) and explain traces.
        ``pause``, when given, is called between the stages (a background caller -- the rollout
        shadow -- waits there while live requests are served, or raises to give up); the time
        it takes is left out of the stage timings."""
        t0 = time.perf_counter()
        cands = self.retrieve(request)
        t1 = time.perf_counter()
        if pause is not None:  # the paused time shifts the clock's origin: stages exclude it
            pause()
            shift = time.perf_counter() - t1
            t0, t1 = t0 + shift, t1 + shift
        ranked = self.rank(cands, request)
        t2 = time.perf_counter()
        if pause is not None:
            pause()
            shift = time.perf_counter() - t2
            t0, t1, t2 = t0 + shift, t1 + shift, t2 + shift
        final, records = self.rerank(ranked, request)
        t3 = time.perf_counter()
        fallbacks = list(cands.fallbacks)
        if len(final) == 0:
            items, scores = self.sources[self.config.backfill_source].candidates(
                request, request.k + len(request.exclude) + len(request.user.purchased))
            # never serve what the request or a purchase excludes, even here; filters are dropped
            keep = ~np.isin(items, request.exclude) & ~np.isin(items, request.user.purchased)
            items, scores = items[keep][: request.k], scores[keep][: request.k]
            final = RankedList(items, np.zeros(len(items), np.float32), np.full(len(items), -1, np.int32))
            fallbacks.append("empty")
        seed_id = request.request_id or f"{request.user.user_id}:{request.now}"
        sel, policy = self.explore.select(request.surface, len(final), request.k, request_id=seed_id,
                                          items=final.items)
        top = final.take(sel.order)
        rank_pos = {int(item): i for i, item in enumerate(ranked.items)} if request.explain else {}
        contribs: dict[int, list] = {}
        if request.explain and self.ranker.explains:
            contribs = self.ranker.explain(cands, request, np.asarray([r for r in top.row if r >= 0], np.int64))
        out = []
        for pos, (item, score, row) in enumerate(zip(top.items, top.scores, top.row, strict=True)):
            srcs = cands.sources_of(int(row)) if row >= 0 else [self.config.backfill_source]
            trace = None
            if request.explain:
                trace = _trace(int(item), int(row), cands, ranked, rank_pos, records,
                               None if contribs else self.blend.weights if self.ranker.explains else
                               self.ranker.weights)
                if int(row) in contribs:
                    trace["rank_features"] = contribs[int(row)]  # top pred_contrib of the learned ranker
            out.append(SlateItem(int(item), float(score), pos, srcs, float(sel.propensity[pos]), trace,
                                 rank=int(sel.order[pos]), src=_source_scores(cands, int(row), srcs)))
        removed = None
        if request.explain:
            removed = [{"item": item, "rule": r.rule, "reason": why}
                       for r in records for item, why in r.removed.items()]
        timings = {"retrieve": t1 - t0, "rank": t2 - t1, "rerank": t3 - t2,
                   "total": time.perf_counter() - t0}
        return Slate(out, fallbacks, len(cands), timings, removed, n_ranked=len(final), policy=policy,
                     candidates=cands.items)


def _source_scores(cands: Candidates, row: int, names: list[str]) -> dict[str, list[float]] | None:
    """{source: [score, rank]} of candidate ``row`` for the sources that proposed it (finite
    scores only); None for a backfilled item (row -1)."""
    if row < 0:
        return None
    out = {}
    for name in names:
        score = cands.source_scores.get(name)
        if score is not None and np.isfinite(score[row]):
            out[name] = [float(score[row]), float(cands.source_ranks[name][row])]
    return out


def _merge(results: list[tuple[str, np.ndarray, np.ndarray]],
           limit: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Union of the sources' items in source order, first occurrence wins, at most ``limit``.

    Returns (items int32 [n], {source: rows int [len(source items)]} with -1 for items cut by
    the limit).
    """
    if not results:
        return np.empty(0, np.int32), {}
    all_items = np.concatenate([r[1] for r in results]).astype(np.int32)
    if len(all_items) == 0:
        return all_items, {name: np.empty(0, np.int64) for name, _, _ in results}
    uniq, first, inverse = np.unique(all_items, return_index=True, return_inverse=True)
    by_first = np.argsort(first, kind="stable")  # unique items in order of first appearance
    row_of_uniq = np.empty(len(uniq), np.int64)
    row_of_uniq[by_first] = np.arange(len(uniq))
    row_of_uniq[row_of_uniq >= limit] = -1
    items = all_items[np.sort(first)[:limit]]
    rows, start = {}, 0
    for name, src_items, _ in results:
        rows[name] = row_of_uniq[inverse[start:start + len(src_items)]]
        start += len(src_items)
    return items, rows


def _trace(item: int, row: int, cands: Candidates, ranked: RankedList, rank_pos: dict[int, int],
           records: list[RuleRecord], weights: dict[str, float] | None = None) -> dict:
    sources = {}
    if row >= 0:
        for name, ranks in cands.source_ranks.items():
            if ranks[row] >= 0:
                sources[name] = {"score": float(cands.source_scores[name][row]), "rank": int(ranks[row])}
                if weights is not None and name in weights:
                    sources[name]["weight"] = float(weights[name])  # the source's blend weight
    pos = rank_pos.get(item)
    return {
        "sources": sources,
        "rank_score": float(ranked.scores[pos]) if pos is not None else None,
        "rank_position": pos,
        "rules": [t for r in records if (t := r.touched(item)) is not None],
    }

"""Re-ranking stage: business rules, each a pure function (ranked list, context) -> (list, record).

Rules never mutate their inputs; they return a new RankedList and a RuleRecord saying which
items they removed (and why), moved (from, to) or boosted (score delta). ``build_rules`` turns
the configured names into rule objects, in order; an unknown name is a ConfigError.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from winnow.core.config import PipelineConfig
from winnow.core.errors import ConfigError
from winnow.pipeline.types import NO_CATEGORY, RankedList, Rule, RuleContext, RuleRecord


@dataclass(frozen=True)
class ExcludeRule:
    """Remove purchased, recently seen, unavailable, blocked and request-excluded items."""

    exclude_purchased: bool = True
    seen_window_s: float = 0.0
    blocked: frozenset[int] = field(default_factory=frozenset)
    name: str = "exclude"

    def __call__(self, ranked: RankedList, ctx: RuleContext) -> tuple[RankedList, RuleRecord]:
        rec = RuleRecord(self.name)
        items = ranked.items
        keep = ctx.catalog.available[items].copy()
        reasons: list[tuple[np.ndarray, str]] = [(~keep, "unavailable")]
        user = ctx.request.user
        if self.exclude_purchased and len(user.purchased):
            m = np.isin(items, user.purchased)
            reasons.append((m, "purchased"))
            keep &= ~m
        if self.seen_window_s > 0 and len(user.seen_items):
            recent = user.seen_items[user.seen_at >= ctx.request.now - self.seen_window_s]
            m = np.isin(items, recent)
            reasons.append((m, "seen"))
            keep &= ~m
        if self.blocked:
            m = np.isin(items, np.fromiter(self.blocked, np.int32))
            reasons.append((m, "blocked"))
            keep &= ~m
        if len(ctx.request.exclude):
            m = np.isin(items, ctx.request.exclude)
            reasons.append((m, "request_exclude"))
            keep &= ~m
        if keep.all():
            return ranked, rec
        for mask, why in reasons:
            for item in items[mask]:
                rec.removed.setdefault(int(item), why)
        return ranked.take(keep), rec


@dataclass(frozen=True)
class CategoryFilterRule:
    """Keep only items whose category is in the request's filter (no filter: no-op)."""

    name: str = "filter"

    def __call__(self, ranked: RankedList, ctx: RuleContext) -> tuple[RankedList, RuleRecord]:
        rec = RuleRecord(self.name)
        allowed = ctx.request.categories
        if allowed is None:
            return ranked, rec
        cats = ctx.catalog.category[ranked.items]
        keep = np.isin(cats, np.fromiter(allowed, np.int32, count=len(allowed)))
        for item in ranked.items[~keep]:
            rec.removed[int(item)] = "category_filter"
        return ranked.take(keep), rec


@dataclass(frozen=True)
class FreshnessRule:
    """Boost new items: score += weight * 0.5 ** (age / half_life); then re-sort (stable)."""

    weight: float = 0.1
    half_life_s: float = 14 * 86400.0
    name: str = "freshness"

    def __call__(self, ranked: RankedList, ctx: RuleContext) -> tuple[RankedList, RuleRecord]:
        rec = RuleRecord(self.name)
        if self.weight <= 0 or len(ranked) == 0:
            return ranked, rec
        created = ctx.catalog.created_at[ranked.items]
        known = created >= 0
        if not known.any():
            return ranked, rec
        age = np.maximum(ctx.request.now - created[known], 0).astype(np.float64)
        boost = np.zeros(len(ranked), np.float32)
        boost[known] = (self.weight * np.exp2(-age / self.half_life_s)).astype(np.float32)
        scores = ranked.scores + boost
        order = np.argsort(-scores, kind="stable")
        out = RankedList(ranked.items[order], scores[order], ranked.row[order])
        for item, b in zip(ranked.items[boost > 1e-6], boost[boost > 1e-6], strict=True):
            rec.boosted[int(item)] = float(b)
        _record_moves(ranked.items, out.items, rec, limit=4 * ctx.request.k)
        return out, rec


@dataclass(frozen=True)
class DiversityRule:
    """At most ``max_run`` consecutive items of one category in the first ``k`` positions.

    Greedy: when the next item would extend a run past the limit, the best-ranked later item
    of another category is pulled forward. Items without a category never form a run.
    """

    max_run: int = 2
    name: str = "diversity"

    def __call__(self, ranked: RankedList, ctx: RuleContext) -> tuple[RankedList, RuleRecord]:
        rec = RuleRecord(self.name)
        n = len(ranked)
        limit = min(ctx.request.k, n)
        cats = ctx.catalog.category[ranked.items]
        order = list(range(n))
        run_cat, run_len = NO_CATEGORY - 1, 0
        for pos in range(limit):
            c = cats[order[pos]]
            if c != NO_CATEGORY and c == run_cat and run_len >= self.max_run:
                swap = next((j for j in range(pos + 1, n) if cats[order[j]] != c), None)
                if swap is None:
                    break  # nothing else to offer: keep the ranking as it is
                order.insert(pos, order.pop(swap))
                c = cats[order[pos]]
            if c == run_cat and c != NO_CATEGORY:
                run_len += 1
            else:
                run_cat, run_len = c, 1
        idx = np.asarray(order, np.int64)
        out = ranked.take(idx)
        _record_moves(ranked.items[:limit], out.items[:limit], rec, full_before=ranked.items)
        return out, rec


@dataclass(frozen=True)
class MMRRule:
    """Maximal marginal relevance over item vectors for the first ``k`` positions.

    Picks argmax lambda * relevance - (1 - lambda) * max cosine similarity to the picked items.
    Items without a vector (added after training) keep similarity 0.
    """

    lam: float = 0.7
    name: str = "mmr"

    def __call__(self, ranked: RankedList, ctx: RuleContext) -> tuple[RankedList, RuleRecord]:
        rec = RuleRecord(self.name)
        vecs = ctx.catalog.vectors
        n = len(ranked)
        if vecs is None or n < 2:
            return ranked, rec
        limit = min(ctx.request.k, n)
        has = ranked.items < len(vecs)
        v = np.zeros((n, vecs.shape[1]), np.float32)
        v[has] = vecs[ranked.items[has]]
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        v /= np.where(norms > 0, norms, 1)
        rel = ranked.scores.astype(np.float32)
        rel = (rel - rel.min()) / (np.ptp(rel) or 1.0)
        max_sim = np.zeros(n, np.float32)
        chosen = np.zeros(n, bool)
        picked: list[int] = []
        for _ in range(limit):
            obj = self.lam * rel - (1 - self.lam) * max_sim
            obj[chosen] = -np.inf
            j = int(np.argmax(obj))
            picked.append(j)
            chosen[j] = True
            max_sim = np.maximum(max_sim, v @ v[j])
        rest = [j for j in range(n) if not chosen[j]]
        out = ranked.take(np.asarray(picked + rest, np.int64))
        _record_moves(ranked.items[:limit], out.items[:limit], rec, full_before=ranked.items)
        return out, rec


@dataclass(frozen=True)
class SponsoredRule:
    """Place the best-ranked sponsored items at fixed slots, at most ``cap`` per slate.

    Sponsored items beyond the cap (or beyond the slots) are removed from the slate so the cap
    holds; slots past the end of the list are skipped.
    """

    slots: tuple[int, ...] = (2, 7)
    cap: int = 2
    name: str = "sponsored"

    def __call__(self, ranked: RankedList, ctx: RuleContext) -> tuple[RankedList, RuleRecord]:
        rec = RuleRecord(self.name)
        spons = ctx.catalog.sponsored[ranked.items]
        if not spons.any():
            return ranked, rec
        sp_idx = np.flatnonzero(spons)
        organic = [int(i) for i in np.flatnonzero(~spons)]
        placed = list(sp_idx[: min(self.cap, len(self.slots))])
        for j in sp_idx[len(placed):]:
            rec.removed[int(ranked.items[j])] = "sponsored_cap"
        order = organic
        for slot, j in zip(sorted(self.slots), placed, strict=False):
            order.insert(min(slot, len(order)), int(j))
        out = ranked.take(np.asarray(order, np.int64))
        _record_moves(ranked.items, out.items, rec, limit=4 * ctx.request.k)
        return out, rec


def _record_moves(before: np.ndarray, after: np.ndarray, rec: RuleRecord,
                  *, full_before: np.ndarray | None = None, limit: int | None = None) -> None:
    """Record (from, to) for the items of ``after[:limit]`` whose position changed.

    Vectorised (argsort + searchsorted) because it runs on every request over ~500 items.
    """
    src = before if full_before is None else full_before
    head = after if limit is None else after[:limit]
    if len(head) == 0 or len(src) == 0:
        return
    sorter = np.argsort(src, kind="stable")
    at = np.searchsorted(src, head, sorter=sorter)
    at = np.minimum(at, len(src) - 1)
    frm = sorter[at]
    found = src[frm] == head
    to = np.arange(len(head))
    changed = found & (frm != to)
    for item, f, t in zip(head[changed].tolist(), frm[changed].tolist(), to[changed].tolist(), strict=True):
        rec.moved[item] = (f, t)


def build_rules(cfg: PipelineConfig, *, blocked: frozenset[int] = frozenset()) -> list:
    """Rule objects for ``cfg.rules`` in order; ConfigError on an unknown name."""
    makers: dict[str, Callable[[], Rule]] = {
        "exclude": lambda: ExcludeRule(cfg.exclude_purchased, cfg.exclude_seen_window_s, blocked),
        "filter": CategoryFilterRule,
        "freshness": lambda: FreshnessRule(cfg.freshness_weight, cfg.freshness_half_life_days * 86400.0),
        "diversity": lambda: DiversityRule(cfg.max_consecutive_per_category),
        "mmr": lambda: MMRRule(cfg.mmr_lambda),
        "sponsored": lambda: SponsoredRule(tuple(cfg.sponsored_slots), cfg.sponsored_cap),
    }
    rules = []
    for name in cfg.rules:
        if name not in makers:
            raise ConfigError(f"pipeline.rules: unknown rule {name!r}; known: {sorted(makers)}")
        rules.append(makers[name]())
    return rules


def decay(age_s: float, half_life_s: float) -> float:
    """0.5 ** (age / half_life), the decay shared by the freshness boost and online affinity."""
    return math.pow(0.5, max(age_s, 0.0) / half_life_s)

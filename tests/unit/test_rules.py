"""Re-ranking rules on a small hand-made catalog: each rule's effect and its record."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from winnow.core.config import PipelineConfig
from winnow.core.errors import ConfigError
from winnow.core.ids import IdMap
from winnow.pipeline.rules import (
    CategoryFilterRule,
    DiversityRule,
    ExcludeRule,
    FreshnessRule,
    MMRRule,
    SponsoredRule,
    build_rules,
)
from winnow.pipeline.types import Catalog, RankedList, Request, RuleContext, UserView

NOW = 1_000_000_000


def catalog(n: int = 12, *, sponsored=(), created=None, vectors=None) -> Catalog:
    cats = np.array([0, 0, 0, 0, 1, 1, 2, 2, 0, 1, 2, 0][:n], np.int32)
    sp = np.zeros(n, bool)
    sp[list(sponsored)] = True
    return Catalog(IdMap("item", [f"i{i}" for i in range(n)]), category=cats, category_names=["a", "b", "c"],
                   available=np.ones(n, bool), sponsored=sp,
                   created_at=np.full(n, -1, np.int64) if created is None else created,
                   popularity=np.arange(n, 0, -1).astype(np.float32), trending=np.ones(n, np.float32),
                   vectors=vectors)


def ranked(n: int = 12) -> RankedList:
    return RankedList(np.arange(n, dtype=np.int32), np.linspace(1, 0, n).astype(np.float32),
                      np.arange(n, dtype=np.int32))


def ctx(cat: Catalog, *, k: int = 10, user: UserView | None = None, **req) -> RuleContext:
    return RuleContext(Request(user or UserView("u"), k, NOW, **req), cat)


def test_exclude_removes_purchased_unavailable_blocked_and_request_items():
    cat = catalog()
    cat.available[3] = False
    user = UserView("u", known=True, purchased=np.array([1], np.int32))
    rule = ExcludeRule(True, 0.0, frozenset({5}))
    out, rec = rule(ranked(), ctx(cat, user=user, exclude=np.array([7], np.int32)))
    assert 1 not in out.items and 3 not in out.items and 5 not in out.items and 7 not in out.items
    assert rec.removed == {1: "purchased", 3: "unavailable", 5: "blocked", 7: "request_exclude"}
    assert len(out) == 8 and list(out.items) == sorted(out.items)  # order kept


def test_exclude_seen_within_window_only():
    user = UserView("u", known=True, seen_items=np.array([2, 4], np.int32),
                    seen_at=np.array([NOW - 10, NOW - 10_000], np.int64))
    out, rec = ExcludeRule(True, 100.0)(ranked(), ctx(catalog(), user=user))
    assert 2 not in out.items and 4 in out.items and rec.removed == {2: "seen"}


def test_exclude_is_pure():
    r = ranked()
    before = r.items.copy()
    ExcludeRule()(r, ctx(catalog(), exclude=np.array([0], np.int32)))
    assert np.array_equal(r.items, before)


def test_category_filter_keeps_only_requested_categories():
    out, rec = CategoryFilterRule()(ranked(), ctx(catalog(), categories=frozenset({1})))
    assert list(out.items) == [4, 5, 9]
    assert all(v == "category_filter" for v in rec.removed.values()) and len(rec.removed) == 9
    same, rec2 = CategoryFilterRule()(ranked(), ctx(catalog()))
    assert len(same) == 12 and not rec2.removed


def test_diversity_limits_runs_of_one_category():
    cat = catalog()
    out, rec = DiversityRule(max_run=2)(ranked(), ctx(cat, k=8))
    cats = cat.category[out.items[:8]]
    runs = max(len(list(g)) for _, g in itertools.groupby(cats.tolist()))
    assert runs <= 2
    assert sorted(out.items.tolist()) == list(range(12))  # nothing lost
    assert 4 in rec.moved and rec.moved[4] == (4, 2)  # first 'b' item pulled up to position 2


def test_freshness_boost_decays_with_age():
    created = np.full(12, -1, np.int64)
    created[11] = NOW  # brand new, ranked last
    created[10] = NOW - 10 * 14 * 86400  # ten half-lives old
    out, rec = FreshnessRule(weight=2.0, half_life_s=14 * 86400)(ranked(), ctx(catalog(created=created)))
    assert out.items[0] == 11
    assert rec.boosted[11] == pytest.approx(2.0)
    assert rec.boosted[10] == pytest.approx(2.0 / 1024, rel=1e-3)
    assert rec.moved[11] == (11, 0)


def test_sponsored_items_go_to_slots_with_cap():
    cat = catalog(sponsored=(6, 9, 11))
    out, rec = SponsoredRule(slots=(1, 4), cap=2)(ranked(), ctx(cat))
    assert out.items[1] == 6 and out.items[4] == 9
    assert 11 not in out.items and rec.removed == {11: "sponsored_cap"}
    assert int(cat.sponsored[out.items].sum()) == 2


def test_mmr_spreads_near_duplicates():
    vecs = np.zeros((12, 2), np.float32)
    vecs[:, 0] = 1.0  # all the same direction ...
    vecs[5] = [0.0, 1.0]  # ... except item 5
    out, _ = MMRRule(lam=0.5)(ranked(), ctx(catalog(vectors=vecs), k=3))
    assert out.items[0] == 0 and 5 in out.items[:2]


def test_build_rules_in_order_and_unknown_name_fails():
    cfg = PipelineConfig(rules=["sponsored", "exclude"])
    assert [r.name for r in build_rules(cfg)] == ["sponsored", "exclude"]
    with pytest.raises(ValueError):
        PipelineConfig(rules=["nope"])  # typed config refuses it at load
    bad = PipelineConfig.model_construct(**{**PipelineConfig().model_dump(), "rules": ["nope"]})
    with pytest.raises(ConfigError, match="nope"):
        build_rules(bad)

"""The per-revision cache of a user's history arrays (serving/user_history.py).

A cached entry must equal a fresh computation, be replaced when the record or the catalog
changes, and be read-only so that no consumer can corrupt what the next request reads."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.core.ids import IdMap
from winnow.pipeline.types import NO_CATEGORY, Catalog
from winnow.serving.state import UserRecord
from winnow.serving.user_history import HistoryCache, affinity, history_arrays

N = 6
T = 1_700_000_000


def catalog() -> Catalog:
    return Catalog(IdMap("item", [f"i{i}" for i in range(N)]),
                   category=np.array([0, 1, 0, NO_CATEGORY, 2, 1], np.int32),
                   category_names=["a", "b", "c"], available=np.ones(N, bool), sponsored=np.zeros(N, bool),
                   created_at=np.zeros(N, np.int64), popularity=np.ones(N, np.float32),
                   trending=np.ones(N, np.float32))


def record() -> UserRecord:
    rec = UserRecord("u")
    for item, kind, w, t in [("i0", "view", 1.0, T), ("i1", "view", 2.0, T + 10), ("x-unknown", "view", 1.0, T + 20),
                             ("i0", "view", 1.0, T + 30), ("i3", "view", 1.0, T + 40), ("i4", "skip", -1.0, T + 50)]:
        rec.add(item, kind, w, t)
    return rec


def test_arrays_in_catalog_indices_newest_first():
    h = history_arrays(record(), catalog())
    assert h.pos_items.tolist() == [3, 0, 1, 0]          # unknown and negative-weight events left out
    assert h.recent_items.tolist() == [3, 0, 1]          # de-duplicated, newest occurrence first
    assert h.seen_items.tolist() == [4, 3, 0, 1, 0]      # every known item, negative ones too
    assert h.newest == T + 50


def test_affinity_by_hand():
    h = history_arrays(record(), catalog())
    half = 100.0
    now = T + 100
    w = {0: 0.5 ** (70 / half) + 0.5 ** (100 / half), 1: 2.0 * 0.5 ** (90 / half)}
    total = sum(w.values())
    got = affinity(h, now, half)
    assert list(got) == [0, 1]  # order of first appearance, newest first (i0 at T+30 before i1)
    for code, v in w.items():
        assert got[code] == pytest.approx(v / total * min(1.0, total), rel=1e-12)


def test_cache_hits_until_the_record_or_catalog_changes():
    cat, rec, cache = catalog(), record(), HistoryCache(10)
    first = cache.get(rec, cat)
    assert cache.get(rec, cat) is first                  # same revision, same catalog: reused
    rec.add("i5", "view", 1.0, T + 60)
    second = cache.get(rec, cat)
    assert second is not first and second.recent_items.tolist()[0] == 5
    rec.add("x-new", "view", 1.0, T + 70)
    before = cache.get(rec, cat)
    assert 6 not in before.pos_items.tolist()
    cat.upsert("x-new", categories=["c"])                # the unknown id becomes item 6
    after = cache.get(rec, cat)
    assert after is not before and after.pos_items.tolist()[0] == 6
    assert after.pos_codes[0] == cat.category_code("c")
    fresh = history_arrays(rec, cat)
    for name, value in vars(fresh).items():
        np.testing.assert_array_equal(getattr(after, name), value)


def test_cached_arrays_are_read_only_and_capacity_is_bounded():
    cat, cache = catalog(), HistoryCache(2)
    recs = [record() for _ in range(3)]
    held = []
    for i, r in enumerate(recs):
        r.user_id = f"u{i}"
        held.append(cache.get(r, cat))
    with pytest.raises(ValueError):
        held[2].recent_items[0] = 1
    assert cache.get(recs[2], cat) is held[2]        # still cached
    assert cache.get(recs[0], cat) is not held[0]    # the least recently used was evicted

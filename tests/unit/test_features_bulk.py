"""OnlineFeatureState.add_events (bulk replay at bundle load) builds the same state as
add_event one event at a time, including when merged into a state that already holds events."""

from __future__ import annotations

import numpy as np

from tests.unit._features_world import make_world, random_sources
from winnow.features import OnlineFeatureState


def _assert_same(a: OnlineFeatureState, b: OnlineFeatureState, t: float) -> None:
    hl = a.spec.half_life_s
    assert a._all_ts == b._all_ts
    assert a._item_ts == b._item_ts
    assert a._peer_ts == b._peer_ts and len(a._peer_ts) > 0
    assert a._group_ts == b._group_ts
    assert a._users.keys() == b._users.keys()
    for user, ua in a._users.items():
        ub = b._users[user]
        assert ua.ts == ub.ts
        assert sorted(ua.items) == sorted(ub.items)
        assert ua.age_cnt == ub.age_cnt
        np.testing.assert_allclose(ua.age_sum, ub.age_sum, rtol=1e-12)
        np.testing.assert_allclose(ua.attr_sum, ub.attr_sum, rtol=1e-12)
        np.testing.assert_array_equal(ua.attr_cnt, ub.attr_cnt)
        for table in ("cats", "creators"):
            ta, tb = getattr(ua, table), getattr(ub, table)
            assert ta.keys() == tb.keys()
            for key, ea in ta.items():
                eb = tb[key]
                assert (ea.count, ea.last) == (eb.count, eb.last)
                np.testing.assert_allclose(ea.decay_at(t, hl), eb.decay_at(t, hl), rtol=1e-9)


def test_bulk_equals_one_at_a_time_and_merges() -> None:
    ds, spec, cat = make_world(seed=4)
    ev = ds.interactions
    rng = np.random.default_rng(5)
    perm = rng.permutation(len(ev.timestamp))  # out of order on purpose
    one = OnlineFeatureState(cat, spec)
    for j in perm.tolist():
        one.add_event(int(ev.user[j]), int(ev.item[j]), int(ev.timestamp[j]))
    bulk = OnlineFeatureState(cat, spec)
    half = len(perm) // 2  # two batches: the second merges into existing lists and engagements
    bulk.add_events(ev.user[perm[:half]], ev.item[perm[:half]], ev.timestamp[perm[:half]])
    bulk.add_events(ev.user[perm[half:]], ev.item[perm[half:]], ev.timestamp[perm[half:]])
    t = float(ev.timestamp.max()) + 3600
    _assert_same(one, bulk, t)
    # a one-at-a-time event after the bulk load keeps both states equal
    one.add_event(0, 1, t - 10)
    bulk.add_event(0, 1, t - 10)
    _assert_same(one, bulk, t)
    for user in rng.choice(ev.n_users, 5, replace=False):
        items = rng.choice(ev.n_items, 20, replace=False)
        score, rank = random_sources(rng, len(items))
        a = one.features(int(user), items, t, src_score=score, src_rank=rank)
        b = bulk.features(int(user), items, t, src_score=score, src_rank=rank)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_bulk_items_beyond_the_catalog_and_empty() -> None:
    ds, spec, cat = make_world(seed=6, n_events=200)
    ev = ds.interactions
    one, bulk = OnlineFeatureState(cat, spec), OnlineFeatureState(cat, spec)
    bulk.add_events(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    assert bulk._all_ts == []
    items = ev.item.astype(np.int64).copy()
    items[::5] = ev.n_items + 3  # added after training: no categories, creator, age, attributes
    for u, i, t in zip(ev.user.tolist(), items.tolist(), ev.timestamp.tolist(), strict=True):
        one.add_event(u, i, t)
    bulk.add_events(ev.user, items, ev.timestamp)
    _assert_same(one, bulk, float(ev.timestamp.max()) + 1)

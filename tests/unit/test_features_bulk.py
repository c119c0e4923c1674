"""OnlineFeatureState.add_events (bulk replay at bundle load) builds the same state as
add_event one event at a time, including when merged into a state that already holds events."""

from __future__ import annotations

import numpy as np

from tests.unit._features_world import assert_same_features, make_world, random_sources
from winnow.features import OnlineFeatureState


def _assert_same(a: OnlineFeatureState, b: OnlineFeatureState, t: float, *, n_users: int, n_items: int,
                 seed: int = 0) -> None:
    assert_same_features(a, b, t, n_users=n_users, n_items=n_items, seed=seed)


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
    _assert_same(one, bulk, t, n_users=ev.n_users, n_items=ev.n_items)
    # a one-at-a-time event after the bulk load keeps both states equal
    one.add_event(0, 1, t - 10)
    bulk.add_event(0, 1, t - 10)
    _assert_same(one, bulk, t, n_users=ev.n_users, n_items=ev.n_items)
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
    assert not bulk.has_history(0)
    items = ev.item.astype(np.int64).copy()
    items[::5] = ev.n_items + 3  # added after training: no categories, creator, age, attributes
    for u, i, t in zip(ev.user.tolist(), items.tolist(), ev.timestamp.tolist(), strict=True):
        one.add_event(u, i, t)
    bulk.add_events(ev.user, items, ev.timestamp)
    _assert_same(one, bulk, float(ev.timestamp.max()) + 1, n_users=ev.n_users, n_items=ev.n_items + 4)

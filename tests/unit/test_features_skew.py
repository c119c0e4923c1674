"""Training-serving skew: for sampled (user, items, t) the online feature values equal the
offline (point-in-time) values computed from the same events."""

from __future__ import annotations

import numpy as np

from tests.unit._features_world import make_world, random_sources
from winnow.features import Lists, OnlineFeatureState, offline_features


def test_online_equals_offline_for_sampled_requests() -> None:
    ds, spec, cat = make_world(seed=1)
    ev = ds.interactions
    rng = np.random.default_rng(7)
    order = np.argsort(ev.timestamp, kind="stable")
    # requests at event times (ties!) and at random instants, for random users
    times = np.r_[rng.choice(ev.timestamp, 6), rng.integers(ev.timestamp.min(), ev.timestamp.max(), 6)]
    times.sort()
    state = OnlineFeatureState(cat, spec)
    fed = 0
    compared = 0
    for t in times:
        while fed < len(order) and ev.timestamp[order[fed]] < t:  # the service's state: events before t
            j = order[fed]
            state.add_event(int(ev.user[j]), int(ev.item[j]), int(ev.timestamp[j]))
            fed += 1
        for user in rng.choice(ev.n_users, 3, replace=False):
            items = rng.choice(ev.n_items, 25, replace=False)
            score, rank = random_sources(rng, len(items))
            online = state.features(int(user), items, float(t), src_score=score, src_rank=rank)
            lists = Lists(user=np.array([user]), t=np.array([t]), row_list=np.zeros(len(items), np.int64),
                          row_item=items, src_score=score, src_rank=rank)
            offline = offline_features(ev, cat, spec, lists)
            assert online.shape == offline.shape == (len(items), len(spec.names))
            np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-6, equal_nan=True,
                                       err_msg=f"user {user} t {t}")
            compared += 1
    assert compared == 36
    # the comparison is not vacuous: engagement and popularity features vary across rows
    names = spec.names
    for col in ("cat_count_max", "cat_decay_sum", "creator_count", "pop_7d", "pop_all", "user_mean_price"):
        assert np.nanstd(offline[:, names.index(col)]) > 0 or col == "user_mean_price", col


def test_offline_batch_equals_one_list_at_a_time() -> None:
    ds, spec, cat = make_world(seed=2)
    ev = ds.interactions
    rng = np.random.default_rng(3)
    users = rng.choice(ev.n_users, 5, replace=False)
    t = rng.integers(ev.timestamp.min(), ev.timestamp.max(), 5)
    items = [rng.choice(ev.n_items, 10, replace=False) for _ in users]
    score, rank = random_sources(rng, 50)
    batch = offline_features(ev, cat, spec, Lists(user=users, t=t, row_list=np.repeat(np.arange(5), 10),
                                                  row_item=np.concatenate(items), src_score=score,
                                                  src_rank=rank))
    for k in range(5):
        sl = slice(10 * k, 10 * k + 10)
        one = offline_features(ev, cat, spec, Lists(user=users[k:k + 1], t=t[k:k + 1],
                                                     row_list=np.zeros(10, np.int64), row_item=items[k],
                                                     src_score={s: v[sl] for s, v in score.items()},
                                                     src_rank={s: v[sl] for s, v in rank.items()}))
        np.testing.assert_array_equal(batch[sl], one)


def test_item_counts_at_an_earlier_time_equal_offline_with_later_events_in_the_state() -> None:
    """A state holding events after t (t cuts through items' events: the search path of
    ItemEventCounts, not its gathers) still counts item popularity and peer popularity over
    the events before t exactly as the offline definition does."""
    ds, spec, cat = make_world(seed=3)
    ev = ds.interactions
    state = OnlineFeatureState(cat, spec)
    state.add_events(ev.user, ev.item, ev.timestamp)  # everything, including events after t
    rng = np.random.default_rng(11)
    names = spec.names
    cols = [names.index(c) for c in names if c.startswith(("pop_", "peer_")) and "user_span" not in c]
    assert len(cols) >= 8 and any(names[c].startswith("peer_") for c in cols)
    for t in rng.integers(ev.timestamp.min() + 86_400, ev.timestamp.max() - 86_400, 6).tolist():
        user = int(rng.integers(ev.n_users))
        items = rng.choice(ev.n_items, 25, replace=False)
        score, rank = random_sources(rng, len(items))
        online = state.features(user, items, float(t), src_score=score, src_rank=rank)
        lists = Lists(user=np.array([user]), t=np.array([t]), row_list=np.zeros(len(items), np.int64),
                      row_item=items, src_score=score, src_rank=rank)
        offline = offline_features(ev, cat, spec, lists)
        np.testing.assert_allclose(online[:, cols], offline[:, cols], rtol=1e-5, atol=1e-6, equal_nan=True,
                                   err_msg=f"t {t}")
        assert np.nanmax(offline[:, names.index("pop_all")]) > 0


def test_one_list_source_columns_equal_the_group_by_bit_for_bit() -> None:
    """A served request's source columns (relative score, rank in list, z) take a path without
    the group-by; it must give exactly what the training frames' group-by gives that list."""
    from winnow.features.definitions import _one_list_source, _per_list_max, _per_list_rank_z

    rng = np.random.default_rng(11)
    cases = [rng.normal(size=500), np.full(7, np.nan), np.array([3.0]), np.zeros(5), np.full(6, 2.5),
             np.array([1.0, np.inf, 2.0, np.nan]), np.array([-np.inf, -1.0, np.nan]), np.empty(0)]
    for _ in range(20):
        v = rng.normal(size=int(rng.integers(2, 600))) * 10 ** rng.uniform(-3, 3)
        v[rng.random(len(v)) < rng.uniform(0, 0.9)] = np.nan
        v[rng.random(len(v)) < 0.2] = 1.5  # ties
        cases.append(v)
    for v in cases:
        with np.errstate(divide="ignore", invalid="ignore"):
            fast = _one_list_source(v)
            two = np.r_[np.zeros(len(v), np.int64), np.ones(3, np.int64)]  # the same list beside another
            both = np.r_[v, [1.0, 2.0, np.nan]]
            top = _per_list_max(both, two)[: len(v)]
            rel = np.where(np.abs(top) > 0, v / np.abs(top), np.nan)
            rank, z = (c[: len(v)] for c in _per_list_rank_z(both, two))
        for got, want in zip(fast, (rel, rank, z), strict=True):
            np.testing.assert_array_equal(got, want, err_msg=str(v[:8]))

"""Point-in-time correctness: offline features at t never use events at or after t."""

from __future__ import annotations

import numpy as np

from tests.unit._features_world import make_world, random_sources
from winnow.data.interactions import Interactions
from winnow.features import Lists, offline_features


def _features(ev: Interactions, cat, spec, user: int, items: np.ndarray, t: int, score, rank) -> np.ndarray:
    return offline_features(ev, cat, spec, Lists(user=np.array([user]), t=np.array([t]),
                                                  row_list=np.zeros(len(items), np.int64),
                                                  row_item=items, src_score=score, src_rank=rank))


def _with_future(ev: Interactions, user: int, items: np.ndarray, t: int) -> Interactions:
    """``ev`` plus events of ``user`` on ``items`` (and other users on them) at t and after t."""
    k = len(items)
    add_u = np.r_[np.full(k, user), np.full(k, user), (np.full(k, user) + 1) % ev.n_users]
    add_i = np.r_[items, items, items]
    add_t = np.r_[np.full(k, t), np.full(k, t + 60), np.full(k, t + 1)]
    return Interactions.from_arrays(np.r_[ev.user, add_u], np.r_[ev.item, add_i],
                                    timestamp=np.r_[ev.timestamp, add_t], n_users=ev.n_users,
                                    n_items=ev.n_items)


def test_events_at_or_after_t_do_not_change_features() -> None:
    ds, spec, cat = make_world(seed=4)
    ev = ds.interactions
    rng = np.random.default_rng(0)
    user = int(ev.user[len(ev) // 2])
    t = int(np.median(ev.timestamp))
    items = rng.choice(ev.n_items, 20, replace=False)
    score, rank = random_sources(rng, len(items))
    leaky = _with_future(ev, user, items, t)
    before = _features(ev, cat, spec, user, items, t, score, rank)
    after = _features(leaky, cat, spec, user, items, t, score, rank)
    np.testing.assert_array_equal(before, after)
    # the same future events DO change the features once t moves past them, so the test above
    # would catch a leak: user counts, category engagement and item popularity all move
    later = _features(leaky, cat, spec, user, items, t + 61, score, rank)
    base_later = _features(ev, cat, spec, user, items, t + 61, score, rank)
    names = spec.names
    for col in ("user_events", "cat_count_sum", "pop_1h", "pop_all", "creator_count"):
        j = names.index(col)
        assert np.any(later[:, j] > np.nan_to_num(base_later[:, j])), col


def test_only_events_strictly_before_t_count() -> None:
    """Hand-checked values: one user, one item, events before, at and after t."""
    ds, spec, cat = make_world(seed=5, n_events=10)
    n_u, n_i = ds.interactions.n_users, ds.interactions.n_items
    item = int(np.flatnonzero(np.diff(cat.item_cat.indptr) > 0)[0])
    t = 1_700_000_000
    ev = Interactions.from_arrays([0, 0, 0, 1, 0], [item] * 5,
                                  timestamp=[t - 7200, t - 1800, t, t - 10, t + 5], n_users=n_u, n_items=n_i)
    nan = np.full(1, np.nan)
    row = _features(ev, cat, spec, 0, np.array([item]), t, {"s1": nan, "s2": nan}, {"s1": nan, "s2": nan})[0]
    get = dict(zip(spec.names, row.tolist(), strict=True))
    assert get["user_events"] == 2                  # t-7200 and t-1800 only
    assert get["pop_all"] == 3                      # user 0 twice + user 1 at t-10
    assert get["pop_1h"] == 2                       # t-1800 and t-10
    assert get["cat_count_max"] == 2
    assert np.isclose(get["cat_days_since"], 1800 / 86400)
    assert np.isclose(get["user_days_since_last"], 1800 / 86400)
    hl = spec.half_life_s
    assert np.isclose(get["cat_decay_max"], 2 ** (-7200 / hl) + 2 ** (-1800 / hl), rtol=1e-6)

"""A feature state forked to a catalog that extends its own (``OnlineFeatureState.fork``), plus
the events of the new users and items, equals a state replayed from every event for that
catalog; the two states are independent afterwards; ``remap_blocker`` refuses catalogs and
specs that would change events already folded in."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from tests.unit._features_world import assert_same_features, make_world
from winnow.features import OnlineFeatureState
from winnow.features.remap import remap_blocker

N_OLD_USERS, N_OLD_ITEMS = 22, 45


def _world():
    ds, spec, cat = make_world(seed=11, n_users=30, n_items=60, n_events=2500)
    new = dataclasses.replace(cat, user_groups=cat.user_groups.copy())
    new.user_groups[-1, 0] = cat.user_groups[:, 0].max() + 1  # a new user widens peer group 0
    ev = ds.interactions
    old = (ev.user < N_OLD_USERS) & (ev.item < N_OLD_ITEMS)
    return spec, cat.head(N_OLD_USERS, N_OLD_ITEMS), new, ev, old


def test_fork_plus_the_new_ids_events_equals_a_replay() -> None:
    spec, old_cat, new_cat, ev, old = _world()
    assert remap_blocker(old_cat, spec, new_cat, spec) is None
    serving = OnlineFeatureState(old_cat, spec)
    serving.add_events(ev.user[old], ev.item[old], ev.timestamp[old])
    twin = serving.fork(new_cat, spec)
    twin.add_events(ev.user[~old], ev.item[~old], ev.timestamp[~old])  # what the bundle adds
    replayed = OnlineFeatureState(new_cat, spec)
    replayed.add_events(ev.user, ev.item, ev.timestamp)
    t = float(ev.timestamp.max()) + 600
    assert_same_features(twin, replayed, t, n_users=30, n_items=60, seed=1)
    # the serving state did not see the new ids' events
    alone = OnlineFeatureState(old_cat, spec)
    alone.add_events(ev.user[old], ev.item[old], ev.timestamp[old])
    assert_same_features(serving, alone, t, n_users=N_OLD_USERS, n_items=N_OLD_ITEMS, seed=2)


def test_forked_states_evolve_independently() -> None:
    spec, old_cat, new_cat, ev, old = _world()
    serving = OnlineFeatureState(old_cat, spec)
    serving.add_events(ev.user[old], ev.item[old], ev.timestamp[old])
    twin = serving.fork(new_cat, spec)
    t = float(ev.timestamp.max())
    # events for a shared user on a shared item: each side folds its own, the other never sees them
    serving.add_events(np.array([0, 0]), np.array([3, 4]), np.array([t + 1, t + 2]))
    twin.add_event(1, 5, t + 3)
    twin.add_events(np.full(80, 2), np.arange(80) % 60, t + 4 + np.arange(80))  # the bulk path too
    ref_serving, ref_twin = OnlineFeatureState(old_cat, spec), OnlineFeatureState(new_cat, spec)
    ref_serving.add_events(np.r_[ev.user[old], 0, 0], np.r_[ev.item[old], 3, 4],
                           np.r_[ev.timestamp[old], t + 1, t + 2])
    ref_twin.add_events(np.r_[ev.user[old], 1, np.full(80, 2)], np.r_[ev.item[old], 5, np.arange(80) % 60],
                        np.r_[ev.timestamp[old], t + 3, t + 4 + np.arange(80)])
    at = t + 3600
    assert_same_features(serving, ref_serving, at, n_users=N_OLD_USERS, n_items=N_OLD_ITEMS, seed=3)
    assert_same_features(twin, ref_twin, at, n_users=30, n_items=60, seed=4)


def test_remap_blocker_names_what_would_change_folded_events() -> None:
    spec, old_cat, new_cat, _, _ = _world()
    other_half_life = dataclasses.replace(spec, half_life_s=spec.half_life_s * 2)
    assert "half_life_s" in remap_blocker(old_cat, spec, new_cat, other_half_life)
    assert "fewer items" in remap_blocker(new_cat, spec, old_cat, spec)
    recoded = new_cat.item_cat.tolil()
    row = int(np.flatnonzero(np.diff(new_cat.item_cat.indptr))[0])  # an old item with a category
    recoded[row, :] = 0
    recoded[row, new_cat.item_cat.shape[1] - 1] = 1
    assert "categories" in remap_blocker(old_cat, spec, dataclasses.replace(new_cat, item_cat=sp.csr_matrix(recoded)),
                                         spec)
    creators = new_cat.item_creator.copy()
    creators[0] = creators.max() + 1
    assert "item_creator" in remap_blocker(old_cat, spec, dataclasses.replace(new_cat, item_creator=creators), spec)
    groups = new_cat.user_groups.copy()
    groups[0, 0] = groups[:, 0].max() + 1
    assert "peer-group" in remap_blocker(old_cat, spec, dataclasses.replace(new_cat, user_groups=groups), spec)

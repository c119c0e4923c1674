"""A feature state forked to a catalog that extends its own (``OnlineFeatureState.fork``), plus
the events of the new users and items, equals a state replayed from every event for that
catalog; the two states are independent afterwards; a fork to a catalog whose known item rows
or peer codes changed corrects what was folded with them (``features.remap``) and equals a
replay too; ``remap_blocker`` refuses catalogs and specs that would change every folded event."""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from tests.unit._features_world import assert_same_features, make_world
from winnow.features import FeatureCatalog, OnlineFeatureState
from winnow.features.remap import changed_items, peers_moved, remap_blocker

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


def test_remap_blocker_names_what_would_change_every_folded_event() -> None:
    spec, old_cat, new_cat, _, _ = _world()
    other_half_life = dataclasses.replace(spec, half_life_s=spec.half_life_s * 2)
    assert "half_life_s" in remap_blocker(old_cat, spec, new_cat, other_half_life)
    other_attrs = dataclasses.replace(spec, item_numeric=[*spec.item_numeric, "weight"])
    assert "item_numeric" in remap_blocker(old_cat, spec, new_cat, other_attrs)
    assert "fewer items" in remap_blocker(new_cat, spec, old_cat, spec)


def _changed_rows(cat):
    """``cat`` with item rows 1-5 changed (categories re-coded, creator, creation time, price)
    and the peer codes of users 0-3 changed."""
    recoded = cat.item_cat.tolil()
    for row in (1, 2):
        recoded[row, :] = 0
        recoded[row, (row + 3) % cat.item_cat.shape[1]] = 1
    creators, created, numeric = cat.item_creator.copy(), cat.item_created.copy(), cat.item_numeric.copy()
    creators[3] = (creators[3] + 1) % 8
    created[4] = created[4] - 86_400 * 30 if not np.isnan(created[4]) else 1_590_000_000
    numeric[5, 0] = numeric[5, 0] * 2 + 1
    groups = cat.user_groups.copy()
    groups[:4] = (groups[:4] + 1) % (groups.max(axis=0) + 1)
    return dataclasses.replace(cat, item_cat=sp.csr_matrix(recoded), item_creator=creators, item_created=created,
                               item_numeric=numeric, user_groups=groups)


def test_changed_item_rows_and_peer_codes_are_found() -> None:
    spec, old_cat, new_cat, _, _ = _world()
    assert len(changed_items(old_cat, new_cat)) == 0 and not peers_moved(old_cat, spec, new_cat, spec)
    changed = _changed_rows(new_cat)
    assert changed_items(old_cat, changed).tolist() == [1, 2, 3, 4, 5]
    assert peers_moved(old_cat, spec, changed, spec)
    recoded = new_cat.item_cat.copy()  # one code changed, row lengths equal (the fast comparison)
    row = int(np.flatnonzero(np.diff(recoded.indptr[:N_OLD_ITEMS + 1]) == 1)[0])
    recoded.indices[recoded.indptr[row]] = (recoded.indices[recoded.indptr[row]] + 1) % recoded.shape[1]
    assert changed_items(old_cat, dataclasses.replace(new_cat, item_cat=recoded)).tolist() == [row]
    moved_bins = dataclasses.replace(spec, numeric_bins={k: [e + 1.0 for e in v] for k, v in spec.numeric_bins.items()})
    assert spec.numeric_bins and peers_moved(old_cat, spec, new_cat, moved_bins)


def test_fork_to_changed_item_rows_and_peer_codes_equals_a_replay() -> None:
    """Prices, categories, creators and creation times of known items change, known users'
    peer codes move: the fork corrects what was folded with them and equals a replay; later
    events reach both sides, each still equal to its own replay."""
    spec, old_cat, new_cat, ev, old = _world()
    new_cat = _changed_rows(new_cat)
    assert remap_blocker(old_cat, spec, new_cat, spec) is None
    serving = OnlineFeatureState(old_cat, spec)
    serving.add_events(ev.user[old], ev.item[old], ev.timestamp[old])
    twin = serving.fork(new_cat, spec)
    twin.add_events(ev.user[~old], ev.item[~old], ev.timestamp[~old])
    replayed = OnlineFeatureState(new_cat, spec)
    replayed.add_events(ev.user, ev.item, ev.timestamp)
    t = float(ev.timestamp.max()) + 600
    assert_same_features(twin, replayed, t, n_users=30, n_items=60, seed=5)
    alone = OnlineFeatureState(old_cat, spec)
    alone.add_events(ev.user[old], ev.item[old], ev.timestamp[old])
    assert_same_features(serving, alone, t, n_users=N_OLD_USERS, n_items=N_OLD_ITEMS, seed=6)
    later = (np.array([0, 1, 2, 25]), np.array([1, 2, 5, 3]), t + np.arange(4))
    for state in (twin, replayed, serving, alone):
        state.add_events(*later)
    assert_same_features(twin, replayed, t + 60, n_users=30, n_items=60, seed=7)
    assert_same_features(serving, alone, t + 60, n_users=N_OLD_USERS, n_items=N_OLD_ITEMS, seed=8)


def test_fork_to_new_peer_bins_equals_a_replay() -> None:
    """A retrain moved the numeric user-attribute bins: every user's code may change."""
    ds, spec, _ = make_world(seed=11, n_users=30, n_items=60, n_events=2500)
    age = spec.numeric_bins["age"]
    moved = dataclasses.replace(spec, numeric_bins={**spec.numeric_bins, "age": [age[0] + 3.0, age[-1] - 2.0]})
    old_cat, new_cat = FeatureCatalog.from_dataset(ds, spec), FeatureCatalog.from_dataset(ds, moved)
    assert not np.array_equal(old_cat.user_groups, new_cat.user_groups)
    ev = ds.interactions
    serving = OnlineFeatureState(old_cat, spec)
    serving.add_events(ev.user, ev.item, ev.timestamp)
    twin = serving.fork(new_cat, moved)
    replayed = OnlineFeatureState(new_cat, moved)
    replayed.add_events(ev.user, ev.item, ev.timestamp)
    assert_same_features(twin, replayed, float(ev.timestamp.max()) + 600, n_users=30, n_items=60, seed=9)

"""Splits: no pair straddles train/test, per-user guarantees, time order, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winnow.data.interactions import Interactions
from winnow.evaluation.splits import (Split, dedupe_pairs, leave_last_split, make_split,
                                      stratified_split, temporal_split, validation_split)


@pytest.fixture
def inter() -> Interactions:
    """300 users x 80 items, 6000 events with many repeated (user, item) pairs; user 299 has 1."""
    rng = np.random.default_rng(7)
    n = 6000
    user = np.minimum(rng.zipf(1.3, n) - 1, 298)
    item = rng.integers(0, 80, n)
    user = np.r_[user, 299]
    item = np.r_[item, 3]
    return Interactions.from_arrays(user, item, weight=rng.integers(1, 4, n + 1),
                                    timestamp=rng.integers(0, 10_000, n + 1),
                                    n_users=300, n_items=80)


def _keys(x: Interactions) -> np.ndarray:
    return x.user.astype(np.int64) * x.n_items + x.item


def _per_user(x: Interactions) -> np.ndarray:
    return np.bincount(x.user, minlength=x.n_users)


def test_dedupe_keeps_last_timestamp_and_sums_weights(inter: Interactions) -> None:
    d = dedupe_pairs(inter)
    df = pd.DataFrame({"u": inter.user, "i": inter.item, "w": inter.weight, "t": inter.timestamp})
    g = df.groupby(["u", "i"]).agg(w=("w", "sum"), t=("t", "max")).reset_index()
    assert len(d) == len(g) < len(inter)
    assert len(np.unique(_keys(d))) == len(d)
    got = pd.DataFrame({"u": d.user, "i": d.item, "w": d.weight, "t": d.timestamp})
    merged = got.merge(g, on=["u", "i"], suffixes=("", "_ref"))
    assert len(merged) == len(g)
    np.testing.assert_allclose(merged["w"], merged["w_ref"])
    np.testing.assert_array_equal(merged["t"], merged["t_ref"])
    assert (d.n_users, d.n_items) == (inter.n_users, inter.n_items)


def _check_partition(split: Split, inter: Interactions) -> None:
    tr, te = _keys(split.train), _keys(split.test)
    assert np.intersect1d(tr, te).size == 0, "a (user, item) pair is in train and test"
    np.testing.assert_array_equal(np.sort(np.r_[tr, te]), np.unique(_keys(inter)))
    assert split.train.n_items == split.test.n_items == inter.n_items


def test_stratified_fraction_per_user(inter: Interactions) -> None:
    s = stratified_split(inter, 0.75, seed=3)
    _check_partition(s, inter)
    n = _per_user(dedupe_pairs(inter))
    ntr, nte = _per_user(s.train), _per_user(s.test)
    multi = n >= 2
    assert (ntr[multi] >= 1).all() and (nte[multi] >= 1).all()
    assert (nte[n == 1] == 0).all() and ntr[299] == 1
    expected = np.where(multi, np.clip(np.floor(0.75 * n + 0.5), 1, n - 1), n)
    np.testing.assert_array_equal(ntr, expected)
    big = n >= 20
    assert big.sum() > 20
    assert np.abs(ntr[big] / n[big] - 0.75).max() <= 0.5 / 20 + 1e-9
    assert s.name == "stratified" and s.params == {"ratio": 0.75, "seed": 3}


def test_stratified_is_deterministic_by_seed(inter: Interactions) -> None:
    a, b, c = (stratified_split(inter, 0.75, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(_keys(a.test), _keys(b.test))
    assert not np.array_equal(_keys(a.test), _keys(c.test))


def test_temporal_split_orders_time(inter: Interactions) -> None:
    s = temporal_split(inter, 0.8)
    _check_partition(s, inter)
    assert s.train.timestamp.max() <= s.test.timestamp.min()
    assert s.train.timestamp.max() == s.params["cutoff"]
    share = len(s.test) / (len(s.train) + len(s.test))
    assert 0.15 < share <= 0.2 + 1e-9
    fixed = temporal_split(inter, cutoff=5000)
    assert fixed.train.timestamp.max() <= 5000 < fixed.test.timestamp.min()
    assert fixed.params["cutoff"] == 5000


def test_temporal_pair_uses_its_last_event() -> None:
    # Pair (0, 1) has events at t=1 and t=9: it is a test pair for cutoff 5, never train.
    x = Interactions.from_arrays(np.array([0, 0, 0]), np.array([1, 1, 2]),
                                 timestamp=np.array([1, 9, 2]), n_users=1, n_items=3)
    s = temporal_split(x, cutoff=5)
    assert s.train.item.tolist() == [2] and s.test.item.tolist() == [1]
    assert s.test.weight.tolist() == [2.0]


def test_leave_last_n(inter: Interactions) -> None:
    s = leave_last_split(inter, 2, seed=0)
    _check_partition(s, inter)
    m = _per_user(dedupe_pairs(inter))
    np.testing.assert_array_equal(_per_user(s.test), np.minimum(2, np.maximum(m - 1, 0)))
    assert (_per_user(s.train)[m >= 1] >= 1).all()
    last_train = np.full(inter.n_users, -1)
    np.maximum.at(last_train, s.train.user, s.train.timestamp)
    first_test = np.full(inter.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_test, s.test.user, s.test.timestamp)
    assert (last_train <= first_test).all()


def test_leave_last_ties_are_seeded() -> None:
    x = Interactions.from_arrays(np.zeros(10, int), np.arange(10), n_users=1, n_items=10)
    a, b = leave_last_split(x, 1, seed=4), leave_last_split(x, 1, seed=4)
    assert a.test.item.tolist() == b.test.item.tolist()
    picks = {int(leave_last_split(x, 1, seed=s).test.item[0]) for s in range(10)}
    assert len(picks) > 1


@pytest.mark.parametrize("method,params", [("stratified", {"ratio": 0.8, "seed": 1}),
                                           ("temporal", {"quantile": 0.7}),
                                           ("leave_last", {"n": 1})])
def test_validation_is_carved_from_train_only(inter: Interactions, method: str, params: dict) -> None:
    outer = make_split(inter, method, **params)
    val = validation_split(outer.train, method, **params)
    assert val.name == f"validation:{method}"
    _check_partition(val, outer.train)
    assert np.intersect1d(_keys(val.test), _keys(outer.test)).size == 0
    assert len(val.test) > 0
    again = validation_split(outer.train, outer)  # reuse the outer split's method and params
    assert len(again.test) > 0 and again.name == f"validation:{method}"
    assert np.isin(_keys(again.test), _keys(outer.train)).all()


def test_bad_parameters_raise() -> None:
    x = Interactions.from_arrays(np.array([0, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="ratio"):
        stratified_split(x, 1.5)
    with pytest.raises(ValueError, match="quantile"):
        temporal_split(x, 0.0)
    with pytest.raises(ValueError, match="n must be"):
        leave_last_split(x, 0)
    with pytest.raises(ValueError, match="unknown split method 'random'"):
        make_split(x, "random")
    with pytest.raises(ValueError, match="bad parameters"):
        make_split(x, "temporal", ratio=0.5)


def test_leave_last_with_a_very_wide_time_range(inter: Interactions) -> None:
    # Distinct timestamps stretched by 2**40 take the lexsort fallback: same per-user order.
    d = dedupe_pairs(inter)
    ts = np.random.default_rng(0).permutation(len(d)).astype(np.int64)
    narrow = Interactions(d.user, d.item, d.weight, ts, d.n_users, d.n_items)
    wide = Interactions(d.user, d.item, d.weight, ts << 40, d.n_users, d.n_items)
    a, b = leave_last_split(narrow, 2), leave_last_split(wide, 2)
    np.testing.assert_array_equal(_keys(a.test), _keys(b.test))
    assert len(a.test) > 0

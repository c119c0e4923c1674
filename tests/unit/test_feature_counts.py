"""SortedCounts (the online feature state's event counter) against a brute-force oracle."""

from __future__ import annotations

import math

import numpy as np

from winnow.features.counts import SortedCounts, pack


def test_count_below_matches_brute_force_over_many_inserts() -> None:
    rng = np.random.default_rng(0)
    counts = SortedCounts()
    stored: list[np.ndarray] = []
    for step in range(300):  # many small inserts and a few large ones: runs merge repeatedly
        size = 2000 if step % 97 == 0 else int(rng.integers(0, 5))
        keys = pack(rng.integers(0, 50, size), rng.integers(1_600_000_000, 1_600_100_000, size))
        counts.add(keys)
        stored.append(keys)
        if step % 25 == 0:
            everything = np.sort(np.concatenate(stored))
            q = pack(rng.integers(0, 51, 200), rng.uniform(1_599_999_000, 1_600_101_000, 200))
            np.testing.assert_array_equal(counts.count_below(q), np.searchsorted(everything, q, "left"))
    assert len(counts) == sum(len(s) for s in stored)
    assert len(counts._runs) <= 12  # geometric runs: a query searches few arrays


def test_pack_orders_by_group_then_time_and_counts_strictly_before() -> None:
    counts = SortedCounts()
    counts.add(pack(np.array([3, 3, 3, 4]), np.array([100, 200, 200, 50])))
    # events of group 3 strictly before t, for whole and fractional t
    def before(t: float) -> int:
        return int(counts.count_below(pack(3, t))[0] - counts.count_below(pack(3, -math.inf))[0])
    assert [before(100), before(100.5), before(200), before(200.01), before(1e12)] == [0, 1, 1, 3, 3]
    assert int(counts.count_below(pack(4, -math.inf))[0]) == 3  # group 4 starts after all of group 3


def test_count_in_group_equals_the_difference_of_two_counts() -> None:
    rng = np.random.default_rng(1)
    for group_index in (False, True):
        counts = SortedCounts(group_index=group_index)
        for step in range(200):  # the largest run is replaced by merges now and then
            size = 3000 if step % 67 == 0 else int(rng.integers(0, 6))
            counts.add(pack(rng.integers(0, 40, size), rng.integers(1_000, 1_300, size)))
            if step % 20 == 0:
                groups = rng.integers(0, 45, 300)  # some above every stored group
                q = pack(groups, rng.uniform(900, 1_400, 300))
                want = counts.count_below(q) - counts.count_below(pack(groups, -math.inf))
                np.testing.assert_array_equal(counts.count_in_group(q), want)
        assert len(counts._runs) > 1  # the small runs' part ran, not only the largest run's gather

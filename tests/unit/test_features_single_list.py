"""The single-list fast paths of features.definitions (one served request) give the same bits
as the general per-list group-by (offline batches), ties, NaN and infinities included."""

from __future__ import annotations

import numpy as np

from winnow.features.definitions import _per_list_max, _per_list_rank_z


def test_single_list_equals_general_path_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(300):
        n = int(rng.integers(1, 60))
        v = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4)
        v[rng.random(n) < 0.3] = np.nan
        if trial % 5 == 0:
            v[rng.random(n) < 0.5] = 1.5  # ties
        if trial % 17 == 0:
            v[0] = np.inf
        one = np.zeros(n, np.int64)
        two = np.r_[one, 1]  # the same list plus a second one: the group-by path
        extra = np.r_[v, 7.0]
        np.testing.assert_array_equal(_per_list_max(v, one), _per_list_max(extra, two)[:n])
        for a, b in zip(_per_list_rank_z(v, one), _per_list_rank_z(extra, two), strict=True):
            np.testing.assert_array_equal(a, b[:n])
        checked += int((~np.isnan(v)).sum())
    assert checked > 3000

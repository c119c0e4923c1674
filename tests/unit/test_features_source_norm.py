"""Per-list source features: rank among the list's candidates (fraction) and z-score."""

from __future__ import annotations

import numpy as np

from winnow.features.definitions import _per_list_rank_z


def test_rank_and_z_are_computed_within_each_list() -> None:
    values = np.array([3.0, 1.0, np.nan, 2.0, 10.0, 30.0, 20.0])
    row_list = np.array([0, 0, 0, 0, 1, 1, 1])
    rank, z = _per_list_rank_z(values, row_list)
    # list 0 has 3 scored rows: 3 > 2 > 1; list 1: 30 > 20 > 10; NaN stays NaN
    np.testing.assert_allclose(rank, [0, 2 / 3, np.nan, 1 / 3, 2 / 3, 0, 1 / 3])
    m0, s0 = np.mean([3.0, 1.0, 2.0]), np.std([3.0, 1.0, 2.0])
    m1, s1 = np.mean([10.0, 30.0, 20.0]), np.std([10.0, 30.0, 20.0])
    np.testing.assert_allclose(z, [(3 - m0) / s0, (1 - m0) / s0, np.nan, (2 - m0) / s0,
                                   (10 - m1) / s1, (30 - m1) / s1, (20 - m1) / s1])


def test_scale_free_and_constant_lists() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=50)
    row_list = np.repeat(np.arange(5), 10)
    r1, z1 = _per_list_rank_z(values, row_list)
    r2, z2 = _per_list_rank_z(values * 7.0 + 3.0, row_list)  # a refit model's other scale
    np.testing.assert_allclose(r1, r2)
    np.testing.assert_allclose(z1, z2, atol=1e-9)
    r, z = _per_list_rank_z(np.full(4, 2.0), np.zeros(4, np.int64))
    assert np.isfinite(r).all() and (z == 0).all()
    r, z = _per_list_rank_z(np.full(3, np.nan), np.zeros(3, np.int64))
    assert np.isnan(r).all() and np.isnan(z).all()

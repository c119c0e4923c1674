"""``OutsideEvents``: skipped events come back in a bigger bundle's indices, the others stay
recorded, and past its limit the record is dropped (the next bundle replays)."""

from __future__ import annotations

import numpy as np

from winnow.core.ids import IdMap
from winnow.serving.outside_events import OutsideEvents


def test_split_returns_the_events_the_new_maps_know_and_keeps_the_rest() -> None:
    rec = OutsideEvents()
    rec.add(["a", "b", "zz"], np.array([0, 1, 2, 0]), ["x", "y"], np.array([0, 0, 1, 1]),
            np.array([10, 11, 12, 13]))
    rec.add(["c"], np.array([0]), ["y"], np.array([0]), np.array([14]))
    assert len(rec) == 5
    users, items = IdMap("user", ["q", "a", "b", "c"]), IdMap("item", ["x", "w"])
    (u, i, ts), rest = rec.split(users, items)
    np.testing.assert_array_equal(u, [1, 2])  # a@x, b@x; item y is still unknown
    np.testing.assert_array_equal(i, [0, 0])
    np.testing.assert_array_equal(ts, [10, 11])
    assert len(rest) == 3 and len(rec) == 5  # the record itself is unchanged
    (u2, i2, ts2), _ = rest.split(IdMap("user", ["zz", "c", "a"]), IdMap("item", ["y"]))
    assert sorted(zip(u2.tolist(), i2.tolist(), ts2.tolist())) == [(0, 0, 12), (1, 0, 14), (2, 0, 13)]


def test_past_the_limit_the_record_is_dropped() -> None:
    rec = OutsideEvents(limit=3)
    rec.add(["a"], np.array([0, 0]), ["x"], np.array([0, 0]), np.array([1, 2]))
    assert not rec.overflowed and len(rec) == 2
    rec.add(["a"], np.array([0, 0]), ["x"], np.array([0, 0]), np.array([3, 4]))
    assert rec.overflowed and len(rec) == 0
    rec.add(["a"], np.array([0]), ["x"], np.array([0]), np.array([5]))
    assert len(rec) == 0

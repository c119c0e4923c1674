"""Ranker lists from the impression log (winnow.features.impression_lists) on hand-built logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from winnow.core.ids import IdMap
from winnow.features.impression_lists import impression_lists

USERS = IdMap.from_list("user", ["u1", "u2", "u3"])
ITEMS = IdMap.from_list("item", ["a", "b", "c", "d"])


def slate(rid, user, ts, items, device=None):
    return {"request_id": rid, "user_id": user, "timestamp": ts, "surface": "home",
            "context": {"device": device} if device else {},
            "items": [{"item_id": i, "position": p, "src": src} for p, (i, src) in enumerate(items)]}


def events(rows):
    return pd.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                         "event_type": [r[2] for r in rows], "timestamp": [r[3] for r in rows]})


def build(imps, evs, window=600):
    return impression_lists(imps, events(evs), user_ids=USERS, item_ids=ITEMS, click_types=["click"],
                            purchase_types=["purchase"], window_s=window)


def test_labels_sources_and_devices():
    imps = [slate("r1", "u1", 1000, [("a", {"als": [0.9, 0]}), ("b", {"als": [0.5, 1], "trending": [3.0, 0]}),
                                     ("c", None)], device="ios"),
            slate("r2", "u2", 1000, [("a", {"als": [0.1, 4]}), ("d", {})])]
    evs = [("u1", "a", "click", 1010), ("u1", "b", "purchase", 1500), ("u1", "b", "click", 1400),
           ("u1", "c", "click", 999),     # before the showing: not caused by it
           ("u2", "d", "click", 1700),    # 700 s after: outside the window
           ("u2", "a", "view", 1001)]     # not a graded type
    out = build(imps, evs)
    assert len(out) == 1  # r2 has no positive: dropped
    assert out.user.tolist() == [USERS.get("u1")] and out.t.tolist() == [1000] and out.device == ["ios"]
    assert out.row_item.tolist() == [ITEMS.get(i) for i in "abc"]
    assert out.label.tolist() == [1.0, 2.0, 0.0]  # purchase outranks the click on b
    np.testing.assert_array_equal(out.src_score["als"], [0.9, 0.5, np.nan])
    np.testing.assert_array_equal(out.src_rank["als"], [0, 1, np.nan])
    np.testing.assert_array_equal(out.src_score["trending"], [np.nan, 3.0, np.nan])
    assert out.shown == 5 and out.slates == 2
    # a wider window reaches u2's click on d
    wide = build(imps, evs, window=1000)
    assert len(wide) == 2 and wide.label.tolist() == [1.0, 2.0, 0.0, 0.0, 1.0]
    assert wide.row_list.tolist() == [0, 0, 0, 1, 1]


def test_a_click_counts_for_the_most_recent_showing_only():
    imps = [slate("r1", "u1", 1000, [("a", {}), ("b", {})]), slate("r2", "u1", 1100, [("a", {}), ("c", {})])]
    out = build(imps, [("u1", "a", "click", 1150)])
    assert len(out) == 1 and out.t.tolist() == [1100]  # r1's showing of a gets nothing
    assert out.label.tolist() == [1.0, 0.0]


def test_unknown_users_and_items_are_dropped_not_fatal():
    imps = [slate("r1", "stranger", 10, [("a", {})]),
            slate("r2", "u3", 10, [("zzz", {}), ("d", {}), ("c", {})])]
    out = build(imps, [("stranger", "a", "click", 11), ("u3", "zzz", "click", 12), ("u3", "d", "click", 12)])
    assert len(out) == 1 and out.user.tolist() == [USERS.get("u3")]
    assert out.row_item.tolist() == [ITEMS.get("d"), ITEMS.get("c")] and out.label.tolist() == [1.0, 0.0]


def test_empty_log_gives_no_lists():
    out = build([], [])
    assert len(out) == 0 and len(out.row_list) == 0


@pytest.mark.parametrize("n", [1, 50])
def test_many_slates_keep_lists_contiguous(n):
    rng = np.random.default_rng(n)
    imps = [slate(f"r{j}", f"u{1 + j % 3}", 100 * j, [(i, {"als": [float(rng.random()), p]})
                                                     for p, i in enumerate(rng.permutation(list("abcd"))[:3])])
            for j in range(n)]
    evs = [(im["user_id"], im["items"][0]["item_id"], "click", im["timestamp"] + 1) for im in imps[::2]]
    out = build(imps, evs)
    assert len(out) == len(imps[::2])
    assert np.all(np.diff(out.row_list) >= 0) and np.bincount(out.row_list).tolist() == [3] * len(out)
    assert out.label.reshape(-1, 3)[:, 0].tolist() == [1.0] * len(out)


def test_positions_are_kept_and_shuffling_keeps_rows_whole():
    imps = [slate("r1", "u1", 1000, [("a", {"als": [0.9, 0]}), ("b", {"als": [0.5, 1]}), ("c", {}), ("d", {})]),
            slate("r2", "u2", 1000, [("c", {}), ("a", {})])]
    imps[1]["items"][1]["position"] = 5  # the logged position wins over the place in the list
    del imps[1]["items"][0]["position"]  # no logged position: its place in the slate
    out = build(imps, [("u1", "b", "click", 1001), ("u2", "a", "click", 1002)])
    assert out.position.tolist() == [0, 1, 2, 3, 0, 5]
    mixed = out.shuffled(seed=3)
    assert mixed.row_list.tolist() == out.row_list.tolist()  # lists stay contiguous, same sizes
    assert mixed.row_item.tolist() != out.row_item.tolist()  # seed 3 moves rows within the first slate
    rows = {(int(i), float(y), int(p), float(s) if s == s else None)
            for i, y, p, s in zip(out.row_item, out.label, out.position, out.src_score["als"])}
    moved = {(int(i), float(y), int(p), float(s) if s == s else None)
             for i, y, p, s in zip(mixed.row_item, mixed.label, mixed.position, mixed.src_score["als"])}
    assert rows == moved  # each row's fields travel together
    assert out.subset(np.array([1])).position.tolist() == [0, 5]

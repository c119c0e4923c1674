"""ItemEventCounts: the gathers from per-item state answer exactly what a scan of the events
answers, for bounds before, inside and after an item's events, and state built by many small
ingests equals state built by one bulk add."""

from __future__ import annotations

import numpy as np

from winnow.features.item_counts import ItemEventCounts

N_ITEMS, N_CODES = 40, 5


def _events(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    items = rng.integers(0, N_ITEMS + 10, n)  # some beyond the initial table (items added later)
    ts = rng.integers(1_000, 1_200, n).astype(np.float64)  # many ties
    codes = np.column_stack([rng.integers(-1, 3, n), rng.integers(-1, 2, n) + 3])
    codes[codes[:, 1] == 2, 1] = -1
    return items, ts, codes


def test_counts_equal_a_scan_of_the_events() -> None:
    rng = np.random.default_rng(0)
    items, ts, codes = _events(rng, 3_000)
    state = ItemEventCounts(N_ITEMS, N_CODES)
    state.add(items, ts, codes)
    queried = np.r_[np.arange(-1, N_ITEMS + 14), rng.integers(0, N_ITEMS, 30)]
    cut = 0
    for t in [999.0, 1_000.0, 1_000.5, 1_100.0, 1_150.7, 1_199.0, 1_200.0, 5_000.0]:
        bounds = np.array([-np.inf, t - 50, t - 0.5, 1_050.0, t + 10])
        before, since = state.counts_before(queried, t, bounds)
        for j, it in enumerate(queried.tolist()):
            mine = ts[items == it]
            assert before[j] == (mine < t).sum(), (it, t)
            for b, lo in enumerate(bounds.tolist()):
                assert since[b, j] == (mine < t).sum() - (mine < lo).sum(), (it, t, lo)
            cut += int(len(mine) and mine.min() < t <= mine.max())
        cols = [0, 2, 4]
        peer = state.peer_before(queried, t, cols)
        for j, it in enumerate(queried.tolist()):
            for c, col in enumerate(cols):
                hit = (items == it) & (ts < t) & (codes == col).any(axis=1)
                assert peer[j, c] == hit.sum(), (it, t, col)
    assert cut > 20  # the search path (t inside an item's events) ran, not only the gathers


def test_small_ingests_equal_one_bulk_add() -> None:
    rng = np.random.default_rng(1)
    items, ts, codes = _events(rng, 1_500)
    bulk = ItemEventCounts(N_ITEMS, N_CODES)
    bulk.add(items, ts, codes)
    small = ItemEventCounts(N_ITEMS, N_CODES)
    for a in range(0, len(items), 7):  # the service's ingest: small batches, out of time order
        small.add(items[a:a + 7], ts[a:a + 7], codes[a:a + 7])
    for name in ("total", "oldest", "newest", "peer_total"):
        np.testing.assert_array_equal(getattr(small, name), getattr(bulk, name), err_msg=name)
    np.testing.assert_array_equal(small.events.values(), bulk.events.values())
    for code in range(N_CODES):
        np.testing.assert_array_equal(small.peer_events[code].values(), bulk.peer_events[code].values())

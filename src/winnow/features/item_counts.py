"""Per-item event counts kept ready for serving: a request's popularity and peer-group counts
mostly become array gathers instead of binary searches into a multi-million-key event index.

``ItemEventCounts`` holds every event as a packed (item, time) key in a ``SortedCounts`` (the
exact answer for any time bound) and, beside it, dense per-item state kept current by ``add``:
the item's event count, its oldest and newest event time (as packed time keys), and its event
count per peer code (one row per (peer group, code), int32 [codes, items]: a code's counts are
contiguous, so a bulk load updates each code's row in one pass). A count of an
item's events in ``[lo, t)`` is then read without searching whenever the bounds do not cut
through the item's events: ``t`` after its newest event -> its total; ``lo`` at or before its
oldest -> 0 below ``lo``, after its newest -> the total. Only the remaining (item, bound) pairs
are searched (``SortedCounts.count_in_group``); peer counts before ``t`` are the dense per-code
totals when ``t`` is after the item's newest event, else a search of that code's own
``SortedCounts``.
Every answer equals ``count_below`` on the full key set exactly (tests/unit/test_item_counts.py).

Items are dense indices in [0, GROUP_LIMIT); the dense arrays grow (doubling) to the largest
item seen, so items added after training are covered too.
"""

from __future__ import annotations

import math

import numpy as np

from winnow.features.counts import TIME_BITS, TIME_OFFSET, SortedCounts, pack

_NO_TIME_KEY = np.int64(-1)  # newest of an item without events (below every time key, >= 0)


_TIME_MAX = (1 << TIME_BITS) - 1


def time_key(times: np.ndarray | float) -> np.ndarray:
    """The time part of ``pack(group, times)`` (int64): comparable across groups."""
    return pack(0, times) & ((np.int64(1) << TIME_BITS) - 1)


def time_key1(t: float) -> int:
    """``time_key`` of one finite time, as a Python int (a request's time: no array round trip)."""
    return min(max(math.ceil(t) + TIME_OFFSET, 0), _TIME_MAX)


class ItemEventCounts:
    """Events of items (and of items by peer code) with dense per-item state; see module doc.

    ``n_codes``: the number of peer-code columns (0: no peer counts)."""

    def __init__(self, n_items: int, n_codes: int) -> None:
        self.events = SortedCounts(group_index=True)  # (item, time) keys: the exact fallback
        self.n_codes = int(n_codes)
        self.peer_events = [SortedCounts(group_index=True) for _ in range(self.n_codes)]
        size = max(int(n_items), 1)
        self.total = np.zeros(size, np.int64)
        self.oldest = np.full(size, np.iinfo(np.int64).max, np.int64)
        self.newest = np.full(size, _NO_TIME_KEY, np.int64)
        self.peer_total = np.zeros((self.n_codes, size), np.int32)

    def fork(self, n_codes: int, columns: np.ndarray, *, n_items: int = 0) -> ItemEventCounts:
        """An independent copy for a remapped feature state: the event multisets are shared
        until either side adds (``SortedCounts.fork``), the dense per-item arrays copied
        (O(items x codes), never O(events)), sized for ``n_items`` at least (so the new items'
        first events need no doubling). ``columns`` int64 [self.n_codes]: each peer-code
        column's position among the copy's ``n_codes`` (columns not listed start empty)."""
        twin = ItemEventCounts(max(int(n_items), len(self.total)), n_codes)
        twin.events = self.events.fork()
        size = len(self.total)
        twin.total[:size], twin.oldest[:size], twin.newest[:size] = self.total, self.oldest, self.newest
        for old, new in enumerate(np.asarray(columns, np.int64).tolist()):
            twin.peer_events[new] = self.peer_events[old].fork()
            twin.peer_total[new, :size] = self.peer_total[old]
        return twin

    def _grow(self, top: int) -> None:
        size = len(self.total)
        if top < size:
            return
        new = max(top + 1, 2 * size)
        # readers (no lock) bound items by len(total): every other array grows first
        self.oldest = np.r_[self.oldest, np.full(new - size, np.iinfo(np.int64).max, np.int64)]
        self.newest = np.r_[self.newest, np.full(new - size, _NO_TIME_KEY, np.int64)]
        self.peer_total = np.hstack([self.peer_total, np.zeros((self.n_codes, new - size), np.int32)])
        self.total = np.r_[self.total, np.zeros(new - size, np.int64)]

    def add(self, items: np.ndarray, ts: np.ndarray, codes: np.ndarray) -> None:
        """Fold events in (any order). ``items`` int64 [n] in [0, GROUP_LIMIT); ``ts`` float
        [n] whole seconds; ``codes`` int64 [n, m]: each event's peer-code columns (-1: none)."""
        if not len(items):
            return
        self.events.add(pack(items, ts))
        self._grow(int(items.max()))
        tk = time_key(ts)
        _count(self.total, items)
        np.minimum.at(self.oldest, items, tk)
        np.maximum.at(self.newest, items, tk)
        self.add_peers(items, ts, codes)

    def add_peers(self, items: np.ndarray, ts: np.ndarray, codes: np.ndarray) -> None:
        """Fold events into the per-peer-code counts only (``add`` does this too): for rebuilding
        the peer columns of events whose item totals are already counted (``codes`` as in ``add``)."""
        if not len(items):
            return
        self._grow(int(items.max()))
        for col in range(codes.shape[1] if codes.ndim == 2 else 0):
            c = codes[:, col]
            for code in np.flatnonzero(np.bincount(c[c >= 0])).tolist():  # the codes present (O(n))
                here = c == code
                self.peer_events[code].add(pack(items[here], ts[here]))
                _count(self.peer_total[code], items[here])

    def _gather(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(inside the table, total, oldest, newest) of each item; items outside have no events."""
        if not len(items) or (items.min() >= 0 and items.max() < len(self.total)):  # the common case
            return np.ones(len(items), bool), self.total[items], self.oldest[items], self.newest[items]
        inside = (items >= 0) & (items < len(self.total))
        safe = np.where(inside, items, 0)
        return (inside, np.where(inside, self.total[safe], 0),
                np.where(inside, self.oldest[safe], np.iinfo(np.int64).max),
                np.where(inside, self.newest[safe], _NO_TIME_KEY))

    def counts_before(self, items: np.ndarray, t: float, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(events of each item before ``t``: int64 [n]; events of each item in [bounds[j], t):
        int64 [len(bounds), n]). ``items`` int64 [n]; ``bounds`` float [b] (-inf allowed)."""
        items = np.asarray(items, np.int64)
        _, total, oldest, newest = self._gather(items)
        tk = time_key1(t) if math.isfinite(t) else time_key(t)
        before = total.copy()
        bk = time_key(np.asarray(bounds, np.float64))[:, None]     # [b, 1]
        below = np.where(bk <= oldest[None, :], 0, total[None, :])  # [b, n]; exact unless cut
        cut = np.flatnonzero(newest >= tk)      # t cuts through (or precedes) the item's events
        bj, ij = np.nonzero((bk > oldest[None, :]) & (bk <= newest[None, :]))
        if len(cut) or len(ij):  # one search: the item's start, then each cutting bound
            found = self._within(np.concatenate([items[cut], items[ij]]),
                                 np.concatenate([np.full(len(cut), t), np.asarray(bounds, np.float64)[bj]]))
            before[cut] = found[:len(cut)]
            below[bj, ij] = found[len(cut):]
        return before, before[None, :] - below

    def _within(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        """int64 [n]: events of ``items[i]`` before ``times[i]`` (binary searches)."""
        return self.events.count_in_group(pack(items, times))

    def peer_before(self, items: np.ndarray, t: float, codes: list[int]) -> np.ndarray:
        """int64 [n, len(codes)]: events of each item before ``t`` by users of each peer code."""
        items = np.asarray(items, np.int64)
        inside, _, _, newest = self._gather(items)
        rows = np.asarray(codes, np.int64)[:, None]
        out = self.peer_total[rows, np.where(inside, items, 0)[None, :]].T.astype(np.int64)
        out[~inside] = 0
        cut = np.flatnonzero(newest >= (time_key1(t) if math.isfinite(t) else time_key(t)))
        if len(cut):
            keys = pack(items[cut], t)
            for j, code in enumerate(codes):
                out[cut, j] = self.peer_events[code].count_in_group(keys)
        return out


def _count(target: np.ndarray, items: np.ndarray) -> None:
    """target[i] += occurrences of i in ``items`` (a view is updated in place): a bincount over
    the whole table for bulk loads, ``np.add.at`` for the service's small batches."""
    if len(items) * 64 > len(target):
        target += np.bincount(items, minlength=len(target)).astype(target.dtype)
    else:
        np.add.at(target, items, 1)

"""Sorted multisets of int64 keys that answer "how many keys are < q" for a whole array of q.

``SortedCounts`` is what the online feature state counts events with: a key packs a group id
(an item, a category code...) and a whole-second event time into one int64 (``pack``), so the
events of one group before time t are ``count_below(pack(group, t)) - count_below(pack(group,
-inf))``, and one ``np.searchsorted`` answers it for every candidate of a request at once.

Storage is a short list of sorted runs (a log-structured merge): an insert adds its keys as a
new run, and runs are merged while a run is at least ``1 / FACTOR`` of the one before it, so a
run is merged O(log_FACTOR n) times over its life (amortised O(log n) per key) and a query
searches at most ~log_FACTOR(n) runs. Large merges are numpy sorts of two sorted runs (linear,
GIL released); the largest happens once per ~n / FACTOR inserted keys.
"""

from __future__ import annotations

import numpy as np

TIME_BITS = 33                 # event times in [-2**32, 2**32) seconds: years 1834..2106
TIME_OFFSET = 1 << 32
GROUP_LIMIT = 1 << (63 - TIME_BITS)  # group ids in [0, 2**30)
FACTOR = 4


def pack(groups: np.ndarray | int, times: np.ndarray | float) -> np.ndarray:
    """int64 keys of (group, time): ordered by group, then time. Fractional ``times`` round UP,
    so with whole-second event times ``count_below(pack(g, t))`` counts the events at < t
    exactly for any real t. Times outside the representable range are clipped to it."""
    t = np.ceil(np.asarray(times, np.float64)) + TIME_OFFSET
    t = np.minimum(np.maximum(t, 0.0), float((1 << TIME_BITS) - 1))  # np.clip, without its overhead
    g = np.asarray(groups, np.int64)
    return (g << TIME_BITS) | t.astype(np.int64)


class SortedCounts:
    """A multiset of int64 keys; ``add`` inserts, ``count_below`` counts keys < each query."""

    def __init__(self, *, group_index: bool = False) -> None:
        """``group_index``: keep the largest run's group starts current on every ``add`` (for
        ``count_in_group``; else built on its first use). Costs 8 bytes per group id up to the
        largest group stored: for dense, small group ids (items)."""
        self._runs: list[np.ndarray] = []
        self._group_index = group_index
        self._starts: np.ndarray | None = None  # group g's first position in the largest run

    def _base_starts(self) -> np.ndarray:
        """int64 [G + 1]: where each group's keys start in the first (largest) run, and its
        length last; rebuilt (O(run), counting sort of the groups) when that run changed."""
        run = self._runs[0]
        if self._starts is None or self._starts[-1] != len(run):
            counts = np.bincount(run >> TIME_BITS) if len(run) else np.zeros(0, np.int64)
            self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return self._starts

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def fork(self) -> SortedCounts:
        """An independent multiset with the same keys, sharing the run arrays (no copy): runs
        are never changed in place (``add`` appends a run, a merge makes a new array), so
        either side's later inserts never show in the other. O(number of runs)."""
        twin = SortedCounts(group_index=self._group_index)
        twin._runs = list(self._runs)
        twin._starts = self._starts
        return twin

    def add(self, keys: np.ndarray) -> None:
        """Insert ``keys`` (int64 [m], any order)."""
        keys = np.sort(np.asarray(keys, np.int64))
        if not len(keys):
            return
        runs = self._runs
        runs.append(keys)
        while len(runs) > 1 and len(runs[-2]) <= FACTOR * len(runs[-1]):
            last = runs.pop()
            runs[-1] = np.sort(np.concatenate([runs[-1], last]), kind="stable")
        if self._group_index:
            self._base_starts()

    def count_below(self, queries: np.ndarray, *, presorted: bool = False) -> np.ndarray:
        """int64 [len(queries)] (a scalar query gives [1]): how many stored keys are < each
        query. ``presorted``: the caller promises ascending queries (saves a sort)."""
        q = np.atleast_1d(np.asarray(queries, np.int64))
        if not self._runs:
            return np.zeros(q.shape, np.int64)
        if presorted:
            found = np.zeros(len(q), np.int64)
            for run in self._runs:
                found += np.searchsorted(run, q, side="left")
            return found
        # sorted queries walk each run front to back: the queries of one group hit the same
        # cache lines (~2x fewer misses than random order on runs of 1M+ keys)
        order = np.argsort(q, kind="stable")
        qs = q[order]
        found = np.zeros(len(qs), np.int64)
        for run in self._runs:
            found += np.searchsorted(run, qs, side="left")
        out = np.empty(q.shape, np.int64)
        out[order] = found
        return out

    def count_in_group(self, queries: np.ndarray) -> np.ndarray:
        """int64 [len(queries)]: how many stored keys of each query's group are < it (keys with
        non-negative groups). Equals ``count_below(q) - count_below(pack(group of q, -inf))``
        with one search per run instead of two: the largest run's group starts are a gather."""
        q = np.atleast_1d(np.asarray(queries, np.int64))
        if not self._runs:
            return np.zeros(q.shape, np.int64)
        order = np.argsort(q, kind="stable")
        qs = q[order]
        starts = self._base_starts()
        found = np.searchsorted(self._runs[0], qs, side="left") - starts[np.minimum(qs >> TIME_BITS, len(starts) - 1)]
        if len(self._runs) > 1:
            heads = (qs >> TIME_BITS) << TIME_BITS  # pack(group, -inf): the group's first key
            for run in self._runs[1:]:
                found += np.searchsorted(run, qs, side="left") - np.searchsorted(run, heads, side="left")
        out = np.empty(q.shape, np.int64)
        out[order] = found
        return out

    def in_groups(self, groups: np.ndarray) -> np.ndarray:
        """Every stored key whose group is one of ``groups`` (int64, ascending, distinct), in no
        particular order: O(len(groups) x runs) searches plus the keys found."""
        g = np.asarray(groups, np.int64)
        found = []
        for run in self._runs:
            lo = np.searchsorted(run, g << TIME_BITS, side="left")
            hi = np.searchsorted(run, (g + 1) << TIME_BITS, side="left")
            lens = hi - lo
            offs = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
            found.append(run[np.repeat(lo, lens) + offs])
        return np.concatenate(found) if found else np.empty(0, np.int64)

    def values(self) -> np.ndarray:
        """Every key, sorted (for tests and debugging)."""
        return np.sort(np.concatenate(self._runs)) if self._runs else np.empty(0, np.int64)

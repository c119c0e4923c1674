"""One user's live feature state (``online.OnlineFeatureState`` keeps one per user index):
event times and items, decayed engagement per category and per creator, item age and numeric
attribute sums. Engagement tables are turned into sorted arrays per version for the
vectorised request path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Engagement:
    """count, decayed sum at ``ref`` time, reference time, last time."""

    count: int = 0
    decay: float = 0.0
    ref: float = -math.inf
    last: float = -math.inf

    def add(self, ts: float, half_life_s: float) -> None:
        self.count += 1
        if self.count == 1:
            self.decay, self.ref = 1.0, ts
        elif ts >= self.ref:
            self.decay = self.decay * math.exp2(-(ts - self.ref) / half_life_s) + 1.0
            self.ref = ts
        else:
            self.decay += math.exp2(-(self.ref - ts) / half_life_s)
        self.last = max(self.last, ts)

    def decay_at(self, t: float, half_life_s: float) -> float:
        return self.decay * math.exp2(-(t - self.ref) / half_life_s) if self.count else 0.0


class Table:
    """A user's engagements (category or creator -> ``Engagement``) as sorted arrays: keys
    int64 [m]; count, decay, ref, last float64 [m]. Rebuilt from the dict when it changed."""

    __slots__ = ("keys", "count", "decay", "ref", "last")

    def __init__(self, table: dict[int, Engagement]) -> None:
        keys = np.fromiter(table.keys(), np.int64, len(table))
        order = np.argsort(keys)
        es = list(table.values())
        self.keys = keys[order]
        self.count, self.decay, self.ref, self.last = (
            np.array([getattr(e, a) for e in es], np.float64)[order] for a in ("count", "decay", "ref", "last"))

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hit bool [len(keys)], position in this table where hit)."""
        if not len(self.keys):
            return np.zeros(len(keys), bool), np.zeros(len(keys), np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[pos] == keys, pos


@dataclass(slots=True)
class UserState:
    ts: list[float] = field(default_factory=list)      # sorted event times
    items: list[int] = field(default_factory=list)     # each event's item, aligned with ts
    cats: dict[int, Engagement] = field(default_factory=dict)
    creators: dict[int, Engagement] = field(default_factory=dict)
    age_sum: float = 0.0
    age_cnt: int = 0
    attr_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))  # float64 [n_attr]
    attr_cnt: np.ndarray = field(default_factory=lambda: np.zeros(0))
    version: int = 0                                   # bumped by every change (array caches)
    cache: tuple | None = None                         # (version, cats Table, creators Table, items)

    def copy(self) -> UserState:
        """An independent copy (a forked state's first write to a shared user). The engagement
        records are shared: the state replaces a record when it merges into it, never changes
        one in place, so copying the two dicts is enough."""
        return UserState(list(self.ts), list(self.items), dict(self.cats), dict(self.creators), self.age_sum,
                         self.age_cnt, self.attr_sum.copy(), self.attr_cnt.copy(), self.version, self.cache)

    def arrays(self) -> tuple[Table, Table, np.ndarray]:
        """The engagement tables and the history's items as arrays, cached per version."""
        if self.cache is None or self.cache[0] != self.version:
            self.cache = (self.version, Table(self.cats), Table(self.creators),
                          np.fromiter(self.items, np.int64, len(self.items)))
        return self.cache[1], self.cache[2], self.cache[3]


def merged_history(old_ts: list, old_items: list, ts: list, items: list) -> tuple[list, list]:
    """Merge two time-sorted (times, items) histories into one, times ascending, the items
    aligned (timsort merges the two runs in linear time; ties keep the older history first)."""
    if not old_ts:
        return ts, items
    if ts[0] >= old_ts[-1]:
        return old_ts + ts, old_items + items
    all_ts, all_items = old_ts + ts, old_items + items
    order = sorted(range(len(all_ts)), key=all_ts.__getitem__)
    return [all_ts[j] for j in order], [all_items[j] for j in order]

"""A user's online history in one bundle's item indices, cached per record revision.

``Runtime.view`` turns a ``UserRecord`` (external ids, newest first) into the arrays the
pipeline reads. Everything but the category affinity is independent of the request time, so
it is computed once per (user, record revision, catalog changes) and kept in a bounded LRU: a
user's next request reuses it until an event changes the record (``UserRecord.add`` bumps the
revision) or an item upserted into the catalog could change how its ids encode or categorise.
The cached arrays are read-only: a consumer writing into one fails instead of corrupting it. The affinity decays
with the request time and is computed per request from the cached arrays, by the same formula
as before (``affinity``), so a cached view equals a fresh one exactly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from winnow.pipeline.types import NO_CATEGORY, Catalog
from winnow.serving.state import UserRecord


@dataclass(frozen=True)
class HistoryArrays:
    """One record in a catalog's indices. pos_*: known items with positive weight, newest
    first (ALS fold-in, affinity); pos_codes: their category codes; recent_*: pos_* de-duplicated
    (first = newest occurrence); seen_*: every known item and its event time; newest: the
    record's newest timestamp (-1 when empty)."""

    pos_items: np.ndarray
    pos_weights: np.ndarray
    pos_ts: np.ndarray
    pos_codes: np.ndarray
    recent_items: np.ndarray
    recent_weights: np.ndarray
    purchased: np.ndarray
    seen_items: np.ndarray
    seen_at: np.ndarray
    newest: int


def history_arrays(rec: UserRecord, catalog: Catalog) -> HistoryArrays:
    """The record's arrays in ``catalog``'s indices (no caching)."""
    ids = catalog.item_ids
    recent = list(rec.recent)
    items = ids.encode([r[0] for r in recent], missing=-1)
    weights = np.asarray([r[2] for r in recent], np.float32)
    ts = np.asarray([r[3] for r in recent], np.int64)
    known = items >= 0
    positive = known & (weights > 0)
    pos_items, pos_w, pos_ts = items[positive], weights[positive], ts[positive]
    _, first = np.unique(pos_items, return_index=True)  # newest first, de-duplicated
    keep = np.sort(first)
    cats = catalog.category
    codes = np.full(len(pos_items), NO_CATEGORY, np.int64)
    inside = pos_items < len(cats)
    codes[inside] = cats[pos_items[inside]]
    purchased = ids.encode(sorted(rec.purchased), missing=-1)
    out = HistoryArrays(
        pos_items=pos_items, pos_weights=pos_w, pos_ts=pos_ts, pos_codes=codes,
        recent_items=pos_items[keep].astype(np.int32), recent_weights=pos_w[keep],
        purchased=purchased[purchased >= 0].astype(np.int32),
        seen_items=items[known].astype(np.int32), seen_at=ts[known],
        newest=int(ts.max()) if len(ts) else -1)
    for arr in vars(out).values():
        if isinstance(arr, np.ndarray):
            arr.setflags(write=False)
    return out


def affinity(h: HistoryArrays, now: float, half_life_s: float) -> dict[int, float]:
    """Category -> sum of weight * 0.5 ** (max(now - t, 0) / half_life_s) over the positive
    events in it, categories in order of first appearance (newest first), normalised so the
    values sum to min(1, total)."""
    keep = h.pos_codes != NO_CATEGORY
    if not keep.any():
        return {}
    age = np.maximum(now - h.pos_ts[keep].astype(np.float64), 0.0)
    contrib = h.pos_weights[keep].astype(np.float64) * np.power(0.5, age / half_life_s)
    uniq, first, inv = np.unique(h.pos_codes[keep], return_index=True, return_inverse=True)
    sums = np.bincount(inv, weights=contrib, minlength=len(uniq))
    order = np.argsort(first)
    out = dict(zip(uniq[order].tolist(), sums[order].tolist(), strict=True))
    total = sum(out.values())
    if total > 0:
        out = {c: v / total * min(1.0, total) for c, v in out.items()}
    return out


class HistoryCache:
    """Bounded LRU of ``HistoryArrays`` per user id, valid for one (record revision, catalog changes)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(0, int(capacity))
        self._entries: OrderedDict[str, tuple[int, int, HistoryArrays]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, rec: UserRecord, catalog: Catalog) -> HistoryArrays:
        """The record's arrays, from the cache when its revision and ``catalog.changes`` match."""
        changes = catalog.changes
        with self._lock:
            hit = self._entries.get(rec.user_id)
            if hit is not None and hit[0] == rec.revision and hit[1] == changes:
                self._entries.move_to_end(rec.user_id)
                return hit[2]
        arrays = history_arrays(rec, catalog)
        if self._capacity:
            with self._lock:
                self._entries[rec.user_id] = (rec.revision, changes, arrays)
                self._entries.move_to_end(rec.user_id)
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
        return arrays

    def forget(self, user_id: str) -> None:
        """Drop ``user_id``'s entry (after erasure)."""
        with self._lock:
            self._entries.pop(user_id, None)

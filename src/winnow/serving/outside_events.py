"""Positive events a ranker feature state skipped because the bundle does not know their user
or item: what a later bundle that knows them needs to fold in instead of replaying the log.

A ``FeatureFeed`` folds only events of users and items in its bundle's id maps. When it hands its
state to a bundle with larger id maps (``FeatureFeed.remapped``), the events that enter are
exactly the skipped ones whose user and item the new bundle knows: ``split`` returns them in the
new bundle's indices and keeps the rest (still unknown) for the next bundle. Ids are held once
each (interned in two ``IdMap``s), events as int arrays: 24 bytes per skipped event.

Bounded: past ``limit`` skipped events the record is dropped (``overflowed``) and the next
bundle replays the event log instead, so memory never grows with the log.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from winnow.core.ids import IdMap

MAX_OUTSIDE_EVENTS = 5_000_000


class OutsideEvents:
    """Skipped positive events: (user id, item id, time) with ids interned (see module doc)."""

    def __init__(self, *, limit: int = MAX_OUTSIDE_EVENTS) -> None:
        self.users = IdMap("user")
        self.items = IdMap("item")
        self.limit = int(limit)
        self.overflowed = False
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, user_keys: Sequence[str], users: np.ndarray, item_keys: Sequence[str], items: np.ndarray,
            ts: np.ndarray) -> None:
        """Record events j: user ``user_keys[users[j]]``, item ``item_keys[items[j]]``, time ``ts[j]``
        (whole seconds). Only the distinct keys used are interned."""
        if not len(ts) or self.overflowed:
            return
        if self._n + len(ts) > self.limit:
            self.overflowed, self._chunks, self._n = True, [], 0
            return
        u = self._intern(self.users, user_keys, np.asarray(users, np.int64))
        i = self._intern(self.items, item_keys, np.asarray(items, np.int64))
        self._chunks.append((u, i, np.asarray(ts, np.int64)))
        self._n += len(ts)

    @staticmethod
    def _intern(ids: IdMap, keys: Sequence[str], codes: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(codes, return_inverse=True)
        local = np.array([ids.add(keys[c]) for c in uniq.tolist()], np.int64)
        return local[inv]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._chunks:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
        return tuple(np.concatenate(c) for c in zip(*self._chunks, strict=True))  # type: ignore[return-value]

    def split(self, user_ids: IdMap, item_ids: IdMap) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray],
                                                                 OutsideEvents]:
        """(the events both of whose ids ``user_ids`` / ``item_ids`` know, as (users, items, ts)
        int64 arrays in those maps' indices, in recorded order; a new record of the others).
        O(recorded events + distinct ids); this record is left unchanged."""
        u, i, ts = self._arrays()
        nu = user_ids.encode(self.users.ids, missing=-1).astype(np.int64)[u] if len(u) else u
        ni = item_ids.encode(self.items.ids, missing=-1).astype(np.int64)[i] if len(i) else i
        enter = (nu >= 0) & (ni >= 0)
        rest = OutsideEvents(limit=self.limit)
        stay = ~enter
        if stay.any():
            rest.add(self.users.ids, u[stay], self.items.ids, i[stay], ts[stay])
        return (nu[enter], ni[enter], ts[enter]), rest

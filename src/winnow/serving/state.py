"""Online user state: what each user just did, updated the moment an event is acknowledged.

A user's record is built lazily from the store (``Store.user_events``, newest first) the first
time the user is needed, and kept in an LRU of ``capacity`` users; acknowledged events are
then applied to it in memory, so a restart (or eviction) rebuilds exactly the same record from
the store. Records hold external ids; the runtime maps them to the active bundle's indices,
so a bundle swap never invalidates them.

Per user: recent events (item, type, weight, time; newest first, at most ``history``), the
purchased set, an event count and a revision number bumped on every change (the ALS fold-in
cache of the runtime is keyed on it).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from winnow.core.config import EventsConfig
from winnow.data.store import Store

PURCHASE = "purchase"

# Adapter (remove once SQLiteStore.user_events joins on rowids): the store's own query joins
# ``ik.id - 1 = e.iid``, which makes SQLite scan the whole item_keys table for every event row
# (33 ms per user at 20k items, seconds at 1M). Same columns and order as Store.user_events.
_FAST_USER_EVENTS = (
    "SELECT uk.external, ik.external, t.external, e.value, e.ts, e.event_id, e.context "
    "FROM user_keys uk JOIN events e ON e.uid = uk.id - 1 "
    "JOIN item_keys ik ON ik.id = e.iid + 1 JOIN event_types t ON t.id = e.tid + 1 "
    "WHERE uk.external = ? ORDER BY e.ts DESC, e.seq DESC LIMIT ?")


def user_events(store: Store, user_id: str, *, limit: int) -> pd.DataFrame:
    """``store.user_events`` with a rowid-join fast path for the embedded SQLite store."""
    from winnow.data.sqlite_store import SQLiteStore

    if not isinstance(store, SQLiteStore):
        return store.user_events(user_id, limit=limit)
    try:
        rows = store._reader().execute(_FAST_USER_EVENTS, (str(user_id), int(limit))).fetchall()
    except sqlite3.Error:  # store schema changed under the adapter: use the contract method
        return store.user_events(user_id, limit=limit)
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "value", "timestamp",
                                        "event_id", "context"])
    frame["value"] = frame["value"].astype(np.float64)
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return frame


@dataclass
class UserRecord:
    """One user's online state (external ids)."""

    user_id: str
    recent: deque = field(default_factory=deque)  # (item_id, event_type, weight, timestamp), newest first
    purchased: set[str] = field(default_factory=set)
    event_count: int = 0
    revision: int = 0
    online_events: int = 0  # events applied since the record was built from the store

    def add(self, item_id: str, event_type: str, weight: float, timestamp: int) -> None:
        self.recent.appendleft((item_id, event_type, weight, int(timestamp)))
        if event_type == PURCHASE:
            self.purchased.add(item_id)
        self.event_count += 1
        self.online_events += 1
        self.revision += 1


class OnlineState:
    """LRU of UserRecords backed by the store.

    Args:
        store: where records are rebuilt from.
        events: the [events] config, for event weights.
        history: recent events kept per user.
        capacity: users kept in memory.
    """

    def __init__(self, store: Store, events: EventsConfig, *, history: int = 200,
                 capacity: int = 100_000) -> None:
        self._store = store
        self._events = events
        self._history = history
        self._capacity = capacity
        self._users: OrderedDict[str, UserRecord] = OrderedDict()
        self._lock = threading.RLock()
        self._applied = 0  # bumped by apply(); a load that overlapped an apply is redone

    def weight(self, event_type: str, value: float | None = None) -> float:
        """Event weight as training computes it (type weight; value transform ignored online)."""
        w = self._events.weights.get(event_type, self._events.default_weight)
        return float(w) if w is not None else 0.0

    def _load(self, user_id: str) -> UserRecord | None:
        frame = user_events(self._store, user_id, limit=self._history)
        if len(frame) == 0:
            return None
        rec = UserRecord(user_id, deque(maxlen=self._history))
        for item, etype, ts in zip(frame["item_id"].tolist(), frame["event_type"].tolist(),
                                   frame["timestamp"].tolist(), strict=True):
            rec.recent.append((item, etype, self.weight(etype), int(ts)))
            if etype == PURCHASE:
                rec.purchased.add(item)
        rec.event_count = len(frame)
        return rec

    def get(self, user_id: str) -> UserRecord | None:
        """The user's record (loading it from the store), or None for a user without events."""
        with self._lock:
            rec = self._users.get(user_id)
            if rec is not None:
                self._users.move_to_end(user_id)
                return rec
        for _ in range(10):
            gen = self._applied
            rec = self._load(user_id)
            with self._lock:
                existing = self._users.get(user_id)
                if existing is not None:  # another thread loaded it meanwhile
                    return existing
                if self._applied != gen:
                    continue  # events were applied while we read: read again
                if rec is None:
                    return None
                self._users[user_id] = rec
                while len(self._users) > self._capacity:
                    self._users.popitem(last=False)
                return rec
        return rec

    def apply(self, events: pd.DataFrame) -> None:
        """Apply acknowledged (already durable) events, in timestamp order.

        Users not in memory are skipped: their record is rebuilt from the store, which already
        holds these events, on next use.
        """
        if len(events) == 0:
            return
        order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
        cols = [events[c].tolist() for c in ("user_id", "item_id", "event_type", "value", "timestamp")]
        with self._lock:
            self._applied += 1
            for i in order:
                user, item, etype, value, ts = (c[i] for c in cols)
                rec = self._users.get(str(user))
                if rec is None:
                    continue
                if rec.recent.maxlen is None:
                    rec.recent = deque(rec.recent, maxlen=self._history)
                rec.add(str(item), str(etype), self.weight(str(etype), value), int(ts))

    def __len__(self) -> int:
        return len(self._users)

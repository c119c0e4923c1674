"""Online user state: what each user just did, updated the moment an event is acknowledged.

A user's record is built lazily from the store (``Store.user_events``, newest first) the first
time the user is needed, and kept in an LRU of ``capacity`` users; acknowledged events are
then applied to it in memory, so a restart (or eviction) rebuilds exactly the same record from
the store. Records hold external ids; the runtime maps them to the active bundle's indices,
so a bundle swap never invalidates them.

Per user: recent events (item, type, weight, time; newest first, at most ``history``), the
purchased set, an event count and a revision number bumped on every change (the ALS fold-in
cache of the runtime is keyed on it).

``OnlineState`` here is the ``memory://`` backend (one replica); ``online_redis.RedisOnlineState``
keeps the same records in Redis for several replicas; both satisfy
``online_base.OnlineStateBackend`` and tests/contract/test_online_state_contract.py.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from winnow.core.config import EventsConfig
from winnow.data.store import Store

PURCHASE = "purchase"
MAX_SCAN = 100_000  # events read once per user to find all purchases when the history is longer
_REVISIONS = itertools.count(1)  # process-wide: a (re)loaded record never reuses a revision

# Adapter (remove once SQLiteStore.user_events joins on rowids): the store's own query joins
# ``ik.id - 1 = e.iid``, which makes SQLite scan the whole item_keys table for every event row
# (33 ms per user at 20k items, seconds at 1M). Same columns and order as Store.user_events.
_FAST_USER_EVENTS = (
    "SELECT uk.external, ik.external, t.external, e.value, e.ts, e.event_id, e.context "
    "FROM user_keys uk JOIN events e ON e.uid = uk.id - 1 "
    "JOIN item_keys ik ON ik.id = e.iid + 1 JOIN event_types t ON t.id = e.tid + 1 "
    "WHERE uk.external = ? ORDER BY e.ts DESC, e.seq DESC LIMIT ?")


_USER_VERSION = ("SELECT max(e.seq) FROM events e "
                 "WHERE e.uid = (SELECT id - 1 FROM user_keys WHERE external = ?)")


def user_version(store: Store, user_id: str) -> int | None:
    """The store's latest event sequence number for the user (None: no events / unsupported).

    Used by several worker processes sharing one store: a cached record whose version differs
    was changed by another process and is rebuilt. Embedded SQLite store only (index-only read).
    """
    from winnow.data.sqlite_store import SQLiteStore

    if not isinstance(store, SQLiteStore):
        return None
    try:
        row = store._reader().execute(_USER_VERSION, (str(user_id),)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None or row[0] is None else int(row[0])


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
    revision: int = field(default_factory=lambda: next(_REVISIONS))
    store_version: int | None = None  # the store's latest event seq for this user at load

    def add(self, item_id: str, event_type: str, weight: float, timestamp: int) -> None:
        self.recent.appendleft((item_id, event_type, weight, int(timestamp)))
        if event_type == PURCHASE:
            self.purchased.add(item_id)
        self.event_count += 1
        self.revision = next(_REVISIONS)

    @property
    def newest_timestamp(self) -> int:
        return max((r[3] for r in self.recent), default=-1)


def record_from_store(store: Store, user_id: str, *, weight: Callable[[str], float],
                      history: int) -> UserRecord | None:
    """A user's record rebuilt from the store (None: no events). ``weight(event_type)``.

    Reads the newest ``history`` events; when there are more, one longer read (up to MAX_SCAN)
    finds every purchase and the full event count. Store errors propagate.
    """
    frame = user_events(store, user_id, limit=history)
    if len(frame) == 0:
        return None
    rec = UserRecord(user_id, deque(maxlen=history))
    for item, etype, ts in zip(frame["item_id"].tolist(), frame["event_type"].tolist(),
                               frame["timestamp"].tolist(), strict=True):
        rec.recent.append((item, etype, weight(etype), int(ts)))
        if etype == PURCHASE:
            rec.purchased.add(item)
    rec.event_count = len(frame)
    if len(frame) == history:  # truncated: purchases and the count need the older events
        full = user_events(store, user_id, limit=MAX_SCAN)
        rec.event_count = len(full)
        rec.purchased.update(full["item_id"][full["event_type"] == PURCHASE].tolist())
    return rec


class OnlineState:
    """LRU of UserRecords backed by the store: the ``memory://`` online-state backend.

    Args:
        store: where records are rebuilt from.
        events: the [events] config, for event weights.
        history: recent events kept per user.
        capacity: users kept in memory.
        shared: other processes write events for the same users (several workers): every hit
            is validated against the store's per-user version and rebuilt when it moved.
    """

    def __init__(self, store: Store, events: EventsConfig, *, history: int = 200,
                 capacity: int = 100_000, shared: bool = False) -> None:
        self.name = "memory"
        self._shared = shared
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
        version = user_version(self._store, user_id) if self._shared else None
        rec = record_from_store(self._store, user_id, weight=self.weight, history=self._history)
        if rec is not None:
            rec.store_version = version
        return rec

    def get(self, user_id: str) -> UserRecord | None:
        """The user's record (loading it from the store), or None for a user without events."""
        with self._lock:
            rec = self._users.get(user_id)
            if rec is not None:
                self._users.move_to_end(user_id)
        if rec is not None:
            if not self._shared or user_version(self._store, user_id) == rec.store_version:
                return rec
            with self._lock:  # changed by another process: rebuild from the store
                if self._users.get(user_id) is rec:
                    del self._users[user_id]
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
                if self._shared:  # the store is the truth: rebuild (with its version) on next use
                    del self._users[str(user)]
                    continue
                if rec.recent.maxlen is None:
                    rec.recent = deque(rec.recent, maxlen=self._history)
                rec.add(str(item), str(etype), self.weight(str(etype), value), int(ts))

    def forget(self, user_id: str) -> bool:
        """Drop the user's in-memory record (after erasure); True if one was held."""
        with self._lock:
            self._applied += 1  # a load racing with the erasure is redone (and finds nothing)
            return self._users.pop(str(user_id), None) is not None

    def __len__(self) -> int:
        return len(self._users)

    def ping(self) -> bool:
        """Always reachable (in-process)."""
        return True

    def close(self) -> None:
        """Nothing to release (the store is closed by its owner)."""

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
    frame = store.user_events(user_id, limit=history)
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
        full = store.user_events(user_id, limit=MAX_SCAN)
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
        self._writing = 0  # batches between begin() and apply()/cancel(): a load then is not kept

    def weight(self, event_type: str, value: float | None = None) -> float:
        """Event weight as training computes it (type weight; value transform ignored online)."""
        w = self._events.weights.get(event_type, self._events.default_weight)
        return float(w) if w is not None else 0.0

    def _load(self, user_id: str) -> UserRecord | None:
        version = self._store.user_version(user_id) if self._shared else None
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
            if not self._shared or self._store.user_version(user_id) == rec.store_version:
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
                if self._writing:  # a batch is between its store write and apply: do not keep
                    return rec
                self._users[user_id] = rec
                while len(self._users) > self._capacity:
                    self._users.popitem(last=False)
                return rec
        return rec

    def begin(self, user_ids: list[str]) -> None:
        """A batch is about to be written to the store: until its ``apply`` (or ``cancel``) a
        record loaded here is answered but not kept, since it may already hold the batch that
        ``apply`` would then add a second time."""
        with self._lock:
            self._writing += 1

    def cancel(self, user_ids: list[str]) -> None:
        """The store write announced by ``begin`` failed."""
        with self._lock:
            self._writing = max(self._writing - 1, 0)

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
            self._writing = max(self._writing - 1, 0)
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

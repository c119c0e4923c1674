"""The service's online state: the configured backend plus graceful degradation.

``open_online_state(config, store, metrics)`` picks the backend from ``[online] url``
(``memory://`` -> state.OnlineState, ``redis://`` -> online_redis.RedisOnlineState) and wraps it
in ``ResilientState``, which never lets a backend outage fail a request:

- Redis unreachable or slower than ``op_timeout_ms``: the user's history is read from the store
  (fallback ``online_state_store``); Redis is skipped for ``retry_s`` after each failure and a
  health thread pings it; when it answers again, the records of users whose events reached the
  store meanwhile are dropped from Redis (rebuilt from the store) before it serves again.
- store unreachable while rebuilding a record: no history (fallback ``online_state_unavailable``;
  the pipeline then serves the cold-start chain / popularity from the bundle).

Every failure counts in ``winnow_backend_errors_total{backend}`` and flips
``winnow_backend_up{backend}`` to 0 until the backend answers again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

from winnow.core.config import WinnowConfig
from winnow.core.errors import ConfigError, StoreError
from winnow.data.store import Store
from winnow.serving.online_base import BackendHealth, OnlineStateBackend, OnlineStateUnavailableError
from winnow.serving.state import OnlineState, UserRecord, record_from_store

log = logging.getLogger(__name__)

FROM_STORE = "online_state_store"  # Redis unavailable: history read from the store
UNAVAILABLE = "online_state_unavailable"  # no history could be read: cold-start chain
MAX_DIRTY = 1_000_000  # users remembered for invalidation while Redis is down


def open_backend(config: WinnowConfig, store: Store) -> OnlineStateBackend:
    """The backend named by ``[online] url`` (no connection is attempted here)."""
    online = config.online
    if online.url.startswith("memory:"):
        if config.serving.workers > 1 and not store.tracks_user_versions:
            raise ConfigError(f"[online] url = {online.url!r} with [serving] workers = {config.serving.workers}: "
                              "in-process state is shared between workers only over the embedded SQLite "
                              "store; with this store set [online] url = \"redis://host:port/db\"")
        return OnlineState(store, config.events, history=online.history,
                           capacity=config.serving.user_state_cache, shared=config.serving.workers > 1)
    from winnow.serving.online_redis import RedisOnlineState

    return RedisOnlineState(store, config.events, online)


class ResilientState:
    """Online state as the service uses it: ``lookup`` answers (record, fallback or None)."""

    def __init__(self, backend: OnlineStateBackend, store: Store, *, config: WinnowConfig,
                 metrics: Any, on_remote_events: Callable[[pd.DataFrame], Any] | None = None) -> None:
        """``on_remote_events``: called with event batches other replicas acknowledged (redis
        backend with ``[online] fanout``; online_events.EventFollower)."""
        self.backend = backend
        self.name = backend.name
        self._store = store
        self._history = config.online.history
        self._retry_s = config.online.retry_s
        self.store_health = BackendHealth("store", metrics, retry_s=config.online.retry_s)
        self.remote = (BackendHealth(backend.name, metrics, retry_s=config.online.retry_s)
                       if backend.name != "memory" else None)
        self._dirty: set[str] = set()
        self._lost = False  # more dirty users than MAX_DIRTY: some records may stay stale until TTL
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.follower: Any = None
        self._health = threading.Thread(target=self._watch, name="backend-health", daemon=True)
        self._health.start()
        if self.remote is not None and config.online.fanout and on_remote_events is not None:
            self.follower = _follower(config, backend, on_remote_events)

    # --- reads ---------------------------------------------------------------------------------
    def lookup(self, user_id: str) -> tuple[UserRecord | None, str | None]:
        """(the user's record or None, the fallback taken or None)."""
        remote = self.remote
        if remote is None or remote.available():
            try:
                if remote is None:
                    rec = self.backend.get(user_id)
                else:
                    if remote.recovering():
                        self._repair()
                    store_up = self.store_health.available()  # down: no rebuild attempt on a miss
                    rec = self.backend.get(user_id, rebuild=store_up)  # type: ignore[call-arg]
                    remote.succeeded()
                    if rec is None and not store_up:
                        return None, UNAVAILABLE
            except OnlineStateUnavailableError as exc:
                remote.failed(exc)  # type: ignore[union-attr]
            except StoreError as exc:
                self.store_health.failed(exc)
                return None, UNAVAILABLE
            else:
                return rec, None
        return self._from_store(user_id)

    def _from_store(self, user_id: str) -> tuple[UserRecord | None, str]:
        if not self.store_health.available():
            return None, UNAVAILABLE
        try:
            rec = record_from_store(self._store, user_id, weight=self.backend.weight, history=self._history)
        except StoreError as exc:
            self.store_health.failed(exc)
            return None, UNAVAILABLE
        self.store_health.succeeded()
        if rec is not None:  # content-keyed: the runtime's fold-in cache still hits
            rec.revision = hash((tuple(rec.recent), rec.event_count))
        return rec, FROM_STORE

    def get(self, user_id: str) -> UserRecord | None:
        """The user's record (degraded reads included), or None."""
        return self.lookup(user_id)[0]

    def backends(self) -> dict[str, str]:
        """Backend states for /readyz: ``store`` "up" | "down"; ``online`` "in-process" for the
        memory backend (nothing to lose), else "up" | "down". "down" from a failed call until
        the backend answers again (a request or the health thread's probe every ``retry_s``):
        the state ``winnow_backend_up`` exports; a backend nobody called since it died still
        reads "up"."""
        remote = self.remote
        return {"store": "up" if self.store_health.up else "down",
                "online": "in-process" if remote is None else ("up" if remote.up else "down")}

    # --- writes --------------------------------------------------------------------------------
    def begin(self, user_ids: list[str]) -> None:
        """Before the store write of these users' events (OnlineStateBackend.begin); Redis down:
        nothing to announce (its records are invalidated when it is back)."""
        remote = self.remote
        if remote is None:
            self.backend.begin(user_ids)
            return
        if remote.available():
            try:
                self.backend.begin(user_ids)
            except OnlineStateUnavailableError as exc:
                remote.failed(exc)

    def cancel(self, user_ids: list[str]) -> None:
        """The store write after ``begin`` failed (best effort: the count expires by itself)."""
        try:
            self.backend.cancel(user_ids)
        except OnlineStateUnavailableError as exc:
            if self.remote is not None:
                self.remote.failed(exc)

    def apply(self, events: pd.DataFrame) -> None:
        """Fold acknowledged (durable) events in; if Redis cannot take them, their users'
        records are invalidated once it is back (the store already holds the events)."""
        if len(events) == 0:
            return
        remote = self.remote
        if remote is None:
            self.backend.apply(events)
            return
        if remote.available():
            try:
                if remote.recovering():
                    self._repair()
                self.backend.apply(events)
                remote.succeeded()
                return
            except OnlineStateUnavailableError as exc:
                remote.failed(exc)
        self._mark_dirty(str(u) for u in events["user_id"].tolist())

    def forget(self, user_id: str) -> bool:
        """Drop the user's online record (after erasure); True if one was held. With Redis
        down, the record is deleted as soon as Redis answers again."""
        remote = self.remote
        if remote is None:
            return self.backend.forget(user_id)
        try:
            if not remote.available():
                raise OnlineStateUnavailableError("redis marked down")
            held = self.backend.forget(user_id)
            remote.succeeded()
            return held
        except OnlineStateUnavailableError as exc:
            remote.failed(exc)
            self._mark_dirty([user_id])
            return False

    # --- recovery ------------------------------------------------------------------------------
    def _mark_dirty(self, users: Any) -> None:
        with self._lock:
            for u in users:
                if len(self._dirty) >= MAX_DIRTY:
                    self._lost = True
                    break
                self._dirty.add(u)

    def _repair(self) -> None:
        """Invalidate in Redis every user whose events or erasure it missed (raises if it is
        still unreachable; the dirty set is kept then)."""
        with self._lock:
            users = sorted(self._dirty)
        if users:
            self.backend.invalidate(users)  # type: ignore[attr-defined]
            with self._lock:
                self._dirty.difference_update(users)
            log.warning("redis is back: %d users' records invalidated (rebuilt from the store)", len(users))
        if self._lost:
            log.error("more than %d users changed while redis was down: some records may be stale "
                      "until they expire ([online] ttl_s)", MAX_DIRTY)
            self._lost = False

    def _watch(self) -> None:
        """Every retry_s while a backend is down: probe it (store: one user read; Redis: PING,
        then repair) and mark it up when it answers."""
        while not self._stop.wait(self._retry_s):
            if not self.store_health.up:
                try:
                    self._store.get_user("winnow-health-probe")
                    self.store_health.succeeded()
                except StoreError:
                    pass
            if self.remote is None or self.remote.up:
                continue
            try:
                if not self.backend.ping():
                    continue
                self._repair()
            except OnlineStateUnavailableError:
                continue
            self.remote.succeeded()

    def close(self) -> None:
        self._stop.set()
        if self.follower is not None:
            self.follower.close()
        self.backend.close()


def _follower(config: WinnowConfig, backend: Any, on_events: Callable[[pd.DataFrame], Any]) -> Any:
    """An EventFollower on its own connection (XREAD blocks longer than the op timeout)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from winnow.serving.online_events import EventFollower

    online, block_ms = config.online, 1000
    client = redis.Redis.from_url(online.url, socket_connect_timeout=online.connect_timeout_ms / 1000,
                                  socket_timeout=(block_ms + online.op_timeout_ms) / 1000 + 1,
                                  retry=Retry(NoBackoff(), 0), client_name="winnow-follower")
    return EventFollower(client, backend.stream_key, backend.origin, on_events=on_events,
                         block_ms=block_ms, retry_s=online.retry_s).start()

"""Online user state in Redis, shared by every serving replica (``[online] url = "redis://..."``).

Keys of one user (``<p>`` = ``[online] key_prefix``, ``<id>`` = external user id):

- ``<p>u:<id>:ev``  LIST, newest first, at most ``history`` entries; each the JSON array
  ``[item_id, event_type, weight, timestamp]`` (external ids, seconds);
- ``<p>u:<id>:pur`` SET of every purchased item id (not only the recent ones);
- ``<p>u:<id>:m``   HASH ``{n: event count}``; it exists exactly when the record is loaded;
- ``<p>u:<id>:ep``  epoch counter, bumped when an event (or an erasure) arrives for a user whose
  record is not loaded;
- ``<p>u:<id>:wip`` event batches of this user being written: ``begin`` (before the store write)
  adds one, ``apply`` (after it) or ``cancel`` (the write failed) takes it back; expires after
  ``WIP_TTL_S`` (a writer that died in between).

A request reads a record in one round trip (a pipeline: HGET, LRANGE, SMEMBERS, GET epoch and
the TTL refreshes). A miss rebuilds the record from the store and publishes it with a Lua
script that writes only when the epoch is still the one read *before* the store read and no
other replica published meanwhile; otherwise it reads again. So an event acknowledged while a
replica was reading the store is never lost from the record (the same guarantee as the
in-process backend's load/apply generation check), and no record is published while a batch of
its user is between its store write and its ``apply`` (``wip`` > 0): such a snapshot may already
hold the batch, which ``apply`` would then push a second time (the request is answered from the
store read, unpublished). Acknowledged events are applied with one
Lua call per batch: pushed onto loaded records, or bumping the epoch of unloaded ones. Every
key of a user expires ``ttl_s`` after its last read or write; Redis losing data (restart,
eviction, expiry) only costs a rebuild from the store.

Errors talking to Redis (refused, timed out past ``op_timeout_ms``, reset) are raised as
``OnlineStateUnavailableError``; store errors during a rebuild propagate unchanged.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

import numpy as np
import orjson
import pandas as pd
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from winnow.core.config import EventsConfig, OnlineConfig
from winnow.data.store import Store
from winnow.serving.online_base import OnlineStateUnavailableError
from winnow.serving.state import PURCHASE, UserRecord, record_from_store

STREAM_COLUMNS = ("user_id", "item_id", "event_type", "value", "timestamp")
WIP_TTL_S = 60  # a writer that died between begin and apply holds its users' publishes this long at most

_PUSH = """
local function push(cmd, key, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 999, last)
    redis.call(cmd, key, unpack(ARGV, i, j))
    i = j + 1
  end
end
"""

# KEYS: ev, pur, m, ep, wip. ARGV: epoch read before the store read, ttl, n, n_recent,
# recent events (newest first)..., purchases...
#   -> 1 published, 0 already loaded, -1 epoch moved, -2 a batch is being written
_PUBLISH = _PUSH + """
local cur = redis.call('GET', KEYS[4]) or '0'
if cur ~= ARGV[1] then return -1 end
if tonumber(redis.call('GET', KEYS[5]) or '0') > 0 then return -2 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
local nr = tonumber(ARGV[4])
push('RPUSH', KEYS[1], 5, 4 + nr)
push('SADD', KEYS[2], 5 + nr, #ARGV)
redis.call('HSET', KEYS[3], 'n', ARGV[3])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ttl) end
end
return 1
"""

# KEYS: per user ev, pur, m, ep, wip; then the events stream when fanning out. ARGV: history, ttl,
# stream maxlen, origin, payload ('' = no fan-out), then per event (timestamp order):
# user number (1-based), packed event, item id, '1' if a purchase else '0'
_APPLY = """
local history, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local users = math.floor(#KEYS / 5)
local loaded, bumped = {}, {}
for u = 1, users do loaded[u] = redis.call('EXISTS', KEYS[5 * u - 2]) == 1 end
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[#KEYS], 'MAXLEN', '~', ARGV[3], '*', 'o', ARGV[4], 'e', ARGV[5])
end
local i = 6
while i <= #ARGV do
  local u = tonumber(ARGV[i])
  local b = 5 * (u - 1)
  if loaded[u] then
    redis.call('LPUSH', KEYS[b + 1], ARGV[i + 1])
    if ARGV[i + 3] == '1' then redis.call('SADD', KEYS[b + 2], ARGV[i + 2]) end
    redis.call('HINCRBY', KEYS[b + 3], 'n', 1)
  elseif not bumped[u] then
    redis.call('INCR', KEYS[b + 4])
    bumped[u] = true
  end
  i = i + 4
end
for u = 1, users do
  local b = 5 * (u - 1)
  if tonumber(redis.call('GET', KEYS[b + 5]) or '0') > 0 then redis.call('DECR', KEYS[b + 5]) end
  if loaded[u] then
    redis.call('LTRIM', KEYS[b + 1], 0, history - 1)
    if ttl > 0 then for k = 1, 3 do redis.call('EXPIRE', KEYS[b + k], ttl) end end
  elseif ttl > 0 then
    redis.call('EXPIRE', KEYS[b + 4], ttl)
  end
end
return 0
"""


def redis_client(online: OnlineConfig) -> redis.Redis:
    """A pooled client for ``online.url`` with the configured timeouts and no silent retries
    (a dead server must cost at most one timeout per request, then the fallback answers)."""
    return redis.Redis.from_url(
        online.url, socket_connect_timeout=online.connect_timeout_ms / 1000,
        socket_timeout=online.op_timeout_ms / 1000, retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False, health_check_interval=0, client_name="winnow")


class RedisOnlineState:
    """Per-user online state in Redis (see module docstring). Thread-safe (pooled client).

    Args:
        store: where a missing record is rebuilt from (the source of truth).
        events: the [events] config, for event weights.
        online: the [online] config (url, timeouts, key prefix, TTL, history length).
        client: an existing redis client (tests); default: one built from ``online``.
    """

    def __init__(self, store: Store, events: EventsConfig, online: OnlineConfig, *,
                 client: redis.Redis | None = None) -> None:
        self.name = "redis"
        self._store = store
        self._events = events
        self._history = online.history
        self._ttl = online.ttl_s
        self._prefix = online.key_prefix
        self._r = client if client is not None else redis_client(online)
        self._fanout = online.fanout
        self._maxlen = online.stream_maxlen
        self.origin = uuid.uuid4().hex  # this replica, in the events stream
        self._publish = self._r.register_script(_PUBLISH)
        self._apply = self._r.register_script(_APPLY)

    def weight(self, event_type: str, value: float | None = None) -> float:
        """Event weight as training computes it (type weight; value transform ignored online)."""
        w = self._events.weights.get(event_type, self._events.default_weight)
        return float(w) if w is not None else 0.0

    def keys(self, user_id: str) -> list[str]:
        """[ev, pur, m, ep] keys of one user."""
        base = f"{self._prefix}u:{user_id}"
        return [base + ":ev", base + ":pur", base + ":m", base + ":ep"]

    def wip_key(self, user_id: str) -> str:
        """The user's count of event batches between their store write and ``apply``."""
        return f"{self._prefix}u:{user_id}:wip"

    def begin(self, user_ids: list[str]) -> None:
        """Before a store write of these users' events: no record of theirs is published until
        ``apply`` (or ``cancel``) of that batch (module docstring)."""
        pipe = self._r.pipeline(transaction=False)
        for user in dict.fromkeys(user_ids):
            pipe.incr(self.wip_key(user))
            pipe.expire(self.wip_key(user), WIP_TTL_S)
        self._call(pipe.execute)

    def cancel(self, user_ids: list[str]) -> None:
        """The store write after ``begin`` failed: take its count back."""
        pipe = self._r.pipeline(transaction=False)
        for user in dict.fromkeys(user_ids):
            pipe.decr(self.wip_key(user))
        self._call(pipe.execute)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise OnlineStateUnavailableError(f"redis: {type(exc).__name__}: {exc}") from exc

    def _read(self, keys: list[str]) -> list[Any]:
        ev, pur, m, ep = keys
        pipe = self._r.pipeline(transaction=False)
        pipe.hget(m, "n")
        pipe.lrange(ev, 0, -1)
        pipe.smembers(pur)
        pipe.get(ep)
        if self._ttl > 0:
            for k in (ev, pur, m):
                pipe.expire(k, self._ttl)
        return self._call(pipe.execute)[:4]

    def _record(self, user_id: str, n: bytes, raw: list[bytes], purchased: set[bytes]) -> UserRecord:
        rows = orjson.loads(b"[" + b",".join(raw) + b"]")
        rec = UserRecord(user_id, deque(((r[0], r[1], float(r[2]), int(r[3])) for r in rows),
                                        maxlen=self._history),
                         {p.decode() for p in purchased}, int(n))
        rec.revision = hash((tuple(raw), rec.event_count))  # same content -> same fold-in vector
        return rec

    def get(self, user_id: str, *, rebuild: bool = True) -> UserRecord | None:
        """The user's record, rebuilt from the store (and published) on a miss; None without
        events (or on a miss with ``rebuild=False``: the store is known to be down)."""
        keys = self.keys(user_id)
        rec = None
        for _ in range(10):
            n, raw, purchased, epoch = self._read(keys)
            if n is not None:
                return self._record(user_id, n, raw, purchased)
            if not rebuild:
                return None
            rec = record_from_store(self._store, user_id, weight=self.weight, history=self._history)
            if rec is None:
                return None
            recent = [orjson.dumps(list(r)) for r in rec.recent]
            done = self._call(self._publish, keys=[*keys, self.wip_key(user_id)], args=[
                (epoch or b"0").decode(), self._ttl, rec.event_count, len(recent), *recent,
                *sorted(rec.purchased)])
            if done == 1:
                rec.revision = hash((tuple(recent), rec.event_count))
                return rec
            if done == -2:  # a batch of this user is being written: answer from the store read
                rec.revision = hash((tuple(recent), rec.event_count))
                return rec
        return rec  # kept changing under us: answer with the latest store read, unpublished

    def apply(self, events: pd.DataFrame) -> None:
        """Fold acknowledged (already durable) events in, in timestamp order (one round trip)."""
        if len(events) == 0:
            return
        order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
        cols = [events[c].tolist() for c in ("user_id", "item_id", "event_type", "value", "timestamp")]
        users: dict[str, int] = {}
        keys: list[str] = []
        payload = b""
        if self._fanout:  # the batch, for the other replicas' in-process feature state
            payload = orjson.dumps({c: events[c].tolist() for c in STREAM_COLUMNS},
                                   option=orjson.OPT_SERIALIZE_NUMPY)
        args: list[Any] = [self._history, self._ttl, self._maxlen, self.origin, payload]
        for i in order:
            user, item, etype, value, ts = (c[i] for c in cols)
            user, item, etype = str(user), str(item), str(etype)
            if user not in users:
                users[user] = len(users) + 1
                keys.extend([*self.keys(user), self.wip_key(user)])
            packed = orjson.dumps([item, etype, self.weight(etype, value), int(ts)])
            args.extend((users[user], packed, item, "1" if etype == PURCHASE else "0"))
        if self._fanout:
            keys.append(self.stream_key)
        self._call(self._apply, keys=keys, args=args)

    @property
    def stream_key(self) -> str:
        """The Redis Stream every replica's acknowledged event batches are appended to."""
        return f"{self._prefix}events"

    def forget(self, user_id: str) -> bool:
        """Delete the user's record (after erasure) and bump its epoch; True if one was held."""
        ev, pur, m, ep = self.keys(user_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.exists(m)
        pipe.delete(ev, pur, m)
        pipe.incr(ep)
        if self._ttl > 0:
            pipe.expire(ep, self._ttl)
        return bool(self._call(pipe.execute)[0])

    def invalidate(self, user_ids: list[str]) -> None:
        """Drop these users' records (rebuilt from the store on next use): events reached the
        store while Redis could not be updated."""
        if not user_ids:
            return
        pipe = self._r.pipeline(transaction=False)
        for user in user_ids:
            ev, pur, m, ep = self.keys(user)
            pipe.delete(ev, pur, m)
            pipe.incr(ep)
        self._call(pipe.execute)

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except redis.RedisError:
            return False

    def memory_usage(self, user_id: str) -> int:
        """Bytes Redis uses for the user's keys (``MEMORY USAGE``, all samples)."""
        return sum(int(self._call(self._r.memory_usage, k, samples=0) or 0) for k in self.keys(user_id))

    def close(self) -> None:
        self._r.close()

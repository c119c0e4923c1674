"""Event fan-out between replicas: each replica's acknowledged event batches reach the others.

Per-user records live in Redis (online_redis.py), but the learned ranker's live feature state
(features.online.OnlineFeatureState: item popularity windows, per-user category engagement...)
is an in-process structure replayed from the store when a bundle loads and fed every event the
replica ingests. So that replica B's features also count the events posted to replica A,
``RedisOnlineState.apply`` appends each batch to the Redis Stream ``<prefix>events`` (inside the
same Lua call, so no extra round trip) tagged with the writer's ``origin``, and every replica
runs an ``EventFollower`` that reads the stream (XREAD BLOCK) and hands batches from other
origins to ``on_events`` (the service feeds them to the active runtime's feature state).

A follower resumes after the last entry it read, so a short outage of its connection delays
batches without losing them; batches lost with Redis itself (a restart without persistence)
are not replayed (that replica's feature state catches up at its next bundle load, which
replays the store). Per-user records, purchases and exclusions never depend on this stream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, cast

import orjson
import pandas as pd
import redis

from winnow.serving.online_redis import STREAM_COLUMNS

log = logging.getLogger(__name__)
# XREAD's reply (bytes, the client does not decode): [(stream, [(entry id, {field: value})])]
StreamReply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


def decode_batch(payload: bytes) -> pd.DataFrame:
    """A stream entry's payload back to an event frame (STREAM_COLUMNS)."""
    data = orjson.loads(payload)
    frame = pd.DataFrame({c: data[c] for c in STREAM_COLUMNS})
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    frame["timestamp"] = frame["timestamp"].astype("int64")
    return frame


class EventFollower:
    """Background reader of the events stream (see module docstring).

    Args:
        client: a redis client whose socket timeout exceeds ``block_ms`` (XREAD blocks).
        stream: the stream key (``RedisOnlineState.stream_key``).
        origin: this replica's origin tag; its own batches are skipped.
        on_events: called with each other replica's batch (exceptions are logged, not raised).
        retry_s: pause after a Redis error before reading again.
    """

    def __init__(self, client: redis.Redis, stream: str, origin: str, *,
                 on_events: Callable[[pd.DataFrame], Any], block_ms: int = 1000, retry_s: float = 1.0) -> None:
        self._r = client
        self._stream = stream
        self._origin = origin.encode()
        self._on_events = on_events
        self._block_ms = block_ms
        self._retry_s = retry_s
        self._last: Any = None  # id of the last entry read; None: not yet positioned
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-follower", daemon=True)
        self.delivered = 0  # batches handed to on_events

    def start(self) -> EventFollower:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._last is None:  # start after the newest entry (older ones: in the store replay)
                    newest = cast(list[tuple[bytes, dict[bytes, bytes]]], self._r.xrevrange(self._stream, count=1))
                    self._last = newest[0][0] if newest else "0-0"
                got = cast(StreamReply | None,
                           self._r.xread({self._stream: self._last}, count=100, block=self._block_ms))
            except redis.RedisError as exc:
                log.debug("event follower: %s", exc)
                self._stop.wait(self._retry_s)
                continue
            for _, entries in got or []:
                for entry_id, fields in entries:
                    self._last = entry_id
                    if fields.get(b"o") == self._origin:
                        continue
                    try:
                        self._on_events(decode_batch(fields[b"e"]))
                        self.delivered += 1
                    except Exception:  # a bad batch must not stop the follower
                        log.exception("event follower: could not apply a batch from the stream")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(self._block_ms / 1000 + 2)
        self._r.close()

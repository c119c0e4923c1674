"""The online-state interface and backend health (circuit breaker + metrics).

Two backends implement ``OnlineStateBackend``: ``state.OnlineState`` (``memory://``, inside one
server process) and ``online_redis.RedisOnlineState`` (``redis://``, shared by replicas). Both
hold ``state.UserRecord`` values keyed by external user id, rebuilt from the store on a miss;
the store stays the source of truth (events are durable there before any backend sees them).
The contract both satisfy is tests/contract/test_online_state_contract.py.

``BackendHealth`` tracks one external dependency ("redis", "store"): after a failure the backend
is skipped for ``retry_s`` (requests take the fallback without waiting on a dead server), then
tried again; ``winnow_backend_up{backend}`` and ``winnow_backend_errors_total{backend}`` report it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import pandas as pd

from winnow.core.errors import WinnowError
from winnow.serving.state import UserRecord

log = logging.getLogger(__name__)


class OnlineStateUnavailableError(WinnowError):
    """The online-state backend cannot be reached (connection refused, timed out, reset)."""


class OnlineStateBackend(Protocol):
    """Per-user online state over a store. Every method may raise OnlineStateUnavailableError
    (remote backends) or the store's errors (a miss rebuilds from the store)."""

    name: str  # "memory" | "redis"

    def weight(self, event_type: str, value: float | None = None) -> float:
        """Online weight of an event type (the [events] type weight)."""

    def get(self, user_id: str) -> UserRecord | None:
        """The user's record (rebuilt from the store on a miss); None for a user without events."""

    def begin(self, user_ids: list[str]) -> None:
        """Before the store write of a batch of these users' events (the write is followed by
        ``apply`` of that batch, or ``cancel`` when it failed): a backend shared by processes
        publishes none of their records in between (a snapshot read then may hold the batch)."""

    def cancel(self, user_ids: list[str]) -> None:
        """The store write announced by ``begin`` failed."""

    def apply(self, events: pd.DataFrame) -> None:
        """Fold acknowledged (already durable) events (EVENT_COLUMNS) into loaded records."""

    def forget(self, user_id: str) -> bool:
        """Drop the user's record (after erasure); True if one was held."""

    def ping(self) -> bool:
        """True when the backend answers."""

    def close(self) -> None:
        """Release connections."""


class BackendHealth:
    """Up/down state of one backend with a retry delay, reported in Prometheus metrics.

    ``available()`` is False only while a recent failure's ``retry_s`` has not passed;
    ``failed()`` counts an error and opens that window; ``recovering()`` tells the caller the
    backend was down (repair work first), ``succeeded()`` closes the outage.
    """

    def __init__(self, name: str, metrics: Any, *, retry_s: float) -> None:
        self.name = name
        self._metrics = metrics
        self._retry_s = float(retry_s)
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()
        if metrics is not None:
            metrics.backend_up.labels(name).set(1)

    @property
    def up(self) -> bool:
        return not self._down

    def available(self) -> bool:
        return not self._down or time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._down
            self._down = True
            self._down_until = time.monotonic() + self._retry_s
        if self._metrics is not None:
            self._metrics.backend_errors.labels(self.name).inc()
            self._metrics.backend_up.labels(self.name).set(0)
        if first:
            log.error("backend %s unavailable, degrading (retry every %.1fs): %s", self.name, self._retry_s, exc)

    def recovering(self) -> bool:
        """True when the backend was down: the caller runs ``on_recover`` work before using it."""
        return self._down

    def succeeded(self) -> None:
        if not self._down:
            return
        with self._lock:
            if not self._down:
                return
            self._down = False
        if self._metrics is not None:
            self._metrics.backend_up.labels(self.name).set(1)
        log.warning("backend %s is back", self.name)

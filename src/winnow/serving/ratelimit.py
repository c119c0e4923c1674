"""Per-key rate limits: token buckets in each worker process (config: ``[rate_limit]``).

Every limited request is charged one token of the bucket (key, scope the route needs, "requests");
POST /v1/events is also charged one token per event of the bucket (key, scope, "events"). A
bucket holds at most ``*_burst`` tokens and refills at ``*_per_s``. A charge is admitted while
the bucket holds ``min(cost, burst)`` tokens and may take it below zero (so a batch larger than
the burst passes from a full bucket and the debt is paid by waiting); otherwise the answer is
429 with ``Retry-After`` = whole seconds until the bucket holds enough, counted in
``winnow_rate_limited_total{key, scope, kind}``.

Per worker, on purpose: a check is a dict lookup and a few float operations under a lock
(~1 us), no shared state and no round trip on the request path. With ``[serving] workers = N``
a key gets up to N times the configured rates (which worker takes a connection is the
kernel's choice). Requests without a key (auth off, or ``open_read``) are bucketed per client
address under the key name ``anonymous``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from winnow.core.config_limits import ANONYMOUS, RateLimitConfig, Rates
from winnow.serving.errors import ApiError
from winnow.serving.telemetry import Metrics


@dataclass
class TokenBucket:
    """``capacity`` tokens at most, refilled at ``rate`` per second (monotonic clock seconds)."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def take(self, cost: float, now: float) -> float:
        """Charge ``cost`` tokens: 0.0 if admitted, else the seconds until it would be."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(cost, self.capacity)
        if self.tokens >= need:
            self.tokens -= cost
            return 0.0
        return (need - self.tokens) / self.rate

    def idle(self, now: float) -> bool:
        """Full again: dropping it changes nothing (a new bucket starts full)."""
        return self.tokens + (now - self.stamp) * self.rate >= self.capacity


class RateLimiter:
    """The buckets of one worker process."""

    def __init__(self, config: RateLimitConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self._buckets: dict[tuple[str, str, str, str], TokenBucket] = {}
        self._rates: dict[tuple[str, str], Rates] = {}
        self._lock = threading.Lock()

    def charge(self, key: str | None, client: str, scope: str, kind: str, cost: float = 1.0) -> None:
        """Charge ``cost`` requests/events to ``key`` (None: anonymous, per ``client`` address) on
        a route needing ``scope``; ApiError 429 with Retry-After when the bucket is short."""
        name = key if key is not None else ANONYMOUS
        rates = self._rates.get((name, scope))
        if rates is None:
            rates = self._rates[(name, scope)] = self.config.rates(name, scope)
        rate, burst = ((rates.requests_per_s, rates.requests_burst) if kind == "requests"
                       else (rates.events_per_s, rates.events_burst))
        now = time.monotonic()
        ident = (name, client if key is None else "", scope, kind)
        with self._lock:
            bucket = self._buckets.get(ident)
            if bucket is None:
                if len(self._buckets) >= self.config.max_buckets:
                    self._evict(now)
                bucket = self._buckets[ident] = TokenBucket(rate, burst, burst, now)
            wait = bucket.take(cost, now)
        if wait > 0.0:
            self.metrics.rate_limited.labels(name, scope, kind).inc()
            after = max(1, math.ceil(wait))
            unit = "requests" if kind == "requests" else "events"
            raise ApiError(429, f"rate limit: key {name} may send {rate:g} {unit}/s (burst {burst:g}) to "
                                f"{scope}-scope routes on this worker; retry after {after} s",
                           headers={"Retry-After": str(after)})

    def _evict(self, now: float) -> None:
        """Drop every full bucket (caller holds the lock); if none is full, the oldest half."""
        full = [k for k, b in self._buckets.items() if b.idle(now)]
        if not full:
            full = sorted(self._buckets, key=lambda k: self._buckets[k].stamp)[: len(self._buckets) // 2]
        for k in full:
            del self._buckets[k]

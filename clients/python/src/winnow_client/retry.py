"""When and how long to wait before repeating a call.

What is repeated:
- connection refused / connect timeout (the request never left): every call;
- 429 and 503 (the server refused the call without acting on it): every call;
- a connection broken after sending, a read timeout, 502, 504 (the outcome is unknown): only
  calls that are safe to repeat: reads, replaces (PUT, PATCH, item upserts, activate) and
  events, which always carry an ``event_id`` so the server skips a copy it already stored.
  Not repeated then: a bundle rollback (twice would go back two versions) and a user erasure
  (a repeat after success would answer 404).
Waits grow exponentially with "equal jitter" (half fixed, half random) and are at least the
server's Retry-After; a Retry-After longer than ``max_retry_after`` is not waited for (the
RateLimitedError goes to the caller, who may queue the work).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import httpx

from winnow_client.errors import ApiError, TransportError, WinnowError, parse_retry_after

REFUSED_WITHOUT_ACTING = frozenset({429, 503})
OUTCOME_UNKNOWN = frozenset({502, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries in all (1 = never retry); waits ``backoff * 2**n`` (capped at
    ``max_backoff``, jittered) or Retry-After, whichever is longer."""

    max_attempts: int = 4
    backoff: float = 0.2
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError(f"invalid {self!r}: max_attempts >= 1 and non-negative waits")

    def wait(self, attempt: int) -> float:
        """The jittered wait after failed try number ``attempt`` (0-based)."""
        full = min(self.max_backoff, self.backoff * (2.0 ** attempt))
        return full / 2 + random.uniform(0, full / 2)

    def after_failure(self, exc: WinnowError, *, attempt: int, repeatable: bool) -> Optional[float]:
        """Seconds to wait before repeating a call whose try number ``attempt`` (0-based) raised
        ``exc``; None: do not repeat (give ``exc`` to the caller)."""
        if attempt + 1 >= self.max_attempts:
            return None
        if isinstance(exc, TransportError):
            never_sent = isinstance(exc.__cause__, (httpx.ConnectError, httpx.ConnectTimeout))
            return self.wait(attempt) if never_sent or repeatable else None
        if not isinstance(exc, ApiError):
            return None
        status = exc.status_code
        if status not in REFUSED_WITHOUT_ACTING and not (repeatable and status in OUTCOME_UNKNOWN):
            return None
        after = parse_retry_after(exc.headers.get("retry-after"))
        if after is not None and after > self.max_retry_after:
            return None
        return max(after or 0.0, self.wait(attempt))


NO_RETRY = RetryPolicy(max_attempts=1)

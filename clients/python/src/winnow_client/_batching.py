"""What the thread tracker and the asyncio tracker share: options, counters, event rows, and
what to do with a batch the server refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from winnow_client import errors
from winnow_client.retry import RetryPolicy


@dataclass(frozen=True)
class TrackerOptions:
    """How ``track()`` buffers and sends.

    A batch is sent when it holds ``batch_size`` events or its oldest event has waited
    ``flush_interval`` seconds. At most ``max_queue`` events wait; past that, ``overflow``
    "drop" (default) refuses the event at once (``track()`` returns False, counted in
    ``dropped``), "block" waits up to ``block_timeout`` seconds for room, then drops. A batch
    that fails is repeated per ``retry`` (every try at most ``send_timeout`` s); ``close()``
    waits at most its timeout (at interpreter exit ``exit_timeout``) and counts what is left as
    dropped."""

    batch_size: int = 500
    flush_interval: float = 1.0
    max_queue: int = 10_000
    overflow: Literal["drop", "block"] = "drop"
    block_timeout: float = 0.05
    retry: RetryPolicy = RetryPolicy(max_attempts=12, backoff=0.2, max_backoff=5.0)
    send_timeout: float = 10.0
    exit_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_queue < 1 or self.flush_interval <= 0:
            raise ValueError(f"invalid {self!r}: batch_size, max_queue >= 1 and flush_interval > 0")
        if self.overflow not in ("drop", "block") or self.block_timeout < 0:
            raise ValueError(f"invalid overflow {self.overflow!r} / block_timeout {self.block_timeout}")


@dataclass
class TrackerStats:
    """Counters since the tracker started (``stats()`` returns a copy).

    queued: accepted by ``track()``; sent: acknowledged by the server; written: of those, new to
    the server (the rest were copies it already held, by event_id); retried: batch tries
    repeated; dropped: refused by a full queue or left unsent at close; failed: refused by the
    server (a 422 row, a 401/403) or still failing after every retry; pending: queued and not
    yet settled (sent, dropped or failed)."""

    queued: int = 0
    sent: int = 0
    written: int = 0
    retried: int = 0
    dropped: int = 0
    failed: int = 0
    last_error: Optional[str] = None
    errors: list[str] = field(default_factory=list)  # the last few distinct failures

    @property
    def settled(self) -> int:
        """Queued events that are no longer pending."""
        return self.sent + self.failed + self.dropped_after_queue

    dropped_after_queue: int = 0  # part of ``dropped``: accepted, then given up at close

    @property
    def pending(self) -> int:
        return self.queued - self.settled

    def note(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        if self.last_error not in self.errors:
            self.errors = [*self.errors[-4:], self.last_error]


def event_row(user_id: str, item_id: str, event_type: str, *, value: Optional[float],
              timestamp: Optional[float], event_id: Optional[str], request_id: Optional[str],
              context: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON row of one tracked event: stamped now unless ``timestamp`` is given, with a
    random ``event_id`` unless one is given (so a repeated batch is never counted twice)."""
    row: dict[str, Any] = {"user_id": user_id, "item_id": item_id, "event_type": event_type,
                           "timestamp": time.time() if timestamp is None else timestamp,
                           "event_id": event_id or uuid.uuid4().hex}
    if value is not None:
        row["value"] = value
    if request_id is not None:
        row["request_id"] = request_id
    if context is not None:
        row["context"] = dict(context)
    return row


def refused_rows(exc: errors.ApiError, batch: list[dict[str, Any]]) -> Optional[list[dict[str, Any]]]:
    """After the server refused ``batch`` with ``exc``: the part worth sending again at once
    (422: every row the server did not name; 413: the first half, the caller re-queues the
    rest), or None when nothing of it can succeed (the whole batch fails)."""
    if isinstance(exc, errors.ValidationError) and exc.rows:
        bad = set(exc.rows)
        return [row for i, row in enumerate(batch) if i not in bad]
    if isinstance(exc, errors.PayloadTooLargeError) and len(batch) > 1:
        return batch[: len(batch) // 2]
    return None

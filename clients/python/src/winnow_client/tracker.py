"""``Tracker``: events queued by ``Client.track()`` and sent in batches by one daemon thread.

``track()`` takes a lock, appends to a deque and returns: it never does I/O and never waits
longer than ``TrackerOptions.block_timeout`` (0 with the default "drop" policy). The thread
sends a batch when it is full or its oldest event has waited ``flush_interval``; a failed batch
is repeated per the options' RetryPolicy with the same event ids. ``close()`` (also on leaving
the client's ``with`` block, and at interpreter exit through ``atexit``) flushes first.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

from winnow_client import _calls as calls
from winnow_client import errors
from winnow_client._batching import TrackerOptions, TrackerStats, event_row, refused_rows
from winnow_client.retry import NO_RETRY

if TYPE_CHECKING:
    from winnow_client.client import Client

__all__ = ["Tracker", "TrackerOptions", "TrackerStats"]
_LIVE: weakref.WeakSet[Tracker] = weakref.WeakSet()


class Tracker:
    """Batches events for one Client (see the module docstring)."""

    def __init__(self, client: Client, options: TrackerOptions) -> None:
        self.client = client
        self.options = options
        self._queue: deque[tuple[float, dict[str, Any]]] = deque()  # (monotonic time queued, row)
        self._cond = threading.Condition()
        self._stats = TrackerStats()
        self._flush_to = 0  # send without waiting for flush_interval until this many are settled
        self._closing = False
        self._give_up_at = float("inf")  # close(): monotonic time past which nothing is retried
        self._thread = threading.Thread(target=self._run, name="winnow-tracker", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def track(self, user_id: str, item_id: str, event_type: str, *, value: Optional[float] = None,
              timestamp: Optional[float] = None, event_id: Optional[str] = None,
              request_id: Optional[str] = None, context: Optional[Mapping[str, Any]] = None) -> bool:
        """Queue one event; False when it was dropped (queue full, or the tracker is closed)."""
        row = event_row(user_id, item_id, event_type, value=value, timestamp=timestamp, event_id=event_id,
                        request_id=request_id, context=context)
        opts = self.options
        with self._cond:
            if len(self._queue) >= opts.max_queue and opts.overflow == "block" and not self._closing:
                self._cond.wait_for(lambda: len(self._queue) < opts.max_queue or self._closing,
                                    timeout=opts.block_timeout)
            if len(self._queue) >= opts.max_queue or self._closing:
                self._stats.dropped += 1
                return False
            self._queue.append((time.monotonic(), row))
            self._stats.queued += 1
            if len(self._queue) >= opts.batch_size:
                self._cond.notify_all()
        return True

    def stats(self) -> TrackerStats:
        with self._cond:
            return TrackerStats(**{**self._stats.__dict__, "errors": list(self._stats.errors)})

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send what is queued now and wait until it is settled; False if ``timeout`` passed first."""
        with self._cond:
            target = self._stats.queued
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._stats.settled >= target or not self._thread.is_alive(),
                                       timeout=timeout) and self._stats.settled >= target

    def close(self, timeout: Optional[float] = 10.0) -> None:
        """Flush for at most ``timeout`` seconds, stop the thread; what is left counts as dropped.
        A try in flight at the deadline is let finish (at most ``send_timeout`` more)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._give_up_at = time.monotonic() + (timeout if timeout is not None else float("inf"))
            self._flush_to = self._stats.queued
            self._cond.notify_all()
        self._thread.join(timeout)
        self._thread.join(self.options.send_timeout)  # no new try starts past the deadline
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
            self._stats.dropped += left
            self._stats.dropped_after_queue += left
            self._cond.notify_all()
        _LIVE.discard(self)

    # --- the sender thread ----------------------------------------------------------------------
    def _next_batch(self) -> Optional[list[dict[str, Any]]]:
        """Wait for a full batch, the oldest event's deadline, a flush or close; None: stop."""
        opts = self.options
        with self._cond:
            while True:
                if not self._queue:
                    if self._closing:
                        return None
                    self._cond.wait()
                    continue
                urgent = self._closing or self._flush_to > self._stats.settled
                wait = self._queue[0][0] + opts.flush_interval - time.monotonic()
                if urgent or len(self._queue) >= opts.batch_size or wait <= 0:
                    break
                self._cond.wait(timeout=wait)
            batch = [self._queue.popleft()[1] for _ in range(min(opts.batch_size, len(self._queue)))]
            self._cond.notify_all()  # room for blocked track() calls
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._deliver(batch)

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send ``batch`` until it is acknowledged, refused or given up (counted either way)."""
        policy, attempt = self.options.retry, 0
        while batch:
            if time.monotonic() > self._give_up_at:  # close() stopped waiting: do not start a try
                self._settle(dropped=len(batch))
                return
            try:
                out = self.client.send(calls.send_events(batch), timeout=self.options.send_timeout, retry=NO_RETRY)
            except RuntimeError as exc:  # the client was closed under this try (close() timed out)
                with self._cond:
                    self._stats.note(exc)
                self._settle(dropped=len(batch))
                return
            except errors.WinnowError as exc:
                with self._cond:
                    self._stats.note(exc)
                rest = refused_rows(exc, batch) if isinstance(exc, errors.ApiError) else None
                if rest is not None:  # 422 rows / 413: settle the refused part, send the rest now
                    if isinstance(exc, errors.ValidationError):
                        self._settle(failed=len(batch) - len(rest))
                    else:
                        self._deliver(batch[len(rest):])
                    batch = rest
                    continue
                wait = policy.after_failure(exc, attempt=attempt, repeatable=True)
                if wait is None:
                    self._settle(failed=len(batch))
                    return
                wake_at = time.monotonic() + wait
                with self._cond:  # close() may set a give-up time before wake_at: stop waiting then
                    self._cond.wait_for(lambda: time.monotonic() >= wake_at or self._give_up_at < wake_at,
                                        timeout=wait)
                    gave_up = self._give_up_at < wake_at
                    self._stats.retried += 0 if gave_up else 1
                if gave_up:
                    self._settle(dropped=len(batch))
                    return
                attempt += 1
                continue
            self._settle(sent=len(batch), written=out.written)
            return

    def _settle(self, *, sent: int = 0, written: int = 0, failed: int = 0, dropped: int = 0) -> None:
        with self._cond:
            s = self._stats
            s.sent += sent
            s.written += written
            s.failed += failed
            s.dropped += dropped
            s.dropped_after_queue += dropped
            self._cond.notify_all()


@atexit.register
def _flush_at_exit() -> None:
    """Interpreter exit: flush every live tracker for at most its ``exit_timeout``."""
    for tracker in list(_LIVE):
        tracker.close(tracker.options.exit_timeout)

"""``AsyncTracker``: events queued by ``AsyncClient.track()`` and sent in batches by one asyncio task.

The same contract as the thread ``Tracker`` (options, counters, retries with the same event
ids), on the caller's event loop: ``await track()`` appends to a deque and returns, waiting at
most ``block_timeout`` for room (policy "block"); the task starts with the first event.
``aclose()`` (also leaving ``async with``) flushes. At interpreter exit the loop is usually
gone, so events still queued then are sent by a blocking ``Client`` from an ``atexit`` hook.
"""

from __future__ import annotations

import asyncio
import atexit
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
    from winnow_client.async_client import AsyncClient

_LIVE: weakref.WeakSet[AsyncTracker] = weakref.WeakSet()


class AsyncTracker:
    """Batches events for one AsyncClient (see the module docstring)."""

    def __init__(self, client: AsyncClient, options: TrackerOptions) -> None:
        self.client = client
        self.options = options
        self._queue: deque[tuple[float, dict[str, Any]]] = deque()
        self._changed = asyncio.Condition()
        self._stats = TrackerStats()
        self._flush_to = 0
        self._closing = False
        self._task: Optional[asyncio.Task[None]] = None
        self._inflight = 0  # events of the batch being delivered (dropped if aclose() cancels it)
        _LIVE.add(self)

    async def track(self, user_id: str, item_id: str, event_type: str, *, value: Optional[float] = None,
                    timestamp: Optional[float] = None, event_id: Optional[str] = None,
                    request_id: Optional[str] = None, context: Optional[Mapping[str, Any]] = None) -> bool:
        """Queue one event; False when it was dropped (queue full, or the tracker is closed)."""
        row = event_row(user_id, item_id, event_type, value=value, timestamp=timestamp, event_id=event_id,
                        request_id=request_id, context=context)
        opts = self.options
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="winnow-tracker")
        async with self._changed:
            if len(self._queue) >= opts.max_queue and opts.overflow == "block" and not self._closing:
                try:
                    await asyncio.wait_for(self._changed.wait_for(
                        lambda: len(self._queue) < opts.max_queue or self._closing), opts.block_timeout)
                except asyncio.TimeoutError:
                    pass
            if len(self._queue) >= opts.max_queue or self._closing:
                self._stats.dropped += 1
                return False
            self._queue.append((time.monotonic(), row))
            self._stats.queued += 1
            self._changed.notify_all()
        return True

    def stats(self) -> TrackerStats:
        return TrackerStats(**{**self._stats.__dict__, "errors": list(self._stats.errors)})

    async def flush(self, timeout: Optional[float] = None) -> bool:
        """Send what is queued now and wait until it is settled; False if ``timeout`` passed first."""
        async with self._changed:
            target = self._stats.queued
            self._flush_to = max(self._flush_to, target)
            self._changed.notify_all()
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._stats.settled >= target), timeout)
            except asyncio.TimeoutError:
                return False
        return True

    async def aclose(self, timeout: Optional[float] = 10.0) -> None:
        """Flush for at most ``timeout`` seconds, stop the task; what is left counts as dropped."""
        if self._closing:
            return
        if self._task is not None:
            await self.flush(timeout)
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._stats.dropped += self._inflight
        self._stats.dropped_after_queue += self._inflight
        self._inflight = 0
        self._drop_queued()
        _LIVE.discard(self)

    def _drop_queued(self) -> None:
        left = len(self._queue)
        self._queue.clear()
        self._stats.dropped += left
        self._stats.dropped_after_queue += left

    # --- the sender task --------------------------------------------------------------------------
    async def _next_batch(self) -> list[dict[str, Any]]:
        opts = self.options
        async with self._changed:
            while True:
                if not self._queue:
                    await self._changed.wait()
                    continue
                urgent = self._flush_to > self._stats.settled
                wait = self._queue[0][0] + opts.flush_interval - time.monotonic()
                if urgent or len(self._queue) >= opts.batch_size or wait <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            batch = [self._queue.popleft()[1] for _ in range(min(opts.batch_size, len(self._queue)))]
            self._changed.notify_all()
            return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            self._inflight = len(batch)
            await self._deliver(batch)
            self._inflight = 0

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send ``batch`` until it is acknowledged, refused or given up (counted either way)."""
        policy, attempt = self.options.retry, 0
        while batch:
            try:
                out = await self.client.send(calls.send_events(batch), timeout=self.options.send_timeout,
                                             retry=NO_RETRY)
            except errors.WinnowError as exc:
                self._stats.note(exc)
                rest = refused_rows(exc, batch) if isinstance(exc, errors.ApiError) else None
                if rest is not None:
                    if isinstance(exc, errors.ValidationError):
                        await self._settle(failed=len(batch) - len(rest))
                    else:
                        await self._deliver(batch[len(rest):])
                    batch = rest
                    continue
                wait = policy.after_failure(exc, attempt=attempt, repeatable=True)
                if wait is None:
                    await self._settle(failed=len(batch))
                    return
                self._stats.retried += 1
                await asyncio.sleep(wait)  # aclose() cancels the task here once its flush timed out
                attempt += 1
                continue
            await self._settle(sent=len(batch), written=out.written)
            return

    async def _settle(self, *, sent: int = 0, written: int = 0, failed: int = 0) -> None:
        async with self._changed:
            s = self._stats
            s.sent += sent
            s.written += written
            s.failed += failed
            self._changed.notify_all()


@atexit.register
def _send_left_at_exit() -> None:
    """Interpreter exit with events still queued (the loop is gone): send them with a blocking
    Client for at most ``exit_timeout`` seconds."""
    from winnow_client.client import Client

    for tracker in list(_LIVE):
        if not tracker._queue:
            continue
        rows = [row for _, row in tracker._queue]
        tracker._queue.clear()
        client = tracker.client
        with Client(client.base_url, api_key=client.api_key, timeout=tracker.options.send_timeout,
                    retry=tracker.options.retry) as sync:
            deadline = time.monotonic() + tracker.options.exit_timeout
            for start in range(0, len(rows), tracker.options.batch_size):
                part = rows[start:start + tracker.options.batch_size]
                if time.monotonic() > deadline:
                    tracker._stats.dropped += len(part)
                    tracker._stats.dropped_after_queue += len(part)
                    continue
                try:
                    out = sync.send(calls.send_events(part))
                    tracker._stats.sent += len(part)
                    tracker._stats.written += out.written
                except errors.WinnowError as exc:
                    tracker._stats.note(exc)
                    tracker._stats.failed += len(part)

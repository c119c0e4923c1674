"""Impression log writer: served slates go to ``Store.log_impressions`` off the request path.

A background thread drains a bounded queue in batches (one store transaction per batch); after
the first impression of a batch it lingers ``linger_s`` (unless a full batch is already queued or
``close()`` is called), then takes what is queued, so a steady stream of
requests costs a few transactions per second instead of one (each with its fsync) per request. A
failed write is retried with back-off (counted in winnow_impression_failures_total and
logged); nothing is dropped unless the queue is full, which is counted and logged too.
``close()`` drains what is queued before returning (called at shutdown).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from winnow.data.store import Store
from winnow.serving.telemetry import Metrics

log = logging.getLogger(__name__)


class ImpressionWriter:
    def __init__(self, store: Store, metrics: Metrics, *, batch: int = 256, capacity: int = 100_000,
                 linger_s: float = 0.05) -> None:
        self._store = store
        self._metrics = metrics
        self._batch = batch
        self._linger = linger_s
        self._pending = 0  # queued or being written; flush() waits for 0
        self._done = threading.Condition()
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="impression-writer", daemon=True)
        self._stopping = threading.Event()
        self._thread.start()

    def put(self, impression: dict[str, Any]) -> None:
        """Queue one impression (never blocks the request for long)."""
        try:
            with self._done:
                self._pending += 1
            self._q.put(impression, timeout=0.05)
            self._metrics.queue.set(self._q.qsize())
        except queue.Full:
            self._settle(1)
            self._metrics.impressions_dropped.inc()
            log.error("impression queue full (%d): dropped impression %s", self._q.maxsize,
                      impression.get("request_id"))

    def _write(self, batch: list[dict[str, Any]]) -> None:
        delay = 0.05
        while True:
            try:
                self._store.log_impressions(batch)
                self._metrics.impressions.inc(len(batch))
                return
            except Exception as exc:  # noqa: BLE001 - keep retrying, loudly
                self._metrics.impression_failures.inc()
                log.error("writing %d impressions failed (%s); retrying in %.2fs", len(batch), exc, delay)
                if self._stopping.is_set() and delay > 1.0:
                    log.error("giving up on %d impressions at shutdown", len(batch))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _settle(self, n: int) -> None:
        with self._done:
            self._pending -= n
            self._done.notify_all()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            batch = [item]
            stop = False
            # linger once for the batch (woken early by close()), then take what is queued: one
            # wake-up per batch instead of one per impression, which costs the request threads
            # GIL hand-offs at hundreds of requests per second
            if self._q.qsize() < self._batch - 1:
                self._stopping.wait(self._linger)
            while len(batch) < self._batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self._write(batch)
            finally:
                self._settle(len(batch))
            self._metrics.queue.set(self._q.qsize())
            if stop:
                return

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every impression put so far is written (or given up); True when done."""
        with self._done:
            return self._done.wait_for(lambda: self._pending <= 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Drain and stop the writer thread."""
        self._stopping.set()
        self._q.put(None)
        self._thread.join(timeout)

"""Connections of the PostgreSQL store: a thread-safe pool, one transaction per call, server
errors turned into StoreError / StoreUnavailableError, and a watchdog bounding each call.

Why a watchdog: libpq waits forever for an answer from a server that is stopped (SIGSTOP), hung,
or behind a network partition (the peer's kernel keeps ACKing, so TCP keepalives and
``tcp_user_timeout`` do not fire). A call that outlives its deadline gets its socket shut down
from the watchdog thread; libpq then fails the call at once, the pool discards the connection,
and the caller gets StoreUnavailableError ("no answer within N s"). Deadlines: ``op_timeout``
(URL parameter, default 30 s) for ordinary calls, plus one second per 10,000 rows for batch
writes; bulk reads (``read_events``, whole-catalog reads) are not bounded.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from winnow.core.errors import StoreError, StoreUnavailableError
from winnow.data import postgres_schema as pgs

_RETRIES = 3


class Watchdog:
    """One daemon thread that shuts down the sockets of calls past their deadline."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._due: dict[int, tuple[float, int, list[bool]]] = {}  # token -> (deadline, fd, fired)
        self._token = 0
        self._stop = False
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, fd: int, seconds: float | None) -> Iterator[list[bool]]:
        """Guard a call on socket ``fd``; yields a flag list, ``[True]`` once it was cut off."""
        fired = [False]
        if seconds is None or seconds <= 0:
            yield fired
            return
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="winnow-pg-watchdog", daemon=True)
                self._thread.start()
            self._token += 1
            token = self._token
            self._due[token] = (time.monotonic() + seconds, fd, fired)
            self._cv.notify()
        try:
            yield fired
        finally:
            with self._cv:  # under the lock: the watchdog never touches fd after this returns
                self._due.pop(token, None)

    def _run(self) -> None:
        with self._cv:
            while not self._stop:
                now = time.monotonic()
                for token, (deadline, fd, fired) in list(self._due.items()):
                    if deadline <= now:
                        fired[0] = True
                        del self._due[token]
                        try:  # shutdown acts on the socket itself, so a dup'ed fd reaches it
                            with socket.socket(fileno=os.dup(fd)) as sock:
                                sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                nxt = min((d for d, _, _ in self._due.values()), default=None)
                self._cv.wait(None if nxt is None else max(nxt - now, 0.01))

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()


class Connections:
    """Pool + transactions for one database URL (see module docstring).

    Raises ConfigError for a bad URL, StoreUnavailableError when the server cannot be reached.
    """

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        conninfo, pool, self.server = pgs.parse_url(url)
        self.op_timeout = pool["op_timeout"]
        self._closed = False
        self._lock = threading.Lock()
        self._watchdog = Watchdog()
        self._pool = ConnectionPool(conninfo, min_size=pool["pool_min"], max_size=pool["pool_max"],
                                    timeout=pool["pool_timeout"], open=False, kwargs={"autocommit": True},
                                    configure=self._configure, check=self._check, name=f"winnow-{self.server}")
        try:
            self._pool.open(wait=True, timeout=pool["pool_timeout"])
        except psycopg.Error as exc:
            self.close()
            raise self.error(exc, write=False, committing=False, cut_off=False) from exc

    @staticmethod
    def _configure(conn: Any) -> None:
        # acknowledged = flushed WAL, whatever the server default; JIT only slows short queries
        conn.execute("SET synchronous_commit = on; SET jit = off")

    def _check(self, conn: Any) -> None:
        """Pool health check before each use (a server restart leaves dead connections)."""
        with self._watchdog.watch(conn.fileno(), self.op_timeout):
            conn.execute("")

    def error(self, exc: Exception, *, write: bool, committing: bool, cut_off: bool) -> StoreError:
        """The StoreError (or StoreUnavailableError) that ``exc`` means, naming the server."""
        reason = f"no answer within {self.op_timeout:g} s" if cut_off else pgs.unavailable_reason(exc)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if reason is None:
            return StoreError(f"PostgreSQL {self.server}: {detail}" + ("; nothing was written" if write else ""))
        if committing:
            tail = ("; the connection broke during COMMIT, so the write may or may not have been applied "
                    "(retrying events with the same event_id is safe)")
        else:
            tail = "; nothing was written" if write else ""
        return StoreUnavailableError(f"PostgreSQL {self.server} unavailable ({reason}): {detail}{tail}")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store postgresql {self.server} is closed")

    def deadline(self, rows: int = 0) -> float:
        """Seconds allowed for a call writing ``rows`` rows."""
        return self.op_timeout + rows / 10_000 if self.op_timeout > 0 else 0.0

    def write(self, fn: Any, *args: Any, timeout: float | None = None) -> Any:
        """Run fn(cursor, *args) in one transaction (retried on deadlock); all or nothing.
        ``timeout``: seconds before the watchdog cuts the call off (None: ``op_timeout``)."""
        import psycopg

        self._check_open()
        seconds = self.op_timeout if timeout is None else timeout
        for attempt in range(_RETRIES):
            committing, fired = False, [False]
            try:
                with self._pool.connection() as conn:
                    with self._watchdog.watch(conn.fileno(), seconds) as fired:
                        with conn.transaction():
                            with conn.cursor() as cur:
                                result = fn(cur, *args)
                            committing = True
                return result
            except psycopg.Error as exc:
                if getattr(exc, "sqlstate", None) in pgs.RETRY_CODES and attempt + 1 < _RETRIES:
                    continue
                raise self.error(exc, write=True, committing=committing, cut_off=fired[0]) from exc
        raise AssertionError("unreachable")

    def read(self, fn: Any, *args: Any, bounded: bool = True) -> Any:
        """Run fn(cursor, *args) in one read-only REPEATABLE READ transaction (one snapshot);
        ``bounded=False`` for bulk reads (no watchdog deadline)."""
        import psycopg

        self._check_open()
        fired = [False]
        try:
            with self._pool.connection() as conn:
                with self._watchdog.watch(conn.fileno(), self.op_timeout if bounded else None) as fired:
                    with conn.transaction():
                        with conn.cursor() as cur:
                            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                            return fn(cur, *args)
        except psycopg.Error as exc:
            raise self.error(exc, write=False, committing=False, cut_off=fired[0]) from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._watchdog.stop()
        self._pool.close()

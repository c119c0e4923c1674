"""The drift monitor's result shared by the worker processes of one server (one home).

Every worker of ``winnow serve --workers N`` shares the home directory, so the live drift
comparison is computed ONCE per home per ``[drift] refresh_s``, not N times: a worker that
finds the result stale takes ``<home>/drift/.lock`` (``fcntl.flock``, exclusive, non-blocking),
looks again under the lock (another worker may have just written it), computes and writes
``<home>/drift/live.json``; any other worker reads that file. A replica on another machine
with its own home computes its own copy (the store it reads is shared, so the copies agree up
to when they were computed).

Guarantees:
- the file is replaced atomically (``core.files.write_atomic``: temp sibling + fsync + rename,
  done only by the lock's holder, so the fixed temp name has one writer): a reader sees the
  previous document or the new one, never a torn one; a worker killed mid-write leaves the
  previous result readable (and at most a stray temp file the next write replaces);
- the lock is an ``flock`` on an open descriptor: the kernel releases it when its holder
  exits, also on SIGKILL, so a crashed worker never blocks the others;
- an unreadable document (not JSON, not an object) is reported as absent -- the next holder
  of the lock overwrites it -- never served.

The document (``Result``): {"format": 1, "bundle", "state" ("ok" | "error"), "error",
"computed_at" (unix s of the last successful comparison), "attempted_at" (of the last attempt,
what staleness is judged by, so a failing store is not retried by every worker), "computations"
(attempts so far, over the home's lifetime), "computed_by" (pid of the last attempt's worker),
"compute_s" (its wall seconds), "report" (``compare_live``'s, the last successful one),
"history" (oldest first, at most ``[drift] history`` entries)}.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from winnow.core.files import write_atomic

log = logging.getLogger(__name__)
FORMAT = 1
POLL_S = 0.05  # lock retry pacing while a caller waits for it (bounded by its deadline)


class SharedResult:
    """``<home>/drift/live.json`` and its lock (module docstring)."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "drift"
        self.path = self.dir / "live.json"
        self.lock_path = self.dir / ".lock"

    def read(self) -> dict[str, Any] | None:
        """The current document, or None when there is none yet or it is unreadable (logged)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            log.warning("ignoring unreadable %s (%s): the next refresh rewrites it", self.path, exc)
            return None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            log.warning("ignoring %s: not a format-%d drift result", self.path, FORMAT)
            return None
        return doc

    def write(self, doc: dict[str, Any]) -> None:
        """Replace the document atomically; call only while holding ``lock()``."""
        write_atomic(self.path, json.dumps({**doc, "format": FORMAT}, allow_nan=False))

    @contextmanager
    def lock(self, *, wait_s: float = 0.0) -> Iterator[bool]:
        """Hold the home's drift lock for the ``with`` block: yields True when held, False when
        another process held it for all of ``wait_s`` seconds (0: one non-blocking try)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            end = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= end:
                        held = False
                        break
                    time.sleep(POLL_S)  # pacing of a retry bounded by ``end``
            try:
                yield held
            finally:
                if held:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

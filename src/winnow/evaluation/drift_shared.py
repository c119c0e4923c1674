"""The live drift result of one home, written by its drift monitor, read by everyone else.

The live comparison (winnow.serving.drift_monitor) runs in ONE process per home that answers no
requests: the monitor holds ``<home>/drift/.lock`` (``fcntl.flock``, exclusive) for its whole
life, so a second monitor on the same home waits or gives up, and it alone writes
``<home>/drift/live.json``. The serving workers (winnow.serving.drift_reader) and the
autopilot's drift trigger only read that file. A replica on another machine with its own home
needs a monitor of its own (``winnow drift monitor``); the store it reads is shared, so the
copies agree up to when they were computed.

Waking the monitor (``POST /v1/admin/drift/refresh``): ``<home>/drift/refresh.fifo`` is a named
pipe the monitor keeps open for reading; ``request_refresh()`` writes one byte to it without
blocking. Opening a FIFO for writing fails (ENXIO) when no process has it open for reading, so
the same call tells a caller that no monitor is running -- no pid is ever signalled.

Guarantees:
- the file is replaced atomically (``core.files.write_atomic``: a unique temp sibling + fsync +
  rename, done only by the lock's holder): a reader sees the previous document or the new one,
  never a torn one; a writer killed mid-write leaves the previous result readable and at most a
  stray temp file, which the next holder's write removes (only a dead writer can have left one);
- the lock is an ``flock`` on an open descriptor: the kernel releases it when its holder
  exits, also on SIGKILL, so a crashed monitor never blocks the next one;
- an unreadable document (not JSON, not an object) is reported as absent -- the next holder
  of the lock overwrites it -- never served.

The document (``Result``): {"format": 1, "bundle", "state" ("ok" | "error" | "no_profile" |
"no_bundle"), "error", "computed_at" (unix s of the last successful comparison), "attempted_at"
(of the last attempt, what staleness is judged by, so a failing store is not retried at once),
"started_at" (when the last attempt began: the admin refresh waits for one that began after
its call), "computations" (attempts so far, over the home's lifetime), "computed_by" (pid of the monitor
that made the last attempt), "compute_s" / "compute_cpu_s" (its wall / CPU seconds), "interval_s"
(seconds from it to the next scheduled attempt: ``[drift] refresh_s``, stretched by ``max_duty``), "report" (``compare_live``'s, the
last successful one), "history" (oldest first, at most ``[drift] history`` entries)}.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from winnow.core.files import held_flock, write_atomic

log = logging.getLogger(__name__)
FORMAT = 1


class SharedResult:
    """``<home>/drift/live.json`` and its lock (module docstring)."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "drift"
        self.path = self.dir / "live.json"
        self.lock_path = self.dir / ".lock"
        self.fifo_path = self.dir / "refresh.fifo"

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
        """Replace the document atomically; call only while holding ``lock()`` (the monitor does,
        for its life; so any temp file of this document that exists was left by a writer that
        died: it is removed first)."""
        for stray in self.dir.glob(f".{self.path.name}.*.tmp"):
            stray.unlink(missing_ok=True)
        write_atomic(self.path, json.dumps({**doc, "format": FORMAT}, allow_nan=False))

    @contextmanager
    def lock(self, *, wait_s: float = 0.0) -> Iterator[bool]:
        """Hold the home's drift lock for the ``with`` block: yields True when held, False when
        another process held it for all of ``wait_s`` seconds (0: one non-blocking try)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with held_flock(self.lock_path, wait_s=wait_s) as held:
            yield held

    def open_wakeup(self) -> tuple[int, int]:
        """The monitor's end of ``refresh.fifo`` (created, or re-created when something else has its
        name): (read fd, write fd), both non-blocking. The monitor selects on the read fd and
        keeps the write fd open only so that the read end never reports end-of-file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            if not stat.S_ISFIFO(os.stat(self.fifo_path).st_mode):
                self.fifo_path.unlink()
                os.mkfifo(self.fifo_path, 0o600)
        except FileNotFoundError:
            os.mkfifo(self.fifo_path, 0o600)
        rfd = os.open(self.fifo_path, os.O_RDONLY | os.O_NONBLOCK)
        wfd = os.open(self.fifo_path, os.O_WRONLY | os.O_NONBLOCK)
        return rfd, wfd

    def request_refresh(self) -> bool:
        """Ask the running monitor for a comparison now (one byte into ``refresh.fifo``, never
        blocking). False when no monitor has the FIFO open, i.e. none is running for this home."""
        try:
            fd = os.open(self.fifo_path, os.O_WRONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no reader: no monitor
                return False
            raise
        try:
            os.write(fd, b"r")
        except BlockingIOError:  # the pipe is full of earlier requests: one comparison answers them all
            pass
        finally:
            os.close(fd)
        return True

    def monitor_running(self) -> bool:
        """Whether a monitor has this home's FIFO open (without waking it)."""
        try:
            fd = os.open(self.fifo_path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False
        os.close(fd)
        return True

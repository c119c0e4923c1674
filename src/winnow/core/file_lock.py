"""An exclusive lock between processes on one file (``flock``), with a bounded wait.

Used for what one home allows once at a time: the drift monitor (evaluation.drift_shared) and a
rollout challenger's build (serving.swap). The kernel releases the lock when its holder dies,
also on SIGKILL, so a crashed holder never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.05  # retry pacing while a caller waits (bounded by its deadline)


@contextmanager
def held_flock(path: str | Path, *, wait_s: float = 0.0) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` (created if missing) for the ``with`` block: yields
    True when held, False when another holder kept it for all of ``wait_s`` seconds (0: one
    non-blocking try); the block runs either way, the caller decides what False means."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        end, held = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    break
                time.sleep(POLL_S)  # pacing of a retry bounded by ``end``
        try:
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

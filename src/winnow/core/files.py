"""Small files replaced atomically: write a temporary sibling, fsync it, rename it over the target,
fsync the directory. A reader sees the old content or the new one, never a torn file. The
temporary file has a unique name (``tempfile.mkstemp`` in the target's directory), so writers in
several processes never share one; a crash leaves at most a stray ``.<name>.*.tmp``.

Atomic replacement does not serialise read-modify-write sequences: ``exclusive`` is an
inter-process lock (``fcntl.flock`` on a lock file) for that; ``held_flock`` is the same lock
with a bounded wait (the drift monitor's, a server's runtime builds). The kernel releases a
``flock`` when its holder dies, also on SIGKILL, so a crashed holder never blocks the next one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    """Make a rename / creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically and durably."""
    replace_atomic(path, lambda f: f.write(text.encode("utf-8")))


def replace_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` atomically and durably with what ``write`` writes to a binary file (for
    content too big to build in memory first, e.g. ``np.savez`` into it). On any error the old
    file stays and the temporary one is removed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the files replaced here are read by other users' tools
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing) for the block: excludes
    other processes and other threads (each call opens its own descriptor). Not re-entrant:
    a holder that enters again waits for itself."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


FLOCK_POLL_S = 0.05  # retry pacing while a ``held_flock`` caller waits (bounded by its deadline)


@contextlib.contextmanager
def held_flock(lock_path: str | Path, *, wait_s: float = 0.0) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing) for the ``with`` block:
    yields True when held, False when another holder kept it for all of ``wait_s`` seconds (0:
    one non-blocking try); the block runs either way, the caller decides what False means."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
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
                time.sleep(FLOCK_POLL_S)  # pacing of a retry bounded by ``end``
        try:
            yield held
        finally:
            if held:  # explicitly: a child forked meanwhile would keep a copy of the descriptor open
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

"""Requests in flight in every worker of one ``winnow serve``, on a shared memory page: what the
server's shadow process (serving/shadow_proc.py) waits on, so that it computes only while no
worker serves a request -- the server-wide form of a worker's own idle rule (serving/shadow.py).

The dispatcher (serving/workers.py) makes the board, a file of ``SLOTS`` int64 counters in its
run directory, names it in every process's ``$WINNOW_BUSY_BOARD`` and gives each process it
starts a slot (``$WINNOW_BUSY_SLOT``), zeroed again when that process exits (a worker that died
mid-request does not stay busy). A worker's ``PublishedBusy`` writes its in-flight count to its
slot at every change (one 8-byte store into a shared mapping); ``BoardBusy`` reads the whole board.

``Busy`` (one process's requests in flight, counted by the app's middleware) lives here too:
the shadow thread of a worker waits on it (serving/shadow.py).

Contract: ``BoardBusy.in_flight`` is the sum of the slots now; ``wait_idle(timeout)`` returns True
as soon as it is 0 (polling every ``POLL_S``), False after ``timeout``. Counts are advisory: a
torn read can only make a check wrong for one poll.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time

SLOTS = 1024
BOARD_ENV = "WINNOW_BUSY_BOARD"
SLOT_ENV = "WINNOW_BUSY_SLOT"
POLL_S = 0.0005
_ZERO = bytes(8 * SLOTS)


class Busy:
    """Requests in flight in this worker process (the app's middleware calls ``enter`` /
    ``leave``); ``wait_idle`` waits for none."""

    def __init__(self) -> None:
        self._n = 0
        self._cond = threading.Condition()

    def enter(self) -> None:
        with self._cond:
            self._n += 1

    def leave(self) -> None:
        with self._cond:
            self._n -= 1
            if self._n <= 0:
                self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        return self._n

    def wait_idle(self, timeout: float) -> bool:
        """True once no request is in flight (at once when none is), False after ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(lambda: self._n <= 0, timeout)


def make_board(path: str) -> None:
    """Create the zeroed board file (the dispatcher, once)."""
    with open(path, "wb") as f:
        f.write(_ZERO)


class Board:
    """The board mapped in this process (read and write)."""

    def __init__(self, path: str) -> None:
        with open(path, "r+b") as f:
            self._mm = mmap.mmap(f.fileno(), 8 * SLOTS)

    def set(self, slot: int, n: int) -> None:
        struct.pack_into("<q", self._mm, 8 * (slot % SLOTS), n)

    def total(self) -> int:
        if self._mm[:] == _ZERO:  # the common case, one compare
            return 0
        return sum(struct.unpack_from(f"<{SLOTS}q", self._mm))

    def close(self) -> None:
        self._mm.close()


class PublishedBusy(Busy):
    """A worker's ``Busy`` that also publishes its count to its slot of the board."""

    def __init__(self, board: Board, slot: int) -> None:
        super().__init__()
        self.board, self.slot = board, slot

    def enter(self) -> None:
        with self._cond:
            self._n += 1
            self.board.set(self.slot, self._n)

    def leave(self) -> None:
        with self._cond:
            self._n -= 1
            self.board.set(self.slot, max(self._n, 0))
            if self._n <= 0:
                self._cond.notify_all()


class BoardBusy(Busy):
    """Every worker's requests in flight, read from the board (the shadow process's ``Busy``)."""

    def __init__(self, board: Board) -> None:
        super().__init__()
        self.board = board

    @property
    def in_flight(self) -> int:
        return self.board.total()

    def wait_idle(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.board.total() > 0:
            if time.monotonic() >= end:
                return False
            time.sleep(POLL_S)  # a poll of shared memory: no cross-process condition to wait on
        return True


def board_from_env() -> tuple[Board, int] | None:
    """(the board, this process's slot) named by the dispatcher; None outside ``winnow serve``'s
    processes."""
    path, slot = os.environ.get(BOARD_ENV), os.environ.get(SLOT_ENV)
    if not path or not slot or not os.path.exists(path):
        return None
    return Board(path), int(slot)


def published_busy() -> Busy:
    """A serving worker's ``Busy``: published on the board under ``winnow serve``'s dispatcher,
    plain otherwise."""
    found = board_from_env()
    return PublishedBusy(*found) if found is not None else Busy()

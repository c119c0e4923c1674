"""The busy board (serving/busy_board.py): the workers' requests in flight, published on a shared
mapping, read by the shadow process -- across real processes."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path

from winnow.serving.busy_board import SLOTS, Board, BoardBusy, PublishedBusy, make_board


def _hold(path: str, slot: int, entered: mp.Event, release: mp.Event) -> None:  # type: ignore[valid-type]
    busy = PublishedBusy(Board(path), slot)
    busy.enter()
    busy.enter()
    busy.leave()  # one still in flight
    entered.set()  # type: ignore[attr-defined]
    release.wait(30)  # type: ignore[attr-defined]
    busy.leave()


def test_a_worker_in_another_process_keeps_the_board_busy_until_its_request_ends(tmp_path: Path) -> None:
    path = str(tmp_path / "busy")
    make_board(path)
    reader = BoardBusy(Board(path))
    assert reader.in_flight == 0 and reader.wait_idle(0.0)
    ctx = mp.get_context("spawn")
    entered, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(path, SLOTS + 7, entered, release))  # slots wrap
    proc.start()
    try:
        assert entered.wait(60)
        assert reader.in_flight == 1
        t0 = time.monotonic()
        assert reader.wait_idle(0.05) is False  # still busy: gives up after the timeout
        assert time.monotonic() - t0 >= 0.05
        done = threading.Event()
        waiter = threading.Thread(target=lambda: done.set() if reader.wait_idle(30) else None)
        waiter.start()
        release.set()
        waiter.join(30)
        assert done.is_set() and reader.in_flight == 0
    finally:
        release.set()
        proc.join(30)


def test_a_slot_cleared_by_the_dispatcher_no_longer_counts(tmp_path: Path) -> None:
    path = str(tmp_path / "busy")
    make_board(path)
    board = Board(path)
    worker = PublishedBusy(Board(path), 3)
    worker.enter()  # a worker that dies mid-request leaves its slot at 1
    assert board.total() == 1
    board.set(3, 0)  # serving/workers.py zeroes an exited process's slot
    assert BoardBusy(board).in_flight == 0

"""The dispatcher's pool of worker processes (serving/workers.py ``Pool``): replacements.

Processes are stand-ins (a socketpair whose far end the test holds, a process object that
records signals), and time is passed in, so every transition is checked without waiting."""

from __future__ import annotations

import os
import selectors
import socket
from collections.abc import Iterator

import pytest

from winnow.serving.workers import (CLOSED, READY, REPLACE, REPLACE_FAILED, RETIRE, SHADOW, SHADOW_RETRY_S, Pool,
                                    _Worker)


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        return 0 if self.returncode is None else self.returncode

    def terminate(self) -> None:
        self.signals.append("TERM")

    def kill(self) -> None:
        self.signals.append("KILL")


class World:
    """A pool whose spawned processes are stand-ins; ``far[pid]`` is each one's end of its channel."""

    def __init__(self, workers: int = 2, *, replace_timeout_s: float = 60.0, retire_s: float = 10.0) -> None:
        self.sel = selectors.DefaultSelector()
        self.far: dict[int, socket.socket] = {}
        self.spawned: list[tuple[int, bool]] = []
        self.lowered: list[int] = []
        self.gone = 0  # times the pool said the shadow process had exited
        self.attempts: list[int] = []  # the shadow processes' attempt numbers
        self.exited: list[_Worker] = []  # every process the pool saw exit (its busy-board slot cleared)
        self.pool = Pool(workers, self.spawn, self.sel, replace_timeout_s=replace_timeout_s, retire_s=retire_s,
                         lower=self.lowered.append, spawn_shadow=self.spawn_shadow,
                         shadow_gone=self._gone, exited=self.exited.append)

    def spawn_shadow(self, attempt: int) -> _Worker:
        self.attempts.append(attempt)
        return self.spawn(-1, False)

    def _gone(self) -> None:
        self.gone += 1

    def spawn(self, index: int, spare: bool) -> _Worker:
        near, far = socket.socketpair()
        near.setblocking(False)
        pid = 1000 + len(self.spawned)
        self.spawned.append((index, spare))
        self.far[pid] = far
        return _Worker(index, FakeProc(pid), near, spare=spare)  # type: ignore[arg-type]

    def say(self, w: _Worker, msg: bytes, now: float = 0.0) -> None:
        """Worker ``w`` sends ``msg`` and the dispatcher reads it."""
        self.far[w.proc.pid].sendall(msg)
        self.pump(now)

    def exit(self, w: _Worker, now: float = 0.0) -> None:
        self.far[w.proc.pid].close()
        self.pump(now)

    def pump(self, now: float) -> None:
        for key, _ in self.sel.select(timeout=1.0):
            self.pool.readable(key.data, now)

    def heard(self, w: _Worker) -> bytes:
        """What the dispatcher told worker ``w`` so far."""
        self.far[w.proc.pid].setblocking(False)
        try:
            return self.far[w.proc.pid].recv(64)
        except BlockingIOError:
            return b""

    def close(self) -> None:
        for s in self.far.values():
            s.close()
        self.sel.close()


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    for x in w.pool.slots:
        w.say(x, READY)
    yield w
    w.close()


def test_a_worker_asking_is_replaced_by_a_spare_then_retired(world: World) -> None:
    pool = world.pool
    old, other = pool.slots
    old.open = 2
    world.say(old, REPLACE)
    world.say(old, REPLACE)  # asked twice: one spare
    pool.tick(0.0)
    pool.tick(0.0)
    assert world.spawned == [(0, False), (1, False), (0, True)]
    spare = pool.spare
    assert spare is not None and spare.index == 0 and pool.ready() == [old, other]  # not dealt to before ready
    world.say(spare, READY, now=1.0)
    assert pool.slots == [spare, other] and pool.ready() == [spare, other] and pool.spare is None
    assert world.heard(old) == RETIRE and pool.retiring == [old]
    pool.tick(2.0)
    assert old.proc.signals == []  # two connections still open: it finishes them
    world.say(old, CLOSED + CLOSED, now=3.0)
    pool.tick(3.0)
    assert old.proc.signals == ["TERM"] and world.lowered == [old.proc.pid]  # niced, then stopped
    world.exit(old, now=4.0)
    assert pool.retiring == [] and len(world.spawned) == 3  # a retired worker is not restarted
    world.say(other, REPLACE)  # the next request starts the next spare
    pool.tick(5.0)
    assert world.spawned[-1] == (1, True)


def test_a_retiring_worker_is_stopped_at_its_deadline_then_killed(world: World) -> None:
    pool = world.pool
    old = pool.slots[0]
    old.open = 1
    world.say(old, REPLACE)
    pool.tick(0.0)
    assert pool.spare is not None
    world.say(pool.spare, READY, now=0.0)
    pool.tick(9.0)
    assert old.proc.signals == []
    pool.tick(10.5)  # retire_s = 10 after the promotion
    assert old.proc.signals == ["TERM"]
    pool.tick(20.0)
    assert old.proc.signals == ["TERM"]
    pool.tick(41.0)  # still running 30 s after SIGTERM
    assert old.proc.signals == ["TERM", "KILL"]


def test_a_spare_that_exits_before_ready_is_reported_and_the_old_worker_stays(world: World) -> None:
    pool = world.pool
    old = pool.slots[1]
    world.say(old, REPLACE)
    pool.tick(0.0)
    spare = pool.spare
    assert spare is not None
    world.exit(spare, now=1.0)
    assert pool.spare is None and pool.slots[1] is old and pool.ready() == pool.slots
    assert world.heard(old) == REPLACE_FAILED
    assert len(world.spawned) == 3  # the failed spare is not restarted
    pool.tick(2.0)
    assert pool.spare is None


def test_a_spare_not_ready_in_time_is_killed_and_reported(world: World) -> None:
    pool = world.pool
    old = pool.slots[0]
    world.say(old, REPLACE)
    pool.tick(0.0)
    spare = pool.spare
    assert spare is not None
    pool.tick(59.0)
    assert spare.proc.signals == []
    pool.tick(61.0)
    pool.tick(62.0)
    assert spare.proc.signals == ["KILL"]  # once
    world.exit(spare, now=63.0)
    assert world.heard(old) == REPLACE_FAILED and pool.slots[0] is old


def test_a_serving_worker_that_exits_is_restarted(world: World) -> None:
    pool = world.pool
    gone = pool.slots[1]
    world.exit(gone)
    assert pool.slots[1] is not gone and world.spawned[-1] == (1, False)
    assert pool.ready() == [pool.slots[0]]  # the restarted one is dealt to once it says ready


def test_lower_priority_nices_every_thread_of_a_process() -> None:
    """The real ``lower``: a child process with a second thread; both threads end at nice 19."""
    import subprocess
    import sys
    from pathlib import Path

    from winnow.serving.workers import lower_priority

    code = "import threading, sys; threading.Thread(target=sys.stdin.read).start(); print('up', flush=True); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        tids = [int(t) for t in os.listdir(f"/proc/{child.pid}/task")]
        assert len(tids) >= 2
        lower_priority(child.pid)
        nices = {tid: int(Path(f"/proc/{child.pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[16])
                 for tid in tids}
        assert set(nices.values()) == {19}, nices
    finally:
        child.kill()
        child.wait(30)


def test_the_shadow_process_is_started_once_when_asked_and_again_only_after_a_failure_backoff(world: World) -> None:
    pool = world.pool
    a, b = pool.slots
    world.say(a, SHADOW, now=1.0)
    world.say(b, SHADOW, now=1.0)  # both workers follow the shadow: one process
    world.say(a, SHADOW + CLOSED, now=2.0)  # asked again on every poll, beside other messages
    assert world.spawned == [(0, False), (1, False), (-1, False)]
    shadow = pool.shadow
    assert shadow is not None and shadow not in pool.slots and pool.ready() == [a, b]  # never dealt connections
    world.exit(shadow, now=3.0)  # the rollout ended: it exits 0
    assert pool.shadow is None and world.gone == 1 and world.exited == [shadow]
    world.say(a, SHADOW, now=4.0)  # a new shadow rollout: started at once
    assert len(world.spawned) == 4 and pool.shadow is not None
    failing = pool.shadow
    failing.proc.returncode = 1  # type: ignore[misc]
    world.exit(failing, now=5.0)
    assert pool.shadow is None and world.gone == 2 and pool.shadow_failed_at == 5.0
    world.say(a, SHADOW, now=5.0 + SHADOW_RETRY_S - 1.0)  # not again before the back-off
    assert len(world.spawned) == 4 and pool.shadow is None
    world.say(a, SHADOW, now=5.0 + SHADOW_RETRY_S)
    assert len(world.spawned) == 5 and pool.shadow is not None
    assert world.attempts == [1, 1, 2]  # after an exit 0, after one failure
    assert pool.slots == [a, b] and world.spawned.count((0, False)) == 1  # the workers were never touched
    pool.stop()
    assert pool.shadow.proc.signals == ["TERM"]  # type: ignore[attr-defined]

"""A worker's side of replacements (serving/worker_proc.py) and the spare's start-up builds at
idle CPU priority (serving.worker_proc.at_idle_priority, startup_build)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from winnow.serving import swap, worker_proc
from winnow.serving.workers import REPLACE, REPLACE_FAILED, RETIRE, START_ENV


def test_at_idle_priority_runs_in_the_idle_class_and_leaves_the_caller_as_it_was() -> None:
    before = os.sched_getscheduler(0)
    seen: list[tuple[int, str]] = []
    out = worker_proc.at_idle_priority(lambda: seen.append((os.sched_getscheduler(0), threading.current_thread().name)) or 7)
    assert out == 7 and seen == [(os.SCHED_IDLE, "idle-build")]
    assert os.sched_getscheduler(0) == before == os.SCHED_OTHER

    def boom() -> None:
        raise ValueError("bad bundle")

    with pytest.raises(ValueError, match="bad bundle"):
        worker_proc.at_idle_priority(boom)


def test_startup_build_is_idle_only_in_a_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    def policy() -> int:
        return os.sched_getscheduler(0)

    monkeypatch.delenv(START_ENV, raising=False)
    assert swap.startup_build(policy) == os.SCHED_OTHER
    monkeypatch.setenv(START_ENV, "idle")
    assert swap.startup_build(policy) == os.SCHED_IDLE


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """This process as a dispatcher's worker: the dispatcher's end of its channel."""
    near, far = socket.socketpair()
    far.settimeout(5.0)
    monkeypatch.setattr(worker_proc, "_chan", near)
    for name in ("_ready", "_asked", "_failed", "_retiring"):
        monkeypatch.setattr(worker_proc, name, threading.Event())
    yield far
    near.close()
    far.close()


def test_a_worker_asks_once_for_a_replacement_and_builds_in_place_when_it_failed(channel: socket.socket) -> None:
    assert not worker_proc.request_replacement()  # still starting: its start-up builds are its own
    worker_proc._ready.set()
    assert worker_proc.request_replacement() and worker_proc.request_replacement()
    assert channel.recv(16) == REPLACE  # once
    worker_proc._note(REPLACE_FAILED)
    assert not worker_proc.request_replacement()
    assert not worker_proc.retiring()
    worker_proc._note(RETIRE)
    assert worker_proc.retiring()


def test_outside_a_dispatcher_every_build_is_in_place() -> None:
    assert worker_proc._chan is None and not worker_proc.request_replacement()

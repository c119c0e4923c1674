"""The workers of one server build runtimes one at a time (serving.swap.one_build_at_a_time, on
the lock file the worker dispatcher names in $WINNOW_BUILD_LOCK): a second builder waits until
the first leaves, gives up waiting (building anyway) after its bound, and a process without a
lock (a single-process server) never waits."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from winnow.core.files import held_flock
from winnow.serving.swap import one_build_at_a_time
from winnow.serving.telemetry import Metrics
from winnow.serving.workers import BUILD_LOCK_ENV


@pytest.fixture
def lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "build.lock"
    monkeypatch.setenv(BUILD_LOCK_ENV, str(path))
    return path


def test_a_second_build_waits_for_the_first(lock: Path) -> None:
    inside, release, order = threading.Event(), threading.Event(), []

    def first() -> None:
        with one_build_at_a_time() as held:
            order.append(("first", held))
            inside.set()
            assert release.wait(30)
            order.append(("first leaves", True))  # still holding: nothing else can be inside

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(30)
    second_in, second_done = threading.Event(), threading.Event()

    def second() -> None:
        with one_build_at_a_time(wait_s=60) as held:
            second_in.set()
            order.append(("second", held))
        second_done.set()

    s = threading.Thread(target=second)
    s.start()
    assert not second_in.wait(0.3)  # still waiting: the first holds the lock
    release.set()
    assert second_done.wait(30)
    t.join(30)
    s.join(30)
    assert order == [("first", True), ("first leaves", True), ("second", True)]


def test_a_holder_that_never_leaves_bounds_the_wait(lock: Path) -> None:
    with held_flock(str(lock)) as held:  # another worker (the lock is re-entrant in one thread)
        assert held
        with one_build_at_a_time(wait_s=0.2) as second:
            assert second is False  # not held: the build goes ahead anyway


def test_without_a_server_lock_nothing_waits(lock: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with held_flock(str(lock)) as held:  # another worker of a server holds its lock ...
        assert held
        monkeypatch.delenv(BUILD_LOCK_ENV)
        with one_build_at_a_time(wait_s=60) as mine:  # ... a process with no lock goes straight in
            assert mine is False


def test_the_wait_and_the_build_window_are_exported(lock: Path) -> None:
    metrics = Metrics()

    def value(name: str, labels: dict[str, str] | None = None) -> float:
        v = metrics.registry.get_sample_value(name, labels or {})
        assert v is not None, name
        return v

    with one_build_at_a_time(metrics):
        start = value("winnow_runtime_build_timestamp_seconds", {"edge": "start"})
        assert metrics.registry.get_sample_value("winnow_runtime_build_timestamp_seconds", {"edge": "end"}) is None
    assert value("winnow_runtime_build_timestamp_seconds", {"edge": "end"}) >= start > 0
    assert value("winnow_runtime_build_lock_wait_seconds_count") == 1


def test_the_lock_is_reentrant_in_its_thread_only(lock: Path) -> None:
    """A spare's start-up build holds the lock around a challenger build that asks for it again
    (serving.swap.startup_build): the same thread gets it at once; another thread still waits."""
    other: list[bool] = []
    with one_build_at_a_time(wait_s=5.0) as outer:
        with one_build_at_a_time(wait_s=0.2) as inner:
            assert outer and inner
        t = threading.Thread(target=lambda: other.append(one_build_at_a_time(wait_s=0.2).__enter__()))
        t.start()
        t.join(30)
    assert other == [False]  # it gave up waiting: the outer hold was still in force after the inner one
    with one_build_at_a_time(wait_s=0.2) as again:  # released at the outer exit
        assert again


def test_a_nested_hold_reports_what_the_outer_one_got(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUILD_LOCK_ENV, raising=False)  # a single-process server: no lock to hold
    with one_build_at_a_time() as outer, one_build_at_a_time() as inner:
        assert outer is False and inner is False

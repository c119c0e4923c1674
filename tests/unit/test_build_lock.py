"""One challenger build per home at a time (serving.swap.one_build_per_home): a second holder
waits until the first leaves, and gives up waiting (building anyway) after its bound."""

from __future__ import annotations

import threading
from pathlib import Path

from winnow.serving.swap import one_build_per_home


def test_a_second_build_waits_for_the_first(tmp_path: Path) -> None:
    inside, release, order = threading.Event(), threading.Event(), []

    def first() -> None:
        with one_build_per_home(tmp_path) as held:
            order.append(("first", held))
            inside.set()
            assert release.wait(30)
            order.append(("first leaves", True))  # still holding: nothing else can be inside

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(30)
    second_done = threading.Event()

    def second() -> None:
        with one_build_per_home(tmp_path, wait_s=60) as held:
            order.append(("second", held))
        second_done.set()

    s = threading.Thread(target=second)
    s.start()
    assert not second_done.wait(0.3)  # still waiting: the first holds the lock
    release.set()
    assert second_done.wait(30)
    t.join(30)
    s.join(30)
    assert order == [("first", True), ("first leaves", True), ("second", True)]


def test_a_holder_that_never_leaves_bounds_the_wait(tmp_path: Path) -> None:
    with one_build_per_home(tmp_path) as held:
        assert held
        with one_build_per_home(tmp_path, wait_s=0.2) as second:
            assert second is False  # not held: the build goes ahead anyway

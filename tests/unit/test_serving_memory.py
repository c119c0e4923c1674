"""serving.memory (glibc arena limit, malloc_trim) and swap.background_priority restore state."""

from __future__ import annotations

import gc
import platform
import sys

from winnow.serving import memory
from winnow.serving.swap import BUILD_SWITCH_INTERVAL_S, background_priority


def test_arena_limit_respects_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # glibc applied it itself: leave it alone
    assert memory.limit_arenas(2) is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("WINNOW_MALLOC_ARENA_MAX", "lots")
    assert memory.limit_arenas() is False  # logged, not raised
    assert memory.limit_arenas(0) is False  # 0: glibc's default kept
    glibc = platform.libc_ver()[0] == "glibc"
    assert memory.limit_arenas(8) is glibc
    assert isinstance(memory.trim(), bool)


def test_background_priority_is_reentrant_and_restores() -> None:
    before, enabled = sys.getswitchinterval(), gc.isenabled()
    with background_priority():
        assert sys.getswitchinterval() == min(before, BUILD_SWITCH_INTERVAL_S)
        assert not gc.isenabled()
        with background_priority():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner exit does not re-enable it early
    assert sys.getswitchinterval() == before and gc.isenabled() == enabled

"""glibc heap tuning for the server process: arena limit and returning freed memory.

A bundle swap frees a whole Runtime (id maps, feature state, pipeline arrays: tens of MiB of
small Python objects and numpy buffers) that were allocated in whichever threads built and used
them. glibc keeps freed chunks in per-thread arenas (up to 8 x cores of them) and rarely gives
them back, so without help the resident size steps up at every swap although nothing is leaked
(docs/HARDENING.md, soak). Two remedies, both no-ops where the C library is not glibc:

- ``limit_arenas(n)``: ``mallopt(M_ARENA_MAX, n)`` before the server's threads allocate; the
  threadpool then shares ``n`` arenas (the GIL serialises Python allocation anyway).
- ``trim()``: ``malloc_trim(0)`` after a swap returns free pages of every arena to the OS.

``WINNOW_MALLOC_ARENA_MAX`` (environment, default 2; 0 = leave glibc's default) sets the limit
at app creation; ``MALLOC_ARENA_MAX`` in the environment, if set, wins (glibc reads it itself).
"""

from __future__ import annotations

import ctypes
import logging
import os
from functools import cache

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # <malloc.h>
DEFAULT_ARENAS = 2


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def limit_arenas(n: int | None = None) -> bool:
    """Cap glibc's malloc arenas at ``n`` (default: $WINNOW_MALLOC_ARENA_MAX or 2); True when set.

    Call before threads start allocating. Does nothing when $MALLOC_ARENA_MAX is set (glibc
    already applied it), when ``n`` is 0, or without glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    if n is None:
        raw = os.environ.get("WINNOW_MALLOC_ARENA_MAX", str(DEFAULT_ARENAS))
        try:
            n = int(raw)
        except ValueError:
            log.error("WINNOW_MALLOC_ARENA_MAX=%r is not an integer: glibc's default arenas kept", raw)
            return False
    libc = _libc()
    if n <= 0 or libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, int(n)))


def trim() -> bool:
    """``malloc_trim(0)``: give free heap pages back to the OS; True if memory was released.
    Runs in C without the GIL held (ctypes), so requests keep being served meanwhile."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False

"""BLAS thread limits that are cheap enough for the request path.

``threadpoolctl.threadpool_limits`` inspects every loaded shared library each time it is
entered (about 1-2 ms, measured as 5 % of a serving worker's CPU when ALS folded in a user per
request); a ``ThreadpoolController`` built once and reused makes the same limit ~10 us.
"""

from __future__ import annotations

import contextlib
import threading

from threadpoolctl import ThreadpoolController

_CONTROLLER: ThreadpoolController | None = None
_LOCK = threading.Lock()


def blas_limit(threads: int) -> contextlib.AbstractContextManager[object]:
    """Context manager limiting BLAS libraries to ``threads`` threads (restored on exit)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        with _LOCK:
            if _CONTROLLER is None:
                _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=threads, user_api="blas")

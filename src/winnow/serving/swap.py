"""Bundle hot swap without stalling requests, and without losing events acknowledged meanwhile.

A swap builds the new Runtime in the thread that asked for it (the admin route's threadpool
thread or the ACTIVE follower), never in the event loop, while the old Runtime keeps answering;
the swap itself is one reference assignment. Three things keep the requests flowing and the
new runtime complete:

- ``background_priority()``: while a runtime is built, the interpreter's switch interval is
  lowered (5 ms -> 0.5 ms), so a request thread waiting for the GIL gets it within 0.5 ms of
  asking instead of queueing behind the build's Python loops at every I/O (the "convoy" that
  made p99 = 2.2 s in the first soak), and the cyclic garbage collector is paused: building
  ~500 000 objects otherwise triggers a full collection that holds the GIL for 230-290 ms.
  ``settle()`` then freezes the new runtime out of the collector's generations. The build's
  CPU-heavy parts are numpy/C (bulk feature replay, lleaves/LLVM, sha256).
- ``CatchUp``: the learned ranker's feature state is replayed from the store's event log
  inside the build. Events acknowledged after that read and before the swap went only to the
  OLD runtime's feed; ``CatchUp`` orders each event write against the replay's read (one lock)
  and hands the events acknowledged since the read to the new runtime's feed at the swap, so
  the new feature state holds every acknowledged event exactly once. When the new bundle's
  feature inputs (spec, feature catalog, id maps; compared by manifest sha256) equal the serving
  runtime's, there is no replay at all: the new runtime takes over the serving state object
  (``FeatureFeed.successor``), events keep being folded into it through whichever runtime is
  serving, and the catch-up skips it (a rollback, or bundles retrained on an unchanged catalog).
  When the new bundle extends the serving one, the serving state is forked and corrected
  (``FeatureFeed.remapped``) inside ``CatchUp.snapshot``, the same consistent point as a
  replay's log read: events acknowledged after it are caught up alike, and so are the other
  replicas' events the Redis stream follower applies (under the same lock) after it.
- ``one_build_at_a_time()``: the worker processes of one server (winnow.serving.workers) build
  a runtime (a swap's or a rollout challenger's) one at a time, holding a lock file the
  dispatcher made for that server: every worker building at once left no core for requests on
  a 2-core machine. Other servers (replicas) have their own lock and build independently.
- after the swap the old runtime is dropped and ``memory.trim()`` returns its freed heap pages
  to the OS once in-flight requests that still hold it are done (``TRIM_DELAY_S`` later).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from winnow.core.files import held_flock
from winnow.data.store import EventLog, Store
from winnow.serving import memory, worker_proc
from winnow.serving.workers import BUILD_LOCK_ENV

if TYPE_CHECKING:
    from winnow.serving.telemetry import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
BUILD_SWITCH_INTERVAL_S = 0.0005
BUILD_LOCK_WAIT_S = 120.0  # then build anyway (logged): a stuck holder must not block a swap
TRIM_DELAY_S = 1.0
_priority_lock = threading.Lock()
_priority_depth = 0
_saved_interval = 0.005
_gc_was_enabled = True
_build_lock_held = threading.local()  # depth: this thread holds one_build_at_a_time


def enter_background_priority() -> None:
    """Enter the state of ``background_priority`` (re-entrant, counted): GIL switch interval
    lowered, cyclic garbage collector paused. Pair every call with ``leave_background_priority``."""
    global _priority_depth, _saved_interval, _gc_was_enabled
    with _priority_lock:
        if _priority_depth == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_saved_interval, BUILD_SWITCH_INTERVAL_S))
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _priority_depth += 1


def leave_background_priority() -> None:
    """Leave one ``enter_background_priority``; the last one out restores both."""
    global _priority_depth
    with _priority_lock:
        _priority_depth -= 1
        if _priority_depth == 0:
            sys.setswitchinterval(_saved_interval)
            if _gc_was_enabled:
                gc.enable()


@contextmanager
def background_priority() -> Iterator[None]:
    """While the block runs: lower the GIL switch interval and pause the cyclic garbage
    collector (re-entrant; both restored at exit -- call ``settle()`` before leaving it when
    the block built something long-lived)."""
    enter_background_priority()
    try:
        yield
    finally:
        leave_background_priority()


@contextmanager
def one_build_at_a_time(metrics: Metrics | None = None, *, wait_s: float = BUILD_LOCK_WAIT_S) -> Iterator[bool]:
    """Hold this server's build lock (the file named by ``$WINNOW_BUILD_LOCK``, flock) for the
    block, so its worker processes build runtimes one at a time: a build takes a core for
    seconds at 10^6 items, and two workers building at once on 2 cores stalled requests for
    up to ~1.3 s. Yields True when held; False when no lock is set (a single-process server
    has no sibling to wait for) or another worker held it for ``wait_s`` seconds (the build
    then goes ahead, logged). The kernel releases the lock when its holder dies. ``metrics``
    records the wait and the block's start and end (unix seconds). Re-entrant in one thread (a
    spare's start-up build holds it around a challenger build that asks for it again)."""
    if getattr(_build_lock_held, "depth", 0):
        yield _build_lock_held.held  # what the outer hold got
        return
    path = os.environ.get(BUILD_LOCK_ENV)
    asked = time.time()
    with held_flock(path, wait_s=wait_s) if path else nullcontext(False) as held:
        if path and not held:
            log.warning("runtime build: %s still held after %.0f s; building anyway", path, wait_s)
        if metrics is not None:
            metrics.build_lock_wait.observe(time.time() - asked)
            metrics.build_window.labels("start").set(time.time())
        _build_lock_held.depth, _build_lock_held.held = 1, held
        try:
            yield held
        finally:
            _build_lock_held.depth = 0
            if metrics is not None:
                metrics.build_window.labels("end").set(time.time())


def startup_build(fn: Callable[[], T], metrics: Metrics | None = None) -> T:
    """A build a worker does before it serves (its ACTIVE runtime, a running rollout's
    challenger): in a spare, i.e. a fresh worker replacing one that serves
    (serving.worker_proc.is_spare), at idle CPU priority and one build of the server at a time;
    otherwise simply ``fn()`` (nothing is being served by this process yet)."""
    if not worker_proc.is_spare():
        return fn()

    def locked() -> T:  # in the helper thread: a build inside ``fn`` asks again (re-entrant per thread)
        with one_build_at_a_time(metrics):
            return fn()

    return worker_proc.at_idle_priority(locked)


def settle(*, and_later: bool = False) -> None:
    """Move every object alive now (the freshly built runtime above all) out of the cyclic
    collector's generations (``gc.freeze``), so no collection ever traverses it; with
    ``and_later``, also what survives every later full collection (freeze_after_full_collections).

    Measured on the soak's home: a runtime is ~500 000 tracked objects, and building one
    triggered a full (generation 2) collection at every swap that held the GIL for 230-290 ms
    and found nothing to collect. Runtimes are freed by reference counting when the last
    request using one returns (tests check no Runtime survives a swap), so freezing them
    does not keep them alive; frozen objects that become cyclic garbage are not reclaimed,
    which is why this is called only at startup and at a swap, after one collection of the
    young generations (the build's own cyclic garbage, e.g. numpy's npz header parsing, goes
    there; ~25 ms with the GIL held for a ~500 000-object runtime, once per swap).
    """
    gc.collect(1)
    gc.freeze()
    if and_later:
        freeze_after_full_collections()


_freeze_users = 0  # services in this process that asked for freeze_after_full_collections


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def freeze_after_full_collections() -> None:
    """From now on, after every full (generation 2) collection, freeze what survived it
    (``gc.freeze``), so the next full collection traverses only what became long-lived since
    (``[serving] gc_freeze``; counted per service: ``stop_freezing_after_full_collections``).

    Why: a serving process keeps tens of thousands of tracked objects beyond the frozen runtime
    (cached user records, their histories) and more as its user cache fills; full collections,
    triggered by allocation counts, traversed all of them every ~1,500 requests: 11-36 ms pauses
    at 1M items (bench/gc_probe.py), 3-9 ms with this. The trade: an object frozen here that
    later becomes part of cyclic garbage is never reclaimed. The request path makes none (tested:
    tests/integration/test_gc_policy.py, and 0 objects found by 8,000 requests' collections at 1M)."""
    global _freeze_users
    with _priority_lock:
        if _freeze_users == 0:
            gc.callbacks.append(_freeze_survivors)
        _freeze_users += 1


def stop_freezing_after_full_collections() -> None:
    """Undo one ``freeze_after_full_collections`` (a closed service); the last one removes it."""
    global _freeze_users
    with _priority_lock:
        if _freeze_users > 0:
            _freeze_users -= 1
            if _freeze_users == 0 and _freeze_survivors in gc.callbacks:
                gc.callbacks.remove(_freeze_survivors)


class _SnapshotStore:
    """The service's store for one runtime build: ``read_events`` also starts the catch-up."""

    def __init__(self, store: Store, catchup: CatchUp) -> None:
        self._store = store
        self._catchup = catchup

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def read_events(self, **kwargs: Any) -> EventLog:
        with self._catchup.lock:  # no event write in between: each is in the log or in pending
            log = self._store.read_events(**kwargs)
            self._catchup.pending, self._catchup.remote = [], False
        return log


class CatchUp:
    """Events acknowledged while a runtime is being built (see module docstring).

    Protocol: the ingest path appends to the store, calls ``note(frame)`` and applies the frame
    to the serving runtimes' feeds under ``lock``; the Redis stream follower applies other
    replicas' frames under ``lock`` too, calling ``note_remote(frame)``; a build reads events
    through ``store_for_build(store)`` or remaps the serving state inside ``snapshot``;
    ``install`` swaps under the lock after replaying ``pending`` into the new runtime's feed;
    ``abort`` after a failed build.

    Other replicas' frames are collected only after a ``snapshot`` (a remap): the forked state
    holds exactly the frames applied to the serving state before it, so each reaches the new
    state once. After a store read (a replay) they are not: such a frame is already in the
    store when it is published, and may or may not have been in the log read (the stream
    carries no store sequence), so the replayed state can count one that arrives during the
    build twice or miss it (docs/SERVING.md).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[pd.DataFrame] | None = None  # None: no build has read the log
        self.remote = False  # collect other replicas' frames too (the build took a snapshot)

    def store_for_build(self, store: Store) -> Any:
        return _SnapshotStore(store, self)

    def snapshot(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (a remap of the serving feature state: learned_ranker.FeatureFeed.remapped)
        with no event write in between, and collect the events acknowledged after it for the new
        runtime, as a build's ``read_events`` does. Event writers apply each frame to the
        serving feeds under ``lock``, so the serving state then holds every event noted before."""
        with self.lock:
            out = fn()
            self.pending, self.remote = [], True
        return out

    def note(self, frame: pd.DataFrame) -> None:
        """An acknowledged event frame (call with ``lock`` held)."""
        if self.pending is not None:
            self.pending.append(frame)

    def note_remote(self, frame: pd.DataFrame) -> None:
        """A frame another replica acknowledged, from the event stream (call with ``lock`` held,
        and apply it to the serving feeds under the same hold)."""
        if self.pending is not None and self.remote:
            self.pending.append(frame)

    def install(self, new: Any, swap: Callable[[Any], Any]) -> Any:
        """Feed ``pending`` to ``new.feature_feed``, then ``swap(new)`` (returns the old runtime)."""
        with self.lock:
            pending, self.pending = self.pending or [], None
            feed = getattr(new, "feature_feed", None)
            if feed is not None and not getattr(feed, "shared", False):  # a shared state saw them
                for frame in pending:
                    feed.apply(frame)
            return swap(new)

    def abort(self) -> None:
        with self.lock:
            self.pending = None


def trim_later() -> None:
    """Return freed heap pages to the OS once in-flight requests have let go of the old runtime
    (they hold it for one request at most); runs in a short-lived daemon timer thread."""
    timer = threading.Timer(TRIM_DELAY_S, memory.trim)
    timer.daemon = True
    timer.start()

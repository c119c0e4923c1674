"""One worker process of ``winnow serve`` with ``[serving] workers > 1``: its side of the dispatcher.

The dispatcher (serving/workers.py) passes connections over a Unix socket; the worker serves
them with uvicorn's own HTTP protocol. Over the same socket the worker tells the dispatcher it
is ready and when a connection closed, and the two arrange a *replacement*: a build this
worker would otherwise do in a thread while serving (a bundle the ACTIVE follower found, a
rollout's challenger) is done by a fresh worker process instead, which takes this one's place.

Contract (the worker's side):
- ``request_replacement()`` asks the dispatcher once per process for a fresh worker and returns
  True: the caller must not build; the fresh worker loads the store's state (ACTIVE bundle,
  running rollout) itself. It returns False (build in place) outside a dispatcher worker, while
  this worker is still starting (its start-up builds are its own), and after the dispatcher
  reported that the replacement failed (it exited or did not become ready in time);
- ``retiring()`` is True once the replacement serves: this worker answers every request with
  ``Connection: close`` (serving.app.GuardMiddleware), so each client moves to the new worker
  after a complete response (never mid-request); the dispatcher stops it (uvicorn's graceful
  shutdown: in-flight requests finish, impressions are flushed) when its connections are
  closed, or ``[serving] retire_s`` after;
- ``request_shadow()`` asks the dispatcher for the shadow process (serving/shadow_proc.py) that
  answers this server's shadow jobs; False outside a dispatcher worker;
- ``python -m winnow.serving.worker_proc FD shadow`` starts that shadow process instead of a
  worker (``shadow_main``: its imports at idle priority, like a spare's);
- ``is_spare()``: this process was started as a replacement: its imports and start-up builds
  run in the SCHED_IDLE class (``at_idle_priority``; serving.swap.startup_build: one build of
  the server at a time), so the workers serving meanwhile keep the CPU they need.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from winnow.serving.workers import CLOSED, READY, REPLACE, REPLACE_FAILED, RETIRE, SHADOW, START_ENV

log = logging.getLogger(__name__)
T = TypeVar("T")
_chan: socket.socket | None = None
_ready = threading.Event()  # READY sent: from now on builds go to a replacement
_asked = threading.Event()
_failed = threading.Event()
_retiring = threading.Event()
_send_lock = threading.Lock()


def is_spare() -> bool:
    """Whether this process was started to replace a worker (see module docstring)."""
    return os.environ.get(START_ENV) == "idle"


def retiring() -> bool:
    """Whether this worker has been replaced and answers with ``Connection: close`` until it stops."""
    return _retiring.is_set()


def request_replacement() -> bool:
    """Ask the dispatcher for a fresh worker to take this one's place (see module docstring);
    True: asked (now or earlier) -- do not build here; False: build in place."""
    if _chan is None or not _ready.is_set() or _failed.is_set():
        return False
    with _send_lock:
        if not _asked.is_set() and not _retiring.is_set():
            try:
                _chan.send(REPLACE)
            except OSError:
                return False
            _asked.set()
    return True


def request_shadow() -> bool:
    """Ask the dispatcher for the shadow process (serving/shadow_proc.py; it starts one if none
    runs, so asking again is harmless); False outside a dispatcher worker (no such process)."""
    if _chan is None:
        return False
    try:
        _send(SHADOW)
    except OSError:
        return False
    return True


def at_idle_priority(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a helper thread of the SCHED_IDLE class (Linux: CPU only when no other
    thread wants it; at normal priority where the class is missing) and return its result or
    raise its exception; the helper ends with ``fn``. Threads ``fn`` starts inherit the class
    (and an unprivileged process cannot raise it again), so ``fn`` must start none that outlive
    it: a spare's imports and start-up builds run here, its serving threads do not."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread only (Linux)
        except (AttributeError, OSError) as exc:
            log.warning("start-up build at normal priority: SCHED_IDLE unavailable (%s)", exc)
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    helper = threading.Thread(target=run, name="idle-build")
    helper.start()
    helper.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _note(msg: bytes) -> None:
    """A message from the dispatcher (besides connections)."""
    if RETIRE in msg:
        _retiring.set()
    if REPLACE_FAILED in msg:
        _failed.set()


def _send(byte: bytes) -> None:
    if _chan is not None:
        with _send_lock:
            _chan.send(byte)


def main(fd: int) -> None:
    """A worker: uvicorn serving the connections the dispatcher passes over socket ``fd``."""
    import asyncio

    import uvicorn

    global _chan
    chan = _chan = socket.socket(fileno=fd)
    if is_spare():  # its imports (~2 s of CPU) too take only CPU the serving workers leave, except
        importlib.import_module("pyarrow")  # one that starts a thread at import (its jemalloc's): not idle
        at_idle_priority(lambda: importlib.import_module("winnow.serving.server"))

    class ChannelServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=[])  # no listening socket of its own
            loop = asyncio.get_running_loop()
            chan.setblocking(False)

            def protocol() -> asyncio.Protocol:
                proto = self.config.http_protocol_class(  # type: ignore[call-arg]
                    config=self.config, server_state=self.server_state, app_state=self.lifespan.state)
                lost = proto.connection_lost

                def connection_lost(exc: Exception | None) -> None:
                    lost(exc)
                    try:
                        _send(CLOSED)
                    except OSError:
                        pass
                proto.connection_lost = connection_lost  # type: ignore[method-assign]
                return proto

            def receive() -> None:
                try:
                    msg, fds, _, _ = socket.recv_fds(chan, 64, 64)
                except (BlockingIOError, InterruptedError):
                    return
                if not msg and not fds:  # the dispatcher is gone
                    loop.remove_reader(chan.fileno())
                    self.should_exit = True
                    return
                _note(msg)
                for f in fds:
                    sock = socket.socket(fileno=f)
                    sock.setblocking(False)
                    loop.create_task(loop.connect_accepted_socket(protocol, sock))

            loop.add_reader(chan.fileno(), receive)
            _send(READY)
            _ready.set()

    config = uvicorn.Config("winnow.serving.server:app_from_env", factory=True, loop="uvloop",
                            http="httptools", log_level="warning", access_log=False)
    ChannelServer(config).run()


def shadow_main(fd: int) -> None:
    """The server's shadow process (serving/shadow_proc.py): its imports (~2 s of CPU) in the
    SCHED_IDLE class too, like a spare's, then its own main."""
    importlib.import_module("pyarrow")  # starts a thread at import (jemalloc's): not idle
    module = at_idle_priority(lambda: importlib.import_module("winnow.serving.shadow_proc"))
    module.main(fd)


if __name__ == "__main__":  # run the imported module's main: its state is what the app reads
    from winnow.serving import worker_proc

    if sys.argv[2:] == ["shadow"]:
        worker_proc.shadow_main(int(sys.argv[1]))
    else:
        worker_proc.main(int(sys.argv[1]))

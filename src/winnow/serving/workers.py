"""Several uvicorn worker processes on one port, with connections dealt out evenly.

uvicorn's own ``--workers`` shares one listening socket between the processes and lets them
race for ``accept``; the kernel then hands most connections to whichever process is waiting,
so with few kept-alive client connections one worker can serve every request while the other
idles (measured: 2 connections gave one worker's throughput). Here a dispatcher (the parent
process) owns the listening socket, accepts each connection and passes its file descriptor
(SCM_RIGHTS over a Unix socketpair) to the ready worker holding the fewest open connections
(ties in turn); the worker serves it with uvicorn's own HTTP protocol on its event loop.

Contract:
- per-worker open connections differ by at most one at any time (closed connections are
  reported back by the workers), so c client connections give each of N workers c // N or
  c // N + 1 of them; a single connection is served by one worker (HTTP/1.1 keeps a
  connection's requests in order; per-request spreading would need a proxy that parses HTTP);
- the dispatcher does no per-request work: one ``accept`` + one ``sendmsg`` per connection;
- a connection is given only to a worker that said it is ready (app built, bundle loaded);
  until then connections wait in the listen backlog;
- a worker that exits is restarted; SIGTERM / SIGINT stop the workers (uvicorn's graceful
  shutdown) and then the dispatcher;
- the workers build runtimes (a swap's, a rollout challenger's) one at a time: the dispatcher
  makes this server's build lock file and names it in ``$WINNOW_BUILD_LOCK``
  (winnow.serving.swap.one_build_at_a_time); it is removed when the dispatcher exits.

Workers build their app from ``$WINNOW_HOME`` (``server.app_from_env``), like uvicorn workers.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
READY, CLOSED, CONN = b"r", b"x", b"c"
BUILD_LOCK_ENV = "WINNOW_BUILD_LOCK"  # names this server's build lock file in its workers' environment


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen
    chan: socket.socket
    ready: bool = False
    open: int = 0
    served: int = 0
    started: float = field(default_factory=time.monotonic)


def _spawn(index: int, build_lock: str) -> _Worker:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = subprocess.Popen([sys.executable, "-m", "winnow.serving.workers", str(child.fileno())],
                            pass_fds=[child.fileno()], env={**os.environ, BUILD_LOCK_ENV: build_lock})
    child.close()
    parent.setblocking(False)
    return _Worker(index, proc, parent)


def serve_workers(host: str, port: int, workers: int, *, backlog: int = 2048) -> None:
    """Run ``workers`` worker processes behind one listening socket until SIGTERM/SIGINT."""
    listener = socket.create_server((host, port), backlog=backlog)
    listener.setblocking(False)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    fd, build_lock = tempfile.mkstemp(prefix="winnow-build-", suffix=".lock")
    os.close(fd)
    pool = [_spawn(i, build_lock) for i in range(workers)]
    sel = selectors.DefaultSelector()
    for w in pool:
        sel.register(w.chan, selectors.EVENT_READ, w)
    listening = False
    turn = 0
    try:
        while not stopping:
            ready = [w for w in pool if w.ready]
            if ready and not listening:
                sel.register(listener, selectors.EVENT_READ, None)
                listening = True
            for key, _ in sel.select(timeout=0.5):
                w = key.data
                if w is None:
                    turn = _accept_all(listener, ready, turn)
                    continue
                try:
                    data = w.chan.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    w.ready = w.ready or READY in data
                    w.open -= data.count(CLOSED)
                    continue
                sel.unregister(w.chan)  # the worker exited: restart it
                w.chan.close()
                code = w.proc.wait()
                log.error("worker %d (pid %d) exited with %s; restarting", w.index, w.proc.pid, code)
                new = _spawn(w.index, build_lock)
                pool[w.index] = new
                sel.register(new.chan, selectors.EVENT_READ, new)
            if not any(w.ready for w in pool) and listening:
                sel.unregister(listener)
                listening = False
    finally:
        listener.close()
        for w in pool:
            if w.proc.poll() is None:
                w.proc.terminate()
        deadline = time.monotonic() + 30
        for w in pool:
            try:
                w.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                w.proc.kill()
        os.unlink(build_lock)


def _accept_all(listener: socket.socket, ready: list[_Worker], turn: int) -> int:
    """Accept every pending connection and hand each to the least-loaded ready worker."""
    while ready:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return turn
        least = min(w.open for w in ready)
        candidates = [w for w in ready if w.open == least]
        w = candidates[turn % len(candidates)]
        turn += 1
        try:
            socket.send_fds(w.chan, [CONN], [conn.fileno()])
            w.open += 1
            w.served += 1
        except OSError as exc:  # the worker is going away; the client sees a reset
            log.warning("could not pass a connection to worker %d: %s", w.index, exc)
        finally:
            conn.close()
    return turn


def _worker_main(fd: int) -> None:
    """A worker: uvicorn serving the connections the dispatcher passes over socket ``fd``."""
    import asyncio

    import uvicorn

    chan = socket.socket(fileno=fd)

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
                        chan.send(CLOSED)
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
                for f in fds:
                    sock = socket.socket(fileno=f)
                    sock.setblocking(False)
                    loop.create_task(loop.connect_accepted_socket(protocol, sock))

            loop.add_reader(chan.fileno(), receive)
            chan.send(READY)

    config = uvicorn.Config("winnow.serving.server:app_from_env", factory=True, loop="uvloop",
                            http="httptools", log_level="warning", access_log=False)
    ChannelServer(config).run()


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))

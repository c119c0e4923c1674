"""Several uvicorn worker processes on one port, with connections dealt out evenly.

uvicorn's own ``--workers`` shares one listening socket between the processes and lets them
race for ``accept``; the kernel then hands most connections to whichever process is waiting,
so with few kept-alive client connections one worker can serve every request while the other
idles (measured: 2 connections gave one worker's throughput). Here a dispatcher (the parent
process) owns the listening socket, accepts each connection and passes its file descriptor
(SCM_RIGHTS over a Unix socketpair) to the ready worker holding the fewest open connections
(ties in turn); the worker (serving/worker_proc.py) serves it with uvicorn's own HTTP protocol.

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
- **replacements**: a worker that needs a new runtime (``[serving] rebuild = "replace"``: a
  bundle the ACTIVE follower found, a rollout's challenger) asks for a fresh process instead
  of building while it serves. The dispatcher starts one replacement at a time (a *spare*,
  whose start-up builds run in the SCHED_IDLE class), keeps dealing connections to the old
  worker until the spare is ready, then deals them to the spare and *retires* the old worker:
  it answers with ``Connection: close`` from then on and is stopped once its connections are
  closed or ``retire_s`` later (graceful shutdown: nothing in flight is cut), niced to 19 first
  so that its exit (freeing a runtime's heap) takes CPU only the serving workers leave. A spare that
  exits before it is ready, or is not ready after ``replace_timeout_s`` (then killed), is
  reported to the old worker, which then builds in place;
- **the shadow process**: a worker following a shadow rollout (``[rollout] shadow_process``)
  sends ``SHADOW``; the dispatcher then starts one shadow process (serving/shadow_proc.py) if
  none runs: it loads the challenger and answers the workers' sampled requests off their
  processes, in the SCHED_IDLE class. The workers reach it over a Unix datagram socket named in
  ``$WINNOW_SHADOW_SOCKET`` (every process started here gets the name). It exits by itself
  when the rollout is no longer a shadow (not restarted until asked again); one that failed is
  started again only ``SHADOW_RETRY_S`` later, if asked, told its attempt number (``$WINNOW_SHADOW_ATTEMPT``:
  consecutive failures + 1, so it can roll the rollout back after ``max_build_failures``); its
  socket and ready marker are removed when it exits and when the dispatcher exits;
- the workers build runtimes (a swap's, a rollout challenger's, a spare's start-up) one at a
  time: the dispatcher makes this server's build lock file and names it in
  ``$WINNOW_BUILD_LOCK`` (winnow.serving.swap.one_build_at_a_time); it is removed when the
  dispatcher exits.

Workers build their app from ``$WINNOW_HOME`` (``server.app_from_env``), like uvicorn workers.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import itertools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from winnow.serving.busy_board import BOARD_ENV, SLOT_ENV, Board, make_board

log = logging.getLogger(__name__)
READY, CLOSED, CONN = b"r", b"x", b"c"
REPLACE = b"b"         # worker -> dispatcher: start a fresh worker to take my place
RETIRE = b"q"          # dispatcher -> worker: your replacement serves; close connections, you stop soon
REPLACE_FAILED = b"f"  # dispatcher -> worker: your replacement failed; build in place
SHADOW = b"s"          # worker -> dispatcher: a shadow rollout runs; start the shadow process if none
BUILD_LOCK_ENV = "WINNOW_BUILD_LOCK"  # names this server's build lock file in its workers' environment
START_ENV = "WINNOW_WORKER_START"  # "idle" in a spare's environment (serving.worker_proc.is_spare)
SHADOW_ENV = "WINNOW_SHADOW_SOCKET"  # the shadow process's datagram socket (serving/shadow_link.py)
SHADOW_RETRY_S = 60.0  # a shadow process that failed is started again this long after, at the earliest
SHADOW_ATTEMPT_ENV = "WINNOW_SHADOW_ATTEMPT"  # 1 + the consecutive failures of the shadow process before it
KILL_AFTER_S = 30.0  # a stopped worker still running this long after SIGTERM is killed


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen
    chan: socket.socket
    spare: bool = False  # started to replace the worker of slot ``index``; not dealt to until ready
    ready: bool = False
    open: int = 0
    served: int = 0
    started: float = field(default_factory=time.monotonic)
    slot: int = -1  # its counter on the busy board (serving/busy_board.py)
    retire_at: float | None = None  # replaced: stop it when its connections are closed or at this time
    kill_at: float | None = None  # SIGTERM sent: kill it if still running at this time


Spawn = Callable[[int, bool], _Worker]


def _spawn(index: int, spare: bool, build_lock: str, run_dir: str, slot: int, *, shadow: int = 0) -> _Worker:
    """Start a worker (a spare with ``spare``) or, with ``shadow`` (its attempt number), the
    shadow process, with busy-board slot ``slot``; in the dispatcher's session (scheduler
    autogroups: serving/drift_supervisor.py)."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = {**os.environ, BUILD_LOCK_ENV: build_lock, SHADOW_ENV: os.path.join(run_dir, "shadow.sock"),
           SHADOW_ATTEMPT_ENV: str(shadow), BOARD_ENV: os.path.join(run_dir, "busy"), SLOT_ENV: str(slot)}
    env.pop(START_ENV, None)
    if spare or shadow:
        env[START_ENV] = "shadow" if shadow else "idle"
    proc = subprocess.Popen([sys.executable, "-m", "winnow.serving.worker_proc", str(child.fileno()),
                             *(["shadow"] if shadow else [])], pass_fds=[child.fileno()], env=env)
    child.close()
    parent.setblocking(False)
    return _Worker(index, proc, parent, spare=spare, slot=slot)


def lower_priority(pid: int, nice: int = 19) -> None:
    """Nice every thread of process ``pid`` (Linux: the nice value is per thread) to ``nice``;
    a thread gone meanwhile or a refusal is skipped (it only makes the exit compete for CPU)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:
            pass


class Pool:
    """The dispatcher's processes: one serving worker per slot, at most one spare starting, and
    replaced workers retiring (see module docstring). ``spawn(index, spare)`` starts a process."""

    def __init__(self, workers: int, spawn: Spawn, sel: selectors.BaseSelector, *,
                 replace_timeout_s: float = 900.0, retire_s: float = 10.0,
                 lower: Callable[[int], None] | None = None,
                 spawn_shadow: Callable[[int], _Worker] | None = None,
                 shadow_gone: Callable[[], None] | None = None,
                 exited: Callable[[_Worker], None] | None = None) -> None:
        """``spawn_shadow(attempt)`` starts the shadow process (None: never started); ``shadow_gone``
        is called when it has exited (removes its socket); ``exited(w)`` when any process has
        (zeroes its busy-board slot)."""
        self._spawn, self.sel = spawn, sel
        self._exited = exited
        self._spawn_shadow, self._shadow_gone = spawn_shadow, shadow_gone
        self.shadow: _Worker | None = None
        self.shadow_failed_at = float("-inf")
        self.shadow_failures = 0  # consecutive non-zero exits of the shadow process
        self._lower = lower or lower_priority
        self.replace_timeout_s, self.retire_s = replace_timeout_s, retire_s
        self.slots: list[_Worker] = []
        self.spare: _Worker | None = None
        self.queue: list[int] = []  # slots whose worker asked to be replaced, in order
        self.retiring: list[_Worker] = []
        for i in range(workers):
            self.slots.append(self._start(i, False))

    def _start(self, index: int, spare: bool) -> _Worker:
        w = self._spawn(index, spare)
        self.sel.register(w.chan, selectors.EVENT_READ, w)
        return w

    def ready(self) -> list[_Worker]:
        """The workers connections may be dealt to."""
        return [w for w in self.slots if w.ready]

    def readable(self, w: _Worker, now: float) -> None:
        """Read what worker ``w`` sent: readiness, closed connections, a replacement request, or
        its exit (a serving worker is restarted, a spare's failure reported, a retired one let go)."""
        try:
            data = w.chan.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            w.open -= data.count(CLOSED)
            if READY in data and not w.ready:
                w.ready = True
                if w is self.spare:
                    self._promote(w, now)
            if SHADOW in data:
                self._want_shadow(now)
            if REPLACE in data and w in self.slots and w.index not in self.queue \
                    and not (self.spare is not None and self.spare.index == w.index):
                self.queue.append(w.index)
            return
        self.sel.unregister(w.chan)
        w.chan.close()
        code = w.proc.wait()
        if self._exited is not None:
            self._exited(w)
        if w is self.shadow:
            self.shadow = None
            self.shadow_failures = self.shadow_failures + 1 if code != 0 else 0
            if code != 0:
                self.shadow_failed_at = now
                log.error("shadow process (pid %d) exited with %s; started again when asked, after %.0f s",
                          w.proc.pid, code, SHADOW_RETRY_S)
            if self._shadow_gone is not None:
                self._shadow_gone()
        elif w is self.spare:
            self.spare = None
            log.error("replacement worker %d (pid %d) exited with %s before it was ready; worker %d builds in place",
                      w.index, w.proc.pid, code, w.index)
            self._tell(self.slots[w.index], REPLACE_FAILED)
        elif w in self.retiring:
            self.retiring.remove(w)
            log.warning("worker %d (pid %d) replaced and stopped (%s)", w.index, w.proc.pid, code)
        else:
            log.error("worker %d (pid %d) exited with %s; restarting", w.index, w.proc.pid, code)
            self.slots[w.index] = self._start(w.index, False)

    def _want_shadow(self, now: float) -> None:
        """A worker follows a shadow rollout: start the shadow process unless one runs (or one
        failed less than ``SHADOW_RETRY_S`` ago)."""
        if self._spawn_shadow is None or self.shadow is not None or now - self.shadow_failed_at < SHADOW_RETRY_S:
            return
        self.shadow = self._spawn_shadow(self.shadow_failures + 1)
        self.sel.register(self.shadow.chan, selectors.EVENT_READ, self.shadow)
        log.warning("shadow process started (pid %d)", self.shadow.proc.pid)

    def _promote(self, new: _Worker, now: float) -> None:
        """The spare is ready: it takes its slot; the worker it replaces retires."""
        old = self.slots[new.index]
        self.slots[new.index], self.spare, new.spare = new, None, False
        old.ready, old.retire_at = False, now + self.retire_s
        self.retiring.append(old)
        self._tell(old, RETIRE)
        log.warning("worker %d: pid %d replaces pid %d (started %.1f s ago)", new.index, new.proc.pid, old.proc.pid,
                    now - new.started)

    def tick(self, now: float) -> None:
        """Start the next spare, stop a spare past its deadline, stop and kill retired workers."""
        if self.spare is None and self.queue:
            self.spare = self._start(self.queue.pop(0), True)
            self.spare.started = now
        elif self.spare is not None and now - self.spare.started > self.replace_timeout_s:
            log.error("replacement worker %d (pid %d) not ready after %.0f s; stopping it", self.spare.index,
                      self.spare.proc.pid, self.replace_timeout_s)
            self.spare.proc.kill()  # its exit is read like any other (readable): the old worker builds
            self.spare.started = float("inf")
        for old in self.retiring:
            if old.kill_at is None and old.retire_at is not None and (old.open <= 0 or now >= old.retire_at):
                self._lower(old.proc.pid)  # its shutdown (freeing its heap) yields to the workers serving
                old.proc.terminate()  # uvicorn's graceful shutdown
                old.kill_at = now + KILL_AFTER_S
            elif old.kill_at is not None and now >= old.kill_at:
                old.proc.kill()

    @staticmethod
    def _tell(w: _Worker, msg: bytes) -> None:
        try:
            w.chan.send(msg)
        except OSError as exc:  # it is exiting; its exit is read next
            log.warning("could not tell worker %d (pid %d): %s", w.index, w.proc.pid, exc)

    def stop(self) -> None:
        """Terminate every process and wait for them (bounded; then killed)."""
        extra = [w for w in (self.spare, self.shadow) if w is not None]
        procs = [w.proc for w in [*self.slots, *self.retiring, *extra]]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + KILL_AFTER_S
        for p in procs:
            try:
                p.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()


def serve_workers(host: str, port: int, workers: int, *, backlog: int = 2048,
                  replace_timeout_s: float = 900.0, retire_s: float = 10.0) -> None:
    """Run ``workers`` worker processes behind one listening socket until SIGTERM/SIGINT."""
    listener = socket.create_server((host, port), backlog=backlog)
    listener.setblocking(False)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    fd, build_lock = tempfile.mkstemp(prefix="winnow-build-", suffix=".lock")
    os.close(fd)
    run_dir = tempfile.mkdtemp(prefix="winnow-serve-")
    shadow_socket = os.path.join(run_dir, "shadow.sock")
    make_board(os.path.join(run_dir, "busy"))
    board = Board(os.path.join(run_dir, "busy"))
    started = itertools.count()  # busy-board slots, one per process started (SLOTS wrap: the old ones exited)
    sel = selectors.DefaultSelector()
    pool = Pool(workers, lambda i, spare: _spawn(i, spare, build_lock, run_dir, next(started)), sel,
                replace_timeout_s=replace_timeout_s, retire_s=retire_s,
                spawn_shadow=lambda attempt: _spawn(-1, False, build_lock, run_dir, next(started), shadow=attempt),
                shadow_gone=lambda: remove_shadow_socket(shadow_socket),
                exited=lambda w: board.set(w.slot, 0))
    listening = False
    turn = 0
    try:
        while not stopping:
            if pool.ready() and not listening:
                sel.register(listener, selectors.EVENT_READ, None)
                listening = True
            for key, _ in sel.select(timeout=0.5):
                if key.data is None:
                    turn = _accept_all(listener, pool.ready(), turn)
                else:
                    pool.readable(key.data, time.monotonic())
            pool.tick(time.monotonic())
            if not pool.ready() and listening:
                sel.unregister(listener)
                listening = False
    finally:
        listener.close()
        pool.stop()
        os.unlink(build_lock)
        remove_shadow_socket(shadow_socket)
        board.close()
        os.unlink(os.path.join(run_dir, "busy"))
        os.rmdir(run_dir)


def remove_shadow_socket(path: str) -> None:
    """Remove the shadow process's socket and its ready marker (``path + ".ready"``), if there."""
    for p in (path + ".ready", path):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


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

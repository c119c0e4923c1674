"""``winnow serve``'s drift monitor child: started with the server, restarted when it dies,
stopped with it, never outliving it.

With ``[drift] monitor = "process"`` the server (serving/server.py, one worker or several) runs
one ``MonitorSupervisor``: a thread that starts ``python -m winnow --home H drift monitor
--parent-fd N --nice K [--idle]`` (serving/drift_monitor.py: the comparison in a process that
answers no requests, at niceness ``[drift] monitor_nice``, in the SCHED_IDLE class with
``[drift] monitor_idle``) and waits for it.

Contract:
- the child gets the read end of a pipe whose write end only this process holds (no other
  child inherits it: ``subprocess`` closes other descriptors), so when the server dies -- also
  by SIGKILL, when no cleanup runs -- the child reads end-of-file and exits: no orphan;
- a child that exits while the server runs is restarted after ``BACKOFF_S`` x 2^(n-1) (n
  consecutive short-lived runs, capped at ``BACKOFF_MAX_S``; a run longer than ``STABLE_S``
  resets n); exit status ``EXIT_BUSY`` (another monitor already holds the home, e.g. a
  ``winnow drift monitor`` started by hand) is retried the same way, so this server's child
  takes over when that one stops;
- ``stop()`` terminates the child and waits for it (bounded; SIGKILL after ``STOP_S``); the child
  runs in a process group of its own, so a terminal's Ctrl-C (sent to the foreground process
  group) reaches the server only, which then stops the child (no restart of a child that got it
  too);
- the child stays in the server's session: on Linux with scheduler autogroups (the default of
  most distributions) a new session is a new autogroup, and groups share the CPU equally
  whatever their members' niceness, so a monitor in a session of its own took a full core from
  the server's workers while it compared (measured at 10^6 items: the workers' CPU fell from
  ~0.75 to ~0.5 core each and open-loop p99 at 300 req/s went from 11 ms to 16 s). In the
  server's autogroup its niceness (``[drift] monitor_nice``) makes it yield to the workers.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from winnow.serving.drift_monitor import EXIT_BUSY

log = logging.getLogger(__name__)
BACKOFF_S = 1.0
BACKOFF_MAX_S = 60.0
STABLE_S = 60.0
STOP_S = 10.0


class MonitorSupervisor:
    """The server's drift monitor child (module docstring)."""

    def __init__(self, home: Path, *, nice: int = 10, idle: bool = True) -> None:
        self.home = Path(home)
        self.nice = nice
        self.idle = idle
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards proc against stop() during a (re)start
        self._thread = threading.Thread(target=self._loop, name="drift-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        rfd, wfd = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "winnow", "--home", str(self.home), "drift", "monitor",
                 "--parent-fd", str(rfd), "--nice", str(self.nice), *(["--idle"] if self.idle else [])],
                pass_fds=[rfd], env={**os.environ, "WINNOW_HOME": str(self.home)},
                process_group=0)  # Ctrl-C reaches the server only; same session: its nice holds (docstring)
        except BaseException:
            os.close(wfd)
            raise
        finally:
            os.close(rfd)
        return proc, wfd

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                proc, wfd = self._spawn()
                self.proc, self.starts = proc, self.starts + 1
            began = time.monotonic()
            try:
                code = proc.wait()
            finally:
                os.close(wfd)
            if self._stop.is_set():
                return
            failures = 1 if time.monotonic() - began > STABLE_S else failures + 1
            delay = min(BACKOFF_S * 2 ** (failures - 1), BACKOFF_MAX_S)
            if code == EXIT_BUSY:
                log.info("another drift monitor holds home %s; trying again in %.0f s", self.home, delay)
            else:
                log.error("drift monitor (pid %d) exited with %s; restarting in %.0f s", proc.pid, code, delay)
            self._stop.wait(delay)

    def stop(self, timeout: float = STOP_S) -> None:
        """Terminate the child and wait for it (SIGKILL after ``timeout``), then the thread."""
        with self._lock:
            self._stop.set()
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._thread.join(timeout)

"""A throwaway Redis server from Debian's ``redis-server`` binary, for tests and benchmarks.

``start_redis()`` runs ``redis-server`` in a fresh temp dir on a free TCP port (127.0.0.1 only,
no persistence: ``--save "" --appendonly no``) and returns a ``RedisServer``; ``stop()`` shuts
it down and removes the directory (also registered with ``atexit``). Fault tests use
``kill()`` (SIGKILL: data gone, like a crashed unpersisted server) then ``start()`` again on the
same port, and ``pause()`` / ``resume()`` (SIGSTOP / SIGCONT: a server that stops answering).

Outside pytest::

    from tests.servers.redis import start_redis
    with start_redis() as r:
        print(r.url)                      # redis://127.0.0.1:PORT/0

Pytest fixtures (registered in tests/conftest.py): ``redis_server`` (session scope) and
``redis_url`` (the session server, flushed before each test). Binary missing: the test fails
when ``CI=true``, otherwise it is skipped with the reason. Port, temp dir, start/clean-up,
waiting and the CI rule: tests/servers/throwaway.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import throwaway


def find_redis() -> str | None:
    """Path of redis-server ($WINNOW_REDIS_SERVER, else PATH, else /usr/bin), or None."""
    env = os.environ.get("WINNOW_REDIS_SERVER")
    for cand in ([env] if env else [shutil.which("redis-server"), "/usr/bin/redis-server"]):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


class RedisServer(throwaway.Throwaway):
    """One running throwaway redis-server (see module docstring)."""

    def __init__(self, binary: str, base: Path, port: int) -> None:
        self.binary, self.base, self.port = binary, base, port
        self.host = "127.0.0.1"
        self.url = f"redis://{self.host}:{port}/0"
        self.logfile = base / "redis.log"
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start (or restart after stop()/kill()) on the same port; returns once it answers PING."""
        if self.running:
            return
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", self.host, "--dir", str(self.base),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
             "--logfile", str(self.logfile), "--maxclients", "1000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        if not throwaway.wait_for(self._answers, timeout=timeout, interval=0.05):
            self.kill()
            raise RuntimeError(f"redis-server not answering after {timeout}s: "
                               f"{throwaway.log_tail(self.logfile)}")

    def _answers(self) -> bool:
        """PING answered; RuntimeError when the process has exited (it will not come up)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}: "
                               f"{throwaway.log_tail(self.logfile)}")
        return self.ping()

    def ping(self) -> bool:
        """PING over a raw socket (no client library involved)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL (a crash; nothing is persisted, so every key is gone after start())."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused server must not stay stopped
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its port and connections but answers nothing."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause()."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self, *, cleanup: bool = True) -> None:
        """Terminate (SIGTERM, then SIGKILL); with ``cleanup`` remove the directory. Never raises."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.terminate()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        if cleanup and self.base.exists():
            shutil.rmtree(self.base, ignore_errors=True)


def start_redis(*, port: int | None = None) -> RedisServer:
    """Start a throwaway server; RuntimeError when redis-server is not installed."""
    binary = find_redis()
    if binary is None:
        raise RuntimeError("redis-server not found; install Debian's 'redis-server' package (make services)")
    base = throwaway.private_dir("winnow-redis-")
    return throwaway.launch(RedisServer(binary, base, port or throwaway.free_port()))


def followers_reading(url: str) -> set[int]:
    """Connection ids of the event followers (clients named ``winnow-follower``, see
    serving/online_state._follower) whose last command was XREAD: followers positioned on the
    stream (a follower reads the stream's newest id before its first XREAD), so a batch
    appended now reaches them. Wait for new ids with ``throwaway.wait_for``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return {int(c["id"]) for c in client.client_list()
                if c.get("name") == "winnow-follower" and c.get("cmd") == "xread"}
    finally:
        client.close()


# --- pytest fixtures --------------------------------------------------------------------------
def require_redis() -> None:
    """Skip (or fail with CI=true) when redis-server is not installed."""
    throwaway.require(find_redis() is not None,
            "redis-server not found; run `make services` (Debian package redis-server)", what="Redis")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway server for the whole test session (stopped at the end, even on failure)."""
    require_redis()
    yield from throwaway.scoped_server(start_redis)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session server, emptied (FLUSHALL) before the test."""
    if not redis_server.running:  # a fault test may have killed it
        redis_server.start()
    with socket.create_connection((redis_server.host, redis_server.port), timeout=5) as s:
        s.sendall(b"FLUSHALL\r\n")
        assert s.recv(64).startswith(b"+OK")
    return redis_server.url


if __name__ == "__main__":  # python -m tests.servers.redis: run one until Ctrl-C
    _srv = start_redis()
    throwaway.serve_until_interrupted(_srv, _srv.url)

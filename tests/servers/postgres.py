"""A throwaway PostgreSQL server from Debian's binaries, for tests and benchmarks.

``start_postgres()`` runs ``initdb`` + ``pg_ctl start`` in a fresh temp dir on a free TCP port
(127.0.0.1 only, trust auth, unix socket inside the temp dir) and returns a ``PostgresServer``;
``stop()`` shuts it down and removes the directory (also registered with ``atexit``). PostgreSQL
refuses to run as root, so under root the binaries run as the ``postgres`` system user
(``runuser -u postgres --``) and the temp dir is chown'ed to it.

Outside pytest (benchmarks, other helpers' integration tests)::

    from tests.servers.postgres import start_postgres
    with start_postgres() as pg:              # or pg = start_postgres(); ...; pg.stop()
        url = pg.create_database("demo")      # postgresql://postgres@127.0.0.1:PORT/demo

Pytest fixtures (registered in tests/conftest.py): ``postgres_server`` (session scope) and
``postgres_url`` (a fresh, empty database per test, dropped afterwards). Binaries missing:
the test fails when ``CI=true``, otherwise it is skipped with the reason (``require_postgres``).
Port, temp dir, start/clean-up and the CI rule: tests/servers/throwaway.py.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import throwaway

SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl/postgres ($WINNOW_PG_BIN, else the newest
    /usr/lib/postgresql/<version>/bin), or None when not installed."""
    env = os.environ.get("WINNOW_PG_BIN")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                          key=lambda p: int(Path(p).parent.name.split(".")[0]), reverse=True)
    for cand in candidates:
        path = Path(cand)
        if all((path / b).is_file() and os.access(path / b, os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a killed postmaster may wait to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class PostgresServer(throwaway.Throwaway):
    """One running throwaway PostgreSQL cluster (see module docstring)."""

    def __init__(self, bindir: Path, base: Path, port: int, *, fsync: bool) -> None:
        self.bindir, self.base, self.port, self.fsync = bindir, base, port, fsync
        self.host = "127.0.0.1"
        self.datadir = base / "data"
        self.logfile = base / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        self.running = False

    # --- process control ------------------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", SUPERUSER, "--"] if self._as_postgres else []
        return prefix + list(args)

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                               f"{throwaway.log_tail(self.logfile)}")

    def initdb(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync", timeout=120)

    def start(self) -> None:
        """Start (or restart after stop()/kill()) on the same port and data directory."""
        opts = (f"-p {self.port} -k {self.base} -c listen_addresses={self.host} -c fsync={'on' if self.fsync else 'off'}"
                " -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60",
                  "-o", opts, "start", timeout=90)
        self.running = True

    def stop(self, *, mode: str = "fast", cleanup: bool = True) -> None:
        """Shut the server down (``mode``: fast | immediate, i.e. a crash); with ``cleanup`` also
        remove its directory. Idempotent; never raises."""
        if self.running:
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "30",
                          "stop", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                self._kill_postmaster()
            self.running = False
        if cleanup and self.base.exists():
            shutil.rmtree(self.base, ignore_errors=True)

    def kill(self) -> None:
        """Crash-stop (immediate shutdown: no checkpoint, clients cut off); start() recovers."""
        self.stop(mode="immediate", cleanup=False)

    def _pids(self) -> list[int]:
        """The postmaster and its child processes (backends, background workers)."""
        try:
            master = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        pids = [master]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        return pids

    def pause(self) -> None:
        """SIGSTOP the whole server: a hung server / network partition (clients get no answer,
        but the kernel still accepts connections and ACKs data). resume() undoes it."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        for pid in self._pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:  # a backend that just exited
                pass

    def _kill_postmaster(self) -> None:
        pidfile = self.datadir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            return
        throwaway.wait_for(lambda: not _alive(pid), timeout=10, interval=0.05)

    # --- databases ------------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as con:
            con.execute(statement)

    def create_database(self, name: str | None = None) -> str:
        """CREATE DATABASE (a fresh, empty one; default name random); returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be alphanumeric/_ , got {name!r}")
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_postgres(*, fsync: bool = True, port: int | None = None) -> PostgresServer:
    """initdb + start a throwaway server; raises RuntimeError when the binaries are missing.
    ``fsync=False`` (tests) skips WAL flushes: commits are still acknowledged only after the
    server wrote them, but survive only a process crash, not power loss."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); "
                           "install Debian's 'postgresql' package (make services)")
    base = throwaway.private_dir("winnow-pg-", owner=SUPERUSER if os.geteuid() == 0 else None)
    server = PostgresServer(bindir, base, port or throwaway.free_port(), fsync=fsync)
    return throwaway.launch(server, setup=server.initdb)


# --- pytest fixtures --------------------------------------------------------------------------
def require_postgres() -> None:
    """Skip (or fail with CI=true) when the server binaries are missing or cannot be run."""
    throwaway.require(find_bindir() is not None,
                      "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin); run `make services`",
                      what="PostgreSQL")
    throwaway.require(os.geteuid() != 0 or shutil.which("runuser") is not None,
                      "running as root and `runuser` is missing: cannot start PostgreSQL as user postgres",
                      what="PostgreSQL")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway server for the whole test session (fsync off: tests need no power-loss safety)."""
    require_postgres()
    yield from throwaway.scoped_server(lambda: start_postgres(fsync=False))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database on the session server (dropped after the test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        if postgres_server.running:
            postgres_server.drop_database(name)


if __name__ == "__main__":  # python -m tests.servers.postgres: run one until Ctrl-C
    _pg = start_postgres()
    throwaway.serve_until_interrupted(_pg, _pg.url())

"""What the throwaway test servers (tests/servers/postgres.py, tests/servers/redis.py) share.

- ``free_port()``: a TCP port free on 127.0.0.1 right now.
- ``private_dir(prefix, owner=None)``: a fresh mode-0700 directory under /tmp, optionally
  chown'ed to a system user (PostgreSQL refuses to run as root).
- ``launch(server, setup=None)``: ``setup()`` then ``server.start()``; if either fails,
  ``server.stop()`` (removing its directory) and re-raise; else register ``server.stop`` with
  ``atexit`` and return the server.
- ``wait_for(check, timeout=..., interval=...)``: poll until ``check()`` is truthy.
- ``log_tail(path)``: the end of a server log, for error messages.
- ``require(found, reason, what)``: a missing binary skips the test locally and fails it when
  ``CI=true`` (the servers' tests must run in CI).
- ``scoped_server(start)``: the body of a session- or module-scoped fixture (stopped even on failure).
- ``serve_until_interrupted(server, url)``: ``python -m tests.servers.<name>``.
- ``Throwaway``: base class giving a server ``with``-statement support (``__exit__`` stops it).

A server class implements ``start()`` and ``stop()`` (idempotent, never raising, removing its
directory); everything here relies on just those two.
"""

from __future__ import annotations

import atexit
import os
import pwd
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import pytest


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)
T = TypeVar("T")


class Throwaway:
    """Mixin: ``with start_x() as srv:`` stops (and removes) the server on exit."""

    def stop(self) -> None:  # pragma: no cover - every server overrides it
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private_dir(prefix: str, *, owner: str | None = None) -> Path:
    """A fresh directory /tmp/<prefix>XXXX, mode 0700, owned by ``owner`` when given."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if owner is not None:
        pw = pwd.getpwnam(owner)
        os.chown(base, pw.pw_uid, pw.pw_gid)
    os.chmod(base, 0o700)
    return base


def launch(server: S, *, setup: Callable[[], None] | None = None) -> S:
    """Run ``setup`` (e.g. initdb) and start ``server``; on failure stop it (removing its
    directory) and re-raise; on success make sure it is stopped when the interpreter exits."""
    try:
        if setup is not None:
            setup()
        server.start()
    except BaseException:
        server.stop()
        raise
    atexit.register(server.stop)
    return server


def wait_for(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.2) -> T:
    """Call ``check`` until it returns something truthy or ``timeout`` seconds have passed;
    returns its last result (falsy on timeout). ``check`` may raise to give up early."""
    end = time.monotonic() + timeout
    while True:
        out = check()
        if out or time.monotonic() > end:
            return out
        time.sleep(interval)


def log_tail(path: Path, chars: int = 2000) -> str:
    """The last ``chars`` characters of a log file ("" when it does not exist)."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def require(found: bool, reason: str, *, what: str) -> None:
    """Skip the test when ``found`` is false -- or fail it when CI=true, where the ``what``
    tests (e.g. "PostgreSQL") must run."""
    if found:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: {what} tests must run)")
    pytest.skip(reason)


def scoped_server(start: Callable[[], S]) -> Iterator[S]:
    """Fixture body: one server for the fixture's scope, stopped at the end even on failure."""
    server = start()
    try:
        yield server
    finally:
        server.stop()


def serve_until_interrupted(server: Any, url: str) -> None:
    """Print ``url`` and keep ``server`` running until Ctrl-C, then stop it."""
    with server:
        print(url, flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass

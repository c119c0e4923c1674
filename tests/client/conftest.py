"""Fixtures of the client tests: a trained home served by a REAL `winnow serve` process with
API keys required, and keys of every scope."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # serve_harness

from serve_harness import Server, make_home  # noqa: E402

from winnow.core.config import WinnowConfig, load_config  # noqa: E402
from winnow.serving.auth import KeyFile, keys_path  # noqa: E402


@dataclass
class Served:
    home: Path
    config: WinnowConfig
    server: Server
    keys: dict[str, str]  # "read" | "write" | "admin" | "all" -> token

    @property
    def url(self) -> str:
        return self.server.url


def make_keys(config: WinnowConfig) -> dict[str, str]:
    keys = KeyFile(keys_path(config))
    out = {s: keys.create([s], name=f"client-test-{s}")[1] for s in ("read", "write", "admin")}
    out["all"] = keys.create(["read", "write", "admin"], name="client-test-all")[1]
    return out


@pytest.fixture(scope="package")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WinnowConfig, dict[str, str]]:
    """One trained home for every client test (the world is small: 150 users, 200 items)."""
    home = tmp_path_factory.mktemp("client-home")
    make_home(home, n_users=150, n_items=200, n_events=5000)
    cfg = load_config(home)
    return home, cfg, make_keys(cfg)


@pytest.fixture(scope="package")
def served(trained: tuple[Path, WinnowConfig, dict[str, str]]) -> Iterator[Served]:
    """`winnow serve` over the trained home, auth on, small request limits (413 is reachable)."""
    home, cfg, keys = trained
    server = Server(home, auth=True, cli=True, env={"WINNOW__SERVING__MAX_EVENTS_PER_REQUEST": "1000"})
    yield Served(home, cfg, server, keys)
    server.stop()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung backend)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    t.join(5)
    for s in held:
        s.close()
    sock.close()

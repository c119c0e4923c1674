"""Helpers for the serving integration tests: a small synthetic home and a REAL server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from winnow.core.config import WinnowConfig, load_config
from winnow.data.open_store import open_store
from winnow.data.synthetic import SyntheticWorld, generate_world


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trained_home(home: Path, toml: str | None = None, *, n_users: int = 300, n_items: int = 500,
                 n_events: int = 20_000, seed: int = 7, train: bool = True,
                 evaluate_models: bool = False) -> tuple[WinnowConfig, SyntheticWorld, Any]:
    """Write ``toml`` (if given) as ``home``/winnow.toml, import a seeded synthetic world into the
    home's store and (optionally) train + activate a bundle: (config, world, BundleInfo or None)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if toml is not None:
        (home / "winnow.toml").write_text(toml)
    cfg = load_config(home)
    world = generate_world(n_users, n_items, n_events, seed=seed)
    store = open_store(cfg.store_url())
    info = None
    try:
        store.import_all(events=world.events, items=world.items, users=world.users)
        if train:
            from winnow.training.job import train as run_train
            info = run_train(cfg, store, evaluate_models=evaluate_models)
    finally:
        store.close()
    return cfg, world, info


def make_home(home: Path, *, n_users: int = 300, n_items: int = 500, n_events: int = 20_000,
              train: bool = True) -> WinnowConfig:
    """Import a seeded synthetic world into ``home`` and (optionally) train + activate a bundle."""
    return trained_home(home, n_users=n_users, n_items=n_items, n_events=n_events, train=train,
                        evaluate_models=True)[0]


class Server:
    """``python -m uvicorn --factory winnow.serving.server:app_from_env`` on a free port."""

    def __init__(self, home: Path, *, env: dict[str, str] | None = None, workers: int = 1,
                 auth: bool = False) -> None:
        """``auth=False``: the server runs with ``[security] auth = false`` (tests not about access
        control); ``auth=True``: keys are required (tests/integration/test_security*.py)."""
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "WINNOW_HOME": str(home), "OPENBLAS_NUM_THREADS": "1",
                    "WINNOW__SERVING__WORKERS": str(workers),
                    "WINNOW__SECURITY__AUTH": "true" if auth else "false", **(env or {})}
        self.log = open(home / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "winnow.serving.server:app_from_env",
             "--host", "127.0.0.1", "--port", str(self.port), "--loop", "uvloop", "--http", "httptools",
             "--log-level", "warning", "--no-access-log", "--workers", str(workers)],
            env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.read_log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s: {self.read_log()}")

    def read_log(self) -> str:
        self.log.flush()
        return (self.home / f"server-{self.port}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.wait()
        self.log.close()

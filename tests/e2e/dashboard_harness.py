"""Helpers of the dashboard browser tests: a trained synthetic home, a REAL `winnow serve`
process, and headless Chromium (Debian's package) driven by Playwright.

The browser is /usr/bin/chromium (override with $WINNOW_CHROMIUM); Playwright never downloads
one. Without it the tests skip locally and FAIL when CI=true (`make test` installs it first).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers.throwaway import wait_for

from winnow.core.config import WinnowConfig, load_config
from winnow.data.open_store import open_store
from winnow.data.synthetic import generate_world

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("WINNOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# a test run must not rewrite tracked files: screenshots go to a temp dir unless asked
# (refresh the README's images with WINNOW_SCREENSHOT_DIR=docs/img)
SCREENSHOTS = Path(os.environ.get("WINNOW_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "winnow-screenshots"))


def require_browser() -> str:
    """Path of the Chromium binary; skip (fail when CI=true) if it or Playwright is missing."""
    problems = []
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"no Chromium at {CHROMIUM} (apt-get install chromium, or `make browser`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install -r requirements.txt)")
    if problems:
        msg = "; ".join(problems)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{msg} (CI=true: browser tests must run)")
        pytest.skip(msg)
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_world(home: Path, *, bundles: int = 2) -> WinnowConfig:
    """A seeded synthetic world in ``home``, trained ``bundles`` times (the last one is active)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from winnow.bundle import new_version
    from winnow.training.job import train

    cfg = load_config(home)
    world = generate_world(300, 500, 20_000, seed=7)
    store = open_store(cfg.store_url())
    try:
        store.import_all(events=world.events, items=world.items, users=world.users)
        for _ in range(bundles):
            version = train(cfg, store).version
            # bundle versions carry a timestamp to the second: the next one must sort after this one
            assert wait_for(lambda: new_version()[:16] > version[:16], timeout=5, interval=0.05)
    finally:
        store.close()
    return cfg


def recent_world(home: Path, toml: str, *, n_users: int, n_items: int, n_events: int, seed: int,
                 start: int, days: int = 30):
    """Write ``toml`` as ``home``/winnow.toml, import a seeded world of ``days`` days from unix
    ``start`` and train + activate a bundle on it (no model evaluation): (config, world, BundleInfo)."""
    (home / "winnow.toml").write_text(toml)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from winnow.training.job import train

    cfg = load_config(home)
    world = generate_world(n_users, n_items, n_events, seed=seed, start=start, days=days)
    store = open_store(cfg.store_url())
    try:
        store.import_all(events=world.events, items=world.items, users=world.users)
        info = train(cfg, store, evaluate_models=False)
    finally:
        store.close()
    return cfg, world, info


def create_key(cfg: WinnowConfig, scopes: tuple[str, ...] = ("admin", "read", "write")) -> str:
    """A new API key for the home (the server re-reads the key file); returns the token."""
    from winnow.serving.auth import KeyFile, keys_path

    return KeyFile(keys_path(cfg)).create(list(scopes), name="e2e")[1]


class WinnowServer:
    """`winnow --home HOME serve --port PORT` as a child process (cwd = HOME)."""

    def __init__(self, home: Path) -> None:
        """Access control stays on (the default): clients need a key from ``create_key``."""
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = shutil.which("winnow", path=str(Path(sys.executable).parent)) or shutil.which("winnow")
        cmd = [exe] if exe else [sys.executable, "-c", "from winnow.cli import main; main()"]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        self.log_path = home / f"serve-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([*cmd, "--home", str(home), "serve", "--port", str(self.port)],
                                     cwd=home, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:  # nobody holds this object to stop it: do not leave the server (and its children) behind
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"winnow serve exited with {self.proc.returncode}: {self.read_log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"winnow serve not ready after {timeout}s: {self.read_log()}")

    def read_log(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Console:
    """Collects console errors, uncaught exceptions and failed requests of one page."""

    def __init__(self, page, *, allow: str | None = None) -> None:
        """``allow``: a regex of console errors that are expected (e.g. a 401 before signing in)."""
        self.errors: list[str] = []
        self.allow = re.compile(allow) if allow else None
        page.on("console", lambda m: self._console(m.type, m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url} {r.failure}"))

    def _console(self, kind: str, text: str) -> None:
        if kind == "error" and not (self.allow and self.allow.search(text)):
            self.errors.append(f"console.{kind}: {text}")

    def check(self, where: str) -> None:
        assert not self.errors, f"{where}: browser reported {self.errors}"


def open_view(page, base: str, route: str, *, timeout_ms: int = 30_000) -> None:
    """Navigate to /ui/#/<route> and wait until the page says it has rendered."""
    target = f"{base}/ui/#/{route}"
    if page.url == target:
        page.reload()  # same hash: goto would not re-render
    else:
        page.goto(target)
    page.wait_for_selector(f'#view[data-page="{route.split("/")[0]}"][data-ready="true"]', timeout=timeout_ms)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def signed_in_page(token: str) -> Iterator[tuple[Any, Console]]:
    """A Chromium page (1400x900, 30 s default timeout) whose dashboard holds the API key
    ``token``, and the Console collecting its errors; the browser is closed afterwards."""
    chromium = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            ctx.add_init_script(f"localStorage.setItem('winnow.apiKey', {json.dumps(token)})")
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            yield page, Console(page)
            ctx.close()
        finally:
            browser.close()

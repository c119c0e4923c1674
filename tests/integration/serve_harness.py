"""Helpers for the serving integration tests: a small synthetic home and a REAL server process."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

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


def write_replica_config(home: Path, *, store_url: str, redis_url: str, extra: str = "") -> None:
    """<home>/winnow.toml naming the backends replicas share (PostgreSQL store, Redis online
    state); every replica started on ``home`` reads the same file."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "winnow.toml").write_text(
        f'[store]\nurl = "{store_url}"\n\n[online]\nurl = "{redis_url}"\n'
        f'op_timeout_ms = 1000\nretry_s = 0.5\n\n[serving]\nbundle_poll_s = 0.3\n{extra}')


def challenger_home(home: Path, *, n_users: int, n_items: int, n_events: int) -> Path:
    """A trained home (``trained_home``) plus a second bundle written by ``winnow train
    --no-activate``: a champion and a challenger for the rollout tests (``versions``)."""
    from typer.testing import CliRunner

    from winnow.cli import app

    trained_home(home, n_users=n_users, n_items=n_items, n_events=n_events)
    res = CliRunner().invoke(app, ["--home", str(home), "train", "--no-activate"])
    assert res.exit_code == 0, res.output
    return home


def versions(home: Path) -> tuple[str, str]:
    """(ACTIVE version, the newest other bundle) of ``home``: champion and challenger."""
    from winnow import bundle as bundles

    champion = bundles.active_version(home)
    assert champion is not None, f"no ACTIVE bundle in {home}"
    return champion, [b.version for b in bundles.list_bundles(home) if b.version != champion][-1]


def make_home(home: Path, *, n_users: int = 300, n_items: int = 500, n_events: int = 20_000,
              train: bool = True) -> WinnowConfig:
    """Import a seeded synthetic world into ``home`` and (optionally) train + activate a bundle."""
    return trained_home(home, n_users=n_users, n_items=n_items, n_events=n_events, train=train,
                        evaluate_models=True)[0]


def home_and_challenger(home: Path, *, n_users: int, n_items: int, n_events: int) -> tuple[WinnowConfig, str]:
    """``make_home`` (trained, ACTIVE) plus a second bundle trained on the same data and not
    activated: (config, the challenger's version)."""
    from winnow.data.open_store import open_store
    from winnow.training.job import train

    cfg = make_home(home, n_users=n_users, n_items=n_items, n_events=n_events)
    store = open_store(cfg.store_url())
    try:
        return cfg, train(cfg, store, evaluate_models=False, activate_bundle=False).version
    finally:
        store.close()


def wait_exited(pids: set[int], timeout_s: float) -> set[int]:
    """Wait until every process in ``pids`` has exited (pidfds: readable at exit), at most
    ``timeout_s``; the ones still running."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:  # gone already
            pass
    try:
        end = time.monotonic() + timeout_s
        waiting = set(fds)
        while waiting and time.monotonic() < end:
            ready, _, _ = select.select(list(waiting), [], [], max(end - time.monotonic(), 0.0))
            waiting -= set(ready)
        return {fds[fd] for fd in waiting}
    finally:
        for fd in fds:
            os.close(fd)


def policies(pid: int) -> dict[int, int]:
    """Scheduling policy of every thread of ``pid`` (os.SCHED_OTHER = 0, os.SCHED_IDLE = 5)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = os.sched_getscheduler(int(task.name))
        except (ProcessLookupError, OSError):  # a thread that ended meanwhile
            pass
    return out


WORKER_HEADER = "x-winnow-worker"  # the answering worker's pid (serving/app.py GuardMiddleware)


def fresh_request(url: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """One request on a new connection: any of a multi-worker server's processes may accept it."""
    with httpx.Client(base_url=url, timeout=30) as c:
        return c.request(method, path, **kw)


def build_window(r: httpx.Response) -> tuple[float, float]:
    """(start, end) of the answering worker's latest runtime build, from its /metrics."""
    assert r.status_code == 200, r.text
    edges = {s.labels["edge"]: s.value for family in text_string_to_metric_families(r.text)
             if family.name == "winnow_runtime_build_timestamp_seconds" for s in family.samples}
    return edges.get("start", 0.0), edges.get("end", 0.0)


def process_tree(root: int) -> set[int]:
    """``root`` and every process descended from it (read from /proc)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def monitor_pids(root: int) -> set[int]:
    """The descendants of ``root`` running ``winnow ... drift monitor`` (read from /proc)."""
    out = set()
    for pid in process_tree(root) - {root}:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"drift" in cmd and b"monitor" in cmd:
            out.add(pid)
    return out


class Server:
    """``python -m uvicorn --factory winnow.serving.server:app_from_env`` on a free port."""

    def __init__(self, home: Path, *, env: dict[str, str] | None = None, workers: int = 1,
                 auth: bool = False, cli: bool = False, port: int | None = None) -> None:
        """``auth=False``: the server runs with ``[security] auth = false`` (tests not about access
        control); ``auth=True``: keys are required (tests/integration/test_security*.py).
        ``cli=True``: started as users start it, ``python -m winnow serve`` (one worker), on
        ``port`` if given (a restart on the same address)."""
        self.home = home
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "WINNOW_HOME": str(home), "OPENBLAS_NUM_THREADS": "1",
                    "WINNOW__SERVING__WORKERS": str(workers),
                    "WINNOW__SECURITY__AUTH": "true" if auth else "false", **(env or {})}
        self.log = open(home / f"server-{self.port}.log", "ab")  # a restart on the same port appends
        command = ([sys.executable, "-m", "winnow", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
                   if cli else
                   [sys.executable, "-m", "uvicorn", "--factory", "winnow.serving.server:app_from_env",
                    "--host", "127.0.0.1", "--port", str(self.port), "--loop", "uvloop", "--http", "httptools",
                    "--log-level", "warning", "--no-access-log", "--workers", str(workers)])
        self.proc = subprocess.Popen(command, env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.wait_ready()
        except BaseException:  # nobody holds this object to stop it: do not leave the server (and its children) behind
            self.stop()
            raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /readyz answers 200 -- from EVERY worker: one worker's readiness says nothing
        of another's (a loaded machine starts them seconds apart)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.read_log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # poll interval of a wait bounded by ``end``
        else:
            raise RuntimeError(f"server not ready after {timeout}s: {self.read_log()}")
        if self.workers > 1:
            self.until_every_worker("GET", "/readyz", ok=lambda r: r.status_code == 200,
                                    timeout_s=max(end - time.monotonic(), 10.0))

    def until_every_worker(self, method: str, path: str, *, ok: Callable[[httpx.Response], bool] | None = None,
                           timeout_s: float = 60.0, **kw: Any) -> dict[str, list[httpx.Response]]:
        """Send ``method path`` (httpx keywords ``kw``) on fresh connections, ``workers`` at a
        time, until each of the server's worker processes has answered and its latest answer
        satisfies ``ok`` (default: any answer); returns every answer, by worker pid.

        Which worker accepts a connection is the kernel's choice, so the calls are retried to
        the deadline; sending them concurrently lets a worker busy with one leave the next to
        another. A worker replaced by a fresh process (serving/workers.py) stops answering and
        exits: its answers are dropped once it has exited. Fails (AssertionError) at the deadline
        naming what each worker answered (more distinct live pids than workers included), or
        when a pid that is not one of this server's processes answered."""
        answers: dict[str, list[httpx.Response]] = {}
        end = time.monotonic() + timeout_s
        with ThreadPoolExecutor(self.workers) as pool:
            while True:
                burst = [pool.submit(fresh_request, self.url, method, path, **kw) for _ in range(self.workers)]
                for future in burst:
                    r = future.result()
                    answers.setdefault(r.headers[WORKER_HEADER], []).append(r)
                if len(answers) > self.workers:  # a replaced worker: forgotten once it has exited
                    alive = process_tree(self.proc.pid)
                    answers = {pid: rs for pid, rs in answers.items() if int(pid) in alive}
                done = len(answers) == self.workers and all(ok is None or ok(rs[-1]) for rs in answers.values())
                if done or time.monotonic() > end:
                    break
                time.sleep(0.02)  # pacing of a retry bounded by ``end``
        strangers = {int(pid) for pid in answers} - process_tree(self.proc.pid)
        assert not strangers, f"pids {strangers} answered but are not processes of this server"
        seen = {pid: (len(rs), rs[-1].status_code, rs[-1].text[:120]) for pid, rs in answers.items()}
        assert len(answers) == self.workers, (
            f"{len(answers)} distinct worker(s) answered {method} {path} within {timeout_s:.0f} s, "
            f"expected {self.workers}: {seen}")
        assert ok is None or all(ok(rs[-1]) for rs in answers.values()), (
            f"not every worker's latest answer to {method} {path} was as expected within {timeout_s:.0f} s: {seen}")
        return answers

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

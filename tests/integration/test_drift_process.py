"""The live drift monitor as a process of its own (serving/drift_monitor.py, drift_supervisor.py,
``winnow drift monitor``), on real processes: ``winnow serve`` starts one monitor child that
computes (the shared result's ``computed_by`` is its pid, never the server's); SIGKILL of that
child -> the server starts another, which writes the next result; SIGKILL of the server -> the
monitor exits (it reads end-of-file on its parent pipe), no orphan. With ``monitor =
"external"`` the server starts none, the admin refresh answers 503 naming what to run, a
standalone ``winnow drift monitor`` then answers it, and a second one on the same home exits 3.
Every wait is on a condition with a deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serve_harness import Server, fresh_request, monitor_pids, trained_home
from servers.throwaway import wait_for

TOML = """
[drift]
refresh_s = 2.0
max_duty = 1.0  # the refresh period under test, not the duty bound (tests/unit/test_drift_monitor_duty.py)
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("drift_process")
    trained_home(home, TOML, n_users=120, n_items=200, n_events=5000)
    return home


def _shared(home: Path) -> dict | None:
    path = home / "drift" / "live.json"
    return json.loads(path.read_text()) if path.exists() else None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def assert_yields_to_the_server(monitor: int, server: int) -> None:
    """The monitor child is niced below the server, in the SCHED_IDLE class, and shares the
    server's scheduling group: its session (on Linux with autogroups a new session is a new
    autogroup, where niceness no longer yields to the server's processes: the monitor took a
    full core from the workers) -- and its autogroup, when the kernel has them; in a process
    group of its own (Ctrl-C reaches the server only, which stops it)."""
    assert os.getpriority(os.PRIO_PROCESS, monitor) >= os.getpriority(os.PRIO_PROCESS, server) + 10
    assert os.sched_getscheduler(monitor) == os.SCHED_IDLE  # [drift] monitor_idle (default): only idle CPU
    assert os.getsid(monitor) == os.getsid(server)
    group = Path(f"/proc/{monitor}/autogroup")
    if group.exists():  # empty for a process in no autogroup (autogroups off when its session began)
        assert group.read_text().split()[:1] == Path(f"/proc/{server}/autogroup").read_text().split()[:1]
    assert os.getpgid(monitor) != os.getpgid(server)


def test_the_server_s_monitor_computes_is_restarted_and_dies_with_the_server(home: Path) -> None:
    srv = Server(home, cli=True)
    try:
        first = wait_for(lambda: (m := monitor_pids(srv.proc.pid)) and len(m) == 1 and m, timeout=60, interval=0.1)
        assert first, f"no monitor child: {srv.read_log()}"
        (m1,) = first
        doc = wait_for(lambda: (d := _shared(home)) and d["computed_by"] == m1 and d, timeout=60, interval=0.1)
        assert doc and doc["state"] == "ok" and doc["report"] is not None, (_shared(home), srv.read_log())
        assert_yields_to_the_server(m1, srv.proc.pid)  # it has computed: it set its niceness first
        assert doc["computed_by"] != srv.proc.pid  # the server (here also the one worker) never computes
        body = fresh_request(srv.url, "GET", "/v1/admin/drift").json()
        assert body["computed_here"] == 0 and body["computed_by"] == m1
        os.kill(m1, 9)
        second = wait_for(lambda: (m := monitor_pids(srv.proc.pid) - {m1}) and m, timeout=60, interval=0.1)
        assert second, f"the killed monitor was not restarted: {srv.read_log()}"
        (m2,) = second
        doc = wait_for(lambda: (d := _shared(home)) and d["computed_by"] == m2 and d, timeout=60, interval=0.1)
        assert doc and doc["computations"] > 1, _shared(home)
        r = fresh_request(srv.url, "POST", "/v1/admin/drift/refresh")
        assert r.status_code == 200 and r.json()["computed_by"] == m2, r.text
        srv.kill9()  # no cleanup runs in the server
        assert wait_for(lambda: not _alive(m2), timeout=30, interval=0.1), f"monitor {m2} outlived its server"
    finally:
        srv.stop()


def _standalone(home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "WINNOW_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "winnow", "--home", str(home), "drift", "monitor"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_external_mode_the_standalone_monitor_answers_and_one_per_home(home: Path) -> None:
    srv = Server(home, cli=True, env={"WINNOW__DRIFT__MONITOR": "external"})
    standalone = second = None
    try:
        assert not monitor_pids(srv.proc.pid)  # "external": the server starts none
        r = fresh_request(srv.url, "POST", "/v1/admin/drift/refresh")
        assert r.status_code == 503 and "winnow drift monitor" in r.json()["detail"], r.text
        standalone = _standalone(home)
        asked = time.time()
        r = wait_for(lambda: (x := fresh_request(srv.url, "POST", "/v1/admin/drift/refresh")).status_code == 200
                     and x, timeout=60, interval=0.2)
        assert r, "the standalone monitor never answered the admin refresh"
        body = r.json()
        assert body["computed_by"] == standalone.pid and body["state"] == "ok" and body["history"][-1]["at"] >= asked
        second = _standalone(home)
        assert second.wait(60) == 3  # another monitor holds the home
        assert standalone.poll() is None
    finally:
        for p in (standalone, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(30)
        srv.stop()

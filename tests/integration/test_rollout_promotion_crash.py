"""A process that dies in the middle of a promotion: the store's record is the truth and every
server makes ACTIVE follow it (winnow.rollout.control.reconcile).

The crash is real: a child process runs the promotion (``control.operator(..., "promote")``,
the code the admin route and the decision loop run) with the ACTIVE write replaced by
``os._exit`` -- it dies after the store says "promoted" and before ACTIVE moves (or, in the
second case, right after ACTIVE moved and before the record is marked). Then:

- a server that was running all along converges (its follower reconciles, its ACTIVE follower
  serves the challenger): decision ``promotion_recovered``;
- a server started after the crash reconciles before it builds its first runtime:
  ``promotion_confirmed`` when ACTIVE had been written;
- ACTIVE moved by hand after such a crash is left alone (``promotion_superseded``), and a record
  older than the ``activated`` field is never touched.
Waits are conditions with deadlines (serve_harness / servers.throwaway).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serve_harness import Server, challenger_home, versions
from servers.throwaway import wait_for

from winnow import bundle as bundles
from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.rollout import control

ENV = {"WINNOW__ROLLOUT__POLL_S": "0.2", "WINNOW__SERVING__BUNDLE_POLL_S": "0.2"}

CRASH = """
import os, sys
from pathlib import Path
from winnow import bundle
from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.rollout import control

home, when = Path(sys.argv[1]), sys.argv[2]
real = bundle.activate
def activate(*a, **k):
    if when == "after_active":
        real(*a, **k)
    os._exit(9)  # the process dies here: no exception handler, no finally, no flush
bundle.activate = activate
store = open_store(load_config(home).store_url())
control.operator(store, home, "promote", by="crash-test")
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return challenger_home(tmp_path_factory.mktemp("promotion-crash"), n_users=120, n_items=200, n_events=5000)


def _store(home: Path):
    return open_store(load_config(home).store_url())


def _canary_then_crash(home: Path, challenger: str, when: str) -> int:
    store = _store(home)
    try:
        r = control.start(store, load_config(home), challenger=challenger, mode="canary", plan=(50, 100))
    finally:
        store.close()
    done = subprocess.run([sys.executable, "-c", CRASH, str(home), when], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 9, done.stderr[-2000:]
    return r.id


def _record(home: Path, rid: int):
    store = _store(home)
    try:
        return store.rollout(rid)
    finally:
        store.close()


def test_a_running_server_finishes_a_promotion_its_peer_crashed_in(home: Path) -> None:
    champion, challenger = versions(home)
    server = Server(home, env=ENV)
    try:
        rid = _canary_then_crash(home, challenger, "before_active")
        # the crash left exactly the state the issue describes; the server repairs it
        # (the record is read here after the fact: it may already be repaired)
        served = wait_for(lambda: httpx.get(server.url + "/readyz", timeout=10).json()["model_version"] == challenger,
                          timeout=120, interval=0.2)
        assert served, f"the server never served the promoted challenger: {server.read_log()}"
        assert bundles.active_version(home) == challenger
        r = _record(home, rid)
        assert r.state == "promoted" and r.activated is True
        assert [(d.action, d.rule) for d in r.decisions[-2:]] == [("promote", "operator"),
                                                                  ("activate", "promotion_recovered")]
        assert r.decisions[-1].evidence["active_before"] == champion
    finally:
        server.stop()
        bundles.activate(home, champion)


def test_a_server_started_after_the_crash_reconciles_before_serving(home: Path) -> None:
    champion, challenger = versions(home)
    rid = _canary_then_crash(home, challenger, "after_active")
    r = _record(home, rid)
    assert r.state == "promoted" and r.activated is False and bundles.active_version(home) == challenger
    server = Server(home, env=ENV)
    try:
        # reconciled in Service() before the first runtime: ready means already on the challenger
        assert httpx.get(server.url + "/readyz", timeout=10).json()["model_version"] == challenger
        r = _record(home, rid)
        assert r.activated is True and r.decisions[-1].rule == "promotion_confirmed"
    finally:
        server.stop()
        bundles.activate(home, champion)


def test_reconcile_leaves_a_hand_moved_active_and_older_records_alone(home: Path) -> None:
    champion, challenger = versions(home)
    rid = _canary_then_crash(home, challenger, "before_active")
    store = _store(home)
    try:
        r = store.rollout(rid)
        # a record from before the field: "activated" None -> never reconciled
        legacy = store.update_rollout(rid, revision=r.revision, changes={"activated": None})
        assert legacy is not None and control.reconcile(store, home) is None
        assert bundles.active_version(home) == champion
        store.update_rollout(rid, revision=legacy.revision, changes={"activated": False})
        # ACTIVE on a bundle that is neither side (moved by hand after the crash; simulated by a
        # record whose champion was another version): left where it is
        r = store.rollout(rid)
        moved = store.update_rollout(rid, revision=r.revision, changes={"champion": "20000101T000000Z-000000"})
        assert moved is not None
        done = control.reconcile(store, home)
        assert done is not None and done.decisions[-1].rule == "promotion_superseded" and done.activated is True
        assert bundles.active_version(home) == champion
        assert control.reconcile(store, home) is None  # once marked, nothing more to do
    finally:
        store.close()

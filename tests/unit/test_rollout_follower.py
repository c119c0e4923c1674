"""The rollout follower (serving/rollout_follower.py) on a real SQLite store with a host whose
challenger build fails: no build error escapes ``refresh`` / ``start``, failures are counted per
rollout and the rollout is rolled back after ``max_build_failures``; ``stop`` joins the thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from winnow.core.config import WinnowConfig
from winnow.core.errors import BundleError
from winnow.data.open_store import open_store
from winnow.data.rollouts import Rollout, RolloutDecision
from winnow.data.store import Store
from winnow.rollout import control
from winnow.serving.rollout_follower import RolloutFollower
from winnow.serving.telemetry import Metrics


class FailingHost:
    """A ChallengerHost whose build raises ``error`` (a fresh instance each time)."""

    def __init__(self, store: Store, home: Path, error: type[BaseException] | None) -> None:
        self.config = WinnowConfig.model_validate({"home": str(home), "rollout": {"max_build_failures": 3,
                                                                                  "poll_s": 0.05}})
        self.store = store
        self.metrics = Metrics()
        self.error = error
        self.builds = 0
        self.dropped = 0
        self.elsewhere = False  # True: a fresh worker process builds (workers under the dispatcher)
        self.asked_elsewhere = 0
        self.shadow_process = False  # True: the server's shadow process holds a shadow's challenger
        self.asked_shadow = 0
        self.status: dict[str, Any] = {}
        self.entered = threading.Event()
        self.release = threading.Event()

    def build_challenger(self, version: str) -> Any:
        self.builds += 1
        self.entered.set()
        if self.error is None:  # a slow build: waits for the test
            assert self.release.wait(30.0), "test never released the build"
            raise OSError("slow build ended")
        raise self.error(f"build {self.builds} of {version} failed")

    def build_elsewhere(self) -> bool:
        self.asked_elsewhere += 1
        return self.elsewhere

    def adopt(self, new: Any) -> None:
        raise AssertionError("nothing to adopt")

    def drop_challenger(self) -> None:
        self.dropped += 1

    def shadow_elsewhere(self) -> bool:
        self.asked_shadow += 1
        return self.shadow_process

    def shadow_status(self, rollout_id: int) -> dict[str, Any]:
        return dict(self.status)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    yield s
    s.close()


def _canary(store: Store, *, max_build_failures: int | None = None) -> Rollout:
    params: dict[str, Any] = {"salt": "s"}
    if max_build_failures is not None:
        params["max_build_failures"] = max_build_failures
    return store.start_rollout(Rollout(
        id=0, state="canary", revision=0, started=1000, challenger="20260101T000000Z-aaaaaa",
        champion="20251201T000000Z-bbbbbb", mode="canary", plan=(50, 100), step=0, step_started=1000,
        params=params, decisions=(RolloutDecision(1000, 0, "operator", "start", {"by": "test"}),)))


@pytest.mark.parametrize("error", [MemoryError, OSError, RuntimeError])
def test_unexpected_build_errors_never_escape_and_roll_back_after_the_limit(
        store: Store, tmp_path: Path, error: type[BaseException]) -> None:
    r = _canary(store)  # the record carries no limit: the config's (3) applies
    host = FailingHost(store, tmp_path, error)
    follower = RolloutFollower(host)
    for attempt in (1, 2):
        assert follower.refresh() == store.rollout()  # no exception
        assert store.rollout(r.id).state == "canary"
        assert len(follower.here()["build_failures"]) == attempt and follower.current is None
    follower.refresh()
    done = store.rollout(r.id)
    assert done.state == "rolled_back" and host.builds == 3
    last = done.decisions[-1]
    assert (last.rule, last.action) == ("challenger_build_failed", "roll_back")
    assert last.evidence["attempts"] == 3 and len(last.evidence["errors"]) == 3
    assert last.evidence["errors"][0] == f"{error.__name__}: build 1 of {r.challenger} failed"
    follower.refresh()  # ended: nothing is built again
    assert host.builds == 3


def test_the_records_limit_wins_and_a_refused_bundle_rolls_back_at_once(store: Store, tmp_path: Path) -> None:
    r = _canary(store, max_build_failures=1)
    follower = RolloutFollower(FailingHost(store, tmp_path, OSError))
    follower.refresh()
    assert store.rollout(r.id).state == "rolled_back"
    r2 = _canary(store)
    follower = RolloutFollower(FailingHost(store, tmp_path, BundleError))
    follower.refresh()
    got = store.rollout(r2.id)
    assert got.state == "rolled_back" and got.decisions[-1].rule == "challenger_refused"


def test_start_survives_a_failing_build_and_stop_joins_the_thread(store: Store, tmp_path: Path) -> None:
    r = _canary(store, max_build_failures=1000)
    host = FailingHost(store, tmp_path, MemoryError)
    follower = RolloutFollower(host)
    follower.start()  # Service() calls this: it must not raise
    try:
        follower.wake()
        assert host.entered.wait(10.0)
        assert store.rollout(r.id).state == "canary"
    finally:
        assert follower.stop(timeout=10.0)
    assert not follower._thread.is_alive()


def test_stop_waits_for_a_build_in_progress_and_admin_refresh_never_builds(store: Store, tmp_path: Path) -> None:
    _canary(store, max_build_failures=1000)
    host = FailingHost(store, tmp_path, None)  # build blocks until released
    follower = RolloutFollower(host)
    follower.refresh(build=False)  # what the admin routes do: no build in the request
    assert host.builds == 0 and follower.latest is not None and follower.latest.state == "canary"
    follower._thread.start()
    follower.wake()
    assert host.entered.wait(10.0)
    assert follower.stop(timeout=0.2) is False  # bounded: the build still runs
    host.release.set()
    assert follower.stop(timeout=10.0) is True
    assert host.builds == 1  # stopped: no new build after the one in progress


def test_a_replaced_worker_leaves_the_build_to_its_replacement_unless_its_own_build_failed(
        store: Store, tmp_path: Path) -> None:
    """Under the dispatcher ([serving] rebuild = "replace") a fresh worker builds the challenger:
    this one neither builds nor counts a failure. A process whose own build of this rollout failed
    retries in place (a replacement that failed the same way would loop)."""
    r = _canary(store)
    host = FailingHost(store, tmp_path, OSError)
    host.elsewhere = True
    follower = RolloutFollower(host)
    follower.refresh()
    follower.refresh()
    assert host.builds == 0 and host.asked_elsewhere == 2 and follower.here()["build_failures"] == []
    assert store.rollout(r.id).state == "canary" and follower.current is None
    host.elsewhere = False
    follower.refresh()  # the replacement failed (the dispatcher said so): build here
    assert host.builds == 1 and len(follower.here()["build_failures"]) == 1
    host.elsewhere = True
    follower.refresh()  # failed here once: retried here, not handed on
    assert host.builds == 2 and host.asked_elsewhere == 3


def test_a_shadow_left_to_the_shadow_process_is_never_built_here(store: Store, tmp_path: Path) -> None:
    """Under the dispatcher with [rollout] shadow_process, a shadow rollout's challenger is held by
    the server's shadow process: the worker asks for it on every poll (the dispatcher starts one
    if none runs), builds nothing, holds a view without a runtime, and reports the challenger
    loaded only once the process says it holds this rollout's challenger. A canary is still built
    (or replaced) as before."""
    r = store.start_rollout(Rollout(
        id=0, state="shadow", revision=0, started=1000, challenger="20260101T000000Z-aaaaaa",
        champion="20251201T000000Z-bbbbbb", mode="shadow", plan=(100,), step=0, step_started=1000,
        params={"sample": 1.0}, decisions=(RolloutDecision(1000, 0, "operator", "start", {"by": "test"}),)))
    host = FailingHost(store, tmp_path, OSError)
    host.shadow_process = True
    follower = RolloutFollower(host)
    follower.refresh()
    follower.refresh()
    assert host.builds == 0 and host.asked_shadow == 2 and host.asked_elsewhere == 0
    assert follower.current is not None and follower.current.runtime is None and follower.current.record.id == r.id
    assert follower.here()["challenger_loaded"] is None  # the process has not said it holds it
    host.status = {"ran": 3, "process": {"pid": 1, "challenger": r.challenger, "at": 0.0}}
    here = follower.here()
    assert here["challenger_loaded"] == r.challenger and here["shadow"]["ran"] == 3
    control.transition(store, tmp_path, store.rollout(r.id), action="abort", rule="operator", evidence={})
    follower.refresh()
    assert follower.current is None and host.builds == 0
    c = _canary(store)
    follower.refresh()  # a canary: the workers hold the challenger (here: the build fails, counted)
    assert host.builds == 1 and host.asked_shadow == 2 and store.rollout(c.id).state == "canary"

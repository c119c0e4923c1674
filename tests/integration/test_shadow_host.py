"""The shadow process's core (serving/shadow_proc.py ``ShadowHost``) in this process, fed through
a worker's link (serving/shadow_link.py): jobs become records, events reach the challenger's
live ranker features once (the ones acknowledged before it started through its log replay, the
later ones forwarded), a stale job is counted and ignored, and the host ends by itself when the
shadow ends."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from serve_harness import challenger_home, versions
from servers.throwaway import wait_for

from winnow.core.config import load_config
from winnow.core.errors import BundleError
from winnow.data.open_store import open_store
from winnow.rollout import control
from winnow.serving.shadow_link import ShadowLink
from winnow.serving.shadow_proc import ShadowHost
from winnow.serving.telemetry import Metrics


def events(user: str, item: str, ts: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [user], "item_id": [item], "event_type": ["click"], "timestamp": [ts],
                         "value": [1.0], "event_id": [None], "context": [None]})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return challenger_home(tmp_path_factory.mktemp("shadow-host"), n_users=120, n_items=200, n_events=4000)


def test_jobs_events_and_the_end_of_the_shadow(home: Path, tmp_path: Path) -> None:
    cfg = load_config(home)
    champion, challenger = versions(home)
    store = open_store(cfg.store_url())
    r = control.start(store, cfg, challenger=challenger, mode="shadow", sample=1.0, by="test")
    item = store.read_item_scalars()["item_id"].iloc[0]
    now = int(time.time())
    early = events("early-user", item, now)  # acknowledged before the process started: in its log replay
    store.append_events(early, source="request")
    path = str(tmp_path / "shadow.sock")
    host = ShadowHost(cfg, path)
    policies: list[int] = []  # the scheduling class of each thread that wrote records
    write = host.store.log_shadow

    def log_shadow(rid: int, records: list) -> None:
        policies.append(os.sched_getscheduler(0))
        write(rid, records)

    host.store.log_shadow = log_shadow  # type: ignore[method-assign]
    link = ShadowLink(path, Metrics())
    runner = threading.Thread(target=lambda: setattr(host, "code", host.run(None)))
    try:
        runner.start()
        assert host.ready.wait(120), "the challenger was not built"
        feed = host.runtime.feature_feed
        assert feed is not None and host.runtime.version == challenger
        assert wait_for(lambda: len(feed.outside) >= 1, timeout=60, interval=0.02), "the early event in the state"
        late = events("late-user", item, now + 1)
        store.append_events(late, source="request")
        assert link.forward_events(late) == 0
        assert wait_for(lambda: len(feed.outside) >= 2, timeout=60, interval=0.02), "the forwarded event in the state"
        assert len(feed.outside) == 2, "an event counted twice (log replay + catch-up)"

        args = {"user_id": "u1", "k": 5, "surface": "default", "exclude": [], "explain": True, "categories": None,
                "context": {}, "now": float(now), "variants": {}}
        assert link.submit(r.id + 1, challenger, {**args, "request_id": "f" * 32}, ["x"], [1.0]) == "sent"
        sent = [link.submit(r.id, challenger, {**args, "request_id": f"{n:032x}"}, [item], [1.0]) for n in range(5)]
        assert sent == ["sent"] * 5
        assert wait_for(lambda: len(store.read_shadow(r.id)) >= 5, timeout=60, interval=0.02), "five records"
        records = store.read_shadow(r.id)
        assert {rec["request_id"] for rec in records} == {f"{n:032x}" for n in range(5)}
        assert all(rec["challenger"] == challenger and not rec.get("error") for rec in records), records[0]
        assert host.worker.counts[r.id + 1]["stale"] == 1 and host.worker.counts[r.id]["ran"] == 5
        assert policies and set(policies) == {os.SCHED_OTHER}, "records written by a SCHED_IDLE thread"
        assert wait_for(lambda: link.status(r.id)["ran"] == 5, timeout=60, interval=0.02), \
            "the marker (rewritten every poll_s) saying 5 ran"
        status = link.status(r.id)
        assert status["ran"] == 5 and status["sent"] == 5 and status["process"]["challenger"] == challenger

        control.transition(store, home, store.rollout(r.id), action="abort", rule="operator", evidence={})
        runner.join(30)
        assert not runner.is_alive() and host.code == 0
    finally:
        host.stop.set()
        runner.join(30)
        host.close()
        link.close()
        store.close()
    assert not Path(path + ".ready").exists()
    assert link.submit(r.id, challenger, {**args, "request_id": "e" * 32}, [item], [1.0]) == "unavailable"


@pytest.mark.parametrize(("error", "attempt", "code", "rule"), [
    (OSError, 1, 1, None),  # retried by a later process: the rollout keeps running
    (OSError, 3, 1, "challenger_build_failed"),  # the third failure in a row (max_build_failures = 3)
    (BundleError, 1, 0, "challenger_refused"),  # the bundle itself is refused: at once
])
def test_a_challenger_that_cannot_be_built(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           error: type[Exception], attempt: int, code: int, rule: str | None) -> None:
    cfg = load_config(home)
    _, challenger = versions(home)
    store = open_store(cfg.store_url())
    r = control.start(store, cfg, challenger=challenger, mode="shadow", sample=1.0, by="test")

    def fail(self: ShadowHost, version: str) -> None:
        raise error(f"cannot build {version}")

    monkeypatch.setattr(ShadowHost, "_build", fail)
    host = ShadowHost(cfg, str(tmp_path / "shadow.sock"), attempt=attempt)
    try:
        assert host.run(None) == code
    finally:
        host.close()
    try:
        got = store.rollout(r.id)
        if rule is None:
            assert got.state == "shadow"
            control.transition(store, home, got, action="abort", rule="operator", evidence={})
        else:
            assert got.state == "rolled_back" and got.decisions[-1].rule == rule, got.decisions[-1]
            assert f"cannot build {challenger}" in str(got.decisions[-1].evidence)
    finally:
        store.close()

"""`winnow autopilot --once` against a PostgreSQL store (a throwaway server, tests/servers): the
cycle's stages read the shared store, the challenger is written as a verified bundle and labelled,
the hand-off follows the gate, and a second run over the same data does nothing (the snapshot's
hash of the events below the cut is stable on PostgreSQL too); a canary hand-off starts its
rollout in the PostgreSQL store. Tiny worlds: seconds, not minutes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from serve_harness import trained_home

from winnow.bundle import active_version, bundles_dir, list_bundles, verify_bundle
from winnow.cyclelog.record import STAGES, load_records
from winnow.data.open_store import open_store

pytestmark = pytest.mark.slow


def _autopilot_once(home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "winnow", "--home", str(home), "autopilot", "--once"],
                          check=False, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def test_a_cycle_on_postgresql_writes_a_gated_bundle_and_is_idempotent(tmp_path: Path, postgres_url: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cfg, world, champion = trained_home(home, f'[store]\nurl = "{postgres_url}"\n\n[ranker]\nenabled = false\n',
                                        n_users=150, n_items=200, n_events=6_000)
    assert cfg.store_url().startswith("postgresql://") and not (home / "winnow.db").exists()
    run = _autopilot_once(home)
    assert run.returncode == 0, run.stdout + run.stderr
    (rec,) = load_records(home)
    assert rec["status"] == "done" and set(rec["stages"]) == set(STAGES)
    snap = rec["stages"]["snapshot"]["outputs"]
    assert 0 < snap["events"] <= len(world.events) and len(snap["events_sha256"]) == 64
    data = rec["stages"]["datasets"]["outputs"]
    assert data["train_events"] + data["holdout_events"] == snap["events"] and data["users_evaluated"] > 0
    challenger = rec["stages"]["fit"]["outputs"]["version"]
    assert challenger != champion.version and challenger in [b.version for b in list_bundles(home)]
    verify_bundle(bundles_dir(home) / challenger)  # every file's sha256 matches its manifest
    label = json.loads((bundles_dir(home) / challenger / "manifest.json").read_text())["lifecycle"]
    gate = rec["gate"]
    assert label["cycle"] == rec["cycle"] and gate["challenger"] == challenger
    assert active_version(home) == (challenger if gate["passed"] else champion.version)
    assert [p.name for p in bundles_dir(home).iterdir() if p.name.startswith(".tmp")] == []
    # the same data again: nothing to do, no new bundle, no new record
    n_bundles = len(list_bundles(home))
    again = _autopilot_once(home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout + again.stderr
    assert len(load_records(home)) == 1 and len(list_bundles(home)) == n_bundles


def test_the_canary_hand_off_starts_a_rollout_in_the_postgresql_store(tmp_path: Path, postgres_url: str) -> None:
    """The rollout state lives in the shared store: on PostgreSQL the replicas' followers see it."""
    home = tmp_path / "home"
    home.mkdir()
    toml = (f'[store]\nurl = "{postgres_url}"\n\n[ranker]\nenabled = false\n\n'
            '[lifecycle]\nafter_gate = "canary"\ncanary_plan = [10, 100]\n\n'
            '[lifecycle.gate]\nmin_ndcg = 0.0\nmin_recall = 0.0\n')  # the hand-off is under test, not the gate
    cfg, _, champion = trained_home(home, toml, n_users=200, n_items=300, n_events=12_000)
    run = _autopilot_once(home)
    assert run.returncode == 0, run.stdout + run.stderr
    (rec,) = load_records(home)
    assert rec["status"] == "done" and rec["gate"]["passed"] is True, rec["gate"]
    hand = rec["stages"]["handoff"]["outputs"]
    assert hand["action"].startswith("canary started") and hand["active_after"] == champion.version
    assert active_version(home) == champion.version  # ACTIVE moves only when the rollout promotes
    store = open_store(cfg.store_url())
    try:
        r = store.rollout()
        assert r is not None and r.running and r.state == "canary" and r.id == hand["rollout"]["id"]
        assert (r.challenger, r.champion, r.plan) == (rec["gate"]["challenger"], champion.version, (10, 100))
    finally:
        store.close()


def test_a_cycle_with_the_ray_engine_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """`[training] engine = "ray"`: the cycle's fit stage trains the challenger on a local Ray instance
    (2 workers) from the PostgreSQL store — the ranker's point-in-time features on Ray — and the cycle
    completes like the local one: a verified, labelled bundle whose manifest names the Ray engine."""
    home = tmp_path / "home"
    home.mkdir()
    toml = (f'[store]\nurl = "{postgres_url}"\n\n'
            '[ranker]\nnum_boost_round = 30\nearly_stopping_rounds = 5\n\n'
            '[models.als]\niterations = 5\n')
    cfg, _, champion = trained_home(home, toml, n_users=200, n_items=250, n_events=10_000)
    assert champion.manifest["engine"]["name"] == "local"
    (home / "winnow.toml").write_text(toml + '\n[training]\nengine = "ray"\nnum_workers = 2\npartitions = 2\n')
    run = _autopilot_once(home)
    assert run.returncode == 0, run.stdout + run.stderr
    (rec,) = load_records(home)
    assert rec["status"] == "done" and set(rec["stages"]) == set(STAGES), rec.get("error")
    challenger = rec["stages"]["fit"]["outputs"]["version"]
    path = bundles_dir(home) / challenger
    verify_bundle(path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["engine"]["name"] == "ray" and manifest["engine"]["workers"] == 2
    assert (path / "ranker" / "ranker.txt").is_file() and manifest["lifecycle"]["cycle"] == rec["cycle"]
    assert active_version(home) == (challenger if rec["gate"]["passed"] else champion.version)
    assert [p.name for p in bundles_dir(home).iterdir() if p.name.startswith(".tmp")] == []

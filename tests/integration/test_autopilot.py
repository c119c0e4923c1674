"""`winnow autopilot` on a tiny synthetic world: idempotent stages, resume after a failure,
the gate keeping or replacing the champion (winnow.lifecycle)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from serve_harness import trained_home
from winnow.bundle import active_version, bundles_dir, list_bundles
from winnow.core.config import load_config
from winnow.core.errors import LifecycleError
from winnow.data.open_store import open_store
from winnow.lifecycle.cycle import run_once
from winnow.cyclelog.record import load_records

FAST = "[ranker]\nenabled = false\n"  # the ranker is training's business; the lifecycle tests need a bundle


def _home(tmp_path: Path, toml: str = "") -> tuple[Path, str]:
    """A home with a world imported and a champion trained + activated by `winnow train`."""
    home = tmp_path / "home"
    home.mkdir()
    _, _, info = trained_home(home, FAST + toml, n_users=200, n_items=300, n_events=12_000)
    return home, info.version


def _cycle(home: Path, lines: list[str] | None = None):
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    try:
        return run_once(cfg, store, say=(lines.append if lines is not None else lambda _m: None))
    finally:
        store.close()


def _manifest(home: Path, version: str) -> dict:
    return json.loads((bundles_dir(home) / version / "manifest.json").read_text())


def _no_partial_bundle(home: Path) -> None:
    assert [p.name for p in bundles_dir(home).iterdir() if p.name.startswith(".tmp")] == []


def test_second_once_without_new_data_does_nothing_and_says_so(tmp_path: Path) -> None:
    home, _ = _home(tmp_path)
    first = _cycle(home)
    assert first.status == "done"
    n_bundles, n_records = len(list_bundles(home)), len(load_records(home))
    lines: list[str] = []
    second = _cycle(home, lines)
    assert second.status == "unchanged" and second.cycle is None
    assert any("nothing to do" in m and first.cycle in m for m in lines)
    assert len(list_bundles(home)) == n_bundles and len(load_records(home)) == n_records
    rec = load_records(home)[-1]
    assert all(rec["stages"][s]["runs"] == 1 for s in rec["stages"])
    # timings and hashes are recorded for every stage
    assert all(rec["stages"][s]["wall_s"] is not None for s in rec["stages"])
    assert len(rec["stages"]["snapshot"]["outputs"]["events_sha256"]) == 64


def test_a_failed_stage_stops_loudly_and_the_next_run_resumes_after_the_last_completed_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, champion = _home(tmp_path)
    import winnow.bundle.write as bundle_write

    real = bundle_write.write_contents

    def killed_mid_write(contents, d):  # some files written, then the "process dies"
        (d / "user_ids.json").write_text("[]")
        raise RuntimeError("injected: killed while writing the bundle")

    monkeypatch.setattr(bundle_write, "write_contents", killed_mid_write)
    with pytest.raises(LifecycleError, match="stage 'fit'.*injected"):
        _cycle(home)
    rec = load_records(home)[-1]
    assert rec["status"] == "failed" and "injected" in rec["reason"]
    assert [rec["stages"][s]["status"] for s in ("snapshot", "datasets", "fit")] == ["done", "done", "failed"]
    assert [b.version for b in list_bundles(home)] == [champion]  # no half-written bundle appeared
    _no_partial_bundle(home)
    assert active_version(home) == champion

    # the gate fails next: the fitted bundle is recorded, and must be reused, not trained again
    monkeypatch.setattr(bundle_write, "write_contents", real)
    import winnow.lifecycle.cycle as cycle_mod

    def gate_dies(*args, **kwargs):
        raise RuntimeError("injected: gate crashed")

    real_gate = cycle_mod.run_gate
    monkeypatch.setattr(cycle_mod, "run_gate", gate_dies)
    lines: list[str] = []
    with pytest.raises(LifecycleError, match="stage 'gate'"):
        _cycle(home, lines)
    assert any("resuming cycle " + rec["cycle"] in m for m in lines)
    assert any(m.startswith("[snapshot] skipped") for m in lines)
    assert any(m.startswith("[datasets] skipped") for m in lines)
    rec2 = load_records(home)[-1]
    assert rec2["cycle"] == rec["cycle"] and rec2["stages"]["fit"]["runs"] == 2
    challenger = rec2["stages"]["fit"]["outputs"]["version"]

    monkeypatch.setattr(cycle_mod, "run_gate", real_gate)
    lines = []
    out = _cycle(home, lines)
    assert out.status == "done" and out.cycle == rec["cycle"]
    assert any(m.startswith("[fit] skipped") for m in lines)
    final = load_records(home)[-1]
    assert final["stages"]["snapshot"]["runs"] == 1 and final["stages"]["gate"]["runs"] == 2
    assert sorted(b.version for b in list_bundles(home)) == sorted([champion, challenger])
    _no_partial_bundle(home)


def test_a_failing_gate_keeps_the_champion_serving(tmp_path: Path) -> None:
    home, champion = _home(tmp_path, "[lifecycle.gate]\nmin_ndcg = 1.0\n")
    out = _cycle(home)
    gate = out.record["stages"]["gate"]["outputs"]
    assert gate["passed"] is False and any(r.startswith("ndcg@20 floor") for r in gate["reasons"])
    challenger = gate["challenger"]
    assert active_version(home) == champion
    assert out.record["stages"]["handoff"]["outputs"]["action"].startswith("kept, not served")
    label = _manifest(home, challenger)["lifecycle"]
    assert label["gate"] == "failed" and label["served"] is False and label["cycle"] == out.cycle
    assert label["reasons"] == gate["reasons"]
    assert challenger in [b.version for b in list_bundles(home)]  # kept on disk


def test_a_passing_gate_activates_and_the_next_cycle_compares_against_it(tmp_path: Path) -> None:
    home, champion = _home(tmp_path)
    out = _cycle(home)
    gate = out.record["stages"]["gate"]["outputs"]
    # the champion of `winnow train` trained on the holdout window: change checks not applied
    assert gate["champion"] == champion and gate["champion_saw_holdout"] is True
    assert gate["passed"] is True
    challenger = gate["challenger"]
    assert active_version(home) == challenger
    label = _manifest(home, challenger)["lifecycle"]
    assert label["gate"] == "passed" and label["served"] is True
    holdout_start = out.record["stages"]["datasets"]["outputs"]["holdout_start"]
    data = _manifest(home, challenger)["data"]
    assert data["cut"] == holdout_start and data["until"] < holdout_start  # trained before the holdout

    # new events after the cut: a new cycle, whose champion (the last challenger) never saw its holdout
    cfg = load_config(home)
    cut = out.record["stages"]["snapshot"]["outputs"]["cut"]
    store = open_store(cfg.store_url())
    try:
        old = store.read_events()
        users = [old.user_ids[int(u)] for u in old.user[-400:]]
        items = [old.item_ids[int(i)] for i in old.item[-400:]]
        store.append_events(pd.DataFrame({"user_id": users, "item_id": items, "event_type": "click",
                                          "timestamp": [cut + 3600 + i for i in range(400)],
                                          "event_id": [f"new{i}" for i in range(400)]}))
    finally:
        store.close()
    out2 = _cycle(home)
    gate2 = out2.record["stages"]["gate"]["outputs"]
    assert out2.cycle != out.cycle and gate2["champion"] == challenger
    assert gate2["champion_saw_holdout"] is False
    drops = [c for c in gate2["checks"] if "drop" in c["check"]]
    assert len(drops) == 3 and all(c["applied"] for c in drops)
    assert gate2["passed"] == all(c["passed"] for c in gate2["checks"])
    expected = gate2["challenger"] if gate2["passed"] else challenger
    assert active_version(home) == expected

    from winnow.cli import app

    res = CliRunner().invoke(app, ["--home", str(home), "autopilot", "status"])
    assert res.exit_code == 0, res.output
    assert out.cycle in res.output and out2.cycle in res.output
    assert "gate: PASSED" in res.output and "handoff" in res.output


def test_the_off_policy_estimate_counts_only_slates_the_challenger_would_have_shown(tmp_path: Path) -> None:
    import numpy as np

    from winnow.bundle import load_bundle
    from winnow.lifecycle import datasets
    from winnow.lifecycle.offpolicy import challenger_snips
    from winnow.lifecycle.scoring import bundle_topk

    home, _ = _home(tmp_path)
    out = _cycle(home)
    cut = out.record["stages"]["snapshot"]["outputs"]["cut"]
    start = out.record["stages"]["datasets"]["outputs"]["holdout_start"]
    cfg = load_config(home)
    bundle = load_bundle(bundles_dir(home) / out.record["stages"]["fit"]["outputs"]["version"])
    store = open_store(cfg.store_url())
    try:
        data = datasets.build(store, cfg, cut)
        users = data.users[:60]
        recs = bundle_topk(bundle, "als", data, users, 5)
        assert (recs >= 0).all()
        imps, events = [], []
        for q, (u, row) in enumerate(zip(users, recs)):
            matched = q < 40  # 40 slates as the challenger would show them, 20 rotated by one slot
            order = row if matched else np.roll(row, 1)
            rid, user, t = f"r{q}", data.ds.user_ids.decode([u])[0], start + 10 + 2 * q
            items = data.ds.item_ids.decode(order)
            imps.append({"request_id": rid, "user_id": user, "timestamp": t, "context": {},
                         "items": [{"item_id": it, "position": p, "propensity": 1.0} for p, it in enumerate(items)]})
            clicked = items[:1] if (matched and q % 2 == 0) else ([] if matched else items)
            events += [{"user_id": user, "item_id": it, "event_type": "click", "value": np.nan, "timestamp": t + 1,
                        "event_id": f"{rid}-{it}", "context": json.dumps({"request_id": rid})} for it in clicked]
        store.log_impressions(imps)
        store.append_events(pd.DataFrame(events))
        data = datasets.build(store, cfg, cut)
        res = challenger_snips(store, bundle, data, cfg)
        # hand-computed: weight 1 on the 40 matched slates' 200 rows, 0 elsewhere; clicks there: 20,
        # all at position 0 -> SNIPS = 20 / 40 at position 0 + 0 elsewhere = 0.5 clicks per slate;
        # the logged policy: (20 + 20 * 5) clicks / 60 slates = 2.0
        assert res["status"] == "estimated" and res["matches"] == 200 and res["slates"] == 60
        assert res["value"] == pytest.approx(0.5) and res["logged_value"] == pytest.approx(2.0)
        assert res["ci"][0] <= 0.5 <= res["ci"][1] and res["ci"][0] < res["ci"][1]
        strict = load_config(home, overrides={"lifecycle": {"gate": {"ope_min_matches": 201}}})
        assert challenger_snips(store, bundle, data, strict)["status"] == "not enough log"
    finally:
        store.close()


def test_a_data_problem_fails_the_cycle_loudly_and_is_not_retried_on_the_same_data(tmp_path: Path) -> None:
    home, champion = _home(tmp_path, "[lifecycle.gate]\nmin_holdout_users = 100000\n")
    with pytest.raises(LifecycleError, match="stage 'datasets'.*min_holdout_users = 100000"):
        _cycle(home)
    rec = load_records(home)[-1]
    assert rec["status"] == "failed" and rec["resumable"] is False and "fit" not in rec["stages"]
    lines: list[str] = []
    assert _cycle(home, lines).status == "unchanged"
    assert any("nothing to do" in m and "failed" in m for m in lines)
    assert [b.version for b in list_bundles(home)] == [champion] and active_version(home) == champion


def test_the_long_running_autopilot_runs_a_due_cycle(tmp_path: Path) -> None:
    from winnow.lifecycle.loop import run_forever

    home, champion = _home(tmp_path, "[lifecycle]\npoll_s = 0.01\n")
    cfg = load_config(home)
    store = open_store(cfg.store_url())
    lines: list[str] = []
    try:
        assert run_forever(cfg, store, say=lines.append, max_cycles=1) == 1
    finally:
        store.close()
    assert any(m.startswith("autopilot: starting a cycle (first cycle)") for m in lines)
    assert load_records(home)[-1]["status"] == "done" and active_version(home) != champion

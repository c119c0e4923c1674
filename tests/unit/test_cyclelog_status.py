"""winnow.cyclelog.status on hand-built cycle records: a failed cycle (no gate, no hand-off) and a
finished one; the text ``winnow autopilot status`` prints is the data the route answers."""

from __future__ import annotations

import pytest

from winnow.cyclelog.record import new_record
from winnow.cyclelog.status import format_status, status_data


def _failed() -> dict:
    rec = new_record("c" * 64, now=1_700_000_000)
    rec.update(status="failed", reason="stage 'fit' failed: injected", trigger="manual (winnow autopilot --once)",
               attempts=2)
    rec["stages"] = {
        "datasets": {"status": "done", "wall_s": 0.5, "cpu_s": 0.4, "peak_rss_mib": 120.0, "runs": 1,
                     "outputs": {"train_events": 9000, "holdout_events": 1000, "users_evaluated": 80}},
        "snapshot": {"status": "done", "wall_s": 0.1, "cpu_s": 0.1, "peak_rss_mib": 100.0, "runs": 2, "skipped_runs": 1,
                     "outputs": {"cut": 1_699_999_000, "events": 10_000, "items": 300}},
        "fit": {"status": "failed", "wall_s": None, "error": "RuntimeError: injected"},
    }
    return rec


def _done(cycle_at: int) -> dict:
    rec = new_record("d" * 64, now=cycle_at)
    rec.update(status="done", finished_at=cycle_at + 5, trigger="schedule: due")
    gate = {"passed": False, "challenger": "v2", "champion": "v1", "champion_saw_holdout": False,
            "reasons": ["ndcg@20 floor: 0.0000 < 0.9900"],
            "metrics": {"challenger": {"ndcg": 0.0, "recall": 0.1, "coverage": 0.3, "users": 40}},
            "ope": {"status": "not enough log", "why": "no impressions"}}
    checks = [{"check": "ndcg@20 floor", "value": 0.0, "threshold": 0.99, "passed": False}]
    rec["stages"] = {"gate": {"status": "done", "wall_s": 0.2, "runs": 1, "outputs": {**gate, "checks": checks}},
                     "handoff": {"status": "done", "wall_s": 0.0, "runs": 1,
                                 "outputs": {"action": "kept, not served (gate failed)", "active_before": "v1",
                                             "active_after": "v1", "rollout": None, "version": "v2"}}}
    rec["gate"] = gate
    return rec


def test_a_failed_cycle_lists_its_stages_in_run_order_with_the_error():
    (c,) = status_data([_failed()])["cycles"]
    assert [s["name"] for s in c["stages"]] == ["snapshot", "datasets", "fit"]  # STAGES order, not dict order
    snap, data, fit = c["stages"]
    assert snap["summary"] == "cut 1699999000, 10,000 events, 300 items" and snap["skipped_runs"] == 1
    assert data["summary"] == "train 9,000 / holdout 1,000 events, 80 users" and data["skipped_runs"] == 0
    assert fit["status"] == "failed" and fit["summary"] == fit["error"] == "RuntimeError: injected"
    assert fit["runs"] == 1 and fit["wall_s"] is None
    assert c["gate"] is None and c["handoff"] is None and c["attempts"] == 2
    text = format_status([_failed()])
    assert "reason: stage 'fit' failed: injected" in text and "(attempts 2)" in text
    assert "  fit       failed         - s  peak - MiB  RuntimeError: injected" in text


def test_the_gate_carries_every_check_and_last_keeps_the_newest():
    records = [_failed(), _done(1_700_000_100), _done(1_700_000_200)]
    data = status_data(records, last=2)
    assert data["total"] == 3 and [c["started_at"] for c in data["cycles"]] == [1_700_000_100, 1_700_000_200]
    c = data["cycles"][-1]
    assert c["gate"]["checks"] == [{"check": "ndcg@20 floor", "value": 0.0, "threshold": 0.99, "passed": False}]
    assert c["handoff"]["action"] == "kept, not served (gate failed)"
    gate_stage = next(s for s in c["stages"] if s["name"] == "gate")
    assert gate_stage["summary"] == "failed: v2 vs v1"
    text = format_status(records, last=2)
    assert "gate: FAILED  challenger v2 vs champion v1" in text and "failed: ndcg@20 floor" in text
    assert "off-policy: not enough log: no impressions" in text and "stage 'fit'" not in text
    with pytest.raises(ValueError, match="last must be >= 1, got 0"):
        status_data(records, last=0)
    assert format_status([]).startswith("no autopilot cycle has run yet")

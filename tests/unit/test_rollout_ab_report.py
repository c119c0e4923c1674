"""`winnow ab report rollout-<id>` (winnow.rollout.experiment): a canary read as an A/B test from
the impressions that logged its arm, each user in the arm of their first rollout request, the
SRM split expected from the plan's steps; refusals name the problem."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from winnow.cli import app
from winnow.core.config import load_config
from winnow.core.errors import RolloutError
from winnow.data.open_store import open_store
from winnow.data.rollouts import Rollout, RolloutDecision
from winnow.evaluation.ab import experiment_frame, report
from winnow.rollout.experiment import expected_share, rollout_experiment, share_at

T0 = 1_800_000_000


def _imp(rid: int, user: str, ts: int, arm: str | None, n: int = 4) -> dict:
    ctx: dict = {"experiments": {}}
    if arm is not None:
        ctx = {"experiments": {f"rollout-{rid}": arm}, "rollout": {"id": rid, "arm": arm, "ms": 3.0}}
    return {"request_id": f"{user}-{ts}", "user_id": user, "timestamp": ts, "model_version": "v", "surface": "home",
            "context": ctx, "items": [{"item_id": f"i{j}", "position": j, "score": 1.0 - j / 10} for j in range(n)]}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A canary (plan 50, 75, 100; step 2 from T0 + 100): 40 users first seen in step 1, 40 in
    step 2, one champion user moved to the challenger later, one request that logged no arm."""
    store = open_store(load_config(tmp_path).store_url())
    try:
        r = store.start_rollout(Rollout(
            id=0, state="canary", revision=0, started=T0, challenger="20260101T000000Z-aaaaaa",
            champion="20251201T000000Z-bbbbbb", mode="canary", plan=(50, 75, 100), step_started=T0,
            params={"salt": "s"}, decisions=(RolloutDecision(T0, 0, "operator", "start", {}),)))
        store.update_rollout(r.id, revision=r.revision, changes={"step": 1, "step_started": T0 + 100},
                             decision=RolloutDecision(T0 + 100, 0, "step_complete:non_inferior", "next_step", {}))
        imps = [_imp(r.id, f"a{i}", T0 + 10 + i, "challenger" if i % 2 else "champion") for i in range(40)]
        imps += [_imp(r.id, f"b{i}", T0 + 110 + i, "challenger" if i % 4 else "champion") for i in range(40)]
        imps += [_imp(r.id, "a0", T0 + 150, "challenger"), _imp(r.id, "nobody", T0 + 20, None)]
        store.log_impressions(imps)
        clicks = [(f"a{i}", T0 + 30 + i) for i in range(1, 40, 2)] + [(f"b{i}", T0 + 160 + i) for i in range(0, 40, 3)]
        store.append_events(pd.DataFrame({"user_id": [u for u, _ in clicks], "item_id": ["i0"] * len(clicks),
                                          "event_type": ["click"] * len(clicks), "timestamp": [t for _, t in clicks]}))
    finally:
        store.close()
    return tmp_path


def test_expected_split_follows_the_plan_steps_and_first_arms(home: Path) -> None:
    store = open_store(load_config(home).store_url())
    try:
        r = store.rollout()
        assert (share_at(r, T0 + 99), share_at(r, T0 + 100), share_at(r, T0 + 500)) == (0.5, 0.75, 0.75)
        share, users = expected_share(store, r)
        assert users == 80 and share == pytest.approx((40 * 0.5 + 40 * 0.75) / 80)
        exp = rollout_experiment(store, f"rollout-{r.id}")
        assert [(v.name, v.traffic) for v in exp.variants] == [("champion", pytest.approx(0.375)),
                                                               ("challenger", pytest.approx(0.625))]
        frame = experiment_frame(store, exp, pre_days=0, logged_only=True)
        assert "nobody" not in set(frame.user_id) and len(frame) == 80
        assert frame.set_index("user_id").loc["a0", "variant"] == "champion"  # the first arm (intention to treat)
        counts = frame.variant.value_counts().to_dict()
        assert counts == {"champion": 20 + 10, "challenger": 20 + 30}
        rep = report(frame, exp)
        assert rep["srm"]["p_value"] > 0.5  # 30 / 50 against the expected 30 / 50
    finally:
        store.close()


def test_cli_reports_a_rollout_and_refuses_what_it_cannot(home: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["--home", str(home), "ab", "report", "rollout-1"])
    assert res.exit_code == 0, res.output
    assert "experiment rollout-1" in res.output and "challenger" in res.output
    assert (home / "reports" / "ab-rollout-1.json").is_file()
    res = runner.invoke(app, ["--home", str(home), "ab", "report", "rollout-9"])
    assert res.exit_code != 0 and "no rollout '9'" in (res.output + str(res.exception))
    store = open_store(load_config(home).store_url())
    try:
        r = store.rollout()
        store.update_rollout(r.id, revision=r.revision, changes={"state": "aborted", "ended": T0 + 300})
        shadow = store.start_rollout(Rollout(id=0, state="shadow", revision=0, started=T0 + 400,
                                             challenger="20260101T000000Z-aaaaaa", champion=None, mode="shadow"))
        with pytest.raises(RolloutError, match="is a shadow: it assigns no user"):
            rollout_experiment(store, f"rollout-{shadow.id}")
    finally:
        store.close()

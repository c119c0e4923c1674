"""The canary in bench/lifecycle.py's closed loop: the service's rollout decisions on simulated days.

With ``[lifecycle] after_gate = "canary"`` a challenger that passes the gate is handed to
winnow.rollout.control.start by the cycle's hand-off (run_once's ``now`` = the simulated day, so
the rollout's clock is the simulation's). While it runs, every simulated request is assigned an
arm by the service's sticky hash (winnow.rollout.assign.arm_of on the record, so the plan's
share moves users as it does in `winnow serve`), the challenger's users get the challenger
bundle's slates, and impressions log ``context.rollout`` exactly as winnow.serving.service does
(id, arm, ms, error, fallbacks); the clicks carry the impression's request id. After each day
``look`` does what winnow.serving.rollout_follower's ``decide`` does -- winnow.rollout.report.measure
(ArmTracker over the store, then winnow.rollout.decide.evaluate: guardrails, SRM, the always-valid
mSPRT, step ends) and winnow.rollout.control.transition for the decision due -- with ``now`` the
end of the simulated day. Nothing here decides: the clicks the simulated users make do.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from winnow.core.config import WinnowConfig
from winnow.core.errors import RolloutError
from winnow.data.rollouts import Rollout
from winnow.data.store import Store
from winnow.rollout import control
from winnow.rollout.arms import ArmTracker
from winnow.rollout.assign import CHALLENGER, arm_of
from winnow.rollout.report import measure, tracker_for

TOML = """
canary_plan = [{plan}]
canary_step_s = 86400.0
canary_min_exposed = {min_exposed}
[rollout]
max_step_s = {max_step_s}
"""


def running_canary(store: Store) -> Rollout | None:
    """The running canary record, else None."""
    r = store.rollout()
    return r if r is not None and r.running and r.mode == "canary" else None


def challenger_mask(r: Rollout | None, n_users: int) -> np.ndarray:
    """bool [n_users]: which simulated users ("u<i>") the sticky hash puts in the challenger arm."""
    if r is None:
        return np.zeros(n_users, bool)
    return np.array([arm_of(r, f"u{u}") == CHALLENGER for u in range(n_users)])


def rollout_context(r: Rollout | None, challenger: bool, request_id: str) -> dict[str, Any]:
    """An impression's context as the service logs it during a rollout (no latency measured here)."""
    if r is None:
        return {"request_id": request_id}
    return {"request_id": request_id, "rollout": {"id": r.id, "arm": CHALLENGER if challenger else "champion",
                                                  "ms": None, "error": False, "fallbacks": []}}


class CanaryLooks:
    """The follower's check, once per simulated day; keeps the ArmTracker between looks."""

    def __init__(self, config: WinnowConfig) -> None:
        self.config = config
        self.tracker: ArmTracker | None = None
        self.decisions: list[dict[str, Any]] = []
        self.look_s: list[float] = []
        self.history: list[dict[str, Any]] = []  # every look: what the decision code measured

    def look(self, store: Store, *, now: float, day: int) -> dict[str, Any] | None:
        """Measure the running canary and apply the decision due (None: no canary or none due)."""
        r = running_canary(store)
        if r is None:
            return None
        t0 = time.perf_counter()
        if self.tracker is None or self.tracker.rollout_id != r.id:
            self.tracker = tracker_for(self.config, r)
        verdict, evidence = measure(store, self.config, r, now=now, tracker=self.tracker)
        test = evidence.get("test") or {}
        self.history.append({"now": now, "round": day, "share": r.share, "step": r.step,
                             "metric": {a: v["metric_mean"] for a, v in evidence["arms"].items()},
                             "exposed": {a: v["exposed_users"] for a, v in evidence["arms"].items()},
                             "interval": [test.get("low"), test.get("high")] if test else None,
                             "waiting": evidence.get("waiting")})
        out = None
        if verdict is not None:
            try:
                new = control.transition(store, self.config.home, r, action=verdict.action, rule=verdict.rule,
                                         evidence=evidence, now=now)
            except RolloutError as exc:  # the challenger no longer verifies at promotion
                new = control.transition(store, self.config.home, r, action="roll_back", rule="promotion_refused",
                                         evidence={"error": str(exc), **evidence}, now=now)
            out = {"round": day, "rollout": r.id, "challenger": r.challenger, "action": verdict.action,
                   "rule": verdict.rule, "state": new.state if new is not None else None,
                   "share_before": r.share, "step_before": r.step,
                   "diff": test.get("diff"), "interval": [test.get("low"), test.get("high")] if test else None,
                   "metric": {a: v["metric_mean"] for a, v in evidence["arms"].items()}}
            self.decisions.append(out)
        self.look_s.append(time.perf_counter() - t0)
        return out


def summarise_canary(rounds: list[dict[str, Any]], decisions: list[dict[str, Any]],
                     look_s: list[float]) -> dict[str, Any]:
    """Canaries started / promoted / rolled back / halted, and engagement while one ran (clicks
    per user per round, overall and per arm, over the rounds with a canary serving)."""
    during = [r for r in rounds if r.get("canary") is not None]
    ends = [d for d in decisions if d["state"] in ("promoted", "rolled_back", "halted")]

    def mean(key: str) -> float | None:
        vals = [r["canary"][key] for r in during if r["canary"].get(key) is not None]
        return round(float(np.mean(vals)), 4) if vals else None

    return {"canaries": len({r["canary"]["id"] for r in during}),
            "promoted": sum(d["state"] == "promoted" for d in ends),
            "rolled_back": sum(d["state"] == "rolled_back" for d in ends),
            "halted": sum(d["state"] == "halted" for d in ends),
            "end_rules": [d["rule"] for d in ends],
            "rounds_with_canary": len(during),
            "engagement_during_canary": round(float(np.mean([r["engagement"] for r in during])), 4) if during else None,
            "engagement_champion_arm": mean("champion_engagement"),
            "engagement_challenger_arm": mean("challenger_engagement"),
            "look_s_mean": round(float(np.mean(look_s)), 4) if look_s else None}

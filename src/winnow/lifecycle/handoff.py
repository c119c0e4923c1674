"""Stages 5 and 6: write the gate's verdict into the challenger's manifest, then hand it off.

write: ``lifecycle.gate`` = "passed" | "failed" with the reasons, ``lifecycle.served`` = False
until handoff activates it (winnow.bundle.label_bundle replaces manifest.json atomically).
handoff, by ``[lifecycle] after_gate``, for a passing challenger:

- "activate": made ACTIVE now (label ``served`` = True);
- "hold": kept as "held" for a later hand-off;
- "canary": a canary rollout of it is started through winnow.rollout.control.start (the one
  implementation behind the CLI and the admin API) with ``canary_plan`` / ``canary_step_s`` /
  ``canary_min_exposed`` (each ``[rollout]``'s when unset); ACTIVE does not move -- the rollout
  promotes or rolls back on its own. When a rollout is already running the hand-off is recorded
  "deferred" with that rollout's id (no second rollout is started, nothing fails); when the running
  rollout is this very challenger's (a re-run after a crash between the start and the record), it
  is recorded as started. Any other refusal of the start (e.g. no ACTIVE champion) fails the stage.

A failing challenger is kept, labelled, and never served: the champion stays ACTIVE.
"""

from __future__ import annotations

from typing import Any

from winnow.bundle import activate, active_version, label_bundle
from winnow.core.config import WinnowConfig
from winnow.core.errors import RolloutError
from winnow.data.store import Store
from winnow.rollout import control


def write_verdict(config: WinnowConfig, version: str, gate: dict[str, Any]) -> dict[str, Any]:
    """The write stage's outputs: the label written into the bundle's manifest."""
    label = {"gate": "passed" if gate["passed"] else "failed", "reasons": gate["reasons"],
             "champion": gate["champion"], "served": False}
    label_bundle(config.home, version, label)
    return {"version": version, "label": label}


def _canary(config: WinnowConfig, store: Store, version: str, now: float | None) -> tuple[str, dict[str, Any]]:
    """Start the canary (or defer it); returns the action and the rollout's summary."""
    running = store.rollout()
    if running is None or not running.running:
        lc = config.lifecycle
        try:
            r = control.start(store, config, challenger=version, mode="canary",
                              plan=tuple(lc.canary_plan) if lc.canary_plan is not None else None,
                              step_s=lc.canary_step_s, min_exposed=lc.canary_min_exposed, by="autopilot",
                              now=now)
        except RolloutError:
            running = store.rollout()  # another process started one in between: defer as below
            if running is None or not running.running:
                raise
        else:
            label_bundle(config.home, version, {"rollout": {"id": r.id}})
            return f"canary started (rollout {r.id})", {
                "id": r.id, "state": r.state, "challenger": r.challenger, "champion": r.champion,
                "plan": list(r.plan), "step_s": r.params["step_s"], "min_exposed": r.params["min_exposed"]}
    info = {"id": running.id, "state": running.state, "challenger": running.challenger}
    if running.challenger == version:
        return f"canary started (rollout {running.id})", info
    label_bundle(config.home, version, {"rollout": {"deferred_by": running.id}})
    return (f"deferred: rollout {running.id} ({running.state}, challenger {running.challenger}) "
            "is running; this challenger stays held (start it with winnow rollout canary)"), info


def hand_off(config: WinnowConfig, store: Store, version: str, gate: dict[str, Any], *,
             now: float | None = None) -> dict[str, Any]:
    """The handoff stage's outputs: what happened to the challenger, the rollout started or
    deferred ("canary"; else None) and what is ACTIVE before / after. ``now`` is the rollout's
    start time (unix seconds; default the wall clock: a simulation passes its own)."""
    before = active_version(config.home)
    rollout: dict[str, Any] | None = None
    if not gate["passed"]:
        action = "kept, not served (gate failed)"
    elif config.lifecycle.after_gate == "activate":
        activate(config.home, version)
        label_bundle(config.home, version, {"served": True})
        action = "activated"
    elif config.lifecycle.after_gate == "canary":
        action, rollout = _canary(config, store, version, now)
    else:
        action = "held (after_gate = hold)"
    return {"version": version, "action": action, "rollout": rollout, "active_before": before,
            "active_after": active_version(config.home)}

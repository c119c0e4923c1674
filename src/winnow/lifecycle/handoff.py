"""Stages 5 and 6: write the gate's verdict into the challenger's manifest, then hand it off.

write: ``lifecycle.gate`` = "passed" | "failed" with the reasons, ``lifecycle.served`` = False
until handoff activates it (winnow.bundle.label_bundle replaces manifest.json atomically).
handoff: a passing challenger is activated when ``[lifecycle] after_gate = "activate"``, or kept
as "held" for a later hand-off (a canary rollout) with ``"hold"``; a failing one is kept, labelled,
and never activated: the champion stays ACTIVE. This is the seam a rollout plan plugs into.
"""

from __future__ import annotations

from typing import Any

from winnow.bundle import activate, active_version, label_bundle
from winnow.core.config import WinnowConfig


def write_verdict(config: WinnowConfig, version: str, gate: dict[str, Any]) -> dict[str, Any]:
    """The write stage's outputs: the label written into the bundle's manifest."""
    label = {"gate": "passed" if gate["passed"] else "failed", "reasons": gate["reasons"],
             "champion": gate["champion"], "served": False}
    label_bundle(config.home, version, label)
    return {"version": version, "label": label}


def hand_off(config: WinnowConfig, version: str, gate: dict[str, Any]) -> dict[str, Any]:
    """The handoff stage's outputs: what happened to the challenger and what is ACTIVE now."""
    before = active_version(config.home)
    if not gate["passed"]:
        action = "kept, not served (gate failed)"
    elif config.lifecycle.after_gate == "activate":
        activate(config.home, version)
        label_bundle(config.home, version, {"served": True})
        action = "activated"
    else:
        action = "held (after_gate = hold)"
    return {"version": version, "action": action, "active_before": before,
            "active_after": active_version(config.home)}

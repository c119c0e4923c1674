"""Rollout records as the store keeps them (typed), shared by the SQLite and PostgreSQL stores.

A rollout launches a challenger bundle against the serving champion (winnow.rollout). The store
holds its state so every worker and replica follows the same one, and a restarted server
resumes the same step with the same assignments:

- ``rollouts``: one row per rollout: id, ``running`` (true while state is shadow or canary; a
  partial unique index allows at most one running rollout), state, revision (compare-and-set
  counter: every update names the revision it read, so two workers deciding at once cannot
  both apply), started, and a JSON body with the rest of ``Rollout``.
- ``rollout_decisions``: every decision, in order, with its evidence (JSON).
- ``rollout_shadow``: one JSON record per shadowed request (overlap, RBO, latency, errors).

The SQL lives in ``sqlite_rollouts`` / ``postgres_rollouts``; this module shapes rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import math

from winnow.core.errors import RolloutError

RUNNING_STATES = ("shadow", "canary")
FINAL_STATES = ("promoted", "rolled_back", "aborted", "halted")
STATES = RUNNING_STATES + FINAL_STATES
_BODY_FIELDS = ("challenger", "champion", "mode", "plan", "step", "step_started", "ended", "params", "activated")


@dataclass(frozen=True)
class RolloutDecision:
    """One decision: unix time, plan step, the rule that fired (e.g. ``guardrail:error_rate``,
    ``sequential:worse``, ``step_complete``, ``srm``, ``operator``), the action taken (``next_step``,
    ``promote``, ``roll_back``, ``halt``, ``abort``, ``start``) and the evidence (values, intervals)."""

    at: int
    step: int
    rule: str
    action: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rollout:
    """A rollout as stored. ``plan``: the challenger's share (percent) at each step (shadow: ());
    ``step``: index into plan; ``params``: sample, step_s, min_exposed, margin, alpha, ... (see
    winnow.rollout.control.start); ``decisions``: oldest first. ``activated`` (a promoted
    rollout): False from the promote decision until the challenger was written ACTIVE, then True;
    None in records older than the field (never reconciled: winnow.rollout.control.reconcile)."""

    id: int
    state: str
    revision: int
    started: int
    challenger: str
    champion: str | None
    mode: str
    plan: tuple[int, ...] = ()
    step: int = 0
    step_started: int = 0
    ended: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    decisions: tuple[RolloutDecision, ...] = ()
    activated: bool | None = None

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def share(self) -> float:
        """The challenger's share of users now, in [0, 1] (0 unless a canary is running)."""
        if self.state != "canary" or not self.plan:
            return 0.0
        return self.plan[min(self.step, len(self.plan) - 1)] / 100.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["plan"] = list(self.plan)
        out["share"] = self.share
        out["running"] = self.running
        out["decisions"] = [d.to_dict() for d in self.decisions]
        return out


def body_json(r: Rollout) -> str:
    """The JSON body column of ``r`` (the fields that are not columns of their own)."""
    return json.dumps({k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in asdict(r).items() if k in _BODY_FIELDS}, sort_keys=True)


def rollout_from_row(row: tuple[Any, ...], decisions: list[str]) -> Rollout:
    """(id, state, revision, started, body JSON) + decision JSON texts -> Rollout."""
    rid, state, revision, started, body = row
    data = json.loads(body)
    data["plan"] = tuple(int(p) for p in data.get("plan", ()))
    return Rollout(id=int(rid), state=str(state), revision=int(revision), started=int(started),
                   decisions=tuple(RolloutDecision(**json.loads(d)) for d in decisions), **data)


def apply_changes(r: Rollout, changes: dict[str, Any]) -> Rollout:
    """``r`` with ``changes`` (body fields and/or state), revision + 1; RolloutError for an
    unknown field or state."""
    bad = sorted(set(changes) - set(_BODY_FIELDS) - {"state"})
    if bad:
        raise RolloutError(f"rollout fields {bad} cannot be changed", status=422)
    if "state" in changes and changes["state"] not in STATES:
        raise RolloutError(f"unknown rollout state {changes['state']!r}; states: {STATES}", status=422)
    if "plan" in changes:
        changes = {**changes, "plan": tuple(changes["plan"])}
    return replace(r, revision=r.revision + 1, **changes)


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars -> Python numbers, NaN/inf -> None, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def decision_json(d: RolloutDecision) -> str:
    return json.dumps(clean(d.to_dict()), sort_keys=True, allow_nan=False)

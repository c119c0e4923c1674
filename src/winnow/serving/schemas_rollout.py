"""Typed answers and bodies of the rollout admin routes (/v1/admin/rollout, routes_rollout.py).

The answer is ``winnow.rollout.report.report`` (the record with every decision, a shadow's
comparison summary or a canary's measurements now) plus this process's side (``here``). The
evidence of a decision keeps its free form (each rule records what it used: arms, interval,
SRM, breaches); everything around it is typed, and the Python client mirrors these models
(clients/python, checked against /openapi.json by tests/client/test_openapi_drift.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ShadowIn(BaseModel):
    bundle: str = Field(min_length=1, max_length=64)
    sample: float | None = Field(None, gt=0, le=1)  # share of requests the challenger also answers


class CanaryIn(BaseModel):
    bundle: str = Field(min_length=1, max_length=64)
    plan: list[int] | None = None  # challenger percent per step, increasing, ending at 100
    step_min: str | float | None = None  # "30m", "90s", "2h" or minutes
    min_exposed: int | None = Field(None, ge=1)


class RolloutDecisionOut(BaseModel):
    """One decision: unix time, plan step (0-based), rule that fired, action taken, evidence."""

    at: int
    step: int
    rule: str
    action: str
    evidence: dict[str, Any]


class RolloutOut(BaseModel):
    """The rollout record (winnow.data.rollouts.Rollout) with its share now and running flag."""

    id: int
    state: str
    revision: int
    started: int
    challenger: str
    champion: str | None
    mode: str
    plan: list[int]
    step: int
    step_started: int
    ended: int | None
    params: dict[str, Any]
    decisions: list[RolloutDecisionOut]
    share: float
    running: bool
    activated: bool | None = None  # promoted: ACTIVE written (False: not yet; None: older record)


class ShadowSummaryOut(BaseModel):
    """A shadow's records aggregated (winnow.rollout.compare.summarise): means of overlap@k, RBO
    and the one-sided shares; challenger latency p50/p99 per stage (ms); score means."""

    requests: int
    errors: int
    error_rate: float | None
    overlap: float | None
    rbo: float | None
    only_champion: float | None
    only_challenger: float | None
    challenger_ms: dict[str, dict[str, float]]
    champion_scores: dict[str, float | None]
    challenger_scores: dict[str, float | None]


class RolloutDueOut(BaseModel):
    action: str
    rule: str


class RolloutNowOut(BaseModel):
    """A canary measured now: the decision due (None: none) and its evidence (arms' rates and
    metric, the sequential test's interval, SRM, what the step waits for)."""

    due: RolloutDueOut | None
    evidence: dict[str, Any]


class RolloutFollowingOut(BaseModel):
    """The record an answering process follows now (its requests are assigned by it)."""

    id: int
    revision: int
    state: str
    step: int
    share: float


class ShadowProcessOut(BaseModel):
    """The server's shadow process (serving/shadow_proc.py) as it last reported: pid, the
    challenger it holds, unix time of the report."""

    pid: int
    challenger: str
    at: float
    counts: dict[str, int] = {}  # its jobs of this rollout: received, ran, skipped_*, preempted, dropped, stale


class RolloutShadowHereOut(BaseModel):
    """A shadow's jobs in the answering process: run, skipped because requests were in flight
    or the CPU budget was spent, preempted (a request stayed in flight while the job waited
    between two stages), dropped on a full queue; ``note`` says what skipping does to the
    sample (it leans toward quiet moments). With the server's shadow process (``process``) the
    job counts are that process's, and ``sent`` ... ``events_lost`` this worker's sends."""

    ran: int
    skipped_busy: int
    skipped_budget: int
    preempted: int
    dropped: int
    note: str
    # jobs sent to the server's shadow process (its counts above are the whole server's): by this
    # worker sent, refused because it was not ready / not running, too large for a datagram;
    # acknowledged events it did not get (its challenger's live features miss them)
    sent: int | None = None
    unavailable: int | None = None
    too_large: int | None = None
    events_lost: int | None = None
    process: ShadowProcessOut | None = None


class RolloutHereOut(BaseModel):
    """The answering process's side: the challenger version it holds (None: not built yet or no
    rollout running), the errors of its failed challenger builds for this rollout and the
    record revision it follows (a replica behind the store shows an older one)."""

    challenger_loaded: str | None
    build_failures: list[str]
    following: RolloutFollowingOut | None = None
    shadow: RolloutShadowHereOut | None = None  # a shadow rollout


class RolloutStatusOut(BaseModel):
    rollout: RolloutOut
    shadow: ShadowSummaryOut | None = None  # a shadow rollout
    now: RolloutNowOut | None = None  # a canary
    here: RolloutHereOut

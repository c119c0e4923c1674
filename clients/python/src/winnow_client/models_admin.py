"""Typed bodies of the operator routes: the drift monitor (/v1/admin/drift), the autopilot
(/v1/admin/autopilot) and rollouts (/v1/admin/rollout). Same contract as ``winnow_client.models``
(each names the server schema it mirrors; the drift test checks them against a real server);
import them from there or from the package."""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Union

from pydantic import Field

from winnow_client._model_base import _Request, _Response


class DriftStatus(_Response):
    """The service's drift monitor: the latest comparison of the live window with the serving
    bundle's reference profile (``report``: bundle, reference / live windows, ``data`` and
    ``concept`` rows {name, statistic, value, threshold, drifted}, ``notes``, ``data_drift`` /
    ``concept_drift``; None until the first comparison, ``state`` says why) and a short history.
    The comparison runs in the home's drift monitor process: ``computed_by`` is its pid and
    ``computed_here`` (comparisons the answering worker ran) is 0."""

    server_schema: ClassVar[str] = "DriftOut"
    enabled: bool
    state: str
    error: Optional[str]
    refresh_s: float
    window_days: float
    computed_at: Optional[float]
    refreshes: int
    computations: int
    computed_by: Optional[int]
    computed_here: int
    report: Optional[dict[str, Any]]
    history: list[dict[str, Any]]


# --- autopilot (/v1/admin/autopilot) -------------------------------------------------------------
class CycleStage(_Response):
    """One stage of an autopilot cycle: ``status`` ("done" | "failed"), wall / CPU seconds, peak
    RSS (MiB), ``runs`` and ``skipped_runs`` (inputs unchanged), ``summary`` its outputs in words,
    ``error`` why it failed."""

    server_schema: ClassVar[str] = "CycleStageOut"
    name: str
    status: str
    wall_s: Optional[float]
    cpu_s: Optional[float]
    peak_rss_mib: Optional[float]
    runs: int
    skipped_runs: int
    summary: str
    error: Optional[str]


class CycleGate(_Response):
    """The gate's verdict, champion vs challenger on the holdout window: ``reasons`` the failed
    checks in words, ``checks`` every check {check, value, threshold, passed}, ``metrics``
    {challenger|champion: {ndcg, recall, coverage, users}}, ``ope`` the off-policy estimate."""

    server_schema: ClassVar[str] = "CycleGateOut"
    passed: bool
    challenger: str
    champion: Optional[str]
    champion_saw_holdout: bool
    reasons: list[str]
    checks: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    ope: Optional[dict[str, Any]]


class Cycle(_Response):
    """One autopilot cycle: ``status`` running | failed | done | abandoned, unix ``started_at`` /
    ``finished_at``, its ``trigger``, ``attempts`` (resumes included), ``reason`` it failed, the
    ``stages`` in run order, the ``gate`` verdict and the ``handoff`` outputs (action,
    active_before / active_after, rollout)."""

    server_schema: ClassVar[str] = "CycleOut"
    cycle: str
    status: str
    started_at: int
    finished_at: Optional[int]
    trigger: Optional[str]
    attempts: int
    reason: Optional[str]
    stages: list[CycleStage]
    gate: Optional[CycleGate]
    handoff: Optional[dict[str, Any]]


class AutopilotStatus(_Response):
    """The newest cycles (newest last) of ``total`` recorded: what ``winnow autopilot status`` shows."""

    server_schema: ClassVar[str] = "AutopilotOut"
    total: int
    cycles: list[Cycle]


# --- rollouts (/v1/admin/rollout) ----------------------------------------------------------------
class RolloutShadow(_Request):
    """Start a shadow: ``bundle`` answers a ``sample`` of requests off the response path
    (default: the server's ``[rollout] sample``)."""

    server_schema: ClassVar[str] = "ShadowIn"
    bundle: str = Field(min_length=1, max_length=64)
    sample: Optional[float] = Field(None, gt=0, le=1)


class RolloutCanary(_Request):
    """Start a canary: ``plan`` the challenger's percent of users per step (increasing, ending at
    100), ``step_min`` each step's minimum duration ("30m", "90s", "2h" or minutes),
    ``min_exposed`` challenger users before a step may end (defaults: the server's ``[rollout]``)."""

    server_schema: ClassVar[str] = "CanaryIn"
    bundle: str = Field(min_length=1, max_length=64)
    plan: Optional[list[int]] = None
    step_min: Union[str, float, None] = None
    min_exposed: Optional[int] = Field(None, ge=1)


class RolloutDecision(_Response):
    """One decision: unix time ``at``, plan ``step`` (0-based), the ``rule`` that fired, the
    ``action`` taken (start, next_step, promote, roll_back, halt, abort) and its evidence."""

    server_schema: ClassVar[str] = "RolloutDecisionOut"
    at: int
    step: int
    rule: str
    action: str
    evidence: dict[str, Any]


class Rollout(_Response):
    """The rollout record: ``state`` shadow | canary (running) or promoted | rolled_back |
    aborted | halted; ``share`` the challenger's share of users now (0..1)."""

    server_schema: ClassVar[str] = "RolloutOut"
    id: int
    state: str
    revision: int
    started: int
    challenger: str
    champion: Optional[str]
    mode: str
    plan: list[int]
    step: int
    step_started: int
    ended: Optional[int]
    params: dict[str, Any]
    decisions: list[RolloutDecision]
    share: float
    running: bool
    activated: Optional[bool] = None  # promoted: ACTIVE written (False: not yet; None: older record)


class ShadowSummary(_Response):
    """A shadow's comparison with the champion: means of overlap@k, rank-biased overlap and the
    one-sided shares; the challenger's latency p50/p99 per stage (ms); score means."""

    server_schema: ClassVar[str] = "ShadowSummaryOut"
    requests: int
    errors: int
    error_rate: Optional[float]
    overlap: Optional[float]
    rbo: Optional[float]
    only_champion: Optional[float]
    only_challenger: Optional[float]
    challenger_ms: dict[str, dict[str, float]]
    champion_scores: dict[str, Optional[float]]
    challenger_scores: dict[str, Optional[float]]


class RolloutDue(_Response):
    server_schema: ClassVar[str] = "RolloutDueOut"
    action: str
    rule: str


class RolloutNow(_Response):
    """A canary measured now: the decision due (None: none) and its evidence."""

    server_schema: ClassVar[str] = "RolloutNowOut"
    due: Optional[RolloutDue]
    evidence: dict[str, Any]


class RolloutFollowing(_Response):
    """The rollout record an answering server process follows now."""

    server_schema: ClassVar[str] = "RolloutFollowingOut"
    id: int
    revision: int
    state: str
    step: int
    share: float


class ShadowProcess(_Response):
    """The server's shadow process as it last reported: pid, the challenger it holds, when."""

    server_schema: ClassVar[str] = "ShadowProcessOut"
    pid: int
    challenger: str
    at: float
    counts: dict[str, int] = {}


class RolloutShadowHere(_Response):
    """A shadow's jobs in the answering server process (ran, skipped when busy or over the CPU
    budget, preempted between stages by live requests, dropped) and what skipping does to the
    sample; with the server's shadow process (``process``), that process's counts and this
    worker's sends (sent, unavailable, too_large, events_lost)."""

    server_schema: ClassVar[str] = "RolloutShadowHereOut"
    ran: int
    skipped_busy: int
    skipped_budget: int
    preempted: int
    dropped: int
    note: str
    sent: Optional[int] = None
    unavailable: Optional[int] = None
    too_large: Optional[int] = None
    events_lost: Optional[int] = None
    process: Optional[ShadowProcess] = None


class RolloutHere(_Response):
    """The answering server process: the challenger it holds, its failed builds, the record
    revision it follows."""

    server_schema: ClassVar[str] = "RolloutHereOut"
    challenger_loaded: Optional[str]
    build_failures: list[str]
    following: Optional[RolloutFollowing] = None
    shadow: Optional[RolloutShadowHere] = None


class RolloutStatus(_Response):
    """What every rollout call answers: the record, a shadow's summary or a canary's now."""

    server_schema: ClassVar[str] = "RolloutStatusOut"
    rollout: Rollout
    shadow: Optional[ShadowSummary] = None
    now: Optional[RolloutNow] = None
    here: RolloutHere

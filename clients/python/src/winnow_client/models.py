"""Typed request and response bodies of the winnow HTTP API (pydantic v2).

Each model names the server schema it mirrors in ``server_schema`` (a component of the
server's /openapi.json); the test suite starts a real server and fails when a field name, a type
or required-ness differs (tests/client/test_openapi_drift.py).

Request models forbid unknown fields (a typo fails here, before any network call); response
models ignore fields they do not know, so a newer server does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

Timestamp = Union[int, float, str, datetime]
"""Unix seconds (int or float), an RFC 3339 string with an offset, or an aware datetime."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server_schema: ClassVar[str]


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")
    server_schema: ClassVar[str]


# --- data -----------------------------------------------------------------------------------
class Event(_Request):
    """One interaction. ``event_id`` makes a retried send idempotent: the client fills in a
    random one when it is None (an id the server already stored is skipped, not counted twice).
    ``timestamp`` defaults to the time the server receives the event (the tracker stamps the
    time of ``track()``); ``request_id`` joins the event to the slate it came from."""

    server_schema: ClassVar[str] = "EventIn"
    user_id: str
    item_id: str
    event_type: str
    value: Optional[float] = None
    timestamp: Optional[Timestamp] = None
    event_id: Optional[str] = None
    request_id: Optional[str] = None
    context: Optional[dict[str, Any]] = None

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: Optional[Timestamp]) -> Optional[Timestamp]:
        if isinstance(v, datetime) and v.tzinfo is None:
            raise ValueError(f"timestamp {v.isoformat()} has no timezone: use datetime.now(timezone.utc)")
        return v

    @field_serializer("timestamp")
    def _rfc3339(self, v: Optional[Timestamp]) -> Union[int, float, str, None]:
        return v.isoformat() if isinstance(v, datetime) else v


class EventsResult(_Response):
    """``received`` events were valid; ``written`` of them were new (the rest: ids already stored)."""

    server_schema: ClassVar[str] = "EventsOut"
    received: int
    written: int


class Item(_Request):
    """A catalog item (insert or replace)."""

    server_schema: ClassVar[str] = "ItemIn"
    item_id: str
    title: str = ""
    text: str = ""
    categories: list[str] = Field(default_factory=list)
    creator: str = ""
    created_at: Optional[int] = None
    available: bool = True
    sponsored: bool = False
    attributes: dict[str, Any] = Field(default_factory=dict)


class ItemBatch(_Request):
    server_schema: ClassVar[str] = "ItemsIn"
    items: list[Item]


class ItemPatch(_Request):
    """Fields of one item to change (None: unchanged)."""

    server_schema: ClassVar[str] = "ItemPatch"
    available: Optional[bool] = None
    sponsored: Optional[bool] = None
    attributes: Optional[dict[str, Any]] = None


class ItemDetails(_Response):
    server_schema: ClassVar[str] = "ItemOut"
    item_id: str
    title: str
    text: str
    categories: list[str]
    creator: str
    created_at: Optional[int]
    available: bool
    sponsored: bool
    attributes: dict[str, Any]


class UserProfile(_Request):
    """A user's attributes and declared interests (create or replace)."""

    server_schema: ClassVar[str] = "UserIn"
    attributes: dict[str, Any] = Field(default_factory=dict)
    interests: list[str] = Field(default_factory=list)
    created_at: Optional[int] = None


class UserDetails(_Response):
    server_schema: ClassVar[str] = "UserOut"
    user_id: str
    attributes: dict[str, Any]
    interests: list[str]
    event_count: int
    recent_items: list[str]


class Written(_Response):
    server_schema: ClassVar[str] = "CountOut"
    written: int


class UserErased(_Response):
    server_schema: ClassVar[str] = "UserErased"
    events: int
    profile: bool
    impressions: int
    online_state: bool


class UserErasure(_Response):
    """What DELETE /v1/users/{id} erased, and what trained bundles still hold (``remains``)."""

    server_schema: ClassVar[str] = "UserDeleteOut"
    user_id: str
    erased: UserErased
    remains: dict[str, Any]


# --- recommendations ------------------------------------------------------------------------
class Filters(_Request):
    server_schema: ClassVar[str] = "Filters"
    categories: Optional[list[str]] = None


class RecContext(_Request):
    """Request context of POST recommendations (``time``: unix seconds, default now)."""

    server_schema: ClassVar[str] = "RecContext"
    device: Optional[str] = None
    locale: Optional[str] = None
    time: Optional[int] = None
    query: Optional[str] = None
    filters: Optional[Filters] = None
    exclude: list[str] = Field(default_factory=list)


class RecItem(_Response):
    server_schema: ClassVar[str] = "RecItem"
    item_id: str
    score: float
    position: int
    sources: list[str]
    propensity: float
    trace: Optional[dict[str, Any]] = None


class Recommendations(_Response):
    """A slate: ``request_id`` joins later events to it; ``fallbacks`` says what degraded."""

    server_schema: ClassVar[str] = "RecOut"
    request_id: str
    model_version: Optional[str]
    surface: str
    fallback: Optional[str]
    fallbacks: list[str]
    items: list[RecItem]
    removed: Optional[list[dict[str, Any]]] = None
    experiments: dict[str, str] = Field(default_factory=dict)
    arm: Optional[str] = None  # during a canary: champion | challenger

    @property
    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]


class SimilarItem(_Response):
    server_schema: ClassVar[str] = "SimilarItem"
    item_id: str
    score: float
    sources: list[str]


class SimilarItems(_Response):
    server_schema: ClassVar[str] = "SimilarOut"
    item_id: str
    model_version: Optional[str]
    items: list[SimilarItem]


# --- admin and health -----------------------------------------------------------------------
class Bundle(_Response):
    server_schema: ClassVar[str] = "BundleOut"
    version: str
    created_at: Optional[int]
    active: bool
    serving: bool
    data: dict[str, Any]
    metrics: dict[str, Any]


class Bundles(_Response):
    server_schema: ClassVar[str] = "BundlesOut"
    active: Optional[str]
    serving: Optional[str]
    bundles: list[Bundle]


class Activation(_Response):
    server_schema: ClassVar[str] = "ActivateOut"
    serving: Optional[str]
    previous: Optional[str]
    load_seconds: float


class Health(_Response):
    server_schema: ClassVar[str] = "Health"
    status: str
    model_version: Optional[str] = None
    mode: Optional[str] = None


class Readiness(_Response):
    """``backends``: "store" / "online" -> "up" | "down" | "in-process"."""

    server_schema: ClassVar[str] = "Ready"
    status: str
    model_version: Optional[str] = None
    mode: Optional[str] = None
    backends: dict[str, str]


class DriftStatus(_Response):
    """The service's drift monitor: the latest comparison of the live window with the serving
    bundle's reference profile (``report``: bundle, reference / live windows, ``data`` and
    ``concept`` rows {name, statistic, value, threshold, drifted}, ``notes``, ``data_drift`` /
    ``concept_drift``; None until the first comparison, ``state`` says why) and a short history."""

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


class RolloutHere(_Response):
    """The answering server process: the challenger it holds, its failed builds."""

    server_schema: ClassVar[str] = "RolloutHereOut"
    challenger_loaded: Optional[str]
    build_failures: list[str]


class RolloutStatus(_Response):
    """What every rollout call answers: the record, a shadow's summary or a canary's now."""

    server_schema: ClassVar[str] = "RolloutStatusOut"
    rollout: Rollout
    shadow: Optional[ShadowSummary] = None
    now: Optional[RolloutNow] = None
    here: RolloutHere


MODELS: tuple[type[BaseModel], ...] = (
    Event, EventsResult, Item, ItemBatch, ItemPatch, ItemDetails, UserProfile, UserDetails, Written,
    UserErased, UserErasure, Filters, RecContext, RecItem, Recommendations, SimilarItem, SimilarItems,
    Bundle, Bundles, Activation, DriftStatus, CycleStage, CycleGate, Cycle, AutopilotStatus, Health, Readiness, RolloutShadow, RolloutCanary, RolloutDecision,
    Rollout, ShadowSummary, RolloutDue, RolloutNow, RolloutHere, RolloutStatus)
"""Every model mirroring a server schema (the drift test walks these)."""

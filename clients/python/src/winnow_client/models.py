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

from pydantic import BaseModel, Field, field_serializer, field_validator

from winnow_client._model_base import _Request, _Response
from winnow_client.models_admin import (  # re-exported: one import place for every body
    AutopilotStatus as AutopilotStatus, Cycle as Cycle, CycleGate as CycleGate, CycleStage as CycleStage,
    DriftStatus as DriftStatus, Rollout as Rollout, RolloutCanary as RolloutCanary,
    RolloutDecision as RolloutDecision, RolloutDue as RolloutDue, RolloutFollowing as RolloutFollowing,
    RolloutHere as RolloutHere, RolloutShadowHere as RolloutShadowHere,
    RolloutNow as RolloutNow, RolloutShadow as RolloutShadow, RolloutStatus as RolloutStatus,
    ShadowProcess as ShadowProcess, ShadowSummary as ShadowSummary,
)

Timestamp = Union[int, float, str, datetime]
"""Unix seconds (int or float), an RFC 3339 string with an offset, or an aware datetime."""


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


MODELS: tuple[type[BaseModel], ...] = (
    Event, EventsResult, Item, ItemBatch, ItemPatch, ItemDetails, UserProfile, UserDetails, Written,
    UserErased, UserErasure, Filters, RecContext, RecItem, Recommendations, SimilarItem, SimilarItems,
    Bundle, Bundles, Activation, DriftStatus, CycleStage, CycleGate, Cycle, AutopilotStatus, Health, Readiness,
    RolloutShadow, RolloutCanary, RolloutDecision, Rollout, ShadowSummary, RolloutDue, RolloutNow, RolloutFollowing,
    ShadowProcess, RolloutShadowHere, RolloutHere, RolloutStatus)
"""Every model mirroring a server schema (the drift test walks these)."""

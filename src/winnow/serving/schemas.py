"""Pydantic request/response models of the HTTP API (also the OpenAPI schema at /docs)."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from winnow.data.schema import MAX_ID_LENGTH

Id = Field(min_length=1, max_length=MAX_ID_LENGTH)
MAX_TIME = 32503680000  # year 3000: unix seconds stay int64 in the store


def epoch_seconds(value: Any) -> Any:
    """An event time as unix seconds: an int, a number (floored to the second the store keeps)
    or an RFC 3339 string with a UTC offset ("2026-11-01T12:00:00Z", "...+01:00", fractions
    allowed), also a string of digits. Anything else raises ValueError naming the value and the
    accepted forms (a 422 naming the row and field). Range checks (0..year 3000) follow."""
    if value is None:
        return value
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is a boolean; send unix seconds or an RFC 3339 date-time")
    number = not isinstance(value, str)
    if isinstance(value, float) and math.isfinite(value):
        value = math.floor(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{1,20}(\.\d*)?", text):
            value = math.floor(float(text))
        else:
            try:
                when = datetime.fromisoformat(text.upper())
            except ValueError:
                raise ValueError(f"timestamp {value!r} is neither unix seconds nor an RFC 3339 date-time "
                                 "(e.g. 1767225600 or \"2026-01-01T00:00:00Z\")") from None
            if when.tzinfo is None:
                raise ValueError(f"timestamp {value!r} has no UTC offset: add \"Z\" or \"+hh:mm\" "
                                 "(RFC 3339), or send unix seconds")
            value = math.floor(when.timestamp())
    if isinstance(value, int) and value > MAX_TIME:
        hint = " (unix milliseconds? send seconds)" if number and value < MAX_TIME * 1000 else ""
        raise ValueError(f"timestamp {value} is past the year 3000; the limit is {MAX_TIME}{hint}")
    return value


_TIME_RANGE = {"minimum": 0, "maximum": MAX_TIME}
# unix seconds (integer or number) or an RFC 3339 string; the validated value is int seconds
EventTime = Annotated[int, BeforeValidator(epoch_seconds), Field(ge=0, le=MAX_TIME), WithJsonSchema({
    "anyOf": [{"type": "integer", **_TIME_RANGE}, {"type": "number", **_TIME_RANGE},
              {"type": "string", "format": "date-time"}],
    "description": "unix seconds, or an RFC 3339 date-time with a UTC offset"})]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_In):
    """One event. ``timestamp`` (unix seconds or an RFC 3339 string with an offset) defaults to
    the time of receipt; ``event_id`` makes retries idempotent (an id already stored, or repeated
    earlier in the batch, is skipped: counted in ``received``, not in ``written``);
    ``request_id`` (or context.request_id) joins the event to the served slate it came from."""

    user_id: str = Id
    item_id: str = Id
    event_type: str = Field(min_length=1, max_length=64)
    value: float | None = None
    timestamp: EventTime | None = None
    event_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH)
    request_id: str | None = Field(None, max_length=128)
    context: dict[str, Any] | None = None


class EventsIn(_In):
    events: list[EventIn]


class EventsOut(BaseModel):
    received: int
    written: int  # newly stored (duplicates by event_id are skipped)


class ItemIn(_In):
    item_id: str = Id
    title: str = ""
    text: str = ""
    categories: list[str] = Field(default_factory=list)
    creator: str = ""
    created_at: int | None = Field(None, ge=0, le=MAX_TIME)  # year 3000: int64 in the store
    available: bool = True
    sponsored: bool = False
    attributes: dict[str, Any] = Field(default_factory=dict)


class ItemsIn(_In):
    items: list[ItemIn] = Field(max_length=100_000)


class ItemPatch(_In):
    available: bool | None = None
    sponsored: bool | None = None
    attributes: dict[str, Any] | None = None


class UserIn(_In):
    attributes: dict[str, Any] = Field(default_factory=dict)
    interests: list[str] = Field(default_factory=list)
    created_at: int | None = Field(None, ge=0, le=MAX_TIME)  # year 3000: int64 in the store


class UserOut(BaseModel):
    user_id: str
    attributes: dict[str, Any]
    interests: list[str]
    event_count: int
    recent_items: list[str]


class ItemOut(BaseModel):
    item_id: str
    title: str
    text: str
    categories: list[str]
    creator: str
    created_at: int | None
    available: bool
    sponsored: bool
    attributes: dict[str, Any]


class CountOut(BaseModel):
    written: int


class Filters(_In):
    categories: list[str] | None = None


class RecContext(_In):
    """Request context for POST recommendations."""

    device: str | None = None
    locale: str | None = None
    time: int | None = Field(None, ge=0, le=MAX_TIME)  # unix seconds; defaults to now
    query: str | None = Field(None, max_length=1000)
    filters: Filters | None = None
    exclude: list[str] = Field(default_factory=list, max_length=10_000)


class RecItem(BaseModel):
    item_id: str
    score: float
    position: int
    sources: list[str]
    propensity: float
    trace: dict[str, Any] | None = None


class RecOut(BaseModel):
    request_id: str
    model_version: str | None
    surface: str
    fallback: str | None  # first fallback of the chain used (None: none needed)
    fallbacks: list[str]
    items: list[RecItem]
    removed: list[dict[str, Any]] | None = None  # explain=true: what the rules removed
    experiments: dict[str, str] = Field(default_factory=dict)  # active experiment -> this user's variant
    arm: str | None = None  # during a canary: champion | challenger (model_version names the bundle)


class SimilarItem(BaseModel):
    item_id: str
    score: float
    sources: list[str]


class SimilarOut(BaseModel):
    item_id: str
    model_version: str | None
    items: list[SimilarItem]


class BundleOut(BaseModel):
    version: str
    created_at: int | None
    active: bool
    serving: bool
    data: dict[str, Any]
    metrics: dict[str, Any]


class BundlesOut(BaseModel):
    active: str | None
    serving: str | None
    bundles: list[BundleOut]


class ActivateOut(BaseModel):
    serving: str | None
    previous: str | None
    load_seconds: float


class Health(BaseModel):
    status: str
    model_version: str | None = None
    mode: str | None = None


BackendState = Literal["up", "down", "in-process"]


class Ready(Health):
    """GET /readyz: ``status`` "ready" once a runtime is loaded (also while a backend is down:
    reads keep serving through the fallbacks). ``backends``: ``store`` "up" | "down" and
    ``online`` "up" | "down" (Redis) or "in-process" (``memory://``), as last observed by
    requests and the recovery probe (the same state as ``winnow_backend_up``)."""

    backends: dict[str, BackendState]


class UserErased(BaseModel):
    events: int          # event rows deleted (also from the training event log)
    profile: bool        # attributes and interests deleted
    impressions: int     # logged slates shown to the user, deleted
    online_state: bool   # an in-memory record of this server process was dropped


class UserDeleteOut(BaseModel):
    """What DELETE /v1/users/{user_id} erased, and what trained bundles still hold."""

    user_id: str
    erased: UserErased
    remains: dict[str, Any]  # serving bundle, whether it has a factor row for the id, and a note

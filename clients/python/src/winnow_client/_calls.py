"""The API's routes and one builder per call, shared by Client and AsyncClient (which only send).

A ``Call`` is everything one request needs (method, path, query, JSON body) plus the model its
answer parses into and whether it is safe to repeat (winnow_client.retry). ``ROUTES`` lists every
route the client uses; the drift test checks each against the server's /openapi.json.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Optional, TypeVar, Union
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from winnow_client import errors
from winnow_client.models import (
    Activation, AutopilotStatus, Bundles, DriftStatus, Event, EventsResult, Health, Item, ItemBatch, ItemDetails, ItemPatch,
    Readiness, RecContext, Recommendations, RolloutCanary, RolloutShadow, RolloutStatus, SimilarItems, UserDetails,
    UserErasure, UserProfile, Written,
)

M = TypeVar("M", bound=BaseModel)
DEFAULT_URL = "http://127.0.0.1:8000"
VERSION = "0.1.0"


@dataclass(frozen=True)
class Route:
    """One route of the server: what the client sends and what it expects back."""

    method: str
    path: str
    response: type[BaseModel]
    body: Optional[type[BaseModel]] = None
    query: tuple[str, ...] = ()
    repeatable: bool = True  # safe to repeat when the outcome of a try is unknown


EVENTS = Route("POST", "/v1/events", EventsResult, body=Event)  # body: {"events": [Event, ...]}
ITEMS = Route("POST", "/v1/items", Written, body=ItemBatch)
ITEM = Route("GET", "/v1/items/{item_id}", ItemDetails)
ITEM_PATCH = Route("PATCH", "/v1/items/{item_id}", Written, body=ItemPatch)
SIMILAR = Route("GET", "/v1/items/{item_id}/similar", SimilarItems, query=("k",))
USER_PUT = Route("PUT", "/v1/users/{user_id}", Written, body=UserProfile)
USER_GET = Route("GET", "/v1/users/{user_id}", UserDetails)
USER_DELETE = Route("DELETE", "/v1/users/{user_id}", UserErasure, repeatable=False)
_REC_QUERY = ("k", "surface", "exclude", "explain")
RECS_GET = Route("GET", "/v1/users/{user_id}/recommendations", Recommendations, query=_REC_QUERY)
RECS_POST = Route("POST", "/v1/users/{user_id}/recommendations", Recommendations, body=RecContext,
                  query=_REC_QUERY)
BUNDLES = Route("GET", "/v1/admin/bundles", Bundles)
ACTIVATE = Route("POST", "/v1/admin/bundles/{version}/activate", Activation)
ROLLBACK = Route("POST", "/v1/admin/bundles/rollback", Activation, repeatable=False)
DRIFT = Route("GET", "/v1/admin/drift", DriftStatus)
DRIFT_REFRESH = Route("POST", "/v1/admin/drift/refresh", DriftStatus)
AUTOPILOT = Route("GET", "/v1/admin/autopilot", AutopilotStatus, query=("last",))
ROLLOUT = Route("GET", "/v1/admin/rollout", RolloutStatus)
ROLLOUT_SHADOW = Route("POST", "/v1/admin/rollout/shadow", RolloutStatus, body=RolloutShadow, repeatable=False)
ROLLOUT_CANARY = Route("POST", "/v1/admin/rollout/canary", RolloutStatus, body=RolloutCanary, repeatable=False)
ROLLOUT_PROMOTE = Route("POST", "/v1/admin/rollout/promote", RolloutStatus, repeatable=False)
ROLLOUT_ABORT = Route("POST", "/v1/admin/rollout/abort", RolloutStatus, repeatable=False)
HEALTH = Route("GET", "/healthz", Health)
READY = Route("GET", "/readyz", Readiness)
ROUTES = (EVENTS, ITEMS, ITEM, ITEM_PATCH, SIMILAR, USER_PUT, USER_GET, USER_DELETE, RECS_GET, RECS_POST,
          BUNDLES, ACTIVATE, ROLLBACK, DRIFT, DRIFT_REFRESH, AUTOPILOT, ROLLOUT, ROLLOUT_SHADOW, ROLLOUT_CANARY, ROLLOUT_PROMOTE, ROLLOUT_ABORT,
          HEALTH, READY)


@dataclass(frozen=True)
class Call(Generic[M]):
    route: Route
    model: type[M]
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None

    def parse(self, response: httpx.Response) -> M:
        """The answer as ``model``; the matching ApiError for an error status."""
        if response.status_code >= 400:
            raise errors.from_response(response)
        try:
            return self.model.model_validate_json(response.content)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError: never escapes as one
            raise errors.ResponseFormatError(
                f"the answer is not a {self.model.__name__}: {response.text[:200]!r} ({exc.__class__.__name__})",
                status_code=response.status_code, method=response.request.method,
                path=response.request.url.path) from exc


def _path(route: Route, **args: str) -> str:
    return route.path.format(**{k: quote(v, safe="") for k, v in args.items()})


def _call(route: Route, model: type[M], params: Optional[list[tuple[str, str]]] = None, json: Any = None,
          **args: str) -> Call[M]:
    return Call(route, model, _path(route, **args), tuple(params or ()), json)


# --- environment --------------------------------------------------------------------------------
def base_url(url: Optional[str]) -> str:
    """``url``, else $WINNOW_URL, else the server's default address."""
    return (url or os.environ.get("WINNOW_URL") or DEFAULT_URL).rstrip("/")


def headers(api_key: Optional[str]) -> dict[str, str]:
    """Request headers: the key from ``api_key`` or $WINNOW_API_KEY (none: open routes only)."""
    key = api_key if api_key is not None else os.environ.get("WINNOW_API_KEY")
    out = {"User-Agent": f"winnow-client/{VERSION}", "Accept": "application/json"}
    if key:
        out["Authorization"] = f"Bearer {key}"
    return out


Timeout = Union[float, httpx.Timeout, None]


# --- builders -------------------------------------------------------------------------------------
EventLike = Union[Event, Mapping[str, Any]]


def with_ids(events: Iterable[EventLike]) -> list[dict[str, Any]]:
    """JSON rows of ``events``, each with an ``event_id`` (a random one where the caller gave none),
    fixed before the first try so a repeated batch carries the same ids."""
    rows = []
    for ev in events:
        model = ev if isinstance(ev, Event) else Event.model_validate(ev)
        row = model.model_dump(mode="json", exclude_none=True)
        row.setdefault("event_id", uuid.uuid4().hex)
        rows.append(row)
    return rows


def send_events(rows: list[dict[str, Any]]) -> Call[EventsResult]:
    return _call(EVENTS, EventsResult, json={"events": rows})


def upsert_items(items: Iterable[Union[Item, Mapping[str, Any]]]) -> Call[Written]:
    batch = ItemBatch(items=[i if isinstance(i, Item) else Item.model_validate(i) for i in items])
    return _call(ITEMS, Written, json=batch.model_dump(mode="json"))


def get_item(item_id: str) -> Call[ItemDetails]:
    return _call(ITEM, ItemDetails, item_id=item_id)


def patch_item(item_id: str, patch: ItemPatch) -> Call[Written]:
    return _call(ITEM_PATCH, Written, json=patch.model_dump(mode="json", exclude_none=True), item_id=item_id)


def similar_items(item_id: str, k: Optional[int]) -> Call[SimilarItems]:
    return _call(SIMILAR, SimilarItems, [("k", str(k))] if k is not None else [], item_id=item_id)


def put_user(user_id: str, profile: UserProfile) -> Call[Written]:
    return _call(USER_PUT, Written, json=profile.model_dump(mode="json"), user_id=user_id)


def get_user(user_id: str) -> Call[UserDetails]:
    return _call(USER_GET, UserDetails, user_id=user_id)


def delete_user(user_id: str) -> Call[UserErasure]:
    return _call(USER_DELETE, UserErasure, user_id=user_id)


def recommend(user_id: str, *, k: Optional[int], surface: Optional[str], exclude: Optional[Sequence[str]],
              explain: bool, context: Union[RecContext, Mapping[str, Any], None]) -> Call[Recommendations]:
    """GET without a context, POST with one (device, locale, time, query, filters, exclude)."""
    params: list[tuple[str, str]] = []
    if k is not None:
        params.append(("k", str(k)))
    if surface is not None:
        params.append(("surface", surface))
    params += [("exclude", x) for x in exclude or ()]
    if explain:
        params.append(("explain", "true"))
    if context is None:
        return _call(RECS_GET, Recommendations, params, user_id=user_id)
    ctx = context if isinstance(context, RecContext) else RecContext.model_validate(context)
    return _call(RECS_POST, Recommendations, params, json=ctx.model_dump(mode="json", exclude_none=True),
                 user_id=user_id)


def bundles() -> Call[Bundles]:
    return _call(BUNDLES, Bundles)


def activate(version: str, force: bool = False) -> Call[Activation]:
    return _call(ACTIVATE, Activation, [("force", "true")] if force else None, version=version)


def rollback() -> Call[Activation]:
    return _call(ROLLBACK, Activation)


def drift() -> Call[DriftStatus]:
    return _call(DRIFT, DriftStatus)


def refresh_drift() -> Call[DriftStatus]:
    return _call(DRIFT_REFRESH, DriftStatus)


def autopilot(last: Optional[int] = None) -> Call[AutopilotStatus]:
    return _call(AUTOPILOT, AutopilotStatus, [("last", str(last))] if last is not None else None)


def rollout() -> Call[RolloutStatus]:
    return _call(ROLLOUT, RolloutStatus)


def start_shadow(bundle: str, sample: Optional[float]) -> Call[RolloutStatus]:
    """Checked here (RolloutShadow: pydantic ValidationError before any network call)."""
    body = RolloutShadow(bundle=bundle, sample=sample)
    return _call(ROLLOUT_SHADOW, RolloutStatus, json=body.model_dump(mode="json", exclude_none=True))


def start_canary(bundle: str, *, plan: Optional[Sequence[int]], step_min: Union[str, float, None],
                 min_exposed: Optional[int]) -> Call[RolloutStatus]:
    body = RolloutCanary(bundle=bundle, plan=list(plan) if plan is not None else None, step_min=step_min,
                         min_exposed=min_exposed)
    return _call(ROLLOUT_CANARY, RolloutStatus, json=body.model_dump(mode="json", exclude_none=True))


def promote_rollout() -> Call[RolloutStatus]:
    return _call(ROLLOUT_PROMOTE, RolloutStatus)


def abort_rollout() -> Call[RolloutStatus]:
    return _call(ROLLOUT_ABORT, RolloutStatus)


def health() -> Call[Health]:
    return _call(HEALTH, Health)


def ready() -> Call[Readiness]:
    return _call(READY, Readiness)

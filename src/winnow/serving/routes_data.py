"""Routes that write or read data: events, items, users."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from winnow.core.errors import UnknownIdError
from winnow.serving.auth import charge_events
from winnow.serving.errors import ApiError
from winnow.serving.schemas import (
    CountOut,
    EventIn,
    EventsOut,
    ItemOut,
    ItemPatch,
    ItemsIn,
    UserDeleteOut,
    UserErased,
    UserIn,
    UserOut,
)
from winnow.serving.service import Service

router = APIRouter()

_EVENTS_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["events"],
    "properties": {"events": {"type": "array", "maxItems": 10_000,
                              "items": EventIn.model_json_schema(ref_template="#/components/schemas/{model}")}}}}}}}


def _service(request: Request) -> Service:
    return request.app.state.service


def parse_events(body: bytes, *, max_events: int, max_bytes: int) -> list[dict[str, Any]]:
    """Validate a raw events body: 413 if too big, 400 if not JSON, 422 listing every bad row."""
    if len(body) > max_bytes:
        raise ApiError(413, f"request body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ApiError(422, 'body must be a JSON object {"events": [...]}')
    events = data["events"]
    extra = set(data) - {"events"}
    if extra:
        raise ApiError(422, f"unknown top-level field(s) {sorted(extra)}; expected only 'events'")
    if len(events) > max_events:
        raise ApiError(413, f"{len(events)} events in one request; the limit is {max_events}")
    rows, errors = [], []
    for i, raw in enumerate(events):
        try:
            ev = EventIn.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                errors.append({"row": i, "field": ".".join(str(p) for p in err["loc"]) or None,
                               "message": err["msg"], "value": err.get("input") if err["loc"] else None})
            continue
        ctx = dict(ev.context or {})
        if ev.request_id is not None:
            ctx["request_id"] = ev.request_id
        rows.append({"user_id": ev.user_id, "item_id": ev.item_id, "event_type": ev.event_type,
                     "value": ev.value, "timestamp": ev.timestamp, "event_id": ev.event_id,
                     "context": orjson.dumps(ctx).decode() if ctx else None})
    if errors:
        bad = len({e["row"] for e in errors})
        raise ApiError(422, f"{bad} invalid event row(s); nothing was written", errors=errors)
    return rows


@router.post("/v1/events", response_model=EventsOut, tags=["data"], openapi_extra=_EVENTS_SCHEMA,
             summary="Append events (answered once durable; idempotent by event_id)")
async def post_events(request: Request) -> EventsOut:
    svc = _service(request)
    cfg = svc.config.serving
    rows = parse_events(await request.body(), max_events=cfg.max_events_per_request,
                        max_bytes=cfg.max_body_bytes)
    charge_events(request, len(rows))  # per-key events/s ([rate_limit]); 429 before anything is written
    written = await run_in_threadpool(svc.ingest, rows) if rows else 0
    return EventsOut(received=len(rows), written=written)


@router.post("/v1/items", response_model=CountOut, tags=["data"], summary="Insert or replace items")
def post_items(body: ItemsIn, request: Request) -> CountOut:
    svc = _service(request)
    frame = pd.DataFrame([it.model_dump() for it in body.items])
    if not len(frame):
        return CountOut(written=0)
    written = svc.store.upsert_items(frame, source="request")
    cat = svc.runtime.catalog
    for it in body.items:
        cat.upsert(it.item_id, categories=it.categories, available=it.available,
                   sponsored=it.sponsored, created_at=it.created_at)
    svc.runtime.add_items(frame)  # new items enter the two-tower index from their content
    return CountOut(written=written)


@router.get("/v1/items/{item_id}", response_model=ItemOut, tags=["data"],
            summary="One catalog item (404 if unknown)")
def get_item(request: Request, item_id: str = Path(min_length=1, max_length=256)) -> ItemOut:
    item = _service(request).store.get_item(item_id)
    if item is None:
        raise ApiError(404, f"unknown item id: {item_id!r}")
    created = item.get("created_at")
    return ItemOut(item_id=item_id, title=item.get("title") or "", text=item.get("text") or "",
                   categories=list(item.get("categories") or []), creator=item.get("creator") or "",
                   created_at=None if created is None or pd.isna(created) else int(created),
                   available=bool(item.get("available", True)),
                   sponsored=bool(item.get("sponsored", False)),
                   attributes=item.get("attributes") or {})


@router.patch("/v1/items/{item_id}", response_model=CountOut, tags=["data"],
              summary="Change one item's availability, sponsored flag or attributes")
def patch_item(body: ItemPatch, request: Request, item_id: str = Path(min_length=1, max_length=256)) -> CountOut:
    svc = _service(request)
    try:
        svc.store.patch_item(item_id, available=body.available, sponsored=body.sponsored,
                             attributes=body.attributes)
    except UnknownIdError:
        raise ApiError(404, f"unknown item id: {item_id!r}") from None
    svc.runtime.catalog.upsert(item_id, available=body.available, sponsored=body.sponsored)
    return CountOut(written=1)


@router.put("/v1/users/{user_id}", response_model=CountOut, tags=["data"],
            summary="Create or replace a user's attributes and declared interests")
def put_user(body: UserIn, request: Request, user_id: str = Path(min_length=1, max_length=256)) -> CountOut:
    svc = _service(request)
    frame = pd.DataFrame([{"user_id": user_id, "created_at": body.created_at,
                           "attributes": body.attributes, "interests": body.interests}])
    return CountOut(written=svc.store.upsert_users(frame, source="request"))


@router.get("/v1/users/{user_id}", response_model=UserOut, tags=["data"],
            summary="A user's profile and recent activity (404 if unknown)")
def get_user(request: Request, user_id: str = Path(min_length=1, max_length=256)) -> UserOut:
    svc = _service(request)
    user = svc.store.get_user(user_id)
    if user is None:
        raise ApiError(404, f"unknown user id: {user_id!r}")
    rec = svc.state.get(user_id)
    recent: list[str] = []
    if rec is not None:
        for item, *_ in rec.recent:
            if item not in recent:
                recent.append(item)
            if len(recent) >= 20:
                break
    return UserOut(user_id=user_id, attributes=user.get("attributes") or {},
                   interests=list(user.get("interests") or []),
                   event_count=rec.event_count if rec is not None else 0, recent_items=recent)


_REMAINS = ("Trained bundles are not rewritten: until a bundle trained after this erasure is active, "
            "the model may hold a row of user factors for this id (ALS/BPR; used again if the id "
            "returns) and every trained model (item factors, EASE weights, co-occurrence counts, "
            "popularity, ranker) keeps the aggregate influence of the erased events. Older bundles "
            "on disk keep both until deleted; run `winnow train` to retrain without this user.")


@router.delete("/v1/users/{user_id}", response_model=UserDeleteOut, tags=["data"],
               summary="Erase a user's events, profile, impressions and online state (404 if unknown)")
def delete_user(request: Request, user_id: str = Path(min_length=1, max_length=256)) -> UserDeleteOut:
    svc = _service(request)
    svc.impressions.flush(timeout=2.0)  # slates served before this call are written, then erased with the rest
    out = svc.store.delete_user(user_id)  # one transaction; 503 if the store refuses writes
    state = svc.state.forget(user_id)
    rt = svc.runtime
    rt.forget(user_id)
    if svc.item_stats is not None:  # Thompson statistics: the user's open impressions (counts stay)
        svc.item_stats.forget_user(user_id)
    if not out["found"] and not state:
        raise ApiError(404, f"unknown user id: {user_id!r}")
    in_bundle = rt.user_ids is not None and user_id in rt.user_ids
    return UserDeleteOut(user_id=user_id,
                         erased=UserErased(events=out["events"], profile=out["profile"],
                                           impressions=out["impressions"], online_state=state),
                         remains={"serving_bundle": rt.version, "user_in_bundle": in_bundle,
                                  "bundles_on_disk": len(svc.list_bundles()), "note": _REMAINS})

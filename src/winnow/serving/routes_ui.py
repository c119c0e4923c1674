"""The web dashboard: static assets at /ui and the small JSON API behind them at /ui/api.

The dashboard (src/winnow/serving/ui/, plain HTML + ES modules + CSS, no build step, works
offline) reads the service's own state through these endpoints; the Models page uses the
admin API (/v1/admin/bundles...) directly. Nothing here writes to the store: the slate
previews of the user inspector run the live pipeline but log no impression. The JSON API
needs an API key with the ``admin`` scope (serving/auth.py); the static files do not (they
hold no data), so the page can ask for the key.

Endpoints (all JSON, external ids only):
- GET  /ui/api/stats                     counts, model version, Prometheus counters/histograms
- GET  /ui/api/users?q=&limit=           user ids matching a prefix (store + bundle users)
- GET  /ui/api/users/{id}                profile, recent history with item metadata
- POST /ui/api/users/{id}/slate          slate with explanations; switches: k, sources/rules off
- GET  /ui/api/items?q=&limit=           item ids matching a prefix, most popular first
- GET  /ui/api/items/{id}?days=          metadata, similar items, daily exposure/clicks, cold-start
- GET  /ui/api/experiments               JSON results files (A/B, OPE, simulator, benchmarks)
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from winnow.serving.errors import ApiError
from winnow.serving.service import Service
from winnow.serving.ui_data import (
    blend_contributions, metrics_snapshot, run_variant, timeline, variant_pipeline,
)

UI_DIR = Path(__file__).with_name("ui")
MAX_RESULT_BYTES = 4_000_000  # results files larger than this are listed, not inlined
_COUNTS_TTL_S = 5.0

router = APIRouter(prefix="/ui/api", tags=["dashboard"])


def _service(request: Request) -> Service:
    return request.app.state.service


class SlateIn(BaseModel):
    """What-if switches for one preview: slate size, sources and rules turned off."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(10, ge=1, le=200)
    surface: str = Field("default", min_length=1, max_length=64)
    disable_sources: list[str] = Field(default_factory=list, max_length=50)
    disable_rules: list[str] = Field(default_factory=list, max_length=50)


def _item_meta(svc: Service, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """title / categories / flags of each item from the store (missing items are left out)."""
    out = {}
    for iid in dict.fromkeys(item_ids):
        row = svc.store.get_item(iid)
        if row is not None:
            out[iid] = {"title": row.get("title") or "", "categories": list(row.get("categories") or []),
                        "sponsored": bool(row.get("sponsored")), "available": bool(row.get("available"))}
    return out


@router.get("/stats", summary="Counts, model version and the service's Prometheus metrics as JSON")
def stats(request: Request) -> dict[str, Any]:
    svc = _service(request)
    cache = getattr(request.app.state, "ui_counts", None)
    now = time.time()
    if cache is None or now - cache[0] > _COUNTS_TTL_S:
        cache = (now, svc.store.counts())
        request.app.state.ui_counts = cache
    rt = svc.runtime
    pipe = rt.pipeline
    return {"time": now, "counts": cache[1], "model_version": rt.version, "mode": rt.mode,
            "catalog_items": len(rt.catalog), "model_users": len(rt.user_ids) if rt.user_ids else 0,
            "sources": [s.name for s in pipe.config.sources], "rules": [r.name for r in pipe.rules],
            "metrics": metrics_snapshot(svc.metrics.registry)}


@router.get("/users", summary="User ids starting with q (bundle users, plus an exact store match)")
def users(request: Request, q: str = Query("", max_length=256),
          limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
    svc = _service(request)
    found: list[str] = []
    if q and svc.store.get_user(q) is not None:
        found.append(q)
    ids = svc.runtime.user_ids
    if ids is not None:
        for uid in ids.ids:
            if len(found) >= limit:
                break
            if uid.startswith(q) and uid != q:
                found.append(uid)
    return {"query": q, "users": found}


@router.get("/users/{user_id}", summary="A user's profile and recent history with item metadata")
def user(request: Request, user_id: str, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    svc = _service(request)
    row = svc.store.get_user(user_id)
    if row is None:
        raise ApiError(404, f"unknown user id: {user_id!r}")
    ev = svc.store.user_events(user_id, limit=limit)
    meta = _item_meta(svc, [str(x) for x in ev["item_id"]]) if len(ev) else {}
    history = []
    for r in ev.itertuples(index=False):
        value = getattr(r, "value", None)
        history.append({"item_id": str(r.item_id), "event_type": str(r.event_type),
                        "timestamp": int(r.timestamp),
                        "value": None if value is None or (isinstance(value, float) and math.isnan(value))
                        else float(value), **meta.get(str(r.item_id), {})})
    rt = svc.runtime
    return {"user_id": user_id, "attributes": row.get("attributes") or {},
            "interests": list(row.get("interests") or []), "created_at": row.get("created_at"),
            "known_to_model": bool(rt.user_ids is not None and user_id in rt.user_ids),
            "model_version": rt.version, "history": history}


@router.post("/users/{user_id}/slate",
             summary="Preview a slate with explanations; switch sources or rules off, change k (logs nothing)")
def slate(request: Request, user_id: str, body: SlateIn | None = None) -> dict[str, Any]:
    svc = _service(request)
    body = body or SlateIn()
    if body.k > svc.config.serving.max_k:
        raise ApiError(422, f"k={body.k} is above serving.max_k={svc.config.serving.max_k}")
    rt = svc.runtime
    pipe, blend = variant_pipeline(rt.pipeline, disable_sources=body.disable_sources,
                                   disable_rules=body.disable_rules)
    view, result = run_variant(svc, rt, pipe, user_id, k=body.k, surface=body.surface)
    ids = rt.catalog.item_ids
    item_ids = ids.decode([s.item for s in result.items])
    removed_ids = ids.decode([r["item"] for r in (result.removed or [])])
    meta = _item_meta(svc, item_ids)
    items = []
    for iid, s in zip(item_ids, result.items, strict=True):
        trace = dict(s.trace or {})
        if "contributions" not in trace and trace.get("rank_features"):  # learned ranker: pred_contrib
            trace["contributions"] = {f["feature"]: f["contribution"] for f in trace["rank_features"]}
        if "contributions" not in trace and blend is not None:
            trace["contributions"] = blend_contributions(blend, trace, pipe, view, rt.catalog, s.item)
        items.append({"item_id": iid, "score": s.score, "position": s.position, "sources": s.sources,
                      "propensity": s.propensity, "trace": trace, **meta.get(iid, {})})
    cfg = rt.pipeline.config
    return {
        "user_id": user_id, "model_version": rt.version, "mode": rt.mode, "k": body.k,
        "fallbacks": result.fallbacks, "n_candidates": result.n_candidates,
        "timings_ms": {k: v * 1000 for k, v in result.timings.items()},
        "exploration": getattr(result, "exploration", None),
        "sources": [{"name": s.name, "kind": s.kind, "quota": s.quota, "weight": s.weight,
                     "enabled": s.name not in body.disable_sources} for s in cfg.sources],
        "backfill_source": cfg.backfill_source,
        "rules": [{"name": r.name, "enabled": r.name not in body.disable_rules} for r in rt.pipeline.rules],
        "ranker": type(pipe.ranker).__name__,
        "items": items,
        "removed": [{"item_id": d, "rule": r["rule"], "reason": r["reason"]}
                    for d, r in zip(removed_ids, result.removed or [], strict=True)],
    }


def _manifest(svc: Service) -> dict[str, Any]:
    from winnow import bundle as bundles

    version = svc.runtime.version
    if version is None:
        return {}
    path = bundles.bundles_dir(svc.config.home) / version / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@router.get("/items", summary="Item ids of the serving catalog starting with q (most popular first)")
def items(request: Request, q: str = Query("", max_length=256),
          limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
    cat = _service(request).runtime.catalog
    ids = cat.item_ids.ids
    pop = cat.popularity
    order = sorted((i for i, x in enumerate(ids) if x.startswith(q)), key=lambda i: -float(pop[i]))
    return {"query": q, "items": [ids[i] for i in order[:limit]]}


def _cold_start(svc: Service, rt: Any, idx: int) -> dict[str, Any]:
    """The two-tower model's collaborative weight for item ``idx``: w = n / (n + item_k), n =
    the item's training events (``item_counts_``), when the serving runtime holds such a model."""
    models = getattr(rt, "models", None)
    tt = getattr(rt, "two_tower", None) or (models.get("two_tower") if isinstance(models, dict) else None)
    counts = getattr(tt, "item_counts_", None)
    if counts is not None and 0 <= idx < len(counts):
        n = int(counts[idx])
        item_k = float(getattr(getattr(tt, "config", None), "item_k", svc.config.models.two_tower.item_k))
        return {"present": True, "n_train_events": n, "item_k": item_k, "weight": n / (n + item_k)}
    if "two_tower" in (_manifest(svc).get("models") or []):
        reason = ("this item is newer than the two-tower model" if counts is not None
                  else "the bundle has a two-tower model but the serving runtime does not load it")
        return {"present": False, "reason": reason}
    return {"present": False, "reason": "the serving bundle has no content (two-tower) model"}


@router.get("/items/{item_id}", summary="An item: metadata, similar items, exposure and clicks per day")
def item(request: Request, item_id: str, days: int = Query(30, ge=1, le=365),
         k: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
    svc = _service(request)
    row = svc.store.get_item(item_id)
    rt = svc.runtime
    idx = rt.catalog.item_ids.get(item_id)
    if row is None and idx < 0:
        raise ApiError(404, f"unknown item id: {item_id!r}")
    cat = rt.catalog
    catalog = None
    if idx >= 0:
        code = int(cat.category[idx])
        catalog = {"category": cat.category_names[code] if 0 <= code < len(cat.category_names) else None,
                   "available": bool(cat.available[idx]), "sponsored": bool(cat.sponsored[idx]),
                   "popularity": float(cat.popularity[idx]), "trending": float(cat.trending[idx]),
                   "popularity_rank": int((cat.popularity > cat.popularity[idx]).sum()) + 1,
                   "has_embedding": bool(rt.als is not None and idx < rt.als.n_items_)}
    similar = []
    if idx >= 0:
        found = rt.similar(idx, k)
        sim_ids = cat.item_ids.decode([f[0] for f in found])
        meta = _item_meta(svc, sim_ids)
        similar = [{"item_id": i, "score": f[1], "sources": f[2], **meta.get(i, {})}
                   for i, f in zip(sim_ids, found, strict=True)]
    series = timeline(svc.store, item_id, days=days, now=time.time())
    cold = _cold_start(svc, rt, idx)
    if row is not None:
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        row["categories"] = list(row.get("categories") or [])
    return {"item_id": item_id, "item": row, "in_model": idx >= 0, "catalog": catalog,
            "similar": similar, "timeline": series, "cold_start": cold, "model_version": rt.version}


def _kind(data: Any) -> str:
    if not isinstance(data, dict):
        return "other"
    if "comparisons" in data and "srm" in data:
        return "ab"
    if "runs" in data and isinstance(data["runs"], dict) and \
            any(isinstance(r, dict) and "rounds" in r for r in data["runs"].values()):
        return "simulator"
    if str(data.get("benchmark", "")).startswith("ope") or "estimators" in data or \
            any(isinstance(r, dict) and "estimators" in r for r in data.get("results", []) or []):
        return "ope"
    if "summary" in data and "protocol" in data:
        return "evaluation"
    return "benchmark" if "benchmark" in data else "other"


def result_dirs(svc: Service) -> list[Path]:
    """Where results files are looked for: <home>/reports and ./bench/results (from the cwd)."""
    return [Path(svc.config.home) / "reports", Path.cwd() / "bench" / "results"]


@router.get("/experiments", summary="JSON results files: A/B tests, OPE, simulator runs, benchmarks")
def experiments(request: Request) -> dict[str, Any]:
    svc = _service(request)
    files = []
    dirs = result_dirs(svc)
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.json")):
            entry: dict[str, Any] = {"name": path.name, "dir": str(d), "modified": int(path.stat().st_mtime),
                                     "bytes": path.stat().st_size}
            if entry["bytes"] > MAX_RESULT_BYTES:
                entry.update(kind="too_large", error=f"{entry['bytes']} bytes; not inlined")
            else:
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                    entry.update(kind=_kind(data), data=data)
                except (OSError, ValueError) as exc:
                    entry.update(kind="invalid", error=f"{path}: {exc}")
            files.append(entry)
    return {"searched": [str(d) for d in dirs], "files": files}


def install_ui(app: FastAPI) -> None:
    """Add the dashboard to ``app``: JSON API, /ui -> /ui/ redirect, static assets."""
    app.include_router(router)  # /ui/api: behind the app's API-key check (admin scope)

    async def _ui_root(_: Request) -> RedirectResponse:
        return RedirectResponse("/ui/")

    # the static shell holds no data and stays reachable without a key, so that the page can
    # ask for one: plain Starlette routes bypass the app-wide FastAPI dependencies
    app.add_route("/ui", _ui_root, include_in_schema=False)
    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")


__all__ = ["install_ui", "router"]

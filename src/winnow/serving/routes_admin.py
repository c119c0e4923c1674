"""Health, readiness, Prometheus metrics and bundle administration."""

from __future__ import annotations

import os

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from winnow.rollout.control import refuse_if_running
from winnow.serving.errors import ApiError
from winnow.serving.schemas import ActivateOut, BundleOut, BundlesOut, Health, Ready
from winnow.serving.service import Service
from winnow import bundle as bundles

router = APIRouter()
# strict: only names this regex accepts ever reach the file system
Version = Path(pattern=bundles.VERSION_RE.pattern, max_length=40)


def _service(request: Request) -> Service:
    return request.app.state.service


@router.get("/healthz", response_model=Health, tags=["ops"], summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, tags=["ops"],
            summary="Readiness: a runtime is loaded; the body names each backend's state")
async def readyz(request: Request) -> Ready:
    """200 "ready" whenever a runtime is loaded, with ``backends`` = {"store": "up"|"down",
    "online": "up"|"down"|"in-process"}.

    A down backend does not make this 503, on purpose: the store and Redis are shared by every
    replica, so an outage of either hits all replicas at once, and a load balancer that took
    them all out of rotation would turn "events refused, recommendations degraded" into "no
    recommendations at all". Each replica still serves reads from its loaded bundle (history
    from Redis or the store, else the cold-start chain / popularity, reported as a fallback);
    event posts answer 503 until the store is back. Alert on ``backends`` (or on
    ``winnow_backend_up``), not on readiness.
    """
    svc = _service(request)
    rt = svc.runtime
    return Ready(status="ready", model_version=rt.version, mode=rt.mode, backends=svc.state.backends())


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(_service(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/admin/bundles", response_model=BundlesOut, tags=["admin"], summary="List bundles")
def list_bundles(request: Request) -> BundlesOut:
    svc = _service(request)
    active = bundles.active_version(svc.config.home)
    serving = svc.runtime.version
    out = [BundleOut(version=b.version, created_at=b.manifest.get("created_at"), active=b.version == active,
                     serving=b.version == serving, data=b.manifest.get("data", {}),
                     metrics=b.manifest.get("metrics", {})) for b in svc.list_bundles()]
    return BundlesOut(active=active, serving=serving, bundles=out)


@router.post("/v1/admin/bundles/rollback", response_model=ActivateOut, tags=["admin"],
             summary="Activate the previously active bundle (atomic swap)")
def rollback(request: Request) -> ActivateOut:
    svc = _service(request)
    refuse_if_running(svc.store, "rollback")
    previous, secs = svc.rollback()
    return ActivateOut(serving=svc.runtime.version, previous=previous, load_seconds=secs)


@router.post("/v1/admin/bundles/{version}/activate", response_model=ActivateOut, tags=["admin"],
             summary="Verify, load and atomically swap to a bundle version (409 if refused)")
def activate(request: Request, version: str = Version,
             force: bool = Query(False, description="activate even a bundle the autopilot's gate failed")) -> ActivateOut:
    """409 when a rollout runs, or the bundle is labelled ``gate: failed`` and not ``force``."""
    svc = _service(request)
    bundles.bundle_path(svc.config.home, version)  # 404 (UnknownIdError) before anything is built
    refuse_if_running(svc.store, f"activate {version}")
    bundles.refuse_gate_failed(svc.config.home, version, force=force, how="?force=true")
    previous, secs = svc.activate(version)
    return ActivateOut(serving=svc.runtime.version, previous=previous, load_seconds=secs)


class ItemStatsOut(BaseModel):
    """One item's Thompson statistics as this worker holds them (docs/FEEDBACK.md)."""

    item_id: str
    all: dict[str, float]  # {"clicks", "shown"} over every surface
    surfaces: dict[str, dict[str, float]]  # surface -> {"clicks", "shown"}
    refreshes: int  # store refreshes this worker has done
    worker_pid: int


@router.get("/v1/admin/item-stats/{item_id}", response_model=ItemStatsOut, tags=["admin"],
            summary="One item's click/shown counts for Thompson sampling (404 when no surface uses it)")
def item_stats(request: Request, item_id: str = Path(min_length=1, max_length=256)) -> ItemStatsOut:
    stats = _service(request).item_stats
    if stats is None:
        raise ApiError(404, "no item statistics are kept: no [pipeline.explore] surface uses kind 'thompson'")
    return ItemStatsOut(item_id=item_id, **stats.item_summary(item_id), refreshes=stats.refreshes,
                        worker_pid=os.getpid())

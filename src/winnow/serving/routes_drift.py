"""``GET /v1/admin/drift`` (admin scope): the drift monitor's latest comparison of the live
window with the serving bundle's reference profile, data and concept drift apart, with a short
history (serving/drift_monitor.py; the same report as ``winnow drift report``).
``POST /v1/admin/drift/refresh`` answers a result attempted after the call (computed by this
worker, or by another one that was computing when it came) and every worker then serves it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from winnow.serving.errors import ApiError
from winnow.serving.service import Service

router = APIRouter(tags=["admin"])


class DriftOut(BaseModel):
    """The monitor's snapshot: ``report`` is None until the first comparison (``state`` says why:
    starting, no_bundle, no_profile, error)."""

    enabled: bool
    state: str
    error: str | None
    refresh_s: float
    window_days: float
    computed_at: float | None
    refreshes: int  # this worker's refresh checks
    computations: int  # comparisons the home's workers have run (one per refresh_s, shared)
    computed_by: int | None  # pid of the worker that ran the last one
    computed_here: int  # comparisons the answering worker ran
    report: dict[str, Any] | None  # bundle, reference/live windows, data/concept rows, notes, flags
    history: list[dict[str, Any]]  # oldest first: at, bundle, data_drift, concept_drift, live_events, values


def _monitor(request: Request) -> Any:
    svc: Service = request.app.state.service
    if svc.drift is None:
        raise ApiError(404, "drift monitoring is off ([drift] monitor = false)")
    return svc.drift


@router.get("/v1/admin/drift", response_model=DriftOut,
            summary="Live drift vs the serving bundle's reference: per-statistic table, flags, history")
def drift(request: Request) -> DriftOut:
    return DriftOut(**_monitor(request).snapshot())


@router.post("/v1/admin/drift/refresh", response_model=DriftOut,
             summary="Recompute the live drift comparison now (once for the home) and answer it")
def refresh(request: Request) -> DriftOut:
    return DriftOut(**_monitor(request).refresh(force=True))

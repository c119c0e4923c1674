"""``GET /v1/admin/drift`` (admin scope): the drift monitor's latest comparison of the live
window with the serving bundle's reference profile, data and concept drift apart, with a short
history (computed by the home's drift monitor process, serving/drift_monitor.py, read by every
worker through serving/drift_reader.py; the same report as ``winnow drift report``).
``POST /v1/admin/drift/refresh`` wakes the monitor and answers a result attempted after the call
(503 naming what to start when no monitor runs); every worker then serves it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from winnow.serving.drift_reader import NoMonitor
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
    computations: int  # comparisons the home's monitor has run (one per refresh_s, shared)
    computed_by: int | None  # pid of the monitor process that ran the last one
    computed_here: int  # comparisons the answering worker ran: 0 (workers never compute)
    report: dict[str, Any] | None  # bundle, reference/live windows, data/concept rows, notes, flags
    history: list[dict[str, Any]]  # oldest first: at, bundle, data_drift, concept_drift, live_events, values


def _monitor(request: Request) -> Any:
    svc: Service = request.app.state.service
    if svc.drift is None:
        raise ApiError(404, 'drift monitoring is off ([drift] monitor = "off")')
    return svc.drift


@router.get("/v1/admin/drift", response_model=DriftOut,
            summary="Live drift vs the serving bundle's reference: per-statistic table, flags, history")
def drift(request: Request) -> DriftOut:
    return DriftOut(**_monitor(request).refresh())  # a stat of the shared file; parsed only when it changed


@router.post("/v1/admin/drift/refresh", response_model=DriftOut,
             summary="Ask the drift monitor to compare now (once for the home) and answer its result")
def refresh(request: Request) -> DriftOut:
    try:
        return DriftOut(**_monitor(request).refresh(force=True))
    except NoMonitor as exc:
        raise ApiError(503, str(exc)) from None

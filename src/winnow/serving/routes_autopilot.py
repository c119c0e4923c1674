"""``GET /v1/admin/autopilot`` (admin scope): the autopilot's cycles as ``winnow autopilot status``
shows them -- trigger, attempts, stages with timings and peak RSS, gate results and reasons,
hand-off outcome (winnow.cyclelog.status, the one implementation behind both).

The serving process only READS the cycle records in ``<home>/lifecycle/cycles`` (written
atomically by ``winnow autopilot``, a separate process): nothing here trains or writes. A record
that cannot be read answers 409 naming the file, never a partial list.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from winnow.core.errors import LifecycleError
from winnow.cyclelog.record import load_records
from winnow.cyclelog.status import status_data
from winnow.serving.errors import ApiError
from winnow.serving.service import Service

router = APIRouter(tags=["admin"])


class CycleStageOut(BaseModel):
    """One stage of a cycle: status ("done" | "failed"), wall / CPU seconds, peak RSS (MiB), how
    often it ran and was skipped (inputs unchanged), its outputs in words, its error if it failed."""

    name: str
    status: str
    wall_s: float | None
    cpu_s: float | None
    peak_rss_mib: float | None
    runs: int
    skipped_runs: int
    summary: str
    error: str | None


class CycleGateOut(BaseModel):
    """The gate's verdict: champion vs challenger on the holdout window; ``reasons`` the failed
    checks in words; ``checks`` every check {check, value, threshold, passed}; ``metrics``
    {challenger|champion: {ndcg, recall, coverage, users}}; ``ope`` the off-policy estimate."""

    passed: bool
    challenger: str
    champion: str | None
    champion_saw_holdout: bool
    reasons: list[str]
    checks: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    ope: dict[str, Any] | None


class CycleOut(BaseModel):
    """One autopilot cycle: id, status (running | failed | done | abandoned), unix start / finish,
    what triggered it, attempts (resumes included), why it failed, stages in run order, the gate's
    verdict and the hand-off's outputs (action, active_before / active_after, rollout)."""

    cycle: str
    status: str
    started_at: int
    finished_at: int | None
    trigger: str | None
    attempts: int
    reason: str | None
    stages: list[CycleStageOut]
    gate: CycleGateOut | None
    handoff: dict[str, Any] | None


class AutopilotOut(BaseModel):
    """The newest ``last`` cycles (newest last) of ``total`` recorded."""

    total: int
    cycles: list[CycleOut]


@router.get("/v1/admin/autopilot", response_model=AutopilotOut,
            summary="The autopilot's recent cycles: trigger, stages with timings, gate results, hand-off")
def autopilot(request: Request, last: int = Query(10, ge=1, le=500)) -> AutopilotOut:
    svc: Service = request.app.state.service
    try:
        records = load_records(svc.config.home)
    except LifecycleError as exc:
        raise ApiError(409, str(exc)) from None
    return AutopilotOut(**status_data(records, last=last))

"""Rollout administration under /v1/admin/rollout (admin scope): the same functions as
`winnow rollout ...` (winnow.rollout.control / report). Refusals answer 404 / 409 / 422 with
the reason and change nothing (RolloutError, mapped in serving/errors.py). Every route answers
a RolloutStatusOut (serving/schemas_rollout.py); a start only validates the bundle and stores
the record, the poll thread builds the challenger (``here.challenger_loaded`` says when)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from winnow.rollout import control
from winnow.rollout.report import report
from winnow.serving.schemas_rollout import CanaryIn, RolloutStatusOut, ShadowIn
from winnow.serving.service import Service

router = APIRouter(tags=["admin"])


def _service(request: Request) -> Service:
    return request.app.state.service


def _status(svc: Service) -> dict[str, Any]:
    """After a change: this worker follows the record at once without building anything in the
    request (a new challenger is built by its poll thread, woken now; the other workers follow
    within [rollout] poll_s). The bundle was verified (checksums, schema) by control.start."""
    svc.rollout.refresh(build=False)
    svc.rollout.wake()
    return {**report(svc.store, svc.config, tracker=svc.rollout.arm_tracker()), "here": svc.rollout.here()}


@router.get("/v1/admin/rollout", response_model=RolloutStatusOut, summary="The running (else latest) rollout: state, arms, every decision")
def status(request: Request) -> dict[str, Any]:
    svc = _service(request)
    return {**report(svc.store, svc.config, tracker=svc.rollout.arm_tracker()), "here": svc.rollout.here()}


@router.post("/v1/admin/rollout/shadow", response_model=RolloutStatusOut, summary="Shadow a bundle: it answers sampled requests off the path")
def shadow(request: Request, body: ShadowIn) -> dict[str, Any]:
    svc = _service(request)
    control.start(svc.store, svc.config, challenger=body.bundle, mode="shadow", sample=body.sample, by="api")
    return _status(svc)


@router.post("/v1/admin/rollout/canary", response_model=RolloutStatusOut, summary="Canary a bundle: users move to it step by step")
def canary(request: Request, body: CanaryIn) -> dict[str, Any]:
    svc = _service(request)
    step_s = control.parse_duration(body.step_min) if body.step_min is not None else None
    control.start(svc.store, svc.config, challenger=body.bundle, mode="canary",
                  plan=tuple(body.plan) if body.plan is not None else None, step_s=step_s,
                  min_exposed=body.min_exposed, by="api")
    return _status(svc)


@router.post("/v1/admin/rollout/promote", response_model=RolloutStatusOut, summary="Promote the running rollout's challenger (ACTIVE)")
def promote(request: Request) -> dict[str, Any]:
    svc = _service(request)
    control.operator(svc.store, svc.config.home, "promote", by="api")
    return _status(svc)


@router.post("/v1/admin/rollout/abort", response_model=RolloutStatusOut, summary="Abort the running rollout (challenger share -> 0)")
def abort(request: Request) -> dict[str, Any]:
    svc = _service(request)
    control.operator(svc.store, svc.config.home, "abort", by="api")
    return _status(svc)

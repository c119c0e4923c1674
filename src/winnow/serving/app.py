"""The FastAPI application (thin): routers, error mapping, body-size limit, request metrics.

``create_app(config)`` opens the store, loads the active bundle (or falls back to store
popularity) and returns the app; OpenAPI docs are at /docs.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.exceptions import HTTPException

from winnow.core.config import WinnowConfig
from winnow.data.store import Store
from winnow.serving import worker_proc
from winnow.serving import routes_admin, routes_autopilot, routes_data, routes_drift, routes_recs, routes_rollout
from winnow.serving.auth import Authorizer, authorize
from winnow.serving.errors import install_error_handlers
from winnow.serving.ratelimit import RateLimiter
from winnow.serving.routes_ui import install_ui
from winnow.serving.service import Service
from winnow.serving.telemetry import Metrics


class GuardMiddleware:
    """Pure ASGI: refuse bodies over ``max_body_bytes`` (413, by Content-Length), record
    per-route latency, request counts and 5xx errors, and name the worker process in an
    ``x-winnow-worker`` response header; a replaced worker (serving/worker_proc.py) answers
    with ``Connection: close``."""

    def __init__(self, app: Any, *, max_body_bytes: int, metrics: Metrics, busy: Any = None) -> None:
        self.app = app
        self.busy = busy  # requests in flight (serving.shadow.Busy): shadow work waits for none
        self.max = max_body_bytes
        self.metrics = metrics
        self.worker = (b"x-winnow-worker", str(os.getpid()).encode())

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = -1
                if size > self.max or size < 0:
                    msg = (f'{{"detail":"request body is {size} bytes; the limit is {self.max}"}}'
                           if size >= 0 else '{"detail":"invalid Content-Length header"}')
                    await send({"type": "http.response.start", "status": 413 if size >= 0 else 400,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": msg.encode()})
                    return
        status = {"code": 500}
        seen = [0]

        async def _receive() -> dict:  # chunked bodies carry no Content-Length: count them too
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.max:
                    raise HTTPException(413, f"request body exceeds the limit of {self.max} bytes")
            return message

        async def _send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", ()), self.worker]
                if worker_proc.retiring():  # replaced (serving/workers.py): the client reconnects to the new worker
                    message["headers"].append((b"connection", b"close"))
            await send(message)

        t0 = time.perf_counter()
        if self.busy is not None:
            self.busy.enter()
        try:
            await self.app(scope, _receive, _send)
        finally:
            if self.busy is not None:
                self.busy.leave()
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(label).observe(time.perf_counter() - t0)
            self.metrics.requests.labels(label, str(status["code"])).inc()
            if status["code"] >= 500:
                self.metrics.errors.labels(label).inc()


def create_app(config: WinnowConfig, *, store: Store | None = None) -> FastAPI:
    """The service app for ``config`` (store opened from config unless given)."""
    service = Service(config, store=store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()

    otel = config.serving.opentelemetry  # off: FastAPI skips its provider checks on every request
    app = FastAPI(title="winnow", version="0.1.0", lifespan=lifespan,
                  description="Recommendations: retrieval -> ranking -> re-ranking, learning in real time.",
                  dependencies=[Depends(authorize)],  # API keys and scopes on every route (auth.py)
                  telemetry={"tracing": otel, "metrics": otel, "logs": otel, "operation_spans": otel})
    app.state.service = service
    app.state.auth = Authorizer(config)
    app.state.limiter = RateLimiter(config.rate_limit, service.metrics) if config.rate_limit.enabled else None
    install_error_handlers(app)
    # the recommendation routes first: requests are matched against routes in order, and they are
    # the traffic (no other route's pattern overlaps theirs, so the order changes no match)
    app.include_router(routes_recs.make_router(config.serving))
    app.include_router(routes_admin.router)
    app.include_router(routes_rollout.router)
    app.include_router(routes_drift.router)
    app.include_router(routes_autopilot.router)
    app.include_router(routes_data.router)
    install_ui(app)  # the dashboard at /ui and its JSON API at /ui/api (docs/DASHBOARD.md)
    app.add_middleware(GuardMiddleware, max_body_bytes=config.serving.max_body_bytes, metrics=service.metrics,
                       busy=service.busy)
    return app

"""HTTP error mapping: every failure the client can cause becomes a 4xx naming the problem."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from winnow.core.errors import BundleError, ConfigError, DataError, RolloutError, StoreUnavailableError, UnknownIdError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raised by routes: status code, message, optional structured details."""

    def __init__(self, status: int, message: str, *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers


def _body(message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"detail": message}
    if errors is not None:
        out["errors"] = errors
    return out


def _safe(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)[:200]


ERROR_SCHEMA = {"title": "Error", "type": "object", "required": ["detail"],
                "properties": {"detail": {"type": "string", "description": "what is wrong, naming the field"},
                               "errors": {"type": "array", "items": {"type": "object"},
                                          "description": "per-field problems: field/row, message, value"}}}


def _declare_error_schema(app: FastAPI) -> None:
    """OpenAPI: 422 bodies are winnow's {detail: str, errors: [...]}, not FastAPI's default list."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            schemas = spec.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_SCHEMA
            app.openapi_schema = spec
        return app.openapi_schema
    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    _declare_error_schema(app)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.message, exc.errors), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            e = next(e for e in errs if e.get("type") == "json_invalid")
            return JSONResponse(_body(f"malformed JSON: {e.get('ctx', {}).get('error', e['msg'])}"),
                                  status_code=400)
        items = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"],
                  "value": _safe(e.get("input"))} for e in errs]
        summary = "; ".join(f"{i['field']}: {i['message']}" for i in items[:5])
        return JSONResponse(_body(f"invalid request: {summary}", items), status_code=422)

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        err = {"row": exc.line, "field": exc.field, "message": exc.reason, "value": _safe(exc.value)}
        return JSONResponse(_body(f"{exc}; nothing was written", [err]), status_code=422)

    @app.exception_handler(UnknownIdError)
    async def _unknown(_: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=404)

    @app.exception_handler(RolloutError)
    async def _rollout(_: Request, exc: RolloutError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=exc.status)

    @app.exception_handler(BundleError)
    async def _bundle(_: Request, exc: BundleError) -> JSONResponse:
        return JSONResponse(_body(f"bundle refused, the running one keeps serving: {exc}"), status_code=409)

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse(_body(f"bundle refused, the running one keeps serving: {exc}"), status_code=409)

    @app.exception_handler(StoreUnavailableError)
    async def _unavailable(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        return JSONResponse(_body(f"store unavailable, nothing was written: {exc}"), status_code=503)

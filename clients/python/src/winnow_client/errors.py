"""The client's exception tree. Every error carries the server's message.

    WinnowError
    ├── TransportError           the request got no HTTP answer (refused, reset, DNS, TLS)
    │   └── TimeoutError         ... within the timeout
    └── ApiError                 the server answered 4xx/5xx: ``status_code``, ``message``, ``errors``
        ├── BadRequestError          400 (e.g. malformed JSON)
        ├── AuthenticationError      401 missing, unknown or revoked key
        ├── PermissionDeniedError    403 the key lacks ``scope``
        ├── NotFoundError            404
        ├── ConflictError            409 (a bundle refused; the old one keeps serving)
        ├── PayloadTooLargeError     413 (body, batch or exclusion list over a limit)
        ├── ValidationError          422 ``errors``: the bad rows and fields, as data
        ├── RateLimitedError         429 ``retry_after`` seconds
        └── ServerError              5xx
            └── UnavailableError     503 (a backend is down; nothing was written)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import httpx


class WinnowError(Exception):
    """Base of every error this client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransportError(WinnowError):
    """No HTTP answer: the connection failed or broke (``__cause__`` is the httpx error)."""


class TimeoutError(TransportError):  # noqa: A001 - the client's own, a TransportError
    """No complete answer within the timeout."""


@dataclass(frozen=True)
class FieldError:
    """One problem the server found: ``row`` (index in a batch, None for single bodies),
    ``field`` (dotted path), ``message`` and the offending ``value``."""

    message: str
    field: Optional[str] = None
    row: Optional[int] = None
    value: Any = None


class ApiError(WinnowError):
    """The server answered with an error status."""

    def __init__(self, message: str, *, status_code: int, method: str, path: str,
                 errors: Optional[list[FieldError]] = None, headers: Optional[httpx.Headers] = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.path = path
        self.errors: list[FieldError] = errors or []
        self.headers = headers if headers is not None else httpx.Headers()

    def __str__(self) -> str:
        return f"{self.status_code} {self.method} {self.path}: {self.message}"


class BadRequestError(ApiError):
    """400."""


class AuthenticationError(ApiError):
    """401: send a valid key (``api_key=`` or $WINNOW_API_KEY)."""


class PermissionDeniedError(ApiError):
    """403: the key lacks ``scope`` (read, write or admin)."""

    @property
    def scope(self) -> Optional[str]:
        for e in self.errors:
            if e.field == "scope" and isinstance(e.value, str):
                return e.value
        m = re.search(r"lacks scope '(\w+)'", self.message)
        return m.group(1) if m else None


class NotFoundError(ApiError):
    """404."""


class ConflictError(ApiError):
    """409."""


class PayloadTooLargeError(ApiError):
    """413: split the batch (the server's limit is in ``message``)."""


class ValidationError(ApiError):
    """422: ``errors`` lists every bad row and field; nothing of the request was written."""

    @property
    def rows(self) -> list[int]:
        """Indices of the rejected rows of a batch."""
        return sorted({e.row for e in self.errors if e.row is not None})


class RateLimitedError(ApiError):
    """429: ``retry_after`` seconds (from the Retry-After header) until the key may send again."""

    @property
    def retry_after(self) -> Optional[float]:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(ApiError):
    """5xx."""


class ResponseFormatError(ApiError):
    """A success status whose body is not the documented answer (a proxy's page, a server of
    another version): never retried, the body's first characters in the message."""


class UnavailableError(ServerError):
    """503: a backend is unavailable; nothing was written."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 413: PayloadTooLargeError, 422: ValidationError, 429: RateLimitedError,
    503: UnavailableError,
}


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    import time

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def from_response(response: httpx.Response) -> ApiError:
    """The ApiError for an error response (message from the body's ``detail``)."""
    message, errors = response.reason_phrase or "error", []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            message = detail
        elif detail is not None:
            message = str(detail)
        for raw in body.get("errors") or []:
            if isinstance(raw, dict):
                row = raw.get("row")
                errors.append(FieldError(message=str(raw.get("message", "")), field=raw.get("field"),
                                         row=row if isinstance(row, int) else None, value=raw.get("value")))
    elif response.text:
        message = response.text[:500]
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(message, status_code=status, method=response.request.method, path=response.request.url.path,
               errors=errors, headers=response.headers)


def from_transport(exc: httpx.TransportError, method: str, path: str) -> TransportError:
    """The TransportError wrapping an httpx error (raised ``from`` it)."""
    cls = TimeoutError if isinstance(exc, httpx.TimeoutException) else TransportError
    return cls(f"{method} {path}: {type(exc).__name__}: {exc or 'no detail'}")

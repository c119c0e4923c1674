"""API keys with scopes: who may call which route (docs/HARDENING.md).

Keys
    A token is ``wn_<id>_<secret>``: ``id`` is 8 hex characters (public, names the key in
    ``winnow keys list`` and logs), ``secret`` 32 random bytes (``secrets.token_urlsafe``).
    Only SHA-256 of the whole token is stored. A slow KDF (scrypt, PBKDF2) protects low-entropy
    *passwords* against guessing after a leak of the hashes; a 256-bit random secret cannot be
    guessed either way, and a fast hash keeps the per-request check in microseconds (scrypt
    would add ~50 ms to every request). Hashes are compared with ``hmac.compare_digest``.

    Keys live in a JSON file (``[security] keys_file``, default ``<home>/keys.json``, mode
    0600), rewritten atomically (temp file + fsync + rename) under an exclusive ``flock`` so two
    ``winnow keys`` commands never lose each other's change. A running server re-reads the file
    when it changes (checked at most once per second), so a revocation reaches every worker
    process within about a second, without a restart.

Scopes
    ``read``: recommendations, similar items, item metadata. ``write``: events, items, users
    (including erasure). ``admin``: bundles, experiments, configuration, the dashboard API and
    (by default) /metrics. A scope grants only itself; give a key several with
    ``--scope read,write``. /healthz, /readyz and the OpenAPI docs are always open.
    Every route not listed in ``ROUTE_SCOPES`` needs ``admin`` (default deny).

HTTP
    ``Authorization: Bearer <token>`` (or ``X-API-Key: <token>``). Missing, malformed, unknown
    or revoked key -> 401 (with ``WWW-Authenticate: Bearer``); valid key without the route's
    scope -> 403 naming the scope needed.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from winnow.core.config import SecurityConfig, WinnowConfig
from winnow.core.errors import ConfigError
from winnow.serving.errors import ApiError

SCOPES = ("read", "write", "admin")
OPEN = None  # marker: the route needs no key

# (method, route template) -> scope. Anything absent needs "admin".
ROUTE_SCOPES: dict[tuple[str, str], str | None] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/ui"): OPEN,  # a redirect to the static dashboard; its JSON API (/ui/api) needs admin
    ("GET", "/v1/users/{user_id}/recommendations"): "read",
    ("POST", "/v1/users/{user_id}/recommendations"): "read",
    ("GET", "/v1/items/{item_id}/similar"): "read",
    ("GET", "/v1/items/{item_id}"): "read",
    ("POST", "/v1/events"): "write",
    ("POST", "/v1/items"): "write",
    ("PATCH", "/v1/items/{item_id}"): "write",
    ("PUT", "/v1/users/{user_id}"): "write",
    ("GET", "/v1/users/{user_id}"): "write",  # a person's profile and history: not for read keys
    ("DELETE", "/v1/users/{user_id}"): "write",
}
_TOKEN_RE = re.compile(r"^wn_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
_RELOAD_EVERY_S = 1.0


def required_scope(method: str, route: str, security: SecurityConfig) -> str | None:
    """The scope a request to ``route`` (the template, e.g. /v1/users/{user_id}) needs; None = open."""
    if route == "/metrics":
        return OPEN if security.metrics == "open" else "admin"
    method = "GET" if method.upper() == "HEAD" else method.upper()
    return ROUTE_SCOPES.get((method, route), "admin")


@dataclass(frozen=True)
class ApiKey:
    """One stored key (never the token itself)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: int
    sha256: str
    revoked_at: int | None = None

    def public(self) -> dict[str, Any]:
        """The key without its hash (what `winnow keys list` shows)."""
        d = asdict(self)
        del d["sha256"]
        d["scopes"] = list(self.scopes)
        return d


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(text: str) -> tuple[str, ...]:
    """"read,write" -> ("read", "write"); ConfigError naming an unknown scope."""
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ConfigError(f"invalid scope(s) {bad or text!r}: choose from {', '.join(SCOPES)}")
    return scopes


class KeyFile:
    """The hashed API keys of one home (a JSON file; see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -1e9

    # --- file I/O ------------------------------------------------------------------------
    def _read(self) -> dict[str, ApiKey]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"API key file {self.path} is unreadable: {exc}") from None
        try:
            keys = [ApiKey(id=k["id"], name=k["name"], scopes=tuple(k["scopes"]), created_at=int(k["created_at"]),
                           sha256=k["sha256"], revoked_at=k.get("revoked_at")) for k in data["keys"]]
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"API key file {self.path} is malformed: missing {exc}") from None
        return {k.id: k for k in keys}

    def _write(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"version": 1, "keys": [asdict(k) for k in keys.values()]}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _change(self, fn: Any) -> Any:
        """Read-modify-write under an exclusive lock on ``<file>.lock`` (other processes too)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = self._read()
            out = fn(keys)
            self._write(keys)
        self._checked = -1e9  # this process sees its own change at once
        return out

    # --- management (the CLI) --------------------------------------------------------------
    def create(self, scopes: tuple[str, ...] | list[str], *, name: str = "") -> tuple[ApiKey, str]:
        """A new key with ``scopes``; returns (key, token). The token is not stored anywhere."""
        scopes = parse_scopes(",".join(scopes))

        def add(keys: dict[str, ApiKey]) -> tuple[ApiKey, str]:
            key_id = secrets.token_hex(4)
            while key_id in keys:
                key_id = secrets.token_hex(4)
            token = f"wn_{key_id}_{secrets.token_urlsafe(32)}"
            key = ApiKey(id=key_id, name=name, scopes=scopes, created_at=int(time.time()), sha256=_hash(token))
            keys[key_id] = key
            return key, token
        return self._change(add)

    def revoke(self, key_id: str) -> ApiKey:
        """Mark a key revoked (kept for the audit trail); ConfigError if unknown."""
        def rev(keys: dict[str, ApiKey]) -> ApiKey:
            if key_id not in keys:
                raise ConfigError(f"unknown API key id {key_id!r}; `winnow keys list` shows the ids")
            old = keys[key_id]
            keys[key_id] = ApiKey(**{**asdict(old), "revoked_at": old.revoked_at or int(time.time())})
            return keys[key_id]
        return self._change(rev)

    def list(self) -> list[ApiKey]:
        return sorted(self._read().values(), key=lambda k: (k.created_at, k.id))

    # --- verification (the server) ---------------------------------------------------------
    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < _RELOAD_EVERY_S:
            return
        with self._lock:
            if now - self._checked < _RELOAD_EVERY_S:
                return
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                self._keys = self._read() if stamp is not None else {}
                self._stamp = stamp
            self._checked = now

    def verify(self, token: str) -> ApiKey | None:
        """The live key this token belongs to, or None (malformed, unknown, wrong secret, revoked)."""
        self._refresh()
        m = _TOKEN_RE.match(token)
        key = self._keys.get(m.group(1)) if m else None
        expected = key.sha256 if key is not None else "0" * 64
        ok = hmac.compare_digest(expected, _hash(token))  # constant time in the token's content
        if not ok or key is None or key.revoked_at is not None:
            return None
        return key

    def __len__(self) -> int:
        self._refresh()
        return sum(1 for k in self._keys.values() if k.revoked_at is None)


def keys_path(config: WinnowConfig) -> Path:
    return Path(config.security.keys_file.replace("{home}", str(config.home)))


class Authorizer:
    """Decides per request: open, 401 or 403 (installed as an app-wide FastAPI dependency)."""

    def __init__(self, config: WinnowConfig) -> None:
        self.security = config.security
        self.keys = KeyFile(keys_path(config))

    @staticmethod
    def _token(request: Request) -> str | None:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            return value.strip() if scheme.lower() == "bearer" else ""
        return request.headers.get("x-api-key")

    def check(self, request: Request) -> str | None:
        """401/403 unless the request may pass; returns the scope the route needs (None: open) and
        leaves the caller's key id in ``request.state.api_key`` (None: no key was needed)."""
        request.state.api_key = None
        route = request.scope.get("route")
        needed = required_scope(request.method, getattr(route, "path", ""), self.security)
        if not self.security.auth or needed is OPEN or (needed == "read" and self.security.open_read):
            return needed
        token = self._token(request)
        if not token:
            hint = "" if len(self.keys) else " (this server has no keys yet: `winnow keys create`)"
            raise HTTPException(401, f"missing API key: send 'Authorization: Bearer <token>'{hint}",
                                headers={"WWW-Authenticate": "Bearer"})
        key = self.keys.verify(token)
        if key is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if needed not in key.scopes:
            raise ApiError(403, f"API key {key.id} lacks scope {needed!r} for {request.method} "
                                f"{getattr(route, 'path', request.url.path)} (it has {', '.join(key.scopes)})",
                           errors=[{"field": "scope", "message": "scope this route needs", "value": needed}])
        request.state.api_key = key.id
        return needed


async def authorize(request: Request) -> None:
    """App-wide dependency: ``FastAPI(dependencies=[Depends(authorize)])``: access control, then
    the per-key request rate limit (``[rate_limit]``, serving/ratelimit.py) of every non-open route."""
    needed = request.app.state.auth.check(request)
    limiter = request.app.state.limiter
    if limiter is not None and needed is not OPEN:
        request.state.scope_needed = needed
        limiter.charge(request.state.api_key, _client(request), needed, "requests")


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "-"


def charge_events(request: Request, n: int) -> None:
    """Charge ``n`` events to the caller's events bucket (POST /v1/events; no-op when limits are off)."""
    limiter = request.app.state.limiter
    if limiter is not None and n:
        limiter.charge(request.state.api_key, _client(request), request.state.scope_needed, "events", float(n))

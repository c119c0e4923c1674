"""Typed configuration of ``[rate_limit]``: per-key request and event rates of the HTTP service.

Part of winnow.core.config (which re-exports it); the limiter is winnow.serving.ratelimit.

Off by default: the right figures depend on the deployment (a web backend sending every user's
clicks through one key needs other rates than a nightly bulk loader), the buckets live in each
worker process (the rate a key gets is ``workers`` x the configured one), and a limit nobody
chose would answer an importer's backfill with 429s. Turn it on with ``enabled = true`` and set
the figures per scope and per key.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from winnow.core.config_models import _Section

ANONYMOUS = "anonymous"  # the [rate_limit.keys] entry for requests without a key (auth off, open_read)
_KEY_ID = re.compile(r"^[0-9a-f]{8}$")


class RateOverride(_Section):
    """Figures replacing the defaults for one scope or one key (unset fields inherit)."""

    requests_per_s: float | None = Field(None, gt=0)
    requests_burst: float | None = Field(None, ge=1)
    events_per_s: float | None = Field(None, gt=0)
    events_burst: float | None = Field(None, ge=1)


class Rates(_Section):
    """The limits one (key, scope) gets: token buckets of ``*_per_s`` refill and ``*_burst`` size."""

    requests_per_s: float = Field(100.0, gt=0)
    requests_burst: float = Field(200.0, ge=1)
    events_per_s: float = Field(5_000.0, gt=0)
    events_burst: float = Field(20_000.0, ge=1)


class RateLimitConfig(Rates):
    """Per-key limits, counted per worker process (docs/SERVING.md, "Rate limits").

    A request is charged one token of the bucket of (key, scope the route needs); POST /v1/events
    is charged one event token per event as well. The figures for a request are the defaults,
    then ``scopes.<scope>``, then ``keys.<key id>`` (``keys.anonymous``: requests without a key,
    bucketed per client address). Health, readiness and the docs are never limited."""

    enabled: bool = False
    scopes: dict[Literal["read", "write", "admin"], RateOverride] = Field(default_factory=dict)
    keys: dict[str, RateOverride] = Field(default_factory=dict)
    max_buckets: int = Field(100_000, ge=100)  # past this, idle (full) buckets are dropped

    @field_validator("keys")
    @classmethod
    def _key_ids(cls, v: dict[str, RateOverride]) -> dict[str, RateOverride]:
        bad = [k for k in v if k != ANONYMOUS and not _KEY_ID.match(k)]
        if bad:
            raise ValueError(f"rate_limit.keys: {bad} are not key ids (8 hex characters, as `winnow keys "
                             f"list` shows them) nor {ANONYMOUS!r}")
        return v

    def rates(self, key: str, scope: str) -> Rates:
        """The resolved figures for ``key`` (a key id or ANONYMOUS) on a route needing ``scope``."""
        out = self.model_dump(include=set(Rates.model_fields))
        for over in (self.scopes.get(scope), self.keys.get(key)):  # type: ignore[call-overload]
            if over is not None:
                out.update(over.model_dump(exclude_none=True))
        return Rates(**out)

"""Typed configuration of the past-one-machine sections: [online] (shared user state) and
[training] (where `winnow train` runs).

Part of winnow.core.config (which re-exports everything here); split out only to keep files small.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from winnow.core.config_models import _Section


class OnlineConfig(_Section):
    """Online user state shared by serving replicas (docs/SERVING.md, "Replicas and shared state").

    ``url``: ``memory://`` keeps it in each server process (one replica); ``redis://host:port/db``
    (or ``rediss://``, ``unix:///path.sock?db=N``) shares it through Redis between replicas.
    """

    url: str = "memory://"
    connect_timeout_ms: int = Field(200, ge=1, le=60_000)  # TCP connect to Redis
    op_timeout_ms: int = Field(50, ge=1, le=60_000)  # one Redis round trip; past it -> fallback
    retry_s: float = Field(1.0, gt=0, le=3600)  # a failed backend is skipped this long, then retried
    key_prefix: str = Field("winnow:", min_length=1, max_length=64)
    ttl_s: int = Field(7 * 86_400, ge=0)  # idle users' state expires (rebuilt from the store); 0: never
    history: int = Field(200, ge=1, le=10_000)  # recent events kept per user
    fanout: bool = True  # redis: every replica's event batches reach the others' ranker feature state
    stream_maxlen: int = Field(10_000, ge=100)  # entries (event batches) kept in that Redis Stream

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if parts.scheme == "memory":
            if v.rstrip("/") != "memory:":
                raise ValueError(f"the in-process backend is exactly 'memory://', got {v!r}")
            return v
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"scheme must be memory://, redis://, rediss:// or unix://, got {v!r}")
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"unix:// needs a socket path, got {v!r}")
            return v
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"invalid port in {v!r}") from None
        if not parts.hostname:
            raise ValueError(f"no host in {v!r} (expected redis://host:port/db)")
        if port == 0:
            raise ValueError(f"invalid port 0 in {v!r}")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"database must be a number (redis://host:port/0), got {db!r} in {v!r}")
        return v


class TrainingConfig(_Section):
    """Where ``winnow train`` runs the parts that grow with data (docs/SCALING.md).

    ``engine``: "local" (this process, the default) or "ray" (winnow.engine: Ray Data for the
    ranker's point-in-time features over Parquet partitions and for batch scoring, Ray Train for
    data-parallel two-tower training). ``ray_address``: "" starts a local Ray instance with
    ``num_workers`` CPUs; "auto" or "ray://host:port" joins an existing cluster.
    ``warm_start``: "active" continues ALS and the two-tower from the ACTIVE bundle's factors /
    weights (the autopilot's champion; ``winnow train --warm-from`` overrides it per run),
    "off" trains from scratch (docs/SCALING.md, "Warm starts").
    """

    engine: Literal["local", "ray"] = "local"
    ray_address: str = ""
    num_workers: int = Field(2, ge=1, le=1024)  # Ray Train workers / Ray Data parallelism
    partitions: int = Field(8, ge=1, le=65536)  # user-hash partitions of the Parquet exports
    workdir: str = "{home}/engine"  # Parquet exports and Ray Train checkpoints ({home} replaced)
    warm_start: Literal["off", "active"] = "off"

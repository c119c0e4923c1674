"""Experiments in config (``[[experiments]]``): A/B tests as variants with a traffic share
and the ``[pipeline]`` fields each overrides; users are assigned by a salted hash (sticky).
Re-exported by winnow.core.config (one import path for all config)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from winnow.core.config_models import _Section


class VariantConfig(_Section):
    """One arm of an experiment: a share of traffic and the [pipeline] fields it overrides."""

    name: str = Field(min_length=1)
    traffic: float = Field(ge=0, le=1)  # share of users; an experiment's shares sum to 1
    overrides: dict[str, Any] = Field(default_factory=dict)  # [pipeline] field -> value


class ExperimentConfig(_Section):
    """An A/B test: users are assigned to variants by a salted hash of their id (sticky)."""

    name: str = Field(min_length=1)
    salt: str = ""  # change it to re-randomise users for a new experiment of the same name
    variants: list[VariantConfig] = Field(min_length=2)
    start: datetime | None = None  # None: running since forever
    end: datetime | None = None    # None: no end
    control: str | None = None     # the baseline variant (default: the first)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"experiment {self.name!r}: duplicate variant names {dupes}")
        total = sum(v.traffic for v in self.variants)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"experiment {self.name!r}: traffic splits sum to {total}, not 1")
        for name, when in (("start", self.start), ("end", self.end)):
            if when is not None and when.tzinfo is None:
                raise ValueError(f"experiment {self.name!r}: {name} {when} needs a UTC offset "
                                 "(e.g. 2026-11-01T00:00:00Z)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"experiment {self.name!r}: end {self.end} is not after start {self.start}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"experiment {self.name!r}: control {self.control!r} is not a variant {names}")
        return self

    def bucket(self, user_id: str) -> float:
        """The user's position in [0, 1): sha256("<salt>:<name>:<user_id>") (uniform, sticky)."""
        digest = hashlib.sha256(f"{self.salt}:{self.name}:{user_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def variant_of(self, user_id: str) -> str:
        """The variant owning the user's bucket (variants own consecutive slices, config order)."""
        b, edge = self.bucket(user_id), 0.0
        for var in self.variants:
            edge += var.traffic
            if b < edge:
                return var.name
        return self.variants[-1].name  # float rounding at the top edge

    def active(self, now: datetime) -> bool:
        """Whether ``now`` (timezone-aware) lies in [start, end)."""
        if self.start is not None and now < self.start:
            return False
        return not (self.end is not None and now >= self.end)

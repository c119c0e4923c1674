"""Typed configuration, validated at start-up.

Sources, lowest precedence first: the packaged ``defaults.toml``, then ``<home>/winnow.toml``
(or an explicit file), then ``WINNOW__SECTION__KEY=value`` environment overrides. Unknown keys
are errors (``extra="forbid"``) so a typo fails at start-up instead of being ignored.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from winnow.core.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventsConfig(_Section):
    """How raw events become training weights: weight = type_weight * transform(value)."""

    weights: dict[str, float] = Field(default_factory=dict)
    value_transform: dict[str, Literal["none", "linear", "log1p"]] = Field(default_factory=dict)
    default_weight: float | None = None  # weight of types not listed; None -> unknown type is an error

    @field_validator("weights")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if w != w or abs(w) == float("inf"):
                raise ValueError(f"weight of event type {name!r} must be finite, got {w}")
        return v


class StoreConfig(_Section):
    url: str = "sqlite:///{home}/winnow.db"  # {home} is replaced by the data directory
    busy_timeout_ms: int = Field(5000, ge=0)


class PopularityConfig(_Section):
    window_days: float | None = Field(None, gt=0)  # None: all-time
    half_life_days: float | None = Field(None, gt=0)


class ItemItemConfig(_Section):
    neighbours: int = Field(100, ge=1)
    shrinkage: float = Field(10.0, ge=0)
    normalize: Literal["cosine", "none"] = "cosine"


class ALSConfig(_Section):
    factors: int = Field(64, ge=1)
    iterations: int = Field(15, ge=1)
    regularization: float = Field(0.05, ge=0)
    alpha: float = Field(1.0, gt=0)
    bm25: bool = True
    bm25_k1: float = Field(100.0, gt=0)
    bm25_b: float = Field(0.8, ge=0, le=1)
    seed: int = 0


class BPRConfig(_Section):
    factors: int = Field(64, ge=1)
    iterations: int = Field(100, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    regularization: float = Field(0.01, ge=0)
    seed: int = 0


class EASEConfig(_Section):
    l2: float = Field(500.0, gt=0)
    max_items: int = Field(50_000, ge=1)


class ModelsConfig(_Section):
    popularity: PopularityConfig = PopularityConfig()
    itemitem: ItemItemConfig = ItemItemConfig()
    als: ALSConfig = ALSConfig()
    bpr: BPRConfig = BPRConfig()
    ease: EASEConfig = EASEConfig()


class IndexConfig(_Section):
    backend: Literal["exact", "hnsw"] = "hnsw"
    metric: Literal["ip", "cosine"] = "ip"
    hnsw_m: int = Field(32, ge=4)
    ef_construction: int = Field(128, ge=8)
    ef_search: int = Field(64, ge=1)
    exact_below: int = Field(20_000, ge=0)  # catalogs smaller than this use exact search


class SourceConfig(_Section):
    """One named candidate source of the retrieval stage."""

    name: str = Field(min_length=1)  # unique name, reported in responses and traces
    kind: Literal["als", "itemitem", "popularity", "trending", "fresh"]
    quota: int = Field(100, ge=1, le=5000)  # candidates this source may contribute
    weight: float = Field(1.0, ge=0)  # weight of its rank-normalised score in the blend


class PipelineConfig(_Section):
    """Retrieval -> ranking -> re-ranking wiring; validated when the pipeline is built."""

    sources: list[SourceConfig] = Field(default_factory=lambda: [
        SourceConfig(name="als", kind="als", quota=300, weight=1.0),
        SourceConfig(name="itemitem", kind="itemitem", quota=200, weight=0.8),
        SourceConfig(name="trending", kind="trending", quota=50, weight=0.3),
        SourceConfig(name="fresh", kind="fresh", quota=20, weight=0.2),
    ])
    cold_start_sources: list[str] = Field(default_factory=lambda: ["trending", "fresh"])
    backfill_source: str = "popularity"  # a source kind or name used when too few candidates
    min_candidates: int = Field(200, ge=1)  # fewer after merging -> backfill
    max_candidates: int = Field(1000, ge=1)
    recent_items: int = Field(50, ge=1)  # history length fed to item-item
    category_affinity_weight: float = Field(0.5, ge=0)  # blend weight of online category interest
    affinity_half_life_s: float = Field(3600.0, gt=0)  # decay of online category interest
    trending_half_life_days: float = Field(7.0, gt=0)
    # re-ranking rules, applied in this order
    rules: list[Literal["exclude", "filter", "freshness", "diversity", "mmr", "sponsored"]] = Field(
        default_factory=lambda: ["exclude", "filter", "freshness", "diversity", "sponsored"])
    exclude_purchased: bool = True
    exclude_seen_window_s: float = Field(0.0, ge=0)  # 0: seen items stay eligible
    blocked_items: list[str] = Field(default_factory=list)
    max_consecutive_per_category: int = Field(2, ge=1)
    mmr_lambda: float = Field(0.7, ge=0, le=1)
    freshness_weight: float = Field(0.1, ge=0)
    freshness_half_life_days: float = Field(14.0, gt=0)
    sponsored_slots: list[int] = Field(default_factory=lambda: [2, 7])  # 0-based positions
    sponsored_cap: int = Field(2, ge=0)


class ServingConfig(_Section):
    """The HTTP service."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    default_k: int = Field(20, ge=1)
    max_k: int = Field(200, ge=1)
    max_events_per_request: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(8_000_000, ge=1024)
    user_state_cache: int = Field(100_000, ge=1)  # users kept in online state (LRU)
    impression_batch: int = Field(256, ge=1)  # impressions written per store transaction
    impression_queue: int = Field(100_000, ge=1)


class WinnowConfig(_Section):
    """The whole configuration. Build with load_config()."""

    home: Path = Path(".winnow")
    events: EventsConfig = EventsConfig()
    store: StoreConfig = StoreConfig()
    models: ModelsConfig = ModelsConfig()
    index: IndexConfig = IndexConfig()
    pipeline: PipelineConfig = PipelineConfig()
    serving: ServingConfig = ServingConfig()

    def store_url(self) -> str:
        return self.store.url.replace("{home}", str(self.home))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``WINNOW__MODELS__ALS__FACTORS=32`` -> {"models": {"als": {"factors": "32"}}}."""
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith("WINNOW__"):
            continue
        path = [p.lower() for p in key[len("WINNOW__"):].split("__") if p]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if path:
            node[path[-1]] = value
    return out


def default_dict() -> dict[str, Any]:
    """The packaged defaults (``winnow/defaults.toml``) as a dict."""
    text = resources.files("winnow").joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_config(home: str | Path | None = None, *, file: str | Path | None = None,
                overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> WinnowConfig:
    """Load and validate the configuration; raises ConfigError naming the bad key and value.

    Args:
        home: data directory (default: $WINNOW_HOME or ./.winnow).
        file: explicit TOML file (default: <home>/winnow.toml if it exists).
        overrides: a nested dict applied last (tests, CLI flags).
        environ: environment to read WINNOW__* overrides from (default: os.environ).
    """
    env = dict(os.environ if environ is None else environ)
    home_path = Path(home if home is not None else env.get("WINNOW_HOME", ".winnow"))
    data = default_dict()
    cfg_file = Path(file) if file is not None else home_path / "winnow.toml"
    if file is not None or cfg_file.exists():
        try:
            data = _deep_merge(data, tomllib.loads(cfg_file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {cfg_file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg_file}: invalid TOML: {exc}") from None
    data = _deep_merge(data, _env_overrides(env))
    if overrides:
        data = _deep_merge(data, overrides)
    data["home"] = str(home_path)
    try:
        return WinnowConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (value: {err.get('input')!r})"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None

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


class WinnowConfig(_Section):
    """The whole configuration. Build with load_config()."""

    home: Path = Path(".winnow")
    events: EventsConfig = EventsConfig()
    store: StoreConfig = StoreConfig()
    models: ModelsConfig = ModelsConfig()
    index: IndexConfig = IndexConfig()

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

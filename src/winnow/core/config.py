"""Typed configuration, validated at start-up.

Sources, lowest precedence first: the packaged ``defaults.toml``, then ``<home>/winnow.toml``
(or an explicit file), then ``WINNOW__SECTION__KEY=value`` environment overrides. Unknown keys
are errors (``extra="forbid"``) so a typo fails at start-up instead of being ignored.

The models' field defaults are the one source of default values; ``defaults.toml`` repeats them
with the reasons (tuning records) as comments, and tests/unit/test_config_defaults.py fails on
any key where the two differ. Change a default in both.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from winnow.core.errors import ConfigError
from winnow.core.extras import check_extras
from winnow.core.registry import COMPONENTS


from winnow.core.config_models import (  # noqa: F401  (re-exported: one import path for all config)
    ALSConfig, BPRConfig, EASEConfig, ItemItemConfig, ModelsConfig, PopularityConfig, RP3betaConfig,
    SequenceConfig, TwoTowerConfig, UserKNNConfig, _Section,
)
from winnow.core.config_scale import OnlineConfig, TrainingConfig  # noqa: F401  (re-exported)
from winnow.core.config_limits import RateLimitConfig  # noqa: F401  (re-exported)
from winnow.core.config_lifecycle import DriftConfig, GateConfig, LifecycleConfig  # noqa: F401  (re-exported)
from winnow.core.config_rollout import RolloutConfig  # noqa: F401  (re-exported)
from winnow.core.config_experiments import ExperimentConfig, VariantConfig  # noqa: F401  (re-exported)


ValueTransform = Literal["none", "linear", "log1p"]


def _default_transforms() -> dict[str, ValueTransform]:
    return {"rating": "none", "play": "log1p"}  # ratings: every rating a positive; plays: heavy-tailed


class EventsConfig(_Section):
    """How raw events become training weights: weight = type_weight * transform(value)."""

    weights: dict[str, float] = Field(default_factory=lambda: {
        "view": 0.5, "click": 1.0, "add_to_cart": 2.0, "purchase": 4.0, "rating": 1.0, "play": 1.0,
        "like": 2.0, "skip": 0.0})
    value_transform: dict[str, ValueTransform] = Field(default_factory=_default_transforms)
    default_weight: float | None = 1.0  # weight of types not listed; None -> unknown type is an error

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
    kind: str  # a registered component (winnow.core.registry.COMPONENTS)
    quota: int = Field(100, ge=1, le=5000)  # candidates this source may contribute
    weight: float = Field(1.0, ge=0)  # weight of its rank-normalised score in the blend

    @field_validator("kind")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in COMPONENTS:
            raise ValueError(COMPONENTS.unknown(v))
        return v


RuleName = Literal["exclude", "filter", "freshness", "diversity", "mmr", "sponsored"]


def _default_rules() -> list[RuleName]:
    return ["exclude", "filter", "freshness", "diversity", "sponsored"]


class PipelineConfig(_Section):
    """Retrieval -> ranking -> re-ranking wiring; validated when the pipeline is built."""

    sources: list[SourceConfig] = Field(default_factory=lambda: [
        SourceConfig(name="als", kind="als", quota=200, weight=1.0),
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
    rules: list[RuleName] = Field(default_factory=_default_rules)
    exclude_purchased: bool = True
    exclude_seen_window_s: float = Field(0.0, ge=0)  # 0: seen items stay eligible
    blocked_items: list[str] = Field(default_factory=list)
    max_consecutive_per_category: int = Field(2, ge=1)
    mmr_lambda: float = Field(0.7, ge=0, le=1)
    freshness_weight: float = Field(0.1, ge=0)
    freshness_half_life_days: float = Field(14.0, gt=0)
    sponsored_slots: list[int] = Field(default_factory=lambda: [2, 7])  # 0-based positions
    sponsored_cap: int = Field(2, ge=0)
    # explore stage after re-ranking: surface -> policy spec (winnow.pipeline.explore.build_policy),
    # e.g. {"home": {"kind": "epsilon_greedy", "epsilon": 0.1}}; "default" covers unlisted
    # surfaces; none: deterministic top-k (propensity 1)
    explore: dict[str, dict[str, Any]] = Field(default_factory=dict)


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
    workers: int = Field(1, ge=1, le=64)  # >1: processes share the store; state is validated per hit
    bundle_poll_s: float = Field(1.0, gt=0)  # how often a server follows the ACTIVE pointer
    # workers > 1: the runtime a follower needs (a bundle ACTIVE names, a rollout's challenger) is
    # built by a fresh worker process at idle CPU priority that then takes the old one's place
    # ("replace", serving/workers.py); "in_place": the serving worker builds it in a thread
    rebuild: Literal["replace", "in_place"] = "replace"
    replace_timeout_s: float = Field(900.0, gt=0)  # a replacement not ready by then is killed; the old worker builds
    retire_s: float = Field(10.0, ge=0)  # a replaced worker closes connections after responses, stopped by then
    gc_freeze: bool = True  # freeze what survives each full GC collection: short pauses (serving.swap)
    # FastAPI's native OpenTelemetry (spans, metrics, logs of each request) when an OpenTelemetry
    # provider is configured; off: winnow's own Prometheus metrics only, and no per-request
    # provider checks on the request path
    opentelemetry: bool = False


class FeedbackConfig(_Section):
    """Per-item click/shown statistics the service keeps for Thompson sampling
    (winnow.serving.item_stats; docs/FEEDBACK.md). A shown item counts as clicked when the same
    user logs an event of a ``click_events`` type on it within ``attribution_window_s`` after
    the impression (at most one click per shown item)."""

    click_events: list[str] = Field(default_factory=lambda: ["click"], min_length=1)
    attribution_window_s: int = Field(600, ge=1)  # a click counts for impressions at most this old
    refresh_s: float = Field(5.0, gt=0)  # each worker re-reads the store this often (other workers' log)
    overlap_s: int = Field(60, ge=0)  # re-read margin for late writes (impression queue, clock skew)
    history_s: int = Field(0, ge=0)  # start-up rebuild reads this far back; 0 = the whole log
    half_life_s: float = Field(0.0, ge=0)  # counts fade with this half-life in log time; 0 = never


class SecurityConfig(_Section):
    """Access control of the HTTP service (docs/HARDENING.md). Keys: ``winnow keys create``."""

    auth: bool = True          # False: every route open (only for demos on localhost)
    open_read: bool = False    # True: read-scope routes (recommendations, similar) need no key
    metrics: Literal["open", "admin"] = "admin"  # who may scrape /metrics
    keys_file: str = "{home}/keys.json"  # hashed API keys (written atomically, mode 0600)


class RankerConfig(_Section):
    """The learned ranking stage (LightGBM lambdarank over merged retrieval candidates)."""

    enabled: bool = True  # batch-recommend runs retrieval + ranker (False: best retrieval model only)
    # served ranker's training lists (winnow train): "auto" = the impression log's labelled slates
    # when it holds >= min_impression_lists with a click or purchase, else lists from history;
    # "impressions" = the log or no ranker; "history" = never the log (features/impression_lists.py)
    train_on: Literal["auto", "history", "impressions"] = "auto"
    min_impression_lists: int = Field(500, ge=20)
    impression_days: float = Field(30.0, gt=0)  # how far back the log is read, in days
    purchase_events: list[str] = Field(default_factory=lambda: ["purchase"])  # label 2 (clicks: [feedback])
    sources: list[str] = Field(default_factory=lambda: ["ease", "als", "itemitem", "popularity"])
    per_source: int = Field(50, ge=1, le=5000)  # candidates each retrieval model proposes
    dense_scores: bool = True  # every source scores every candidate (not only those it proposed)
    inner_split: Literal["stratified", "temporal"] = "stratified"  # how ranker labels are carved
    inner_ratio: float = Field(0.8, gt=0, lt=1)  # share of training kept as the inner state
    inner_folds: int = Field(3, ge=1, le=20)  # inner splits (seeds) stacked as ranker training lists
    # cap on ranker training lists (users per history fold, slates from the impression log),
    # drawn uniformly with ``seed``: features and trees cost O(lists x candidates), and a ranker of
    # 7-leaf trees stops improving long before 10^5 lists (bench/train_scale.py measures it)
    max_lists: int = Field(10000, ge=20)
    as_of: Literal["user_last", "global_last"] = "user_last"  # each list's feature time t
    valid_share: float = Field(0.2, gt=0, lt=1)  # lists held out for early stopping
    half_life_days: float = Field(30.0, gt=0)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(7, ge=2)
    min_data_in_leaf: int = Field(300, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    truncation_level: int = Field(50, ge=1)  # lambdarank_truncation_level
    num_boost_round: int = Field(1000, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    # >1: that many rankers, each validated on other held-out users, choose the tree count; the
    # ranker kept is refit on every labelled list with their mean best iteration (one model)
    cv_models: int = Field(1, ge=1, le=10)
    # residual ranker: trees start from this fixed blend of feature columns (name -> weight,
    # names absent from the feature set ignored, weight 0 drops an entry); {} = plain lambdarank
    init_weights: dict[str, float] = Field(default_factory=dict)
    threads: int = Field(1, ge=0)  # LightGBM training threads (0 = every core): bench/ranker_threads.py
    seed: int = 0
    # clicks in the impression log are biased by the shown position (winnow.models.position_bias):
    # "ips" weighs clicked rows by 1 / examination(position) (PBM fit), "lambdarank" = LightGBM's
    # unbiased lambdarank; chosen by bench/posbias.py (docs/RANKING.md, "Position bias")
    position_bias: Literal["none", "ips", "lambdarank"] = "lambdarank"
    position_bias_max_weight: float = Field(20.0, ge=1)  # ips: clip of 1 / examination


class ColdStartConfig(_Section):
    """New users and new items (winnow.models.coldstart)."""

    # user fallback chain: the first rule whose min_events <= the user's event count applies;
    # each names the sources blended, segment prior weighted by (1 - n / (n + user_k)).
    user_chain: dict[str, list[str]] = Field(default_factory=lambda: {
        "0": ["segment_popular"], "1": ["model", "segment_popular"], "3": ["model", "segment_popular"],
        "5": ["model"]})
    user_k: float = Field(15.0, gt=0)        # weight of the model for n events: n / (n + user_k)
    segment_l2: float = Field(200.0, gt=0)   # ridge strength of the attribute -> item model
    segment_first: int = Field(0, ge=0)      # >0: learn only from each user's first N events
    items: bool = True                       # batch-recommend: score items without events by content
    item_model: Literal["two_tower"] = "two_tower"

    @field_validator("user_chain")
    @classmethod
    def _chain(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        known = {"model", "segment_popular", "popularity"}
        for key, sources in v.items():
            if not key.isdigit():
                raise ValueError(f"user_chain keys are minimum event counts, got {key!r}")
            bad = [s for s in sources if s not in known]
            if bad or not sources:
                raise ValueError(f"user_chain[{key!r}]: sources must be non-empty, from {sorted(known)}; got {sources}")
        if "0" not in v:
            raise ValueError("user_chain needs a rule for 0 events")
        return v


class WinnowConfig(_Section):
    """The whole configuration. Build with load_config()."""

    home: Path = Path(".winnow")
    events: EventsConfig = EventsConfig()
    store: StoreConfig = StoreConfig()
    models: ModelsConfig = ModelsConfig()
    index: IndexConfig = IndexConfig()
    pipeline: PipelineConfig = PipelineConfig()
    serving: ServingConfig = ServingConfig()
    online: OnlineConfig = OnlineConfig()
    security: SecurityConfig = SecurityConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    ranker: RankerConfig = RankerConfig()
    coldstart: ColdStartConfig = ColdStartConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    training: TrainingConfig = TrainingConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    drift: DriftConfig = DriftConfig()
    rollout: RolloutConfig = RolloutConfig()
    experiments: list[ExperimentConfig] = Field(default_factory=list)  # [[experiments]] tables

    @field_validator("experiments")
    @classmethod
    def _check_experiments(cls, v: list[ExperimentConfig], info: ValidationInfo) -> list[ExperimentConfig]:
        names = [e.name for e in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate experiment names {dupes}")
        pipeline = info.data.get("pipeline")
        base = pipeline.model_dump() if pipeline is not None else {}
        for exp in v:  # every variant must make a valid [pipeline] section
            for var in exp.variants:
                try:
                    PipelineConfig.model_validate({**base, **var.overrides})
                except ValidationError as exc:
                    bad = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
                    raise ValueError(f"experiment {exp.name!r} variant {var.name!r}: invalid pipeline "
                                     f"overrides: {bad}") from None
        return v

    def experiment(self, name: str) -> ExperimentConfig:
        """The experiment named ``name``; ConfigError listing the configured names otherwise."""
        for exp in self.experiments:
            if exp.name == name:
                return exp
        raise ConfigError(f"unknown experiment {name!r}; configured: {[e.name for e in self.experiments]}")

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
        config = WinnowConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (value: {err.get('input')!r})"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    check_extras(extras_needed(config))  # a configured feature whose pip extra is missing fails here
    return config


def extras_needed(config: WinnowConfig) -> dict[str, str]:
    """Module group of core/extras.py -> the setting of ``config`` that needs it."""
    out: dict[str, str] = {}
    if config.store_url().startswith(("postgresql:", "postgres:")):
        out["postgres"] = "[store] url = \"postgresql://...\""
    if not config.online.url.startswith("memory:"):
        out["redis"] = f"[online] url = {config.online.url!r}"
    if config.training.engine == "ray":
        out["ray"] = "[training] engine = \"ray\""
    kinds = sorted({s.kind for s in config.pipeline.sources} & {"two_tower", "content"})
    if kinds:
        out["neural"] = f"[[pipeline.sources]] kind {' / '.join(kinds)}"
        backend = config.models.two_tower.text_backend
        if backend in ("minilm", "auto"):
            out["minilm"] = f"[models.two_tower] text_backend = \"{backend}\" with a two_tower/content source"
    return out

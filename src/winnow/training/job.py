"""``winnow train``: store -> dataset -> evaluate on a temporal hold-out -> fit -> bundle -> activate.

Stages (each idempotent; the bundle only appears once complete):
1. load the dataset from the store (events weighted by [events]; every catalog item indexed);
2. evaluate: fit each retrieval model on events before a temporal cutoff (the last
   ``holdout`` share of time is held out) and score top-k on the later events -> manifest metrics;
3. fit the models on all events: ALS, item-item, popularity (+ popularity_recent as "trending"),
   plus any other model a configured source needs;
4. build the ANN index over ALS item factors (ids = item indices);
5. write ``<home>/bundles/<version>/`` atomically and activate it.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from winnow.core.config import PopularityConfig, WinnowConfig
from winnow.core.errors import DataError
from winnow.data.interactions import Dataset, Interactions
from winnow.data.store import Store
from winnow.training.bundle import BundleInfo, activate, write_bundle

log = logging.getLogger(__name__)
EVAL_K = 20
EVAL_MAX_USERS = 2000


def new_version(now: float | None = None) -> str:
    """A sortable, unique bundle version: 20261126T014516Z-ab12cd."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


def load_training_data(store: Store, config: WinnowConfig) -> Dataset:
    """The dataset to train on (winnow.data.training_data.load_dataset: every catalog item is
    indexed; weight = [events] type weight * value transform)."""
    from winnow.data.training_data import load_dataset

    return load_dataset(store, config.events, name="store")


def _item_arrays(ds: Dataset, popularity: np.ndarray, trending: np.ndarray) -> tuple[dict, list[str]]:
    n = len(ds.item_ids)
    items = ds.items
    cats: dict[str, int] = {}
    category = np.full(n, -1, np.int32)
    available = np.ones(n, bool)
    sponsored = np.zeros(n, bool)
    created = np.full(n, -1, np.int64)
    if len(items):
        for i, c in enumerate(items["categories"].tolist()):
            if isinstance(c, (list, tuple, np.ndarray)) and len(c):
                category[i] = cats.setdefault(str(c[0]), len(cats))
        available = items["available"].fillna(True).to_numpy(dtype=bool)
        sponsored = items["sponsored"].fillna(False).to_numpy(dtype=bool)
        created = pd.to_numeric(items["created_at"], errors="coerce").fillna(-1).to_numpy(np.int64)
    return ({"category": category, "available": available, "sponsored": sponsored,
             "created_at": created, "popularity": popularity.astype(np.float32),
             "trending": trending.astype(np.float32)}, list(cats))


def _fit(name: str, config: WinnowConfig, train: Interactions) -> Any:
    from winnow.models.popularity import RecentPopularityRecommender
    from winnow.models.registry import build_model

    if name == "popularity_recent":
        pc: PopularityConfig = config.models.popularity
        model = RecentPopularityRecommender(
            window_days=pc.window_days, half_life_days=pc.half_life_days or config.pipeline.trending_half_life_days)
    else:
        model = build_model(name, config)
    return model.fit(train)


def evaluate(names: list[str], config: WinnowConfig, ds: Dataset, *, holdout: float,
             seed: int = 0) -> dict[str, Any]:
    """Offline metrics@EVAL_K of each model on a temporal hold-out (last ``holdout`` of time)."""
    from winnow.evaluation.metrics import evaluate_recs
    from winnow.evaluation.splits import temporal_split

    inter = ds.interactions.subset(ds.interactions.weight > 0)
    if len(inter) < 10:
        return {"skipped": "fewer than 10 positive events"}
    split = temporal_split(inter, 1.0 - holdout)
    test_users = np.unique(split.test.user)
    train_users = np.unique(split.train.user)
    users = np.intersect1d(test_users, train_users)
    if len(users) == 0:
        return {"skipped": "no user has events on both sides of the cutoff", **split.params}
    rng = np.random.default_rng(seed)
    if len(users) > EVAL_MAX_USERS:
        users = np.sort(rng.choice(users, EVAL_MAX_USERS, replace=False))
    seen = split.train.to_csr(binary=True)
    out: dict[str, Any] = {"protocol": "temporal", "k": EVAL_K, **split.params,
                           "n_train": len(split.train), "n_test": len(split.test)}
    for name in names:
        model = _fit(name, config, split.train)
        recs, _ = model.recommend(users, EVAL_K, exclude=seen)
        metrics = evaluate_recs(recs, split.test, k=EVAL_K, users=users)
        out[name] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                     for k, v in metrics.items()}
    return out


def train(config: WinnowConfig, store: Store, *, holdout: float = 0.1, evaluate_models: bool = True,
          activate_bundle: bool = True, engine: str | None = None) -> BundleInfo:
    """Fit, evaluate, write and (by default) activate a new bundle; returns its BundleInfo.

    ``engine`` ("local" | "ray", default ``[training] engine``) runs two-tower training and the
    ranker's point-in-time features there (winnow.engine); the bundle format is the same."""
    from winnow.engine import open_engine

    with open_engine(config, engine) as eng:  # validated (ConfigError) before any work
        return _train(config, store, eng, holdout=holdout, evaluate_models=evaluate_models,
                      activate_bundle=activate_bundle)


def _train(config: WinnowConfig, store: Store, eng: Any, *, holdout: float, evaluate_models: bool,
           activate_bundle: bool) -> BundleInfo:
    from winnow.index import build_index

    t0 = time.time()
    ds = load_training_data(store, config)
    t_load = time.time()
    inter = ds.interactions
    if len(inter) == 0:
        raise DataError("no events in the store: import some before training", source="store")
    kinds = {s.kind for s in config.pipeline.sources}
    names = ["popularity", "popularity_recent", "als", "itemitem"]
    if "sequence" in kinds:  # time-neighbour item-item source (winnow.models.sequence)
        names.append("sequence")
    metrics = evaluate(["popularity", "als", "itemitem"], config, ds, holdout=holdout) \
        if evaluate_models else {"skipped": "evaluate_models=False"}
    t1 = time.time()
    models = {name: _fit(name, config, inter) for name in names}
    segment, two_tower_run = None, None
    if kinds & {"two_tower", "content"}:  # cold-start sources (winnow.models.two_tower)
        from winnow.models.two_tower import TwoTowerRecommender

        models["two_tower"], two_tower_run = eng.fit_two_tower(
            TwoTowerRecommender.from_config(config.models.two_tower).with_side_info(ds.items, ds.users), inter)
        names.append("two_tower")
    if "segment_popular" in kinds:
        from winnow.models.coldstart import SegmentPopularity, user_attributes

        segment = SegmentPopularity(l2=config.coldstart.segment_l2, first=config.coldstart.segment_first).fit(
            inter, user_attributes(ds.users, inter.n_users))
    served = None
    ranker_info: dict[str, Any] = {"skipped": "[ranker] enabled = false"}
    if config.ranker.enabled:  # the learned rank stage (winnow.training.served_ranker)
        from winnow.training.served_ranker import fit_served_ranker

        served, ranker_info = fit_served_ranker(config, ds, funnel_cls=eng.funnel_cls(), store=store)
    t2 = time.time()
    als = models["als"]
    index = build_index(config.index, als.item_factors_.shape[1], len(ds.item_ids))
    index.upsert(np.arange(len(ds.item_ids), dtype=np.int64), als.item_factors_)
    t3 = time.time()
    arrays, cats = _item_arrays(ds, models["popularity"].item_scores_, models["popularity_recent"].item_scores_)
    version = new_version()
    counts = {"events": int(len(inter)), "users": len(ds.user_ids), "items": len(ds.item_ids)}
    manifest = {
        "created_at": int(time.time()),
        "data": {"since": int(inter.timestamp.min()), "until": int(inter.timestamp.max()), **counts},
        "models": names,
        "sources": sorted(kinds),
        "index": {"backend": type(index).__name__, "dim": int(als.item_factors_.shape[1]),
                  "size": len(index)},
        "metrics": metrics,
        "ranker": ranker_info,
        "engine": {**eng.describe(), "two_tower": two_tower_run},
        "timings_s": {"load": round(t_load - t0, 3), "evaluate": round(t1 - t_load, 3),
                      "fit": round(t2 - t1, 3), "index": round(t3 - t2, 3)},
    }

    def fill(d: Path) -> None:
        (d / "user_ids.json").write_text(json.dumps(ds.user_ids.to_list()), encoding="utf-8")
        (d / "item_ids.json").write_text(json.dumps(ds.item_ids.to_list()), encoding="utf-8")
        (d / "categories.json").write_text(json.dumps(cats), encoding="utf-8")
        np.savez(d / "items.npz", **arrays)
        for name, model in models.items():
            model.save(d / "models" / name)
        index.save(d / "index")
        if served is not None:
            from winnow.training.served_ranker import save_served_ranker

            save_served_ranker(served, d)
        if segment is not None:
            from winnow.models.two_tower.serving import save_segment

            save_segment(segment, d / "segment")

    info = write_bundle(config.home, version, manifest=manifest, fill=fill)
    if activate_bundle:
        activate(config.home, version)
    log.info("bundle %s written in %.1fs", version, time.time() - t0)
    return info

"""``winnow train``: store -> dataset -> evaluate on a temporal hold-out -> fit -> bundle -> activate.

Stages (each idempotent; the bundle only appears once complete; each stage's wall / CPU seconds
and peak RSS land in the manifest's ``stages``, training/progress.py):
1. load the dataset from the store (events weighted by [events]; every catalog item indexed);
2. evaluate: fit each retrieval model on events before a temporal cutoff (the last
   ``holdout`` share of time is held out) and score top-k on the later events -> manifest metrics;
3. fit every component the bundle holds (winnow.components.components_for: the ``always`` ones
   -- popularity, trending, ALS, item-item -- and each configured source's), in registry order;
   a component with its own ``stage`` (two-tower, segment popularity) is timed apart;
4. fit the served ranker (training/served_ranker.py; it reuses the models of step 3) while the
   ANN index over the ALS item factors (ids = item indices) is built in a second thread;
5. write ``<home>/bundles/<version>/`` atomically and activate it (unless told not to: the
   autopilot, winnow.lifecycle, trains on a time cut and activates only after its gate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from winnow.bundle import (
    BundleContents,
    BundleInfo,
    FeatureInputs,
    activate,
    fill_bundle,
    new_version,
    newest_manifest,
    write_bundle,
)
from winnow.components import FitContext, components_for
from winnow.core.config import WinnowConfig
from winnow.core.errors import DataError
from winnow.data.interactions import Dataset
from winnow.data.store import Store
from winnow.training.progress import StageClock

log = logging.getLogger(__name__)
EVAL_K = 20
EVAL_MAX_USERS = 2000


def _ranker_reference(config: WinnowConfig, store: Store | None, ds: Dataset, served: Any,
                      cut: int) -> dict[str, Any] | None:
    """The drift reference of the fitted ranker (``StackedRanker.profile_``); for one trained on
    history lists, with ``served_features``: its features on the reference window's served
    slates (winnow.evaluation.drift_features.served_reference), when the store logged any."""
    if served is None or served.profile_ is None:
        return None
    prof = dict(served.profile_)
    if prof.get("labels") == "history" and store is not None and served.catalog_ is not None:
        from winnow.evaluation.drift_features import served_reference

        ref = served_reference(store, config, FeatureInputs(served.ranker_.spec, served.catalog_, ds.user_ids,
                                                            ds.item_ids), until=cut)
        if ref is not None:
            prof["served_features"] = ref
    return prof


def load_training_data(store: Store, config: WinnowConfig, *, until: int | None = None) -> Dataset:
    """The dataset to train on (winnow.data.training_data.load_dataset: every catalog item is
    indexed; weight = [events] type weight * value transform): every stored event, or only those
    with timestamp < ``until`` (a time cut)."""
    from winnow.data.training_data import load_dataset

    return load_dataset(store, config.events, name="store", until=until)


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


def evaluate(names: list[str], config: WinnowConfig, ds: Dataset, *, holdout: float,
             seed: int = 0) -> dict[str, Any]:
    """Offline metrics@EVAL_K of each model on a temporal hold-out (last ``holdout`` of time)."""
    from winnow.metrics import evaluate_recs
    from winnow.evaluation.splits import temporal_split
    from winnow.models.registry import build_model

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
        model = build_model(name, config).fit(split.train)
        recs, _ = model.recommend(users, EVAL_K, exclude=seen)
        metrics = evaluate_recs(recs, split.test, k=EVAL_K, users=users)
        out[name] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                     for k, v in metrics.items()}
    return out


def train(config: WinnowConfig, store: Store, *, holdout: float = 0.1, evaluate_models: bool = True,
          activate_bundle: bool = True, engine: str | None = None,
          progress: Callable[[str], None] | None = None, until: int | None = None,
          label: dict[str, Any] | None = None, warm_from: str | None = None) -> BundleInfo:
    """Fit, evaluate, write and (by default) activate a new bundle; returns its BundleInfo.

    ``until``: train on the events with timestamp < until only (a time cut; the impression log
    the ranker may learn from is cut at the same time), recorded as the manifest's
    ``data.cut``; default: every stored event. ``label``: stored as the manifest's
    ``lifecycle`` entry (winnow.lifecycle names the cycle that wrote the bundle).

    ``engine`` ("local" | "ray", default ``[training] engine``) runs two-tower training and the
    ranker's point-in-time features there (winnow.engine); the bundle format is the same.
    ``warm_from`` ("off" | "active" | a bundle directory; default ``[training] warm_start``):
    the bundle ALS and the two-tower continue from (winnow.bundle.warm; BundleError before any
    work for a bad one); the manifest's ``warm_start`` records the source and, per component,
    warm or cold (and why), the ids carried over / new and the iterations / epochs run.
    ``progress`` receives one line per stage start / end (elapsed, estimate of what is left)
    and the ranker's own steps; default: the module logger at INFO."""
    from winnow.engine import open_engine

    with open_engine(config, engine) as eng:  # validated (ConfigError) before any work
        return _train(config, store, eng, holdout=holdout, evaluate_models=evaluate_models,
                      activate_bundle=activate_bundle, progress=progress or log.info, until=until,
                      label=label, warm_from=warm_from)


def _build_index(config: WinnowConfig, factors: np.ndarray) -> Any:
    from winnow.index import build_index

    index = build_index(config.index, factors.shape[1], len(factors))
    index.upsert(np.arange(len(factors), dtype=np.int64), factors)
    return index


def _train(config: WinnowConfig, store: Store, eng: Any, *, holdout: float, evaluate_models: bool,
           activate_bundle: bool, progress: Callable[[str], None], until: int | None = None,
           label: dict[str, Any] | None = None, warm_from: str | None = None) -> BundleInfo:
    """The stages, in order: load -> evaluate -> fit (retrieval models) -> two_tower -> segment
    -> ranker, with the ANN index built in a thread alongside the ranker (faiss and LightGBM
    release the GIL; the index needs only the ALS factors) -> write. Each stage's wall / CPU
    seconds and peak RSS go into the manifest's ``stages`` (training/progress.py)."""
    from winnow.bundle.warm import choose_warm_source

    t0 = time.time()
    warm, warm_off = choose_warm_source(config.home, warm_from or config.training.warm_start, until=until)
    if warm is not None:
        progress(f"      warm start from bundle {warm.version}")
    progress("[load] reading events, catalog and users from the store")
    ds = load_training_data(store, config, until=until)
    t_load = time.time() - t0
    progress(f"      load done in {t_load:.1f} s: {len(ds.interactions):,} events, "
             f"{len(ds.user_ids):,} users, {len(ds.item_ids):,} items")
    inter = ds.interactions
    if len(inter) == 0:
        raise DataError("no events in the store: import some before training", source="store")
    kinds = {s.kind for s in config.pipeline.sources}
    comps = components_for(config)  # the registry decides what the bundle holds
    fit_stages = list(dict.fromkeys(c.stage for c in comps if c.stage != "fit"))
    plan = ["evaluate", "fit", *fit_stages, "ranker", "index", "write"]
    clock = StageClock(plan, events=len(inter), previous=newest_manifest(config.home), say=progress)
    for name, wanted in (("evaluate", evaluate_models), ("ranker", config.ranker.enabled)):
        if not wanted:
            clock.skip(name)
    metrics: dict[str, Any] = {"skipped": "evaluate_models=False"}
    if evaluate_models:
        with clock.stage("evaluate"):
            metrics = evaluate(["popularity", "als", "itemitem"], config, ds, holdout=holdout)
    fctx = FitContext(config, ds, eng, warm=warm, warm_off=warm_off or "warm start off")
    fitted: dict[str, Any] = {}  # artefact -> fitted (components sharing an artefact fit it once)
    for stage in ["fit", *fit_stages]:
        with clock.stage(stage):
            for comp in comps:
                if comp.stage == stage and comp.artefact is not None and comp.artefact not in fitted:
                    progress(f"      fitting {comp.artefact}")
                    fitted[comp.artefact] = comp.fit(fctx)
    models = {c.model: fitted[c.artefact] for c in comps if c.model is not None and c.artefact in fitted}
    als = fitted["als"]

    def index_stage() -> Any:
        with clock.stage("index"):
            return _build_index(config, als.item_factors_)

    served = None
    ranker_info: dict[str, Any] = {"skipped": "[ranker] enabled = false"}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-build") as pool:
        index_job = pool.submit(index_stage)
        if config.ranker.enabled:  # the learned rank stage (winnow.training.served_ranker)
            from winnow.training.served_ranker import fit_served_ranker, served_ranker_parts

            with clock.stage("ranker"):
                served, ranker_info = fit_served_ranker(config, ds, features=eng.offline_features, store=store,
                                                        models=models, progress=lambda m: progress(f"      {m}"),
                                                        until=until)
        index = index_job.result()
    arrays, cats = _item_arrays(ds, fitted["popularity"].item_scores_, fitted["popularity_recent"].item_scores_)
    version = new_version()
    from winnow.evaluation.drift_profile import reference_profile

    cut = int(until if until is not None else inter.timestamp.max() + 1)
    profile = reference_profile(store, config, until=cut, ranker=_ranker_reference(config, store, ds, served, cut))
    contents = BundleContents(ds.user_ids, ds.item_ids, cats, arrays, index=index,
                              ranker=served_ranker_parts(served) if served is not None else None,
                              profile=profile)
    for comp in comps:  # each component puts its artefact in its place of the layout
        if comp.artefact in fitted:
            comp.save(fitted[comp.artefact], contents)
    counts = {"events": int(len(inter)), "users": len(ds.user_ids), "items": len(ds.item_ids)}
    manifest: dict[str, Any] = {
        "created_at": int(time.time()),
        "data": {"since": int(inter.timestamp.min()), "until": int(inter.timestamp.max()), **counts},
        "models": list(contents.models),
        "sources": sorted(kinds),
        "index": {"backend": type(index).__name__, "dim": int(als.item_factors_.shape[1]),
                  "size": len(index)},
        "metrics": metrics,
        "ranker": ranker_info,
        "engine": {**eng.describe(), "two_tower": fctx.reports.get("two_tower")},
        "warm_start": {"source": warm.describe() if warm is not None else None,
                       **({"reason": warm_off} if warm is None else {}), "components": fctx.warm_reports},
    }
    if until is not None:
        manifest["data"]["cut"] = int(until)
    if label is not None:
        manifest["lifecycle"] = label

    def stages() -> None:  # the stage figures are known only now; the manifest is written after
        stages = {"load": {"wall_s": round(t_load, 3)}, **clock.report()}
        manifest["stages"] = stages
        manifest["timings_s"] = {name: rec["wall_s"] for name, rec in stages.items()}

    with clock.stage("write"):
        info = write_bundle(config.home, version, manifest=manifest, fill=fill_bundle(contents, stages))
        if activate_bundle:
            activate(config.home, version)
    total = clock.summary()
    progress(f"bundle {version} written in {time.time() - t0:.1f} s (peak RSS {total['peak_rss_mib'] / 1024:.2f} GiB)")
    return info

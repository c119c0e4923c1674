"""A serving runtime: one bundle (or none) turned into a ready Pipeline, plus per-user views.

The server holds exactly one Runtime reference; activation builds a new Runtime completely
(verify bundle, load models and index, overlay the store's current catalog, build and validate
the pipeline) and only then swaps the reference, so no request ever sees a half-built one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from winnow.core.config import PipelineConfig, SourceConfig, WinnowConfig
from winnow.core.ids import IdMap
from winnow.data.store import Store
from winnow.models.als import ALSRecommender
from winnow.components import ServeContext, build_pipeline, needs_profile
from winnow.pipeline.pipeline import Pipeline
from winnow.pipeline.types import NO_CATEGORY, Catalog, Request, Slate, UserView
from winnow.serving.state import UserRecord
from winnow.serving.user_history import HistoryCache, affinity
from winnow.bundle import Bundle

log = logging.getLogger(__name__)
NO_BUNDLE = "no_bundle_popularity"
HISTORY_CACHE_MAX = 10_000  # users whose history arrays are kept (~5 KB each at 100 events)


def _overlay_store_catalog(catalog: Catalog, store: Store) -> None:
    """Apply the store's current availability/sponsored flags and items added after training.
    Reads every item's scalar columns (no JSON: O(items) cheap at 10^6 items) a batch at a time
    (``Store.iter_item_scalars``: a worker building a challenger never holds the GIL for the
    whole catalog at once), then the full rows of the items the bundle does not know only."""
    unknown: list[str] = []
    for items in store.iter_item_scalars():
        ids = items["item_id"].tolist()
        idx = catalog.item_ids.encode(ids, missing=-1)
        known = idx >= 0
        catalog.available[idx[known]] = items["available"].to_numpy(bool)[known]
        catalog.sponsored[idx[known]] = items["sponsored"].to_numpy(bool)[known]
        if not known.all():
            unknown.extend(ids[int(p)] for p in np.flatnonzero(~known))
    if not unknown:
        return
    new = store.read_items_by_id(unknown)
    created = new["created_at"].astype("Int64").fillna(-1).to_numpy(np.int64)
    catalog.extend(new["item_id"].astype(str).tolist(), categories=[list(c or []) for c in new["categories"]],
                   available=new["available"].to_numpy(bool), sponsored=new["sponsored"].to_numpy(bool),
                   created_at=created)


def _learned_ranker(config: WinnowConfig, bundle: Bundle, store: Store, serving_feed: Any = None,
                    snapshot: Any = None) -> Any:
    """(LearnedRanker, FeatureFeed) when the bundle has a ranker and [ranker] is enabled;
    ``serving_feed``: the serving runtime's feed, whose state may be taken over or remapped,
    at ``snapshot`` (serving.learned_ranker.load_served_ranker)."""
    if not config.ranker.enabled:
        return None
    from winnow.serving.learned_ranker import load_served_ranker

    return load_served_ranker(bundle, store, config, serving_feed=serving_feed, snapshot=snapshot)


class Runtime:
    """Everything one model version needs to answer requests. Build with from_bundle / without_bundle."""

    def __init__(self, config: WinnowConfig, pipeline: Pipeline, catalog: Catalog, *,
                 version: str | None, user_ids: IdMap | None = None, als: Any = None,
                 itemitem: Any = None, index: Any = None, mode: str = "bundle",
                 data_until: int = -1, two_tower: Any = None) -> None:
        self.config = config
        self.pipeline = pipeline
        self.variant_pipelines: dict[tuple[str, str], Pipeline] = {}  # (experiment, variant) -> pipeline
        self.catalog = catalog
        self.version = version
        self.user_ids = user_ids
        self.als = als
        self.itemitem = itemitem
        self.index = index
        self.mode = mode
        self.data_until = data_until
        self.two_tower = two_tower  # TwoTowerServing (cold-start sources), or None
        self.feature_feed: Any = None  # learned ranker's live feature state (serving.learned_ranker.FeatureFeed)
        self.needs_profile = needs_profile(config.pipeline)
        self._n_model_items = int(getattr(als, "n_items_", 0) or getattr(itemitem, "n_items_", 0) or 0)
        self._fold_cache: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()
        self._fold_lock = threading.Lock()
        self._history = HistoryCache(min(config.serving.user_state_cache, HISTORY_CACHE_MAX))

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_bundle(cls, config: WinnowConfig, bundle: Bundle, store: Store, *,
                    item_stats: Any = None, serving_feed: Any = None, snapshot: Any = None) -> Runtime:
        """A runtime for a loaded bundle; ConfigError if the pipeline wiring needs what it lacks.
        ``item_stats``: the service's serving.item_stats.ItemStats (Thompson sampling);
        ``serving_feed``: the serving runtime's ranker feature feed (its state is taken over when
        the bundles' feature inputs are identical, remapped when the new bundle extends the
        serving one; serving.learned_ranker.load_served_ranker); ``snapshot``: the swap's
        consistent point for a remap (serving.swap.CatchUp.snapshot)."""
        arr = bundle.items
        catalog = Catalog(bundle.item_ids.copy(), category=arr["category"],
                          category_names=bundle.category_names, available=arr["available"],
                          sponsored=arr["sponsored"], created_at=arr["created_at"],
                          popularity=arr["popularity"], trending=arr["trending"],
                          vectors=getattr(bundle.models.get("als"), "item_factors_", None))
        _overlay_store_catalog(catalog, store)
        als, itemitem = bundle.models.get("als"), bundle.models.get("itemitem")
        if isinstance(als, ALSRecommender) and als.n_items_:
            als.recalculate_user(np.zeros(1, np.int64))  # warm the fold-in (computes Y^T Y once)
        ctx = ServeContext(catalog, config, bundle, store)  # each component loads its artefact once
        learned = _learned_ranker(config, bundle, store, serving_feed, snapshot)
        ranker = learned[0] if learned else None
        pipeline = build_pipeline(config.pipeline, ctx, ranker=ranker, item_stats=item_stats)
        runtime = cls(config, pipeline, catalog, version=bundle.version, user_ids=bundle.user_ids,
                      als=als, itemitem=itemitem, index=bundle.index,
                      data_until=int(bundle.info.manifest.get("data", {}).get("until", -1)),
                      two_tower=ctx.artefacts.get("two_tower"))
        runtime.feature_feed = learned[1] if learned else None
        # A/B variants with [pipeline] overrides: their own pipelines over the same artefacts
        for exp in config.experiments:
            for var in exp.variants:
                if var.overrides:
                    pcfg = PipelineConfig.model_validate({**config.pipeline.model_dump(), **var.overrides})
                    runtime.variant_pipelines[(exp.name, var.name)] = build_pipeline(
                        pcfg, ctx, ranker=ranker, item_stats=item_stats)
        return runtime

    @classmethod
    def without_bundle(cls, config: WinnowConfig, store: Store, *, item_stats: Any = None) -> Runtime:
        """No bundle: serve store popularity to everyone (the response says so)."""
        items = store.read_items()
        events = store.read_events()
        item_ids = IdMap("item", items["item_id"].tolist() if len(items) else [])
        codes = item_ids.encode(events.item_ids, add=True)
        counts = np.bincount(codes[events.item], minlength=len(item_ids)).astype(np.float32) \
            if len(events) else np.zeros(len(item_ids), np.float32)
        n = len(item_ids)
        catalog = Catalog(item_ids, category=np.full(n, NO_CATEGORY, np.int32), category_names=[],
                          available=np.ones(n, bool), sponsored=np.zeros(n, bool),
                          created_at=np.full(n, -1, np.int64), popularity=counts, trending=counts)
        _overlay_store_catalog(catalog, store)
        pcfg = config.pipeline.model_copy(update={
            "sources": [SourceConfig(name="popularity", kind="popularity", quota=config.pipeline.min_candidates)],
            "cold_start_sources": ["popularity"], "backfill_source": "popularity"})
        pipeline = build_pipeline(PipelineConfig.model_validate(pcfg.model_dump()),
                                  ServeContext(catalog, config, store=store), item_stats=item_stats)
        return cls(config, pipeline, catalog, version=None, mode=NO_BUNDLE)

    def pipeline_for(self, variants: dict[str, str]) -> Pipeline:
        """The pipeline of the first assigned variant that overrides [pipeline]; else the default."""
        for exp, var in variants.items():
            p = self.variant_pipelines.get((exp, var))
            if p is not None:
                return p
        return self.pipeline

    # --- per-request user view ---------------------------------------------------------------
    def _als_vector(self, user_id: str, rec: UserRecord | None, items: np.ndarray,
                    weights: np.ndarray, *, newest: int = -1) -> np.ndarray | None:
        """``newest``: the record's newest event time (-1 without a record)."""
        if self.als is None:
            return None
        uidx = self.user_ids.get(user_id) if self.user_ids is not None else -1
        # the trained vector holds until the user has events newer than the bundle's data
        if uidx >= 0 and (rec is None or newest <= self.data_until):
            return self.als.user_factors_[uidx]
        if rec is None:
            return None
        with self._fold_lock:
            hit = self._fold_cache.get(user_id)
            if hit is not None and hit[0] == rec.revision:
                self._fold_cache.move_to_end(user_id)
                return hit[1]
        ok = (items >= 0) & (items < self.als.n_items_)
        if not ok.any():
            return self.als.user_factors_[uidx] if uidx >= 0 else None
        vec = self.als.recalculate_user(items[ok], weights[ok])  # fold-in against fixed item factors
        with self._fold_lock:
            self._fold_cache[user_id] = (rec.revision, vec)
            while len(self._fold_cache) > self.config.serving.user_state_cache:
                self._fold_cache.popitem(last=False)
        return vec

    def view(self, user_id: str, rec: UserRecord | None, *, now: float | None = None,
             profile: dict[str, Any] | None = None) -> UserView:
        """The pipeline's view of a user; ``profile`` (Store.get_user) adds attributes and
        declared interests (category/creator names, or item ids -> ``interest_items``)."""
        view = self._history_view(user_id, rec, now=now)
        if self.user_ids is not None:
            view.user_index = self.user_ids.get(user_id)
        if profile:
            attrs = profile.get("attributes")
            view.attributes = dict(attrs) if isinstance(attrs, dict) else {}
            declared = [str(x) for x in (profile.get("interests") or [])]
            idx = self.catalog.item_ids.encode(declared, missing=-1) if declared else np.empty(0, np.int32)
            view.interest_items = [int(i) for i in idx if i >= 0]
            view.interests = [x for x, i in zip(declared, idx, strict=True) if i < 0]
        return view

    def request(self, user_id: str, rec: UserRecord | None, *, k: int, now: float,
                profile: dict[str, Any] | None = None, surface: str = "default",
                exclude: list[str] | None = None, categories: list[str] | None = None,
                explain: bool = False, context: dict[str, Any] | None = None,
                request_id: str = "") -> Request:
        """One request resolved to this bundle's indices: the user's view (``view``), excluded
        item ids (unknown ones ignored), category names -> codes (unknown ones dropped: a filter
        on them allows nothing). The service (``answer``) and batch mode
        (winnow.serving.batch) build every request here."""
        view = self.view(user_id, rec, now=now, profile=profile)
        ex = self.catalog.item_ids.encode(exclude, missing=-1) if exclude else np.empty(0, np.int32)
        cats = None
        if categories is not None:
            cats = frozenset(c for c in (self.catalog.category_code(x) for x in categories) if c >= 0)
        return Request(view, k, now, surface=surface, exclude=ex[ex >= 0], categories=cats,
                       explain=explain, context=context if context is not None else {}, request_id=request_id)

    def answer(self, *, user_id: str, rec: UserRecord | None, profile: dict[str, Any] | None, k: int,
               surface: str, exclude: list[str], explain: bool, categories: list[str] | None,
               context: dict[str, Any], request_id: str, now: float, variants: dict[str, str],
               pause: Callable[[], None] | None = None) -> Slate:
        """This runtime's funnel for one request (no logging, no state written): the request
        resolved (``request``) and run by the variant's pipeline; ``pause`` is called between its
        stages (Pipeline.recommend). The service's requests and shadow jobs (serving/shadow.py,
        serving/shadow_proc.py) answer here."""
        request = self.request(user_id, rec, k=k, now=now, profile=profile, surface=surface, exclude=exclude,
                               categories=categories, explain=explain, context=context, request_id=request_id)
        return self.pipeline_for(variants).recommend(request, pause=pause)

    def forget(self, user_id: str) -> bool:
        """Drop the user's cached fold-in vector (after erasure); True if one was held."""
        with self._fold_lock:
            self._history.forget(user_id)
            return self._fold_cache.pop(user_id, None) is not None

    def add_items(self, items: Any) -> float:
        """Index items created through the API in the two-tower sources (content only);
        seconds taken (0 without a two-tower model)."""
        if self.two_tower is None or not len(items):
            return 0.0
        idx = self.catalog.item_ids.encode(items["item_id"].astype(str).tolist(), missing=-1)
        ok = idx >= 0
        return self.two_tower.add_items([int(i) for i in idx[ok]], items[ok].reset_index(drop=True))

    def _history_view(self, user_id: str, rec: UserRecord | None, *, now: float | None = None) -> UserView:
        """The pipeline's view of a user: history in this bundle's indices, ALS vector, affinity
        (the time-independent part cached per record revision: serving.user_history)."""
        now = time.time() if now is None else now
        if rec is None or not rec.recent:
            known = self.user_ids is not None and user_id in self.user_ids
            return UserView(user_id, known=known, als_vector=self._als_vector(user_id, None, np.empty(0, np.int32),
                                                                            np.empty(0, np.float32)))
        h = self._history.get(rec, self.catalog)
        return UserView(
            user_id, known=True,
            als_vector=self._als_vector(user_id, rec, h.pos_items, h.pos_weights, newest=h.newest),
            recent_items=h.recent_items, recent_weights=h.recent_weights, purchased=h.purchased,
            seen_items=h.seen_items, seen_at=h.seen_at,
            category_affinity=affinity(h, now, self.config.pipeline.affinity_half_life_s))

    # --- similar items -----------------------------------------------------------------------
    def similar(self, item: int, k: int) -> list[tuple[int, float, list[str]]]:
        """Co-occurrence neighbours then embedding neighbours of ``item`` (index), merged, best first."""
        out: dict[int, tuple[float, list[str]]] = {}
        if self.itemitem is not None and item < self.itemitem.n_items_:
            ii, sc = self.itemitem.similar_items(np.asarray([item]), k)
            for i, s in zip(ii[0].tolist(), sc[0].tolist(), strict=True):
                if i >= 0:
                    out[i] = (float(s), ["cooccurrence"])
        if self.index is not None and self.als is not None and item < self.als.n_items_:
            ids, sc = self.index.search(self.als.item_factors_[item][None, :], k + 1,
                                        exclude=np.asarray([item], np.int64))
            for i, s in zip(ids[0].tolist(), sc[0].tolist(), strict=True):
                if i >= 0 and i != item:
                    if i in out:
                        out[i][1].append("embedding")
                    else:
                        out[i] = (float(s), ["embedding"])
        avail = self.catalog.available
        ranked = [(i, s, src) for i, (s, src) in out.items() if avail[i]]
        # co-occurrence first (it is the stronger signal), then embedding, each by score
        ranked.sort(key=lambda x: (x[2][0] != "cooccurrence", -x[1]))
        return ranked[:k]
